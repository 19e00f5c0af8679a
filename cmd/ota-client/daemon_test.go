package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/otakit/ota/internal/dbusapi"
)

// TestDaemonGDBus (acceptance 1): on a private system bus, gdbus introspect shows the
// interface; gdbus call runs Check, then Update against the repository served on
// 127.0.0.1, and gdbus monitor records Progress percents that never go back and end at 100
// and one Finished('update', true, …); the real ostree then sees v2 as the default.
func TestDaemonGDBus(t *testing.T) {
	d, _ := resumeDevice(t, "delta")
	b := startBus(t, d)
	startDaemon(t, b, d, "--cmdline", d.cmdlineOf(t, d.commits[0]))

	intro := b.gdbus(t, "introspect", "--system", "--dest", dbusapi.BusName, "--object-path", string(dbusapi.Path))
	for _, want := range []string{"interface " + dbusapi.Interface + " {", "Update();", "ApplyBundle(in  s path);", "Cancel();",
		"Progress(s phase,", "Finished(s operation,", "readonly b UpdateAvailable", "readonly s RemoteRevision", "readonly s LastResult"} {
		if !strings.Contains(intro, want) {
			t.Errorf("gdbus introspect lacks %q:\n%s", want, intro)
		}
	}

	mon := startMonitor(t, b)
	if out := b.call(t, "Check"); strings.TrimSpace(out) != "()" {
		t.Errorf("Check returned %q", out)
	}
	mon.wait(t, `Finished \('check', true, 'update available: 2.0 \(`+d.commits[1]+`\)'\)`)
	if got := b.get(t, "UpdateAvailable"); !strings.Contains(got, "<true>") {
		t.Errorf("UpdateAvailable after Check: %s", got)
	}
	if got := b.get(t, "RemoteVersion"); !strings.Contains(got, "<'2.0'>") {
		t.Errorf("RemoteVersion after Check: %s", got)
	}
	start := mon.len()
	b.call(t, "Update")
	mon.wait(t, `Finished \('update', `)

	lines := mon.lines()[start:]
	progressRE := regexp.MustCompile(`\.Progress \('(\w+)', ([0-9.]+), uint64 (\d+), uint64 (\d+)\)$`)
	last, n, finishedOK := -1.0, 0, 0
	var phases []string
	for _, l := range lines {
		if m := progressRE.FindStringSubmatch(l); m != nil {
			pct, _ := strconv.ParseFloat(m[2], 64)
			if pct < last || pct > 100 {
				t.Errorf("percent %v after %v: %s", pct, last, l)
			}
			last = pct
			n++
			if len(phases) == 0 || phases[len(phases)-1] != m[1] {
				phases = append(phases, m[1])
			}
		}
		if strings.Contains(l, ".Finished ('update', true, 'installed: "+d.commits[1]+".0 2.0") {
			finishedOK++
		}
	}
	if last != 100 || n < 5 {
		t.Errorf("%d Progress signals, the last at %v%%, want several ending at 100:\n%s", n, last, strings.Join(lines, "\n"))
	}
	if want := []string{"check", "download", "apply", "deploy", "finalize"}; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if finishedOK != 1 {
		t.Errorf("%d Finished('update', true, 'installed: …'), want 1:\n%s", finishedOK, strings.Join(lines, "\n"))
	}
	checkUpdated(t, d)
	for prop, want := range map[string]string{"DefaultRevision": "<'" + d.commits[1] + "'>", "RollbackRevision": "<'" + d.commits[0] + "'>",
		"BootedRevision": "<'" + d.commits[0] + "'>", "RestartRequired": "<true>", "UpdateAvailable": "<false>", "Status": "<'idle'>"} {
		if got := b.get(t, prop); !strings.Contains(got, want) {
			t.Errorf("%s after Update: %s, want %s", prop, got, want)
		}
	}
}

// monitor is gdbus monitor watching the daemon's signals.
type monitor struct {
	mu     sync.Mutex
	out    []string
	notify chan struct{}
}

// startMonitor runs gdbus monitor on the daemon's name until the test ends, once it
// watches the daemon.
func startMonitor(t *testing.T, b *privateBus) *monitor {
	t.Helper()
	cmd := exec.Command("gdbus", "monitor", "--system", "--dest", dbusapi.BusName)
	cmd.Env = b.env()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	m := &monitor{notify: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			m.mu.Lock()
			m.out = append(m.out, sc.Text())
			m.mu.Unlock()
			select {
			case m.notify <- struct{}{}:
			default:
			}
		}
	}()
	m.wait(t, "is owned by")
	return m
}

func (m *monitor) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.out)
}

func (m *monitor) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.out)
}

// wait waits for a line matching pattern.
func (m *monitor) wait(t *testing.T, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	// Generous: the daemon works at nice 10 in the idle I/O class, which a busy machine (a
	// CI run's bitbake and Buildroot tests beside this one) can hold up for a long while.
	deadline := time.After(3 * time.Minute)
	for {
		if slices.ContainsFunc(m.lines(), re.MatchString) {
			return
		}
		select {
		case <-m.notify:
		case <-deadline:
			t.Fatalf("gdbus monitor printed no line matching %q:\n%s", pattern, strings.Join(m.lines(), "\n"))
		}
	}
}

