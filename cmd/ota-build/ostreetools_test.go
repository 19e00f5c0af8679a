package main

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// otaInit creates an archive repository with ota-build.
func otaInit(t *testing.T, repo string) {
	t.Helper()
	ota(t, "init", "--repo", repo)
}

// otaCommit commits with ota-build at the fixed test timestamp and returns the checksum.
func otaCommit(t *testing.T, stdin []byte, repo, tree string, extra ...string) string {
	t.Helper()
	args := append([]string{"commit", "--repo", repo, "-b", "main", "--tree", tree, "--timestamp", compatTimestamp}, extra...)
	r := runCmd(t, nil, stdin, otaBuild, args...)
	if r.code != 0 {
		t.Fatalf("ota-build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	cs := r.lastLine()
	if len(cs) != 64 {
		t.Fatalf("ota-build commit printed %q as its last line, want a checksum", cs)
	}
	return cs
}

// ostreeFsck runs the real `ostree fsck`, failing the test unless it finds no error.
func ostreeFsck(t *testing.T, repo string) {
	t.Helper()
	r := must(t, "ostree", "fsck", "--repo="+repo)
	if out := r.stdout + r.stderr; !strings.Contains(out, "no errors found") {
		t.Errorf("ostree fsck --repo=%s:\n%s", repo, out)
	}
}

// ostreeLs returns the real `ostree ls -R -C -X` listing of ref main, which holds every
// object's checksum, mode, owner, size, xattrs and symlink target.
func ostreeLs(t *testing.T, repo string) string {
	t.Helper()
	return must(t, "ostree", "ls", "-R", "-C", "-X", "--repo="+repo, "main").stdout
}

// ostreeRootLine returns the first line of `ostree ls -C REPO main /`: the root directory
// with its dirtree and dirmeta checksums.
func ostreeRootLine(t *testing.T, repo string) string {
	t.Helper()
	out := must(t, "ostree", "ls", "-C", "--repo="+repo, "main", "/").stdout
	line, _, _ := strings.Cut(out, "\n")
	if !strings.HasSuffix(line, " /") || !strings.HasPrefix(line, "d") {
		t.Fatalf("ostree ls -C main /: first line %q is not the root directory", line)
	}
	return line
}

// serveDir serves dir over HTTP on 127.0.0.1 with python's http.server until the test ends,
// returning the base URL.
func serveDir(t *testing.T, dir string) string {
	t.Helper()
	const python = "/usr/bin/python3" // Debian's python, which has the Debian packages
	requireTool(t, python)
	for attempt := 1; ; attempt++ {
		url, err := startHTTPServer(t, python, dir)
		if err == nil {
			return url
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("%v; retrying on another port", err)
	}
}

// startHTTPServer starts python's http.server on a free port and waits until it accepts
// connections; the server is killed when the test ends.
func startHTTPServer(t *testing.T, python, dir string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", port)

	cmd := exec.Command(python, "-m", "http.server", "--bind", "127.0.0.1", port, "--directory", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting http.server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			return "", fmt.Errorf("http.server on port %s exited: %v\n%s", port, err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
			})
			return "http://" + addr + "/", nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("http.server on %s does not accept connections: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
