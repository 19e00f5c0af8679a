package scratch

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary act as a process that creates scratch entries and is then
// killed: with SCRATCH_HELPER=DIR it creates a directory and a file in DIR, prints their
// paths and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SCRATCH_HELPER"); dir != "" {
		d, err := MkdirTemp(dir, "dir-", 0o755)
		if err != nil {
			panic(err)
		}
		f, err := CreateTemp(dir, "file-")
		if err != nil {
			panic(err)
		}
		os.Stdout.WriteString(d.Path + "\n" + f.Name() + "\n")
		select {}
	}
	os.Exit(m.Run())
}

// killedEntries runs the helper, SIGKILLs it once it has made its entries, and returns them.
func killedEntries(t *testing.T, dir string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SCRATCH_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got string
	for strings.Count(got, "\n") < 2 {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("helper: %v (read %q)", err, got)
		}
		got += string(buf[:n])
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	return lines[0], lines[1], cmd.Process.Pid
}

// deadPID returns the number of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestCleanRemovesWhatAKilledProcessLeft: the directory and file a SIGKILLed process made
// are removed by the next creation with the same prefix, and not before.
func TestCleanRemovesWhatAKilledProcessLeft(t *testing.T) {
	dir := t.TempDir()
	d, f, pid := killedEntries(t, dir)
	if !strings.HasPrefix(filepath.Base(d), "dir-"+strconv.Itoa(pid)+"-") {
		t.Errorf("directory %s is not named after the process %d", d, pid)
	}
	os.WriteFile(filepath.Join(d, "partial"), []byte("data"), 0o644)
	if !exists(d) || !exists(f) {
		t.Fatalf("the killed helper left nothing: %s %s", d, f)
	}
	other, err := CreateTemp(dir, "other-") // another prefix: not cleaned
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if !exists(d) || !exists(f) {
		t.Fatalf("a creation with another prefix removed the entries")
	}
	nd, err := MkdirTemp(dir, "dir-", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.RemoveAll()
	nf, err := CreateTemp(dir, "file-")
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	if exists(d) || exists(f) {
		t.Errorf("left by the killed process, still there: %v %v", exists(d), exists(f))
	}
	if !exists(nd.Path) || !exists(nf.Name()) {
		t.Errorf("the new entries are missing")
	}
}

// TestCleanKeepsWhatIsNotAbandoned: entries in use (locked, or of a live process), of
// another user, or not named by this package survive Clean; an unlocked entry of a dead
// process does not.
func TestCleanKeepsWhatIsNotAbandoned(t *testing.T) {
	dir := t.TempDir()
	dead := deadPID(t)
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	abandoned := mk("x-" + strconv.Itoa(dead) + "-0123456789ab")
	locked := mk("x-" + strconv.Itoa(dead+1) + "-0123456789ab")
	lf, err := os.Open(locked)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if deadPID(t) == dead+1 {
		t.Skip("PID reuse")
	}
	live := mk("x-" + strconv.Itoa(os.Getppid()) + "-0123456789ab")
	foreign := mk("x-" + strconv.Itoa(dead) + "-ba9876543210")
	if os.Geteuid() == 0 {
		os.Chown(foreign, 65534, 65534)
	} else {
		foreign = ""
	}
	unnamed := mk("x-" + strconv.Itoa(dead) + "-short")
	notOurs := mk("x-notapid-0123456789ab")
	removed := Clean(dir, "x-")
	if !slices.Equal(removed, []string{abandoned}) {
		t.Errorf("removed %v, want only %s", removed, abandoned)
	}
	for _, p := range []string{locked, live, foreign, unnamed, notOurs} {
		if p != "" && !exists(p) {
			t.Errorf("%s was removed", filepath.Base(p))
		}
	}
}

// TestCreateHonoursUmask: created files get 0666 less the umask, as os.Create gives, and
// WriteFile replaces a file atomically with that mode and leaves no temporary file.
func TestCreateHonoursUmask(t *testing.T) {
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	dir := t.TempDir()
	f, err := CreateTemp(dir, "f-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st, _ := os.Stat(f.Name()); st.Mode().Perm() != 0o640 {
		t.Errorf("CreateTemp under umask 027: mode %v, want 0640", st.Mode().Perm())
	}
	target := filepath.Join(dir, "out")
	os.WriteFile(target, []byte("old"), 0o600)
	if err := WriteFile(target, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(target); string(data) != "new" {
		t.Errorf("WriteFile: %q", data)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o640 {
		t.Errorf("WriteFile under umask 027: mode %v, want 0640", st.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".out.*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
