// Package progress reports the advance of long operations: a live line on a terminal, or
// nothing when no one is watching.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Reporter receives progress. Implementations are safe for concurrent use.
type Reporter interface {
	// Stage starts a named stage with a total count of items (0 when unknown).
	Stage(name string, total int64)
	// Add records n more items (and bytes) done in the current stage.
	Add(items, bytes int64)
	// Done ends the current stage.
	Done()
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

// ForStderr returns a terminal reporter on stderr when it is a terminal, else Discard.
func ForStderr() Reporter {
	if IsTerminal(os.Stderr) {
		return NewTerminal(os.Stderr)
	}
	return Discard
}

// counters is the state of the current stage.
type counters struct {
	name         string
	total        int64
	items, bytes int64
	start        time.Time
}

// Terminal redraws one status line at most ten times a second.
type Terminal struct {
	w    io.Writer
	mu   sync.Mutex
	c    counters
	last time.Time
}

// NewTerminal returns a Reporter drawing on w, which should be a terminal.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

// Stage implements Reporter.
func (t *Terminal) Stage(name string, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c = counters{name: name, total: total, start: time.Now()}
	t.draw()
}

// Add implements Reporter.
func (t *Terminal) Add(items, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c.items += items
	t.c.bytes += bytes
	if time.Since(t.last) >= 100*time.Millisecond {
		t.draw()
	}
}

// Done implements Reporter.
func (t *Terminal) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draw()
	fmt.Fprintf(t.w, " (%.1fs)\n", time.Since(t.c.start).Seconds())
}

func (t *Terminal) draw() {
	t.last = time.Now()
	of := ""
	if t.c.total > 0 {
		of = fmt.Sprintf("/%d", t.c.total)
	}
	fmt.Fprintf(t.w, "\r\033[K%s: %d%s, %.1f MB", t.c.name, t.c.items, of, float64(t.c.bytes)/1e6)
}
