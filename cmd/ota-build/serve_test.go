package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer a process can write to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveProc is a running `ota-build serve`.
type serveProc struct {
	cmd            *exec.Cmd
	url            string // base URL, ending in /
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited
	waitErr        error
}

// servingLine matches the line serve prints once it listens.
var servingLine = regexp.MustCompile(`serving .* at (http://\S+/)\n`)

// startServe runs `ota-build serve --repo REPO --addr 127.0.0.1:0 ARGS...` and waits for
// the address it prints; the process is killed when the test ends.
func startServe(t *testing.T, repo string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(otaBuild, append([]string{"serve", "--repo", repo, "--addr", "127.0.0.1:0"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting ota-build serve: %v", err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.After(15 * time.Second)
	for {
		if m := servingLine.FindStringSubmatch(p.stdout.String()); m != nil {
			p.url = m[1]
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("ota-build serve exited: %v\n%s%s", p.waitErr, p.stdout, p.stderr)
		case <-deadline:
			t.Fatalf("ota-build serve printed no address in 15s:\n%s%s", p.stdout, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitStderr waits up to 5s for the server's standard error to contain s.
func (p *serveProc) waitStderr(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("ota-build serve stderr lacks %q:\n%s", s, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveRepo commits a small tree to branch main of a new archive repository in dir and
// returns the repository and the commit.
func serveRepo(t *testing.T, dir string) (string, string) {
	t.Helper()
	tree := filepath.Join(dir, "tree")
	for name, data := range map[string]string{
		"usr/bin/hello":          "#!/bin/sh\necho hello\n",
		"usr/share/doc/README":   strings.Repeat("served over HTTP\n", 500),
		"etc/os-release":         "ID=test\n",
		"usr/lib/empty-file":     "",
		"usr/share/data/big.bin": string(bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 250}, 20000)),
	} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(dir, "repo")
	otaInit(t, repo)
	return repo, otaCommit(t, nil, repo, "dir="+tree)
}

// rawGet sends a request line as given, bypassing any client-side path cleaning, and returns
// the status and body.
func rawGet(t *testing.T, base, target string) (int, string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return resp.StatusCode, string(body)
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, body
}

// TestServePullWithRealOstree pulls a commit from ota-build serve with the real ostree and
// checks the pulled repository with fsck.
func TestServePullWithRealOstree(t *testing.T) {
	requireTool(t, "ostree")
	tmp := t.TempDir()
	repo, cs := serveRepo(t, tmp)
	srv := startServe(t, repo)

	for _, tc := range []struct{ name, mode string }{
		{"archive", "archive"}, {"bare-user", "bare-user"},
		// Without a summary, ostree reads refs/heads/main.
		{"no-summary", "archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no-summary" {
				if err := os.Remove(filepath.Join(repo, "summary")); err != nil {
					t.Fatal(err)
				}
			}
			dst := filepath.Join(tmp, "pulled-"+tc.name)
			must(t, "ostree", "--repo="+dst, "init", "--mode="+tc.mode)
			must(t, "ostree", "--repo="+dst, "remote", "add", "--no-gpg-verify", "origin", srv.url)
			must(t, "ostree", "--repo="+dst, "pull", "origin", "main")
			ostreeFsck(t, dst)
			if got := strings.TrimSpace(must(t, "ostree", "--repo="+dst, "rev-parse", "origin:main").stdout); got != cs {
				t.Errorf("pulled origin:main = %s, want %s", got, cs)
			}
			if got := must(t, "ostree", "--repo="+dst, "cat", "origin:main", "/etc/os-release").stdout; got != "ID=test\n" {
				t.Errorf("pulled /etc/os-release = %q", got)
			}
		})
	}
	srv.waitStderr(t, `"GET /summary HTTP/1.1" 200`)
	srv.waitStderr(t, `"GET /refs/heads/main HTTP/1.1" 200`)
}

// TestServeRangeAndHeaders checks Range requests, HEAD and the content types.
func TestServeRangeAndHeaders(t *testing.T) {
	repo, cs := serveRepo(t, t.TempDir())
	srv := startServe(t, repo)

	obj := fmt.Sprintf("objects/%s/%s.commit", cs[:2], cs[2:])
	data, err := os.ReadFile(filepath.Join(repo, obj))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "GET", srv.url+obj, map[string]string{"Range": "bytes=2-9"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[2:10]) {
		t.Errorf("GET %s bytes=2-9: %s %x, want 206 %x", obj, resp.Status, body, data[2:10])
	}
	if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 2-9/%d", len(data)); got != want {
		t.Errorf("Content-Range %q, want %q", got, want)
	}

	resp, body = do(t, "GET", srv.url+obj, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET %s: %s, %d bytes, want 200 and the %d bytes of the file", obj, resp.Status, len(body), len(data))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("GET %s: Content-Type %q, want application/octet-stream", obj, ct)
	}
	resp, body = do(t, "GET", srv.url+obj, map[string]string{"If-Modified-Since": resp.Header.Get("Last-Modified")})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("GET %s If-Modified-Since: %s, %d bytes, want 304", obj, resp.Status, len(body))
	}

	resp, body = do(t, "HEAD", srv.url+obj, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD %s: %s, Content-Length %d, %d body bytes; want 200, %d, 0", obj, resp.Status, resp.ContentLength, len(body), len(data))
	}

	// Files whose first bytes look like text or HTML must not be sniffed either.
	filez, _ := filepath.Glob(filepath.Join(repo, "objects", "*", "*.filez"))
	for _, f := range append(filez, filepath.Join(repo, "summary")) {
		rel, _ := filepath.Rel(repo, f)
		resp, _ := do(t, "HEAD", srv.url+filepath.ToSlash(rel), nil)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/octet-stream" {
			t.Errorf("HEAD %s: %s, Content-Type %q, want 200 application/octet-stream", rel, resp.Status, ct)
		}
	}

	for _, name := range []string{"refs/heads/main", "config"} {
		resp, body := do(t, "GET", srv.url+name, nil)
		want, _ := os.ReadFile(filepath.Join(repo, name))
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/plain") || string(body) != string(want) {
			t.Errorf("GET %s: %s, Content-Type %q, body %q; want 200, text/plain, %q", name, resp.Status, ct, body, want)
		}
	}
	if _, body := do(t, "GET", srv.url+"refs/heads/main", nil); strings.TrimSpace(string(body)) != cs {
		t.Errorf("GET refs/heads/main: %q, want %s", body, cs)
	}
}

// TestServePathEscapes checks that nothing outside the repository is served, that only GET
// and HEAD are allowed and that directories are not listed.
func TestServePathEscapes(t *testing.T) {
	tmp := t.TempDir()
	repo, _ := serveRepo(t, tmp)
	const secret = "outside secret 4b1d"
	if err := os.WriteFile(filepath.Join(tmp, "secret"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"leak-rel":        "../secret",
		"leak-abs":        filepath.Join(tmp, "secret"),
		"leak-dir":        "..",
		"refs/heads/leak": "../../../secret",
	} {
		if err := os.Symlink(target, filepath.Join(repo, link)); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink that stays inside the repository is followed.
	if err := os.Symlink("config", filepath.Join(repo, "config-link")); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, repo)

	for _, target := range []string{
		"/../secret", "/./../secret", "/objects/../../secret", "/%2e%2e/secret", "/%2E%2E%2Fsecret",
		"/objects/%2e%2e/%2e%2e/secret", "/..%2fsecret", "//../secret", "/leak-rel", "/leak-abs",
		"/leak-dir/secret", "/refs/heads/leak", "/" + filepath.Join(tmp, "secret"),
	} {
		code, body := rawGet(t, srv.url, target)
		if code != http.StatusNotFound && code != http.StatusForbidden && code != http.StatusBadRequest {
			t.Errorf("GET %s: status %d, want 404 or 403", target, code)
		}
		if strings.Contains(body, secret) {
			t.Errorf("GET %s served the file outside the repository", target)
		}
	}
	for _, target := range []string{"/", "/objects", "/objects/", "/refs/heads/", "/./config", "/objects//x"} {
		if code, body := rawGet(t, srv.url, target); code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404\n%s", target, code, body)
		}
	}
	if code, body := rawGet(t, srv.url, "/config-link"); code != http.StatusOK || !strings.Contains(body, "mode=archive-z2") {
		t.Errorf("GET /config-link: status %d, body %q; want 200 and the config", code, body)
	}
	for _, method := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		resp, _ := do(t, method, srv.url+"config", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /config: %s, Allow %q; want 405, GET, HEAD", method, resp.Status, resp.Header.Get("Allow"))
		}
	}
}

// TestServeAccessLogAndErrors checks the access log, --quiet and the startup errors.
func TestServeAccessLogAndErrors(t *testing.T) {
	tmp := t.TempDir()
	repo, _ := serveRepo(t, tmp)

	t.Run("log", func(t *testing.T) {
		srv := startServe(t, repo)
		if !strings.HasPrefix(srv.stdout.String(), "serving "+repo+" at http://127.0.0.1:") {
			t.Errorf("stdout %q", srv.stdout)
		}
		do(t, "GET", srv.url+"config", nil)
		do(t, "GET", srv.url+"no/such/file", nil)
		srv.waitStderr(t, `"GET /no/such/file HTTP/1.1" 404`)
		logLine := regexp.MustCompile(`(?m)^127\.0\.0\.1 - - \[[^]]+\] "GET /config HTTP/1\.1" 200 \d+ \S+s$`)
		if !logLine.MatchString(srv.stderr.String()) {
			t.Errorf("no access log line for GET /config in:\n%s", srv.stderr)
		}
		// A range request logs the range: the resumed downloads of a device show in the log.
		do(t, "GET", srv.url+"config", map[string]string{"Range": "bytes=3-"})
		srv.waitStderr(t, `range=`)
		rangeLine := regexp.MustCompile(`(?m)^127\.0\.0\.1 - - \[[^]]+\] "GET /config HTTP/1\.1" 206 \d+ \S+s range="bytes=3-"$`)
		if !rangeLine.MatchString(srv.stderr.String()) {
			t.Errorf("no access log line with the range for GET /config in:\n%s", srv.stderr)
		}
	})

	t.Run("quiet", func(t *testing.T) {
		srv := startServe(t, repo, "--quiet")
		do(t, "GET", srv.url+"config", nil)
		time.Sleep(100 * time.Millisecond)
		if s := srv.stderr.String(); s != "" {
			t.Errorf("--quiet logged:\n%s", s)
		}
	})

	bare := filepath.Join(tmp, "bare")
	ota(t, "init", "--repo", bare, "--mode", "bare-user")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not a repository", []string{"--repo", tmp}, "not an OSTree repository"},
		{"missing", []string{"--repo", filepath.Join(tmp, "nope")}, "not an OSTree repository"},
		{"bare", []string{"--repo", bare}, "archive"},
		{"address in use", []string{"--repo", repo, "--addr", busy.Addr().String()}, "address already in use"},
		{"bad address", []string{"--repo", repo, "--addr", "no-port"}, "--addr"},
		{"argument", []string{"--repo", repo, "extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)
			r := runCmd(t, nil, nil, otaBuild, args...)
			if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) ||
				strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "ota-build: ") {
				t.Errorf("ota-build %s: exit %d, stdout %q, stderr %q; want a failure with one line naming %q",
					strings.Join(args, " "), r.code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}

// TestServeSignalShutdown checks that SIGINT and SIGTERM stop the server with status 0.
func TestServeSignalShutdown(t *testing.T) {
	repo, _ := serveRepo(t, t.TempDir())
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			srv := startServe(t, repo)
			// An idle keep-alive connection must not hold the shutdown up.
			do(t, "GET", srv.url+"config", nil)
			start := time.Now()
			if err := srv.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-srv.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("ota-build serve still running 10s after %v", sig)
			}
			if srv.waitErr != nil || time.Since(start) > 3*time.Second {
				t.Errorf("after %v: %v in %v, want exit 0 promptly\n%s", sig, srv.waitErr, time.Since(start), srv.stderr)
			}
			if _, err := http.Get(srv.url + "config"); err == nil {
				t.Errorf("server still answers after %v", sig)
			}
		})
	}
}
