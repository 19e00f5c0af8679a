// Package remote fetches the files of an OSTree archive repository over HTTP(S), as
// `ota-build serve` or any static web server serves them: the config, summary and
// summary.sig, objects/XX/REST.TYPE and deltas/... (docs/format.md).
//
// A Client talks to one remote. Get fetches small metadata into memory under a hard size
// bound; Download fetches a large file (a delta part, a big object) into DST.partial,
// continues it with an HTTP Range request after a dropped connection, a stall or a restart
// of the process, and renames it to DST only once its size and optional sha256 match;
// Fetch is Get for a file that may turn out large, which it then downloads. All retry
// transient failures (network errors, stalls, 408, 429, 5xx) with exponential backoff and
// jitter, abort an attempt that receives no byte for Options.StallTimeout, share one
// bandwidth cap (Options.MaxRate) across all transfers, and reuse keep-alive connections.
// Every error is one line naming the URL, without the credentials of the base URL.
//
// The package only moves bytes. It leaves to callers: which files to fetch and in which
// order, verifying object checksums and the signatures of commits and summaries
// (internal/ostree, internal/sign) beyond the optional sha256 of a download, bounding the
// sizes a summary or superblock declares before asking for them, and cleaning up partial
// files they no longer want.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/otakit/ota/internal/progress"
)

// Defaults of the Options fields left zero.
const (
	DefaultStallTimeout = 30 * time.Second
	DefaultRetries      = 5
	DefaultBackoff      = time.Second
	DefaultMaxBackoff   = 30 * time.Second
	DefaultConnections  = 8
)

// ErrNotFound is wrapped by the errors of requests the server answered with 404 Not Found,
// such as the detached metadata of an unsigned commit.
var ErrNotFound = errors.New("404 Not Found")

// Options configure a Client. The zero value is usable: system CAs, no rate limit, the
// defaults above.
type Options struct {
	// TLS configures https: trusted CAs and a client certificate.
	TLS TLSOptions
	// MaxRate caps the bytes per second received by all transfers of the Client together;
	// 0 means no cap.
	MaxRate int64
	// StallTimeout aborts an attempt (to be retried) that receives no byte for this long,
	// response headers included.
	StallTimeout time.Duration
	// Retries is how many times a failed request is retried; negative means never. A
	// download's attempt that brought new bytes before failing does not count.
	Retries int
	// Backoff is the wait before the first retry; it doubles for each further one, up to
	// MaxBackoff. Each wait is drawn at random between half and all of it.
	Backoff, MaxBackoff time.Duration
	// Connections is how many keep-alive connections to keep open to the server: the
	// number of transfers the caller runs at once.
	Connections int
	// UserAgent is sent with every request; the default names this module and its version.
	UserAgent string
	// Progress receives, as bytes, the size of each file Get returns and each byte of a
	// Download's file once (see Download).
	Progress progress.Reporter
}

// Stats counts a Client's work since it was created.
type Stats struct {
	// Requests is the number of HTTP requests sent.
	Requests int64
	// Retries is the number of requests sent again after a failure.
	Retries int64
	// Bytes is the number of response body bytes received.
	Bytes int64
	// Resumed is the number of bytes that downloads did not fetch again because the server
	// continued them from the partial file's size.
	Resumed int64
}

// Client fetches files from one remote repository. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	hc         *http.Client
	limiter    *rate.Limiter // nil without MaxRate
	chunk      int           // read size: at most the limiter's burst
	chunks     sync.Pool     // buffers of chunk bytes (*[]byte), one per body being copied
	stall      time.Duration
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
	userAgent  string
	progress   progress.Reporter

	requests, retried, bytes, resumed atomic.Int64
}

// New returns a Client for the repository at baseURL (http or https; credentials in it
// are sent as basic authentication).
func New(baseURL string, opts Options) (*Client, error) {
	base, err := url.Parse(baseURL)
	if err != nil {
		// url.Error would repeat the whole URL, credentials included.
		return nil, fmt.Errorf("remote: invalid URL: %v", errors.Unwrap(err))
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("remote: URL %s: want http:// or https:// and a host", redact(base))
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("remote: URL %s: a repository URL takes no query or fragment", redact(base))
	}
	tlsConf, err := opts.TLS.config()
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:       base,
		chunk:      32 << 10,
		stall:      orDefault(opts.StallTimeout, DefaultStallTimeout),
		retries:    opts.Retries,
		backoff:    orDefault(opts.Backoff, DefaultBackoff),
		maxBackoff: orDefault(opts.MaxBackoff, DefaultMaxBackoff),
		userAgent:  opts.UserAgent,
		progress:   opts.Progress,
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent()
	}
	if c.progress == nil {
		c.progress = progress.Discard
	}
	if opts.MaxRate > 0 {
		// A burst of at most a second's worth keeps the cap honest over short transfers.
		c.chunk = int(min(opts.MaxRate, int64(c.chunk)))
		c.limiter = rate.NewLimiter(rate.Limit(opts.MaxRate), c.chunk)
	}
	conns := orDefault(opts.Connections, DefaultConnections)
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 30 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		// Offsets and sizes are those of the files as stored: no transparent gzip.
		DisableCompression: true,
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return c, nil
}

