package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DownloadOptions describe the file a Download expects. Size or Max is required: a
// hostile server must not fill the disk.
type DownloadOptions struct {
	// Size is the file's exact size, 0 when unknown.
	Size int64
	// Max bounds the file's size when Size is unknown.
	Max int64
	// SHA256, when set, is the 32-byte sha256 digest the file must have.
	SHA256 []byte
	// Accept, when set, is called with the file's size as each response declares it,
	// before any of its bytes is written; its error ends the download.
	Accept func(size int64) error
}

// Download fetches the repository file at path into dst, through the partial file
// dst+".partial" (so dst's directory should be the repository's tmp/ or beside it).
//
// A partial file left by an earlier call, in this process or a previous one, is continued
// with "Range: bytes=N-" from its size N; so is an attempt cut short by a dropped
// connection or a stall. A 206 answer must start at N (else the partial is truncated and
// the file fetched from the start: bytes from elsewhere are never appended); a 200 answer,
// from a server that ignores Range, restarts the file from byte 0. Once the file is
// complete its size and optional sha256 are checked, the partial is synced to disk and
// renamed to dst. A file that does not match, or that the server declares larger than
// expected, removes the partial and returns an error. Other errors, cancellation of ctx
// included, leave the partial (unless it is empty) for the next call to continue; callers
// delete partials they give up on. The partial is synced each time it has grown by
// SyncEvery bytes, so that a power cut loses at most that much of it and the next boot's
// call continues from there (a file only ever appended to and synced keeps its synced bytes;
// should a filesystem leave garbage in the tail, the size and sha256 checks, or the
// caller's checksum of the content, catch it, and the next call starts over). Paths are expected to name immutable files (as objects and deltas are): a
// partial is continued without asking whether the file changed, which only the sha256
// check would notice.
//
// Options.Progress receives each byte of the file once: the partial's size when the call
// starts, then the bytes as they are written (bytes fetched again after a restart from
// byte 0 are not counted twice). Only one Download at a time may use a given dst: the
// partial is locked, and a second one fails at once.
func (c *Client) Download(ctx context.Context, path, dst string, opts DownloadOptions) error {
	u, err := c.fileURL(path)
	if err != nil {
		return err
	}
	return c.download(ctx, u, dst, opts, nil)
}

// Fetch returns the content of the repository file at path when the server declares at
// most max bytes, as Get does (never nil). A larger file is downloaded into dst as Download
// does with opts, and Fetch returns nil data: the response that declared its size is the download's
// first attempt (where a Get refusing it and a Download would fetch its first bytes
// twice). A partial file that an earlier call left at dst is continued at once.
func (c *Client) Fetch(ctx context.Context, path string, max int64, dst string, opts DownloadOptions) ([]byte, error) {
	u, err := c.fileURL(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dst + ".partial"); err == nil {
		return nil, c.download(ctx, u, dst, opts, nil)
	}
	data, large, err := c.get(ctx, u, max, true)
	var tooLarge *TooLargeError
	switch {
	case errors.As(err, &tooLarge) && tooLarge.Size == 0:
		// Larger than declared (no Content-Length): only a download can take it.
		return nil, c.download(ctx, u, dst, opts, nil)
	case err != nil:
		return nil, err
	case large != nil:
		return nil, c.download(ctx, u, dst, opts, large)
	}
	if data == nil {
		data = []byte{} // nil means downloaded
	}
	return data, nil
}