// holdLargeFile makes s send a third of the large file (the delta part or the object over
// largeFile) at its first request and then hold the connection until the client goes away;
// it returns the file's path and the size of the third.
func holdLargeFile(s *repoServer) (big *string, third *int64, mu *sync.Mutex) {
	big, third, mu = new(string), new(int64), &sync.Mutex{}
	s.setPlan(func(p string, size int64, n int) action {
		if size <= largeFile || n > 0 {
			return serveAll
		}
		mu.Lock()
		*big, *third = p, size/3
		mu.Unlock()
		return action{limit: size / 3, hold: true}
	})
	return big, third, mu
}

// waitPartial waits until the partial file of the large file's download holds want bytes.
func waitPartial(t *testing.T, d device, want func() int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, size := findPartial(t, d)
		if w := want(); w > 0 && size == w {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the partial file has %d bytes, not %d", size, want())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDaemonCancelResume (acceptance 2): Cancel() in the middle of the download of a delta
// part stops the update: Finished says it was cancelled, and the sysroot is as it was but
// for the download's resume state and the last result; a later Update() continues the part
// from the bytes already fetched (one Range request from the partial's size) and deploys
// v2.
func TestDaemonCancelResume(t *testing.T) {
	d, s := resumeDevice(t, "delta")
	big, third, mu := holdLargeFile(s)
	b := startBus(t, d)
	startDaemon(t, b, d)
	c := dialBus(t, b)
	e := &refusalEnv{d: d}
	before := e.state(t)

	from := c.mark()
	c.mustCall(t, "Update")
	waitPartial(t, d, func() int64 { mu.Lock(); defer mu.Unlock(); return *third })
	c.mustCall(t, "Cancel")
	f, _ := c.waitFinished(t, from, "update", 30*time.Second)
	if f.success || f.message != "update: cancelled" {
		t.Errorf("Finished after Cancel: %+v, want a failure 'update: cancelled'", f)
	}
	if got := c.prop(t, "Error"); got != "update: cancelled" {
		t.Errorf("Error after Cancel: %q", got)
	}
	e.checkUnchanged(t, before)
	if err := c.call("Cancel"); err == nil || err.(dbus.Error).Name != dbusapi.ErrorNotRunning {
		t.Errorf("Cancel with nothing running: %v, want %s", err, dbusapi.ErrorNotRunning)
	}

	from = c.mark()
	c.mustCall(t, "Update")
	if f, _ := c.waitFinished(t, from, "update", 60*time.Second); !f.success {
		t.Fatalf("Update after the cancel: %+v", f)
	}
	checkUpdated(t, d)
	mu.Lock()
	rs := s.files()[*big]
	mu.Unlock()
	if want := fmt.Sprintf("bytes=%d-", *third); len(rs) != 2 || rs[1].rng != want || rs[1].status != http.StatusPartialContent {
		t.Errorf("responses for %s: %s; want the second a 206 to %q", *big, describeResponses(rs), want)
	}
	checkFetchedOnce(t, s, map[string]int{*big: 1}, func(p string) bool { return p == *big })
}

// TestDaemonBusy (acceptance 3): while Update() runs (a download capped at 1 MiB/s by
// max-rate), a second Update() and every other operation is refused with
// org.otakit.OtaClient1.Error.Busy; an `ota-client update` started meanwhile waits for the
// sysroot's lock, saying so, and once the daemon's update is done finds nothing to do: the
// sysroot is the daemon's update, whole, and the daemon's properties say so.
func TestDaemonBusy(t *testing.T) {
	d, s := resumeDevice(t, "delta")
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + s.URL + "\nref: myos/stable\nmax-rate: 1MiB\n"})
	b := startBus(t, d)
	startDaemon(t, b, d)
	c := dialBus(t, b)

	from := c.mark()
	c.mustCall(t, "Update")
	c.waitProperty(t, from, "Status", "downloading", 20*time.Second)
	for _, m := range []string{"Update", "Check", "Download", "Install", "Rollback", "MarkGood", "Reboot"} {
		err := c.call(m)
		if de, ok := err.(dbus.Error); !ok || de.Name != dbusapi.ErrorBusy || !strings.Contains(fmt.Sprint(de.Body...), "update is running (downloading)") {
			t.Errorf("%s during the update: %v, want %s", m, err, dbusapi.ErrorBusy)
		}
	}
	if err := c.call("ApplyBundle", "/nonexistent.bundle"); err == nil || err.(dbus.Error).Name != dbusapi.ErrorBusy {
		t.Errorf("ApplyBundle during the update: %v", err)
	}

	cli := exec.Command(otaClient, "--sysroot", d.sysroot, "update")
	var stdout strings.Builder
	stderr := &syncBuilder{}
	cli.Stdout, cli.Stderr = &stdout, stderr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), "waiting for the lock of "+d.sysroot); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ota-client update did not wait for the lock: %q", stderr.String())
		}
	}
	f, i := c.waitFinished(t, from, "update", 60*time.Second)
	if !f.success {
		t.Fatalf("the daemon's update: %+v", f)
	}
	// "up to date": the command ran once the daemon's update was whole.
	if err := <-exited; err != nil {
		t.Fatalf("ota-client update: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "up to date: myos/stable "+d.commits[1]) {
		t.Errorf("ota-client update after the daemon's printed %q", stdout.String())
	}
	checkUpdated(t, d)
	if got := c.prop(t, "DefaultRevision"); got != d.commits[1] {
		t.Errorf("DefaultRevision %v after Finished %+v (signal %d)", got, f, i)
	}
}

// syncBuilder is a strings.Builder safe for concurrent use.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
