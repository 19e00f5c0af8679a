package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Terminal redraws one status line per stage at most ten times a second, and ends it with
// the stage's duration.
type Terminal struct {
	w    io.Writer
	mu   sync.Mutex
	s    stage
	last time.Time
}

// NewTerminal returns a Reporter drawing on w, which should be a terminal.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

// Stage implements Reporter.
func (t *Terminal) Stage(name string, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.end()
	t.s = stage{name: name, total: total, start: time.Now(), open: true}
	t.draw()
}

// Add implements Reporter.
func (t *Terminal) Add(items, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.items += items
	t.s.bytes += bytes
	if t.s.open && time.Since(t.last) >= 100*time.Millisecond {
		t.draw()
	}
}

// Span implements Spanner.
func (t *Terminal) Span(bytesTotal int64, from, to float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.span(bytesTotal, from, to)
}

// Done implements Reporter.
func (t *Terminal) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.end()
}

// Log implements Logger: the line goes above the status line of an open stage.
func (t *Terminal) Log(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s.open {
		fmt.Fprint(t.w, "\r\033[K")
	}
	fmt.Fprintln(t.w, line)
	if t.s.open {
		t.draw()
	}
}

func (t *Terminal) end() {
	if !t.s.open {
		return
	}
	t.s.open = false // before drawing: a closed stage is at the end of its span
	t.draw()
	fmt.Fprintf(t.w, " (%.1fs)\n", time.Since(t.s.start).Seconds())
}

func (t *Terminal) draw() {
	t.last = time.Now()
	fmt.Fprintf(t.w, "\r\033[K%s", &t.s)
}
