package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const partPath = "deltas/C0/T1bL/0"

func digest(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// checkFile fails unless dst holds want and no partial file is left.
func checkFile(t *testing.T, dst string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d served", dst, len(got), len(want))
	}
	if _, err := os.Stat(dst + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}
}

// checkContiguous fails unless the requests continue each other exactly, without a byte
// sent twice, and together send size bytes.
func checkContiguous(t *testing.T, reqs []served, size int64) {
	t.Helper()
	var next int64
	for i, r := range reqs {
		if start := rangeStart(t, r.Range); start != next {
			t.Fatalf("request %d asked %q after %d bytes were sent: %+v", i, r.Range, next, reqs)
		}
		next += r.Sent
	}
	if next != size {
		t.Fatalf("%d bytes sent in all, want %d: %+v", next, size, reqs)
	}
}

// TestDownloadResume: a server that drops the connection after k bytes, several times per
// file; each retry continues at the partial's size, so no byte is fetched twice.
func TestDownloadResume(t *testing.T) {
	tests := []struct {
		name        string
		size, k     int
		drops       int
		sizeKnown   bool
		withDigest  bool
		connections int
	}{
		{"1MiB, 100000 bytes per connection", 1 << 20, 100_000, 5, true, true, 0},
		{"chunk-aligned cuts, bound only", 4 * 32 << 10, 32 << 10, 3, false, false, 0},
		{"one byte per connection", 50_000, 1, 4, true, false, 0},
		{"digest only", 200_000, 70_000, 2, false, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := randomBytes(tt.size)
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n < tt.drops {
					serveCut(w, r, content, int64(tt.k))
				}
				serve(w, r, content)
			})
			prog := &counter{}
			opts := testOptions()
			opts.Progress, opts.Connections = prog, tt.connections
			c := newClient(t, s.URL+"/repo", opts)
			dst := filepath.Join(t.TempDir(), "0")
			do := DownloadOptions{Max: 2 << 20}
			if tt.sizeKnown {
				do = DownloadOptions{Size: int64(tt.size)}
			}
			if tt.withDigest {
				do.SHA256 = digest(content)
			}
			if err := c.Download(t.Context(), partPath, dst, do); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dst, content)
			reqs := s.requests()
			checkContiguous(t, reqs, int64(tt.size))
			resumed := int64(tt.k * tt.drops * (tt.drops + 1) / 2)
			want := Stats{Requests: int64(tt.drops + 1), Retries: int64(tt.drops), Bytes: int64(tt.size), Resumed: resumed}
			if st := c.Stats(); st != want {
				t.Fatalf("stats %+v, want %+v", st, want)
			}
			if p := prog.bytes.Load(); p != int64(tt.size) {
				t.Fatalf("progress %d bytes, want %d", p, tt.size)
			}
		})
	}
}

// TestDownloadRestart: a client killed in the middle of a file (its context cancelled)
// leaves the partial; a new Client continues it with Range from the partial's size.
func TestDownloadRestart(t *testing.T) {
	content := randomBytes(300_000)
	const k = 120_000
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			serveHang(w, r, content, k)
		}
		serve(w, r, content)
	})
	dst := filepath.Join(t.TempDir(), "0")
	do := DownloadOptions{Size: int64(len(content)), SHA256: digest(content)}
	ctx, cancel := context.WithCancel(t.Context())
	opts := testOptions()
	opts.Progress = &counter{mark: k, at: cancel}
	err := newClient(t, s.URL, opts).Download(ctx, partPath, dst, do)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want the cancellation", err)
	}
	checkOneLine(t, err, s.URL+"/"+partPath)
	fi, err := os.Stat(dst + ".partial")
	if err != nil || fi.Size() != k {
		t.Fatalf("partial after the kill: %v, %v; want %d bytes", fi, err, k)
	}

	prog := &counter{}
	opts.Progress = prog
	c := newClient(t, s.URL, opts)
	if err := c.Download(t.Context(), partPath, dst, do); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, content)
	reqs := s.requests()
	if len(reqs) != 2 || reqs[1].Range != fmt.Sprintf("bytes=%d-", k) || reqs[1].Status != http.StatusPartialContent {
		t.Fatalf("requests %+v: want the second from byte %d", reqs, k)
	}
	checkContiguous(t, reqs, int64(len(content)))
	if st := c.Stats(); st != (Stats{Requests: 1, Bytes: int64(len(content) - k), Resumed: k}) {
		t.Fatalf("stats %+v", st)
	}
	if p := prog.bytes.Load(); p != int64(len(content)) {
		t.Fatalf("progress %d bytes, want %d (the partial's included)", p, len(content))
	}
}

