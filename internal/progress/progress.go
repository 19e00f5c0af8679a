// Package progress reports the advance of long operations: a live line on a terminal,
// timestamped lines in a build log, JSON lines for programs, or nothing.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Reporter receives progress. Implementations are safe for concurrent use.
type Reporter interface {
	// Stage starts a named stage with a total count of items (0 when unknown), ending the
	// current stage first if it is still open.
	Stage(name string, total int64)
	// Add records n more items (and bytes) done in the current stage.
	Add(items, bytes int64)
	// Done ends the current stage; without an open stage it does nothing.
	Done()
}

// Logger is implemented by the reporters that also carry log lines (what a pipeline step
// produced), interleaved with their progress output.
type Logger interface {
	// Log writes one line.
	Log(line string)
}

// LogWriter returns a writer that passes each line written to it to r's Log, or nil when
// r does not log.
func LogWriter(r Reporter) io.Writer {
	l, ok := r.(Logger)
	if !ok {
		return nil
	}
	return logWriter{l}
}

type logWriter struct{ l Logger }

func (w logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.l.Log(strings.TrimSuffix(string(line), "\n"))
	}
	return len(p), nil
}

// Discard is a Reporter that reports nothing.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Stage(string, int64) {}
func (discard) Add(int64, int64)    {}
func (discard) Done()               {}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Modes are the names New accepts, as the --progress flag takes them.
var Modes = []string{"auto", "plain", "json", "none"}

// New returns the reporter of a mode writing to f: "auto" is a Terminal when f is a
// terminal and Plain otherwise (a build log), "plain" is Plain, "json" is JSON and
// "none" is Discard.
func New(mode string, f *os.File) (Reporter, error) {
	switch mode {
	case "auto":
		if IsTerminal(f) {
			return NewTerminal(f), nil
		}
		return NewPlain(f), nil
	case "plain":
		return NewPlain(f), nil
	case "json":
		return NewJSON(f), nil
	case "none":
		return Discard, nil
	}
	return nil, fmt.Errorf("progress mode %q: want %s", mode, strings.Join(Modes, ", "))
}

// stage is the state of the current stage, shared by the reporters.
type stage struct {
	name         string
	total        int64
	items, bytes int64
	start        time.Time
	open         bool

	// Set by Span: the bytes expected and the overall percent the stage goes from and to.
	spanned    bool
	bytesTotal int64
	from, to   float64
}

// Spanner is implemented by the reporters that show an operation of several stages as one
// overall percent (all of this package's but Discard).
type Spanner interface {
	// Span says, for the current stage, how many bytes it expects (0 when unknown) and
	// which range of the overall percent, from 0 to 100, it covers: the percent goes from
	// from to to as the stage's bytes (else its items) reach their total.
	Span(bytesTotal int64, from, to float64)
}

// Span calls r's Span when r is a Spanner.
func Span(r Reporter, bytesTotal int64, from, to float64) {
	if s, ok := r.(Spanner); ok {
		s.Span(bytesTotal, from, to)
	}
}

func (s *stage) span(bytesTotal int64, from, to float64) {
	s.spanned, s.bytesTotal, s.from, s.to = true, bytesTotal, from, to
}

// percent is the overall percent at this point of a spanned stage; once the stage is
// closed it is the end of its range.
func (s *stage) percent() float64 {
	frac := 0.0
	switch {
	case !s.open:
		frac = 1
	case s.bytesTotal > 0:
		frac = float64(s.bytes) / float64(s.bytesTotal)
	case s.total > 0:
		frac = float64(s.items) / float64(s.total)
	}
	p := s.from + (s.to-s.from)*min(frac, 1)
	return math.Round(p*10) / 10
}

// String is the stage's count as the terminal and plain reporters print it, e.g.
// "commit: 1200/11105, 80.3 MB", or with a span "download: 120/3400, 80.3/240.0 MB, 35.0%".
func (s *stage) String() string {
	of := ""
	if s.total > 0 {
		of = fmt.Sprintf("/%d", s.total)
	}
	if !s.spanned {
		return fmt.Sprintf("%s: %d%s, %.1f MB", s.name, s.items, of, float64(s.bytes)/1e6)
	}
	mb := fmt.Sprintf("%.1f", float64(s.bytes)/1e6)
	if s.bytesTotal > 0 {
		mb += fmt.Sprintf("/%.1f", float64(s.bytesTotal)/1e6)
	}
	return fmt.Sprintf("%s: %d%s, %s MB, %.1f%%", s.name, s.items, of, mb, s.percent())
}
