package main

import (
	"bufio"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
	deadline := time.After(60 * time.Second)
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
