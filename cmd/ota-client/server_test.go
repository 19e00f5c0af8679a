package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// repoServer serves an ota-build repository on 127.0.0.1 as http.FileServer does, Range
// requests included, and logs every response with the body bytes it wrote to the socket.
// Its plan can drop a response's connection, or hold it, after some bytes of the body.
type repoServer struct {
	*httptest.Server
	dir string

	mu   sync.Mutex
	plan func(path string, size int64, n int) action // nil: serve everything
	log  []response
}

// action is what a response does after limit bytes of its body: drop the connection
// (cut), or stop sending until the client goes away (hold). A negative limit never stops.
type action struct {
	limit int64
	hold  bool
}

// serveAll is the action of a response served in full.
var serveAll = action{limit: -1}

// response is one answer of a repoServer.
type response struct {
	path   string
	rng    string // the request's Range header
	status int
	start  int64 // the file offset the body starts at
	sent   int64 // body bytes written to the socket
	cut    bool  // the server dropped the connection part-way (not after a hold)
}

// newRepoServer serves dir.
func newRepoServer(t *testing.T, dir string) *repoServer {
	t.Helper()
	s := &repoServer{dir: dir}
	s.Server = httptest.NewUnstartedServer(s)
	s.Listener = countingListener{s.Listener}
	s.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c.(*countingConn))
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// setPlan sets what the following responses do; n counts the requests of each path from 0.
func (s *repoServer) setPlan(plan func(path string, size int64, n int) action) {
	s.mu.Lock()
	s.plan = plan
	s.mu.Unlock()
}

// ServeHTTP serves the file and logs the response.
func (s *repoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	a := serveAll
	s.mu.Lock()
	if st, err := os.Stat(filepath.Join(s.dir, p)); err == nil && s.plan != nil {
		a = s.plan(p, st.Size(), len(s.responses(p)))
	}
	i := len(s.log)
	s.log = append(s.log, response{path: p, rng: r.Header.Get("Range")})
	s.mu.Unlock()
	m := &meter{ResponseWriter: w, rc: http.NewResponseController(w), r: r, conn: r.Context().Value(connKey{}).(*countingConn), action: a}
	http.FileServer(http.Dir(s.dir)).ServeHTTP(m, r)
	m.rc.Flush()
	s.mu.Lock()
	s.log[i].status, s.log[i].start, s.log[i].sent = m.status, m.start, m.sent()
	s.log[i].cut = m.stopped && !a.hold
	s.mu.Unlock()
	if m.stopped {
		panic(http.ErrAbortHandler) // drops the connection
	}
}

// responses returns the responses logged for path so far; s.mu is held.
func (s *repoServer) responses(p string) []response {
	var out []response
	for _, r := range s.log {
		if r.path == p {
			out = append(out, r)
		}
	}
	return out
}

// files returns, for every file the server sent bytes of, its responses.
func (s *repoServer) files() map[string][]response {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]response{}
	for _, r := range s.log {
		if r.status == http.StatusOK || r.status == http.StatusPartialContent {
			out[r.path] = append(out[r.path], r)
		}
	}
	return out
}

// connKey is the context key of a request's countingConn.
type connKey struct{}

// countingListener makes every connection a countingConn.
type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c}, nil
}

// countingConn counts the bytes written to its socket.
type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// errStopped ends the file server's copy when a response is dropped.
var errStopped = errors.New("dropped by the test server")

// meter flushes the headers and every chunk of the body to the socket, so that the
// connection's count of written bytes is exact, and carries out a response's action.
type meter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	r      *http.Request
	conn   *countingConn
	action action

	status  int
	start   int64 // from Content-Range
	base    int64 // the connection's bytes once the headers were written
	body    int64 // body bytes accepted
	stopped bool
}

func (m *meter) WriteHeader(code int) {
	m.status = code
	if code == http.StatusPartialContent {
		first, _, _ := strings.Cut(strings.TrimPrefix(m.Header().Get("Content-Range"), "bytes "), "-")
		m.start, _ = strconv.ParseInt(first, 10, 64)
	}
	m.ResponseWriter.WriteHeader(code)
	m.rc.Flush()
	m.base = m.conn.written.Load()
}

// Write sends p in chunks of 16 KiB, each flushed, up to the action's limit.
func (m *meter) Write(p []byte) (int, error) {
	if m.status == 0 {
		m.WriteHeader(http.StatusOK)
	}
	done := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		if m.action.limit >= 0 && m.body+int64(k) > m.action.limit {
			k = int(m.action.limit - m.body)
		}
		if k > 0 {
			n, err := m.ResponseWriter.Write(p[:k])
			done += n
			m.body += int64(n)
			if err == nil {
				err = m.rc.Flush()
			}
			if err != nil {
				return done, err
			}
			p = p[k:]
		}
		if m.action.limit >= 0 && m.body == m.action.limit && len(p) > 0 {
			if m.action.hold {
				select {
				case <-m.r.Context().Done():
				case <-time.After(time.Minute):
				}
			}
			m.stopped = true
			return done, errStopped
		}
	}
	return done, nil
}

// sent returns the body bytes written to the socket.
func (m *meter) sent() int64 {
	if m.status == 0 {
		return 0
	}
	return m.conn.written.Load() - m.base
}

// overlapBlock is what a resumed download may fetch twice per interruption: remote.Client
// continues a file with a Range request from its partial file's size, and writes every
// chunk it reads (at most 32 KiB) before reading the next, so a dropped connection loses
// no received byte; a killed client loses at most the chunk it had read and not written.
const overlapBlock = 32 << 10

// checkFetchedOnce fails unless every file the server sent was sent whole, and at most
// once but for overlapBlock per interruption (interrupted[path], plus the connections the
// server dropped itself). With only, the files checked are those it names.
func checkFetchedOnce(t *testing.T, s *repoServer, interrupted map[string]int, only func(path string) bool) {
	t.Helper()
	for p, rs := range s.files() {
		if only != nil && !only(p) {
			continue
		}
		st, err := os.Stat(filepath.Join(s.dir, p))
		if err != nil {
			t.Fatal(err)
		}
		var sent int64
		cuts := interrupted[p]
		covered := make([]bool, st.Size()) // files are small enough
		for _, r := range rs {
			sent += r.sent
			if r.cut {
				cuts++
			}
			for i := r.start; i < r.start+r.sent && i < st.Size(); i++ {
				covered[i] = true
			}
		}
		for i, ok := range covered {
			if !ok {
				t.Errorf("%s: byte %d of %d never sent: %s", p, i, st.Size(), describeResponses(rs))
				break
			}
		}
		if extra := sent - st.Size(); extra > int64(cuts)*overlapBlock {
			t.Errorf("%s: %d bytes sent for a file of %d (%d interruptions, %d bytes fetched twice): %s",
				p, sent, st.Size(), cuts, extra, describeResponses(rs))
		}
	}
}

// describeResponses lists responses for a failure message.
func describeResponses(rs []response) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "[%d %q from %d: %d bytes", r.status, r.rng, r.start, r.sent)
		if r.cut {
			b.WriteString(", cut")
		}
		b.WriteString("] ")
	}
	return b.String()
}
