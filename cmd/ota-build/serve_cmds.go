package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/ostree"
)

// serveShutdownTimeout is how long serve waits for transfers in flight to finish once it is
// told to stop before it closes their connections.
const serveShutdownTimeout = 5 * time.Second

// serveCommand returns the serve command, a development HTTP server for a repository.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve an archive repository over HTTP for development",
		ArgsUsage: " ",
		Description: "Serves the files of an archive repository (objects, refs, summary, deltas) so that\n" +
			"ostree pull can fetch from it: GET and HEAD with Range requests, no\n" +
			"directory listings, nothing outside the repository (symlinks that leave it are not followed).\n" +
			"Prints \"serving DIR at http://ADDR/\" with the bound address (--addr 127.0.0.1:0 picks a free\n" +
			"port) and logs a line per request to standard error, with the Range asked for (a resumed\n" +
			"download). Stops on SIGINT or SIGTERM.\n" +
			"Meant for development: no TLS and no authentication; use a real web server in production.",
		Flags: []cli.Flag{
			repoFlag,
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "`HOST:PORT` to listen on (:8080 for every interface, port 0 for a free one)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not log requests"},
		},
		Action: runServe,
	}
}

// runServe checks the repository, listens on --addr and serves until the command's context
// is cancelled.
func runServe(c *cli.Context) error {
	if c.Args().Present() {
		return otacli.Usagef("unexpected argument %q", c.Args().First())
	}
	dir := c.String("repo")
	repo, err := ostree.Open(dir)
	if err != nil {
		return err
	}
	if repo.Mode != ostree.ModeArchive {
		return fmt.Errorf("serve: %s is a %s repository; ostree pull over HTTP needs an archive one (ota-build init --mode archive)", dir, repo.Mode)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	ln, err := net.Listen("tcp", c.String("addr"))
	if err != nil {
		return fmt.Errorf("serve: --addr: %w", err)
	}
	var h http.Handler = repoHandler{root}
	if !c.Bool("quiet") {
		h = accessLog(h, log.New(c.App.ErrWriter, "", 0))
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(c.App.Writer, "serving %s at http://%s/\n", dir, ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-c.Context.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		// Transfers still running after the timeout are cut off; stopping was asked for.
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// repoHandler serves the regular files of a repository directory read-only.
type repoHandler struct{ root *os.Root }

// ServeHTTP answers GET and HEAD of a regular file below the repository with its content,
// honouring Range and conditional requests; everything else is refused.
func (h repoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// The path is already unescaped, so %2e%2e arrives as "..": fs.ValidPath refuses "..",
	// "." and empty elements, and the root refuses symlinks that lead out of the repository.
	name, ok := strings.CutPrefix(r.URL.Path, "/")
	if !ok || !fs.ValidPath(name) || name == "." {
		http.NotFound(w, r)
		return
	}
	// O_NONBLOCK keeps a FIFO from blocking the open; regular files ignore it.
	f, err := h.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			http.Error(w, "forbidden", http.StatusForbidden)
		} else {
			http.NotFound(w, r)
		}
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot stat file", http.StatusInternalServerError)
		return
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	// Setting the type keeps ServeContent from sniffing it from the content.
	w.Header().Set("Content-Type", repoContentType(name))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if rh := r.Header.Get("Range"); rh != "" {
		if fixed := satisfiableRanges(rh, fi.Size()); fixed != rh {
			r = r.Clone(r.Context())
			r.Header.Set("Range", fixed)
		}
	}
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// satisfiableRanges removes from a Range header the suffix ranges ("-N") that select no
// byte: N = 0, or any N of an empty file. net/http answers those with 206 and an invalid
// Content-Range ("bytes SIZE-SIZE-1/SIZE"); RFC 9110 calls them unsatisfiable. When none
// is left it asks for the first byte past the end instead, which net/http answers as the
// RFC requires: 416 with "Content-Range: bytes */SIZE" (an empty file it serves whole, as
// for any range of it). If-Range still applies as usual.
func satisfiableRanges(h string, size int64) string {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return h
	}
	parts := strings.Split(spec, ",")
	var keep []string
	for _, ra := range parts {
		if n, suffix := strings.CutPrefix(strings.TrimSpace(ra), "-"); suffix {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && (v == 0 || size == 0) {
				continue
			}
		}
		keep = append(keep, ra)
	}
	switch len(keep) {
	case len(parts):
		return h
	case 0:
		return fmt.Sprintf("bytes=%d-", size)
	}
	return "bytes=" + strings.Join(keep, ",")
}

// repoContentType returns the content type of a repository file: refs and the config are
// text, everything else (objects, summary, deltas) binary.
func repoContentType(name string) string {
	if name == "config" || strings.HasPrefix(name, "refs/") {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// accessLog wraps h to log every request in the common log format followed by its duration
// and, for a request with a Range header, range="VALUE".
func accessLog(h http.Handler, l *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		// A resumed download shows where it continued: the Range asked for, quoted.
		var rng string
		if v := r.Header.Get("Range"); v != "" {
			rng = " range=" + strconv.Quote(v)
		}
		l.Printf("%s - - [%s] \"%s %s %s\" %d %d %s%s", host, start.Format("02/Jan/2006:15:04:05 -0700"),
			r.Method, r.URL.EscapedPath(), r.Proto, rec.status, rec.bytes, time.Since(start).Round(time.Microsecond), rng)
	})
}

// statusRecorder is a ResponseWriter that remembers the status and counts the body bytes.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader records the status and passes it on.
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes written.
func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// ReadFrom counts the bytes copied, keeping the underlying writer's sendfile path.
func (s *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{s.ResponseWriter}, r)
	}
	s.bytes += n
	return n, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