// checkRedirect follows at most 10 redirects, never from https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing a redirect from https to %s", redact(req.URL))
	}
	return nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// defaultUserAgent names the module with the version the binary was built from.
func defaultUserAgent() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "otakit-ota/" + v
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Retries: c.retried.Load(), Bytes: c.bytes.Load(), Resumed: c.resumed.Load()}
}

// CloseIdleConnections closes the keep-alive connections not in use.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// URL returns the URL of the repository file at path, without credentials: the name errors
// give it.
func (c *Client) URL(path string) string { return redact(c.base.JoinPath(path)) }

// redact returns u without its user information.
func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// Error is the error of a request: the URL (without credentials) and what went wrong.
type Error struct {
	URL string // the file's URL without user information
	Err error  // what went wrong
}

// Error returns "fetching URL: reason" on one line.
func (e *Error) Error() string {
	return "fetching " + e.URL + ": " + strings.ReplaceAll(e.Err.Error(), "\n", " ")
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Err }

// TooLargeError is the reason of a Get of a file larger than its bound: a caller can fetch
// it another way, as a Download.
type TooLargeError struct {
	// Size is the size the server declared (Content-Length), 0 when it declared none.
	Size int64
	// Max is the bound.
	Max int64
}

// Error says how large the file is.
func (e *TooLargeError) Error() string {
	if e.Size == 0 {
		return fmt.Sprintf("more than the %d bytes allowed", e.Max)
	}
	return fmt.Sprintf("%d bytes, more than the %d allowed", e.Size, e.Max)
}

// permanent marks an error that a retry would not cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// fileURL checks a repository path and returns its URL.
func (c *Client) fileURL(p string) (*url.URL, error) {
	if !fs.ValidPath(p) || p == "." {
		return nil, &Error{URL: c.URL(p), Err: fmt.Errorf("invalid repository path %q", p)}
	}
	return c.base.JoinPath(p), nil
}

// progressed marks the error of an attempt that kept some bytes before it failed.
type progressed struct{ error }

func (p progressed) Unwrap() error { return p.error }

// retry runs attempt until it succeeds, fails permanently, ctx ends or the retries are
// spent, waiting with backoff in between. An attempt that failed after making progress
// (its error wraps progressed) does not count: the retries and the backoff start again,
// so that a connection dropped every few megabytes does not end a long download. It
// returns the last error as one line naming u.
func (c *Client) retry(ctx context.Context, u *url.URL, attempt func(context.Context) error) error {
	for n, attempts := 0, 1; ; n, attempts = n+1, attempts+1 {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return &Error{URL: redact(u), Err: ctx.Err()}
		}
		if isPermanent(err) {
			return &Error{URL: redact(u), Err: err}
		}
		if errors.As(err, new(progressed)) {
			n = 0
		}
		if n >= c.retries {
			return &Error{URL: redact(u), Err: fmt.Errorf("%w (gave up after %d attempts)", err, attempts)}
		}
		t := time.NewTimer(c.backoffFor(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return &Error{URL: redact(u), Err: ctx.Err()}
		case <-t.C:
		}
		c.retried.Add(1)
	}
}

// backoffFor returns the wait before retry n+1: Backoff·2ⁿ capped at MaxBackoff, drawn
// between half and all of it so that clients failing together do not retry together.
func (c *Client) backoffFor(n int) time.Duration {
	d := c.maxBackoff
	if n < 30 && c.backoff<<n < c.maxBackoff {
		d = c.backoff << n
	}
	return d/2 + rand.N(d/2+1)
}

// watchdog cancels an attempt that receives nothing for the stall timeout.
type watchdog struct {
	t       *time.Timer
	d       time.Duration
	stalled atomic.Bool
}

// watch returns a context for one attempt that the returned watchdog cancels after the
// stall timeout unless kicked, and the cancel function that releases both.
func (c *Client) watch(ctx context.Context) (context.Context, *watchdog, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watchdog{d: c.stall}
	w.t = time.AfterFunc(c.stall, func() {
		w.stalled.Store(true)
		cancel()
	})
	return ctx, w, func() {
		w.t.Stop()
		cancel()
	}
}