// TestDownloadIgnoredRange: a server that answers a Range request with 200 and the whole
// file restarts the partial from byte 0, and progress does not count the bytes twice.
func TestDownloadIgnoredRange(t *testing.T) {
	content := randomBytes(200_000)
	const k = 50_000
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		r.Header.Del("Range")
		if n == 0 {
			serveCut(w, r, content, k)
		}
		serve(w, r, content)
	})
	prog := &counter{}
	opts := testOptions()
	opts.Progress = prog
	c := newClient(t, s.URL, opts)
	dst := filepath.Join(t.TempDir(), "0")
	if err := c.Download(t.Context(), partPath, dst, DownloadOptions{Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, content)
	reqs := s.requests()
	if len(reqs) != 2 || reqs[1].Range != fmt.Sprintf("bytes=%d-", k) || reqs[1].Status != http.StatusOK {
		t.Fatalf("requests %+v", reqs)
	}
	if st := c.Stats(); st != (Stats{Requests: 2, Retries: 1, Bytes: k + int64(len(content))}) {
		t.Fatalf("stats %+v", st)
	}
	if p := prog.bytes.Load(); p != int64(len(content)) {
		t.Fatalf("progress %d bytes, want %d", p, len(content))
	}
}

// TestDownloadBadContentRange: a 206 that does not start where the partial ends is never
// appended: the download starts over or fails, and no wrong file is ever produced.
func TestDownloadBadContentRange(t *testing.T) {
	content := randomBytes(100_000)
	const k = 30_000
	size := int64(len(content))
	lie := func(w http.ResponseWriter, cr string, body []byte) {
		w.Header().Set("Content-Range", cr)
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	}
	tests := []struct {
		name string
		h    handler
		ok   bool
	}{
		{"start too early", func(w http.ResponseWriter, r *http.Request, n int) {
			switch {
			case n == 0:
				serveCut(w, r, content, k)
			case n == 1:
				lie(w, fmt.Sprintf("bytes %d-%d/%d", k-10, size-1, size), content[k-10:])
			default:
				serve(w, r, content)
			}
		}, true},
		{"malformed", func(w http.ResponseWriter, r *http.Request, n int) {
			switch {
			case n == 0:
				serveCut(w, r, content, k)
			case n == 1:
				lie(w, "bytes oops", content[k:])
			default:
				serve(w, r, content)
			}
		}, true},
		{"whole file as 206 without Range", func(w http.ResponseWriter, r *http.Request, n int) {
			lie(w, fmt.Sprintf("bytes 0-%d/%d", size-1, size), content)
		}, true},
		{"always lies", func(w http.ResponseWriter, r *http.Request, n int) {
			if r.Header.Get("Range") == "" {
				serveCut(w, r, content, k)
			}
			lie(w, fmt.Sprintf("bytes %d-%d/%d", 0, size-1, size), content)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.h)
			opts := testOptions()
			opts.Retries = 3 // the last attempt is answered by a lie
			c := newClient(t, s.URL, opts)
			dst := filepath.Join(t.TempDir(), "0")
			err := c.Download(t.Context(), partPath, dst, DownloadOptions{Size: size})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkFile(t, dst, content)
				return
			}
			checkOneLine(t, err, s.URL+"/"+partPath)
			if !strings.Contains(err.Error(), "206 with Content-Range") {
				t.Fatalf("error %q: want the bad Content-Range", err)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("%s exists after a failed download", dst)
			}
			if p, err := os.ReadFile(dst + ".partial"); err == nil && !bytes.HasPrefix(content, p) {
				t.Fatalf("the partial file's %d bytes are not the file's start", len(p))
			}
		})
	}
}