// download is Download, with first, when not nil, the response to a request for the
// whole file to take as its first attempt.
func (c *Client) download(ctx context.Context, u *url.URL, dst string, opts DownloadOptions, first *pending) error {
	if first != nil {
		defer first.close()
	}
	fail := func(err error) error { return &Error{URL: redact(u), Err: err} }
	switch {
	case opts.Size < 0 || opts.Max < 0 || opts.Size == 0 && opts.Max == 0:
		return fail(errors.New("a download needs the file's size or a bound on it"))
	case opts.SHA256 != nil && len(opts.SHA256) != sha256.Size:
		return fail(fmt.Errorf("a sha256 digest has %d bytes, not %d", sha256.Size, len(opts.SHA256)))
	}
	partial := dst + ".partial"
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("%s is in use by another download", partial))
	}
	d := &download{c: c, u: u, f: f, opts: opts, limit: opts.Size, first: first}
	if d.limit == 0 {
		d.limit = opts.Max
	}
	if err := d.resume(); err != nil {
		return fail(err)
	}
	// An attempt makes progress when the partial grows past its largest size so far: a
	// server whose bytes keep being thrown away (a restart from byte 0) still runs out of
	// retries.
	peak := d.off
	err = c.retry(ctx, u, func(ctx context.Context) error {
		err := d.attempt(ctx)
		if err != nil && d.off > peak {
			peak = d.off
			return progressed{err}
		}
		return err
	})
	if err == nil {
		err = d.finish(dst)
		if err != nil {
			err = fail(err)
		}
	}
	if d.bad || err != nil && d.off == 0 {
		// A wrong partial must not be continued, and an empty one is of no use.
		f.Close()
		os.Remove(partial)
	}
	return err
}

// SyncEvery is how many bytes a partial file grows by between two syncs to disk: what a
// power cut in the middle of a download can lose.
const SyncEvery = 1 << 20

// syncFile syncs a partial file to disk; tests watch it.
var syncFile = (*os.File).Sync

// download is the state of one Download: the partial file and how far it goes.
type download struct {
	c     *Client
	u     *url.URL
	f     *os.File
	opts  DownloadOptions
	limit int64    // the most bytes the file may have
	first *pending // a response to take as the first attempt, when not nil

	off      int64     // the partial file's size
	synced   int64     // the size at the last sync
	h        hash.Hash // sha256 of the partial's content, when a digest is expected
	reported int64     // bytes given to the progress reporter
	bad      bool      // the partial's content is known to be wrong
}

// resume takes up the partial file as it is: its size, and its digest when one is expected.
func (d *download) resume() error {
	fi, err := d.f.Stat()
	if err != nil {
		return err
	}
	if d.opts.SHA256 != nil {
		d.h = sha256.New()
	}
	if fi.Size() > d.limit {
		return d.truncate()
	}
	d.off, d.synced = fi.Size(), fi.Size()
	if d.h != nil {
		if _, err := io.Copy(d.h, io.NewSectionReader(d.f, 0, d.off)); err != nil {
			return err
		}
	}
	d.progress()
	return nil
}

// truncate empties the partial file.
func (d *download) truncate() error {
	if err := d.f.Truncate(0); err != nil {
		return err
	}
	d.off, d.synced = 0, 0
	if d.h != nil {
		d.h.Reset()
	}
	return nil
}

// Write appends p to the partial file, and syncs it every SyncEvery bytes.
func (d *download) Write(p []byte) (int, error) {
	n, err := d.f.WriteAt(p, d.off)
	if d.h != nil {
		d.h.Write(p[:n])
	}
	d.off += int64(n)
	d.progress()
	if err == nil && d.off-d.synced >= SyncEvery {
		if err = syncFile(d.f); err == nil {
			d.synced = d.off
		}
	}
	return n, err
}

// progress reports the bytes of the partial file not reported yet.
func (d *download) progress() {
	if d.off > d.reported {
		d.c.progress.Add(0, d.off-d.reported)
		d.reported = d.off
	}
}

