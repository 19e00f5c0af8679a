package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/sysroot"
)

// device is a sysroot made by the real ostree, with commits made by ota-build deployed in
// order: the last is the default, the one before the rollback.
type device struct {
	sysroot string
	repo    string   // the ota-build repository the commits are in
	commits []string // by version: 1.0, 2.0
}

// newDevice commits versions 1.0 and 2.0 of a bootable tree with ota-build, and deploys
// the first n of them with `ostree admin deploy` into a sysroot set up for U-Boot, with a
// client.yaml.
func newDevice(t *testing.T, n int) device {
	t.Helper()
	requireTool(t, "ostree", "chattr")
	if os.Geteuid() != 0 {
		t.Skip("needs root (ostree admin deploy into a bare repository)")
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	must(t, otaBuild, "init", "--repo", repo)
	d := device{sysroot: filepath.Join(dir, "sysroot"), repo: repo}
	t.Cleanup(func() {
		// ostree makes deployments immutable.
		dirs, _ := filepath.Glob(filepath.Join(d.sysroot, "ostree/deploy/*/deploy/*"))
		if len(dirs) > 0 {
			exec.Command("chattr", append([]string{"-i"}, dirs...)...).Run()
		}
	})
	for i, version := range []string{"1.0", "2.0"} {
		tree := filepath.Join(dir, "tree-"+version)
		writeFiles(t, tree, map[string]string{
			"boot/vmlinuz-6.1.0-test":                "KERNEL",
			"usr/lib/modules/6.1.0-test/modules.dep": "",
			"etc/os-release":                         "ID=myos\nVERSION_ID=" + version + "\n",
			"usr/share/app/version":                  version,
			// Larger than what ota-client fetches into memory, and changed in part.
			"usr/share/app/data.bin": blob(3<<20, 1) + blob(64<<10, int64(i+2)),
		})
		os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
		if err := os.Symlink("../share/app/version", filepath.Join(tree, "usr/bin/app-version")); err != nil {
			t.Fatal(err)
		}
		out := must(t, otaBuild, "commit", "--repo", repo, "-b", "myos/stable", "--tree", "dir="+tree, "--bootable",
			"--version", version, "--timestamp", strconv.Itoa(1700000000+i), "-s", "release "+version)
		lines := strings.Fields(out)
		d.commits = append(d.commits, lines[len(lines)-1])
	}
	s := d.sysroot
	os.MkdirAll(s, 0o755)
	must(t, "ostree", "admin", "init-fs", s)
	must(t, "ostree", "admin", "os-init", "--sysroot="+s, "myos")
	must(t, "ostree", "config", "--repo="+s+"/ostree/repo", "set", "sysroot.bootloader", "uboot")
	os.MkdirAll(s+"/boot/loader.0", 0o755)
	os.WriteFile(s+"/boot/loader.0/uEnv.txt", nil, 0o644)
	os.Symlink("loader.0", s+"/boot/loader")
	for _, c := range d.commits[:n] {
		must(t, "ostree", "pull-local", "--repo="+s+"/ostree/repo", repo, c)
		must(t, "ostree", "admin", "deploy", "--sysroot="+s, "--os=myos", "--karg=root=/dev/mmcblk0p2", "--karg=rw", c)
	}
	writeFiles(t, s, map[string]string{
		"etc/ota/client.yaml":         "url: https://updates.example.com/repo\nref: myos/stable\n",
		"boot/firmware/ota-state.txt": "bootcount=2\x00",
	})
	return d
}

// blob returns n pseudo-random bytes from seed: content that does not compress.
func blob(n int, seed int64) string {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return string(b)
}

// writeFiles writes files (path relative to root: content) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ostreeStatus returns the deployments `ostree admin status` lists, default first.
func (d device) ostreeStatus(t *testing.T) []string {
	t.Helper()
	out := must(t, "ostree", "admin", "status", "--sysroot="+d.sysroot)
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^[* ] myos ([0-9a-f]{64}\.[0-9]+)`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

// cmdlineOf writes the kernel command line of the boot entry of commit into a file, as
// /proc/cmdline holds it after the boot script started that entry, and returns its path.
func (d device) cmdlineOf(t *testing.T, commit string) string {
	t.Helper()
	entries, _ := filepath.Glob(filepath.Join(d.sysroot, "boot/loader/entries/*.conf"))
	for _, e := range entries {
		data, _ := os.ReadFile(e)
		m := regexp.MustCompile(`(?m)^options (.*)$`).FindSubmatch(data)
		if m == nil {
			continue
		}
		target, _ := os.Readlink(filepath.Join(d.sysroot, regexp.MustCompile(`ostree=(\S+)`).FindStringSubmatch(string(m[1]))[1]))
		if strings.Contains(target, commit) {
			p := filepath.Join(t.TempDir(), "cmdline")
			os.WriteFile(p, append(m[1], '\n'), 0o644)
			return p
		}
	}
	t.Fatalf("no boot entry of %s", commit)
	return ""
}

// snapshot returns every path of the sysroot but the repository's objects, with its
// symlink target or content hash: what "nothing changed" compares. ostree/lock, which
// ostree and ota-client create to take the sysroot's lock, is left out.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		switch rel {
		case "ostree/repo/objects":
			return fs.SkipDir
		case "ostree/lock":
			return nil
		}
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			rel += " -> " + target
		case e.Type().IsRegular():
			data, _ := os.ReadFile(p)
			rel += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// TestStatusJSON: status lists the booted, default and rollback deployments with the
// commits and versions ota-build made, and the remote of client.yaml.
func TestStatusJSON(t *testing.T) {
	d := newDevice(t, 2)
	var rep struct {
		Schema                    int
		Booted, Default, Rollback *deploymentInfo
		Remote                    map[string]any
		LastResult                *sysroot.Result `json:"last_result"`
	}
	out := mustClient(t, "--sysroot", d.sysroot, "--cmdline", d.cmdlineOf(t, d.commits[0]), "status", "--json").stdout
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	want := func(i int) *deploymentInfo {
		return &deploymentInfo{Stateroot: "myos", Commit: d.commits[i], Version: []string{"1.0", "2.0"}[i],
			Timestamp: time.Unix(1700000000+int64(i), 0).UTC(), Subject: "release " + []string{"1.0", "2.0"}[i]}
	}
	for _, c := range []struct {
		name      string
		got, want *deploymentInfo
	}{{"default", rep.Default, want(1)}, {"rollback", rep.Rollback, want(0)}, {"booted", rep.Booted, want(0)}} {
		if c.got == nil || *c.got != *c.want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, c.want)
		}
	}
	if rep.Schema != otacli.ReportSchema || rep.Remote["url"] != "https://updates.example.com/repo" || rep.Remote["ref"] != "myos/stable" || rep.LastResult != nil {
		t.Errorf("status --json:\n%s", out)
	}
	// Without --cmdline, a sysroot that is not / has no booted deployment.
	text := mustClient(t, "--sysroot", d.sysroot, "status").stdout
	for _, line := range []string{"booted:      none", "default:     myos " + d.commits[1] + ".0 2.0 2023-11-14T22:13:21Z", "rollback:    myos " + d.commits[0] + ".0 1.0", "remote:      https://updates.example.com/repo myos/stable", "last result: none"} {
		if !strings.Contains(text, line) {
			t.Errorf("status lacks %q:\n%s", line, text)
		}
	}
}

// TestRollback: rollback swaps default and rollback, as ostree sees it too, records the
// last result, and a second rollback swaps them back.
func TestRollback(t *testing.T) {
	d := newDevice(t, 2)
	v1, v2 := d.commits[0]+".0", d.commits[1]+".0"
	if got := d.ostreeStatus(t); !slices.Equal(got, []string{v2, v1}) {
		t.Fatalf("ostree admin status before: %q", got)
	}
	var rep rollbackJSON
	json.Unmarshal([]byte(mustClient(t, "--sysroot", d.sysroot, "rollback", "--json").stdout), &rep)
	if rep.Default == nil || rep.Default.Commit != d.commits[0] || rep.Rollback == nil || rep.Rollback.Commit != d.commits[1] {
		t.Errorf("rollback --json: %+v", rep)
	}
	if got := d.ostreeStatus(t); !slices.Equal(got, []string{v1, v2}) {
		t.Errorf("ostree admin status after rollback: %q, want %q", got, []string{v1, v2})
	}
	uEnv, _ := os.ReadFile(filepath.Join(d.sysroot, "boot/loader/uEnv.txt"))
	if !strings.Contains(string(uEnv), "bootargs2=") {
		t.Errorf("uEnv.txt has no rollback entry:\n%s", uEnv)
	}
	var res sysroot.Result
	data, err := os.ReadFile(filepath.Join(d.sysroot, sysroot.ResultPath("myos")))
	if err != nil || json.Unmarshal(data, &res) != nil || res.Operation != "rollback" || res.Outcome != "success" ||
		res.From != d.commits[1] || res.To != d.commits[0] || time.Since(res.Time) > time.Minute {
		t.Errorf("last result %s (%v)", data, err)
	}
	if text := mustClient(t, "--sysroot", d.sysroot, "status").stdout; !strings.Contains(text, "last result: rollback success") {
		t.Errorf("status does not show the rollback:\n%s", text)
	}
	mustClient(t, "--sysroot", d.sysroot, "rollback")
	if got := d.ostreeStatus(t); !slices.Equal(got, []string{v2, v1}) {
		t.Errorf("ostree admin status after the second rollback: %q", got)
	}
}

// TestNoRollbackRefused: with one deployment, rollback and mark-bad refuse in one line and
// change nothing.
func TestNoRollbackRefused(t *testing.T) {
	d := newDevice(t, 1)
	before := snapshot(t, d.sysroot)
	for _, args := range [][]string{{"rollback"}, {"mark-bad"}} {
		r := client(append([]string{"--sysroot", d.sysroot}, args...)...)
		if r.code != otacli.ExitFailure || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
			!strings.HasPrefix(r.stderr, "ota-client: no rollback deployment") || !strings.Contains(r.stderr, "nothing changed") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	after := snapshot(t, d.sysroot)
	for _, p := range before {
		if !slices.Contains(after, p) {
			t.Errorf("changed or removed: %s", p)
		}
	}
	for _, p := range after {
		if !slices.Contains(before, p) {
			t.Errorf("changed or added: %s", p)
		}
	}
}

// TestMarkGoodBad: mark-bad writes a count beyond the boot script's limit, mark-good the
// count 0 it expects; mark-good on the rollback deployment makes it the default first.
func TestMarkGoodBad(t *testing.T) {
	d := newDevice(t, 2)
	state := filepath.Join(d.sysroot, "boot/firmware/ota-state.txt")
	read := func() string { data, _ := os.ReadFile(state); return string(data) }
	if out := mustClient(t, "--sysroot", d.sysroot, "mark-bad").stdout; read() != "bootcount=ffff\n" || out != state+": bootcount=ffff\n" {
		t.Errorf("after mark-bad: %q, printed %q", read(), out)
	}
	var rep markJSON
	json.Unmarshal([]byte(mustClient(t, "--sysroot", d.sysroot, "mark-good", "--json").stdout), &rep)
	if read() != "bootcount=0\n" || rep != (markJSON{BootCounter: state, Bootcount: 0}) {
		t.Errorf("after mark-good: %q, report %+v", read(), rep)
	}
	v1, v2 := d.commits[0]+".0", d.commits[1]+".0"
	if got := d.ostreeStatus(t); !slices.Equal(got, []string{v2, v1}) {
		t.Errorf("mark-good on the default changed the deployments: %q", got)
	}

	// The boot script fell back to 1.0: mark-good keeps it.
	os.WriteFile(state, []byte("bootcount=4\x00"), 0o644)
	json.Unmarshal([]byte(mustClient(t, "--sysroot", d.sysroot, "--cmdline", d.cmdlineOf(t, d.commits[0]), "mark-good", "--json").stdout), &rep)
	if read() != "bootcount=0\n" || !rep.FellBack {
		t.Errorf("after mark-good on the rollback: %q, report %+v", read(), rep)
	}
	if got := d.ostreeStatus(t); !slices.Equal(got, []string{v1, v2}) {
		t.Errorf("ostree admin status after mark-good on the rollback: %q, want %q", got, []string{v1, v2})
	}
	var st statusJSON
	json.Unmarshal([]byte(mustClient(t, "--sysroot", d.sysroot, "status", "--json").stdout), &st)
	if r := st.LastResult; r == nil || r.Operation != "fallback" || r.From != d.commits[1] || r.To != d.commits[0] || !strings.Contains(r.Message, "bootcount 4") {
		t.Errorf("last result %+v", r)
	}

	// A missing configuration is one line naming both places looked at.
	os.Remove(filepath.Join(d.sysroot, "etc/ota/client.yaml"))
	r := client("--sysroot", d.sysroot, "mark-good")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "etc/ota/client.yaml nor a remote in") {
		t.Errorf("mark-good without configuration: exit %d, %q", r.code, r.stderr)
	}
}

// TestStatusDuringAnUpdate: while another process holds the sysroot's lock (an update, the
// daemon), status still reports at once, as ostree admin status does, while a command that
// writes waits for it.
func TestStatusDuringAnUpdate(t *testing.T) {
	d := newDevice(t, 2)
	s, err := sysroot.Open(d.sysroot, sysroot.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	status := exec.Command(otaClient, "--sysroot", d.sysroot, "status", "--json")
	done := make(chan error, 1)
	var out, stderr strings.Builder
	status.Stdout, status.Stderr = &out, &stderr
	if err := status.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- status.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), d.commits[1]) || stderr.Len() != 0 {
			t.Errorf("status while the lock is held: %v, stdout %q, stderr %q", err, out.String(), stderr.String())
		}
	case <-time.After(20 * time.Second):
		status.Process.Kill()
		t.Fatalf("status waits for the lock: %q", stderr.String())
	}

	rollback := exec.Command(otaClient, "--sysroot", d.sysroot, "rollback")
	var rbErr syncBuilder
	rollback.Stderr = &rbErr
	if err := rollback.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { rollback.Process.Kill(); rollback.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(rbErr.String(), "waiting for the lock"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rollback did not wait for the lock: %q", rbErr.String())
		}
	}
}