// TestDownloadStall: a server that sends some bytes (or none) and then hangs is abandoned
// after the stall timeout; the retry continues where the partial ends.
func TestDownloadStall(t *testing.T) {
	content := randomBytes(200_000)
	for _, k := range []int64{0, 1, 70_000} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					serveHang(w, r, content, k)
				}
				serve(w, r, content)
			})
			opts := testOptions()
			opts.StallTimeout = 100 * time.Millisecond
			c := newClient(t, s.URL, opts)
			dst := filepath.Join(t.TempDir(), "0")
			start := time.Now()
			if err := c.Download(t.Context(), partPath, dst, DownloadOptions{Size: int64(len(content))}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v with a 100ms stall timeout", d)
			}
			checkFile(t, dst, content)
			checkContiguous(t, s.requests(), int64(len(content)))
			if st := c.Stats(); st.Retries != 1 || st.Resumed != k {
				t.Fatalf("stats %+v: want 1 retry resuming %d bytes", st, k)
			}
		})
	}
}

// TestDownloadMaxRate: two concurrent downloads share the cap, and waiting for it is not
// taken for a stall.
func TestDownloadMaxRate(t *testing.T) {
	const rate, each = 256 << 10, 160 << 10
	content := randomBytes(each)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, content) })
	opts := testOptions()
	opts.MaxRate = rate
	opts.StallTimeout = 100 * time.Millisecond
	c := newClient(t, s.URL, opts)
	dir := t.TempDir()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			errs[i] = c.Download(t.Context(), fmt.Sprintf("deltas/C0/T1bL/%d", i), filepath.Join(dir, fmt.Sprint(i)), DownloadOptions{Size: each})
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, filepath.Join(dir, fmt.Sprint(i)), content)
	}
	if min := time.Duration(0.8 * 2 * each / rate * float64(time.Second)); elapsed < min {
		t.Fatalf("2×%d bytes at %d bytes/s took %v, less than %v", each, rate, elapsed, min)
	}
	if st := c.Stats(); st.Retries != 0 {
		t.Fatalf("stats %+v: the rate limit caused retries", st)
	}
}

// TestDownloadRefusals: a file that does not match what the caller expects removes the
// partial and says why in one line naming the URL.
func TestDownloadRefusals(t *testing.T) {
	content := randomBytes(10_000)
	size := int64(len(content))
	chunked := func(w http.ResponseWriter, r *http.Request, _ int) {
		http.NewResponseController(w).Flush()
		w.Write(content)
	}
	static := func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, content) }
	wrong := digest(content)
	wrong[0] ^= 1
	tests := []struct {
		name string
		h    handler
		opts DownloadOptions
		err  string
	}{
		{"sha256 mismatch", static, DownloadOptions{Size: size, SHA256: wrong}, "sha256 "},
		{"declared size differs", static, DownloadOptions{Size: size + 1}, fmt.Sprintf("the server has %d bytes, %d expected", size, size+1)},
		{"declared beyond the bound", static, DownloadOptions{Max: size - 1}, fmt.Sprintf("the server has %d bytes, at most %d allowed", size, size-1)},
		{"sent beyond the bound", chunked, DownloadOptions{Max: size - 1}, fmt.Sprintf("the server sent more than at most %d allowed", size-1)},
		{"sent beyond the size", chunked, DownloadOptions{Size: size - 1}, fmt.Sprintf("the server sent more than %d expected", size-1)},
		{"sent short of the size", chunked, DownloadOptions{Size: size + 1}, fmt.Sprintf("got %d bytes, %d expected", size, size+1)},
		{"not found", func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) }, DownloadOptions{Size: size}, "404 Not Found"},
		{"no bound", static, DownloadOptions{}, "needs the file's size or a bound"},
		{"short digest", static, DownloadOptions{Size: size, SHA256: wrong[:20]}, "sha256 digest has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.h)
			c := newClient(t, s.URL, testOptions())
			dst := filepath.Join(t.TempDir(), "0")
			err := c.Download(t.Context(), partPath, dst, tt.opts)
			checkOneLine(t, err, s.URL+"/"+partPath)
			if !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %q lacks %q", err, tt.err)
			}
			for _, p := range []string{dst, dst + ".partial"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Fatalf("%s left behind", p)
				}
			}
			if st := c.Stats(); st.Retries != 0 {
				t.Fatalf("stats %+v: a refusal was retried", st)
			}
		})
	}
}