// kick restarts the stall timeout.
func (w *watchdog) kick() { w.t.Reset(w.d) }

// pause stops the timeout while the client, not the server, is the one waiting.
func (w *watchdog) pause() { w.t.Stop() }

// reason replaces the cancellation the watchdog caused by a stall error.
func (w *watchdog) reason(err error) error {
	if w.stalled.Load() {
		return fmt.Errorf("stalled: no data for %v", w.d)
	}
	return err
}

// send sends req, counting it, under the watchdog. The transport's url.Error is unwrapped:
// Error names the URL once, without credentials.
func (c *Client) send(req *http.Request, w *watchdog) (*http.Response, error) {
	req.Header.Set("User-Agent", c.userAgent)
	c.requests.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, w.reason(err)
	}
	w.kick()
	return resp, nil
}

// statusError returns the error of an unexpected status, permanent unless a retry may
// help (408, 429, 5xx). The reason phrase is the standard one, not the server's.
func statusError(code int) error {
	if code == http.StatusNotFound {
		return permanent{ErrNotFound}
	}
	err := fmt.Errorf("%d %s", code, http.StatusText(code))
	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		return err
	}
	return permanent{err}
}

// errOverLimit is copyBody's error for a body longer than its limit.
var errOverLimit = errors.New("longer than expected")

// copyBody copies body to w in chunks under the watchdog and the rate limit, counting the
// bytes, until EOF or more than limit bytes (an error).
func (c *Client) copyBody(ctx context.Context, w io.Writer, body io.Reader, limit int64, wd *watchdog) (int64, error) {
	bp, _ := c.chunks.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, c.chunk)
		bp = &b
	}
	defer c.chunks.Put(bp)
	buf := *bp
	var done int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			wd.kick()
			c.bytes.Add(int64(n))
			if done+int64(n) > limit {
				return done, permanent{errOverLimit}
			}
			if c.limiter != nil {
				wd.pause()
				err := c.limiter.WaitN(ctx, n)
				wd.kick()
				if err != nil {
					return done, wd.reason(err)
				}
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return done, permanent{err}
			}
			done += int64(n)
		}
		if rerr == io.EOF {
			return done, nil
		}
		if rerr != nil {
			return done, wd.reason(rerr)
		}
	}
}

// Get returns the content of the repository file at path, which must not exceed max bytes
// (a server that sends more gets an error, not a bigger buffer).
func (c *Client) Get(ctx context.Context, path string, max int64) ([]byte, error) {
	u, err := c.fileURL(path)
	if err != nil {
		return nil, err
	}
	out, _, err := c.get(ctx, u, max, false)
	return out, err
}

// get is Get. With keep, the response to a file the server declares larger than max is
// returned unread instead of refused.
func (c *Client) get(ctx context.Context, u *url.URL, max int64, keep bool) ([]byte, *pending, error) {
	var out []byte
	var large *pending
	err := c.retry(ctx, u, func(ctx context.Context) error {
		b, p, err := c.getOnce(ctx, u, max, keep)
		out, large = b, p
		return err
	})
	if err != nil || large != nil {
		return nil, large, err
	}
	c.progress.Add(0, int64(len(out)))
	return out, nil, nil
}

// pending is a response whose body is still to be read, under its attempt's watchdog;
// release ends the attempt. close may be called more than once.
type pending struct {
	ctx     context.Context
	resp    *http.Response
	wd      *watchdog
	release context.CancelFunc
}

func (p *pending) close() {
	p.resp.Body.Close()
	p.release()
}

func (c *Client) getOnce(ctx context.Context, u *url.URL, max int64, keep bool) ([]byte, *pending, error) {
	ctx, wd, cancel := c.watch(ctx)
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, permanent{err}
	}
	resp, err := c.send(req, wd)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == http.StatusOK && resp.ContentLength > max && keep {
		p := &pending{ctx: ctx, resp: resp, wd: wd, release: cancel}
		cancel = nil // the caller's now
		return nil, p, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, statusError(resp.StatusCode)
	}
	if resp.ContentLength > max {
		return nil, nil, permanent{&TooLargeError{Size: resp.ContentLength, Max: max}}
	}
	var b bytes.Buffer
	if resp.ContentLength > 0 {
		b.Grow(int(resp.ContentLength))
	}
	if _, err := c.copyBody(ctx, &b, resp.Body, max, wd); err != nil {
		if errors.Is(err, errOverLimit) {
			err = permanent{&TooLargeError{Max: max}}
		}
		return nil, nil, err
	}
	return b.Bytes(), nil, nil
}
