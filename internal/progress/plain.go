package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Plain writes timestamped lines, for build logs that are not terminals: one when a stage
// starts, at most one per Interval while it runs, and one when it ends, e.g.
//
//	2026-12-07T06:10:00Z commit: 1200/11105, 80.3 MB
//	2026-12-07T06:10:42Z commit: 11105/11105, 480.0 MB, done in 42.0s
type Plain struct {
	// Interval is the least time between two lines of a running stage.
	Interval time.Duration

	w    io.Writer
	now  func() time.Time
	mu   sync.Mutex
	s    stage
	last time.Time
}

// NewPlain returns a Plain reporter writing to w every 5 seconds.
func NewPlain(w io.Writer) *Plain { return &Plain{Interval: 5 * time.Second, w: w, now: time.Now} }

// Stage implements Reporter.
func (p *Plain) Stage(name string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
	p.s = stage{name: name, total: total, start: p.now(), open: true}
	p.line(p.s.String())
}

// Add implements Reporter.
func (p *Plain) Add(items, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.items += items
	p.s.bytes += bytes
	if p.s.open && p.now().Sub(p.last) >= p.Interval {
		p.line(p.s.String())
	}
}

// Done implements Reporter.
func (p *Plain) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
}

// Log implements Logger.
func (p *Plain) Log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(line)
}

func (p *Plain) end() {
	if !p.s.open {
		return
	}
	p.line(fmt.Sprintf("%s, done in %.1fs", &p.s, p.now().Sub(p.s.start).Seconds()))
	p.s.open = false
}

func (p *Plain) line(s string) {
	p.last = p.now()
	fmt.Fprintf(p.w, "%s %s\n", p.last.UTC().Format(time.RFC3339), s)
}