// TestDownloadExistingPartial: a partial file left from before is used as far as it is
// right: complete, too long, or wrong.
func TestDownloadExistingPartial(t *testing.T) {
	content := randomBytes(50_000)
	size := int64(len(content))
	junk := randomBytes(1000)
	tests := []struct {
		name    string
		partial []byte
		opts    DownloadOptions
		ranges  []string // the Range headers sent
		err     string
	}{
		{"complete, size known", content, DownloadOptions{Size: size}, nil, ""},
		{"complete, size unknown", content, DownloadOptions{Max: 2 * size, SHA256: digest(content)}, []string{fmt.Sprintf("bytes=%d-", size)}, ""},
		{"longer than the file", append(content[:size:size], junk...), DownloadOptions{Max: 2 * size}, []string{fmt.Sprintf("bytes=%d-", size+1000), ""}, ""},
		{"longer than the size", append(content[:size:size], junk...), DownloadOptions{Size: size}, []string{""}, ""},
		{"wrong start", junk, DownloadOptions{Size: size, SHA256: digest(content)}, []string{"bytes=1000-"}, "sha256 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, content) })
			c := newClient(t, s.URL, testOptions())
			dst := filepath.Join(t.TempDir(), "0")
			if err := os.WriteFile(dst+".partial", tt.partial, 0o644); err != nil {
				t.Fatal(err)
			}
			err := c.Download(t.Context(), partPath, dst, tt.opts)
			var ranges []string
			for _, r := range s.requests() {
				ranges = append(ranges, r.Range)
			}
			if fmt.Sprint(ranges) != fmt.Sprint(tt.ranges) {
				t.Fatalf("Range headers %q, want %q", ranges, tt.ranges)
			}
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkFile(t, dst, content)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v: want %q", err, tt.err)
			}
			if _, err := os.Stat(dst + ".partial"); !os.IsNotExist(err) {
				t.Fatal("the wrong partial file was kept")
			}
		})
	}
}

// TestDownloadLocked: a second download into the same file fails at once while the first
// runs, and the first completes.
func TestDownloadLocked(t *testing.T) {
	content := randomBytes(10_000)
	arrived, release := make(chan struct{}), make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			close(arrived)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		serve(w, r, content)
	})
	c := newClient(t, s.URL, testOptions())
	dst := filepath.Join(t.TempDir(), "0")
	first := make(chan error, 1)
	go func() { first <- c.Download(t.Context(), partPath, dst, DownloadOptions{Size: int64(len(content))}) }()
	<-arrived
	err := c.Download(t.Context(), partPath, dst, DownloadOptions{Size: int64(len(content))})
	close(release)
	checkOneLine(t, err, s.URL+"/"+partPath)
	if !strings.Contains(err.Error(), "in use by another download") {
		t.Fatalf("error %q", err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, content)
}
