package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// served is the server's record of one request.
type served struct {
	Path, Range string
	Status      int
	Sent        int64 // body bytes written to the connection
}

// server is a test HTTP server on 127.0.0.1 that records what it served.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []served
}

// handler answers request n (counted from 0 across all paths) of a test server.
type handler func(w http.ResponseWriter, r *http.Request, n int)

// newServer starts a plain HTTP server running h; newTLSServer an https one.
func newServer(t *testing.T, h handler) *server {
	s := newUnstarted(t, h)
	s.Start()
	return s
}

func newUnstarted(t *testing.T, h handler) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, served{Path: r.URL.Path, Range: r.Header.Get("Range")})
		s.mu.Unlock()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			s.mu.Lock()
			s.reqs[n].Status, s.reqs[n].Sent = rec.status, rec.sent
			s.mu.Unlock()
		}()
		h(rec, r, n)
	}))
	// Handshake failures of the TLS tests are expected.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(s.Close)
	return s
}

// requests returns a copy of the log.
func (s *server) requests() []served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]served(nil), s.reqs...)
}

// recorder counts the status and body bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	sent   int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.sent += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// cutWriter passes on the first left body bytes, flushes them and then calls stop (which
// aborts or blocks the response).
type cutWriter struct {
	http.ResponseWriter
	left int64
	stop func()
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	http.NewResponseController(c.ResponseWriter).Flush()
	c.stop()
	return n, errors.New("cut")
}

// serve answers with content as a static file server does (Range, 206, 416).
func serve(w http.ResponseWriter, r *http.Request, content []byte) {
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
}

// serveCut serves content but drops the connection after k body bytes.
func serveCut(w http.ResponseWriter, r *http.Request, content []byte, k int64) {
	serve(&cutWriter{ResponseWriter: w, left: k, stop: func() { panic(http.ErrAbortHandler) }}, r, content)
}

// serveHang serves content but stops sending after k body bytes until the client goes
// away (or a bound on the test passes).
func serveHang(w http.ResponseWriter, r *http.Request, content []byte, k int64) {
	serve(&cutWriter{ResponseWriter: w, left: k, stop: func() {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		panic(http.ErrAbortHandler)
	}}, r, content)
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// testOptions retry quickly and time out a hung test in seconds, not minutes.
func testOptions() Options {
	return Options{StallTimeout: 5 * time.Second, Retries: 10, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func newClient(t *testing.T, url string, opts Options) *Client {
	t.Helper()
	c, err := New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// checkOneLine fails unless err is one line naming url.
func checkOneLine(t *testing.T, err error, url string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, url) {
		t.Fatalf("error %q: want one line naming %s", msg, url)
	}
}

// counter is a progress.Reporter that adds up bytes and calls at when they reach a mark.
type counter struct {
	bytes atomic.Int64
	mark  int64
	at    func()
	once  sync.Once
}

func (c *counter) Stage(string, int64) {}
func (c *counter) Done()               {}
func (c *counter) Add(_, n int64) {
	if c.bytes.Add(n) >= c.mark && c.at != nil {
		c.once.Do(c.at)
	}
}

func TestGet(t *testing.T) {
	content := randomBytes(1000)
	tests := []struct {
		name     string
		h        handler
		max      int64
		want     []byte
		err      string // in the error, "" for success
		requests int64
	}{
		{"exact bound", func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, content) }, 1000, content, "", 1},
		{"declared too large", func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, content) }, 999, nil, "1000 bytes, more than the 999 allowed", 1},
		{"undeclared too large", func(w http.ResponseWriter, r *http.Request, _ int) {
			http.NewResponseController(w).Flush() // chunked: no Content-Length
			w.Write(content)
		}, 999, nil, "more than the 999 bytes allowed", 1},
		{"not found", func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) }, 1000, nil, "404 Not Found", 1},
		{"forbidden", func(w http.ResponseWriter, r *http.Request, _ int) { w.WriteHeader(403) }, 1000, nil, "403 Forbidden", 1},
		{"retried 503", func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 2 {
				w.WriteHeader(503)
				return
			}
			serve(w, r, content)
		}, 1000, content, "", 3},
		{"retried drop", func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				serveCut(w, r, content, 10)
			}
			serve(w, r, content)
		}, 1000, content, "", 2},
		{"retries exhausted", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
		}, 1000, nil, "503 Service Unavailable (gave up after 3 attempts)", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.h)
			opts := testOptions()
			opts.Retries = 2
			c := newClient(t, s.URL+"/repo", opts)
			got, err := c.Get(t.Context(), "objects/ab/cdef.commit", tt.max)
			if tt.err != "" {
				checkOneLine(t, err, s.URL+"/repo/objects/ab/cdef.commit")
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %q lacks %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			if st := c.Stats(); st.Requests != tt.requests || st.Retries != tt.requests-1 {
				t.Fatalf("stats %+v: want %d requests, %d retries", st, tt.requests, tt.requests-1)
			}
		})
	}
}

func TestGetNotFoundIs(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) })
	c := newClient(t, s.URL, testOptions())
	if _, err := c.Get(t.Context(), "objects/ab/cd.commitmeta", 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v: want ErrNotFound", err)
	}
}

