package progress

import (
	"sync"
	"time"
)

// lines is what the Plain and JSON reporters share: the current stage, the pace of its
// progress lines, and the lock. Each event of a stage (start, progress, done) and each log
// line goes to emit, called with the lock held; emit writes one line and stamps it with at.
type lines struct {
	// Interval is the least time between two progress lines of a running stage.
	Interval time.Duration

	now  func() time.Time
	mu   sync.Mutex
	s    stage
	last time.Time
	emit func(at time.Time, event string, s *stage, message string)
}

// Stage implements Reporter.
func (l *lines) Stage(name string, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.end()
	l.s = stage{name: name, total: total, start: l.now(), open: true}
	l.write("start", "")
}

// Add implements Reporter.
func (l *lines) Add(items, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s.items += items
	l.s.bytes += bytes
	if l.s.open && l.now().Sub(l.last) >= l.Interval {
		l.write("progress", "")
	}
}

// Span implements Spanner.
func (l *lines) Span(bytesTotal int64, from, to float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s.span(bytesTotal, from, to)
}

// Done implements Reporter.
func (l *lines) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.end()
}

// Log implements Logger.
func (l *lines) Log(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write("log", line)
}

// end ends the open stage, if any: a second Done, or a Stage after Done, writes nothing.
func (l *lines) end() {
	if l.s.open {
		l.s.open = false // before the line: a closed stage is at the end of its span
		l.write("done", "")
	}
}

func (l *lines) write(event, message string) {
	l.last = l.now()
	l.emit(l.last, event, &l.s, message)
}