// attempt sends one request for the rest of the file and writes what comes to the partial.
// It returns nil once the partial holds the whole file as the server declares it.
func (d *download) attempt(ctx context.Context) error {
	if p := d.first; p != nil {
		d.first = nil
		defer p.close()
		return d.receive(p.ctx, p.resp, p.wd, false)
	}
	if d.opts.Size > 0 && d.off == d.opts.Size {
		return nil
	}
	ctx, wd, cancel := d.c.watch(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.u.String(), nil)
	if err != nil {
		return permanent{err}
	}
	ranged := d.off > 0
	if ranged {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", d.off))
	}
	resp, err := d.c.send(req, wd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return d.receive(ctx, resp, wd, ranged)
}

// receive writes what resp, the answer to a request from the partial's size (ranged) or
// for the whole file, brings to the partial file.
func (d *download) receive(ctx context.Context, resp *http.Response, wd *watchdog, ranged bool) error {
	total, end := int64(-1), int64(-1) // the file's size and where this response ends
	switch resp.StatusCode {
	case http.StatusOK:
		if d.off > 0 {
			// The server ignored Range: the body is the file from byte 0.
			if err := d.truncate(); err != nil {
				return permanent{err}
			}
		}
		total, end = resp.ContentLength, resp.ContentLength
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, last, size, ok := parseContentRange(cr)
		if !ok || start != d.off {
			// Never append bytes from elsewhere: start over from byte 0.
			from := d.off
			if err := d.truncate(); err != nil {
				return permanent{err}
			}
			return fmt.Errorf("206 with Content-Range %s to a request from byte %d", quoteShort(cr), from)
		}
		d.c.resumed.Add(d.off)
		total, end = size, last+1
	case http.StatusRequestedRangeNotSatisfiable:
		// Nothing from the partial's size on: the partial is complete or too long.
		_, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if ranged && ok && size == d.off {
			return nil
		}
		if ranged {
			if err := d.truncate(); err != nil {
				return permanent{err}
			}
			return errors.New("the partial file is longer than the file: starting over")
		}
		return statusError(resp.StatusCode)
	default:
		return statusError(resp.StatusCode)
	}
	if total >= 0 && d.opts.Accept != nil {
		if err := d.opts.Accept(total); err != nil {
			return permanent{err}
		}
	}
	if total >= 0 && (d.opts.Size > 0 && total != d.opts.Size || total > d.limit) {
		d.bad = true
		return permanent{fmt.Errorf("the server has %d bytes, %s", total, d.expected())}
	}
	if _, err := d.c.copyBody(ctx, d, resp.Body, d.limit-d.off, wd); err != nil {
		if errors.Is(err, errOverLimit) {
			d.bad = true
			err = permanent{fmt.Errorf("the server sent more than %s", d.expected())}
		}
		return err
	}
	if end >= 0 && d.off < end {
		return fmt.Errorf("response ended at byte %d of %d", d.off, end)
	}
	if total >= 0 && d.off < total {
		return fmt.Errorf("the server sent bytes up to %d of %d", d.off, total)
	}
	return nil
}

// expected describes the size bound in errors.
func (d *download) expected() string {
	if d.opts.Size > 0 {
		return fmt.Sprintf("%d expected", d.opts.Size)
	}
	return fmt.Sprintf("at most %d allowed", d.limit)
}

// finish checks the complete partial file, syncs it and renames it to dst.
func (d *download) finish(dst string) error {
	if d.opts.Size > 0 && d.off != d.opts.Size {
		d.bad = true
		return fmt.Errorf("got %d bytes, %s", d.off, d.expected())
	}
	if d.h != nil {
		if sum := d.h.Sum(nil); !bytes.Equal(sum, d.opts.SHA256) {
			d.bad = true
			return fmt.Errorf("sha256 %x, expected %x", sum, d.opts.SHA256)
		}
	}
	if err := d.f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(d.f.Name(), dst); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	dir, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// parseContentRange parses "bytes FIRST-LAST/SIZE", "bytes FIRST-LAST/*" (size -1) and
// "bytes */SIZE" (first and last -1).
func parseContentRange(s string) (first, last, size int64, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	size = -1
	if sz != "*" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		size = n
	}
	if rng == "*" {
		if size < 0 {
			return 0, 0, 0, false
		}
		return -1, -1, size, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || size >= 0 && last >= size {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

// quoteShort quotes a header value for an error, cut to a readable length.
func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}