// TestNoCredentialsInErrors: the base URL's password reaches the server as basic
// authentication, never an error message.
func TestNoCredentialsInErrors(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if u, p, ok := r.BasicAuth(); !ok || u != "device" || p != "s3cret" {
			w.WriteHeader(401)
			return
		}
		if n == 0 {
			serve(w, r, []byte("summary"))
			return
		}
		// Close the connection without an answer.
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	})
	authURL := strings.Replace(s.URL, "http://", "http://device:s3cret@", 1)
	opts := testOptions()
	opts.Retries = 1
	c := newClient(t, authURL+"/repo/", opts)
	if b, err := c.Get(t.Context(), "summary", 100); err != nil || string(b) != "summary" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	_, err := c.Get(t.Context(), "summary.sig", 100)
	checkOneLine(t, err, s.URL+"/repo/summary.sig")
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "device") {
		t.Fatalf("error %q shows the credentials", err)
	}
	if _, err := New("ftp://device:s3cret@host/", Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("New with ftp: error %v", err)
	}
}

func TestInvalidPathsAndURLs(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1/repo", testOptions())
	for _, p := range []string{"", ".", "/summary", "../summary", "objects/../../etc/passwd", "objects//x"} {
		if _, err := c.Get(t.Context(), p, 10); err == nil || !strings.Contains(err.Error(), "invalid repository path") {
			t.Errorf("Get(%q): error %v", p, err)
		}
	}
	for _, u := range []string{"127.0.0.1/repo", "file:///srv/repo", "http:///repo", "http://h/repo?token=x", "http://h/%zz"} {
		if _, err := New(u, Options{}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

func TestUserAgent(t *testing.T) {
	var got atomic.Value
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		got.Store(r.Header.Get("User-Agent"))
		serve(w, r, nil)
	})
	for _, tt := range []struct{ opt, prefix string }{{"", "otakit-ota/"}, {"ota-client/1.2", "ota-client/1.2"}} {
		opts := testOptions()
		opts.UserAgent = tt.opt
		if _, err := newClient(t, s.URL, opts).Get(t.Context(), "config", 10); err != nil {
			t.Fatal(err)
		}
		if ua := got.Load().(string); !strings.HasPrefix(ua, tt.prefix) {
			t.Errorf("User-Agent %q, want %q...", ua, tt.prefix)
		}
	}
}

// TestStallBeforeHeaders: a server that accepts the request and says nothing is abandoned
// after the stall timeout and the retry succeeds.
func TestStallBeforeHeaders(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		serve(w, r, []byte("ref"))
	})
	opts := testOptions()
	opts.StallTimeout = 100 * time.Millisecond
	c := newClient(t, s.URL, opts)
	start := time.Now()
	b, err := c.Get(t.Context(), "refs/heads/main", 10)
	if err != nil || string(b) != "ref" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v with a 100ms stall timeout", d)
	}
	if st := c.Stats(); st.Retries != 1 {
		t.Fatalf("stats %+v: want 1 retry", st)
	}
	// With no retries left the stall is the error.
	opts.Retries = -1
	s.mu.Lock()
	s.reqs = nil
	s.mu.Unlock()
	_, err = newClient(t, s.URL, opts).Get(t.Context(), "refs/heads/main", 10)
	checkOneLine(t, err, s.URL+"/refs/heads/main")
	if !strings.Contains(err.Error(), "stalled: no data for 100ms") {
		t.Fatalf("error %q: want a stall", err)
	}
}

// TestCancel: a cancelled context ends a call at once with an error that says so.
func TestCancel(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { w.WriteHeader(503) })
	opts := testOptions()
	opts.Backoff, opts.MaxBackoff = time.Hour, time.Hour
	c := newClient(t, s.URL, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "summary", 10)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: want the deadline", err)
	}
	checkOneLine(t, err, s.URL+"/summary")
}

// TestKeepAlive: rounds of parallel requests reuse the connections of the previous round
// (with net/http's default of 2 idle connections per host, most rounds would dial again).
func TestKeepAlive(t *testing.T) {
	const workers, rounds = 4, 25
	var conns atomic.Int64
	s := newUnstarted(t, func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, randomBytes(5000)) })
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	opts := testOptions()
	opts.Connections = workers
	c := newClient(t, s.URL, opts)
	errs := make(chan error, workers*rounds)
	for i := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				if _, err := c.Get(t.Context(), fmt.Sprintf("objects/%02x/%d.dirtree", w, i), 5000); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := conns.Load(); n > 2*workers {
		t.Fatalf("%d connections for %d rounds of %d requests", n, rounds, workers)
	}
	if st := c.Stats(); st.Requests != workers*rounds || st.Bytes != workers*rounds*5000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBackoff(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", Options{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for _, tt := range []struct {
		n    int
		full time.Duration
	}{{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond}, {4, time.Second}, {62, time.Second}} {
		for range 20 {
			if d := c.backoffFor(tt.n); d < tt.full/2 || d > tt.full {
				t.Fatalf("backoff %d = %v, want %v to %v", tt.n, d, tt.full/2, tt.full)
			}
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tt := range []struct {
		in                string
		first, last, size int64
		ok                bool
	}{
		{"bytes 10-99/100", 10, 99, 100, true},
		{"bytes 0-0/*", 0, 0, -1, true},
		{"bytes */100", -1, -1, 100, true},
		{"bytes 10-100/100", 0, 0, 0, false},
		{"bytes 10-9/100", 0, 0, 0, false},
		{"bytes -1-9/100", 0, 0, 0, false},
		{"bytes */*", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		first, last, size, ok := parseContentRange(tt.in)
		if first != tt.first || last != tt.last || size != tt.size || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tt.in, first, last, size, ok)
		}
	}
}

// rangeStart returns where a Range header asks to start.
func rangeStart(t *testing.T, h string) int64 {
	if h == "" {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(h, "bytes="), "-"), 10, 64)
	if err != nil {
		t.Fatalf("Range %q", h)
	}
	return n
}
