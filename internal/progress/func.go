package progress

import "time"

// Event is one event of a stage, as a Func reporter passes it on.
type Event struct {
	// Event is "start", "progress" or "done".
	Event string
	Stage string
	// Items, Total and Bytes are the stage's count so far, its total of items (0: unknown)
	// and its bytes.
	Items, Total, Bytes int64
	// Spanned is true for the stages of an operation that reports an overall percent
	// (Spanner), once the stage's span is set: BytesTotal is the bytes the stage expects (0:
	// unknown) and Percent the overall percent.
	Spanned    bool
	BytesTotal int64
	Percent    float64
}

// Func passes the events of its stages to a function, for a program that shows progress
// its own way (the daemon's D-Bus signals): the start and the end of each stage, and at
// most one progress event per Interval while it runs. Log lines are dropped.
type Func struct{ lines }

// NewFunc returns a Func reporter calling f at most every interval while a stage runs. f
// is called with the reporter's lock held: it must not call the reporter.
func NewFunc(interval time.Duration, f func(Event)) *Func {
	r := &Func{lines{Interval: interval, now: time.Now}}
	r.emit = func(_ time.Time, event string, s *stage, _ string) {
		if event == "log" {
			return
		}
		e := Event{Event: event, Stage: s.name, Items: s.items, Total: s.total, Bytes: s.bytes, Spanned: s.spanned}
		if s.spanned {
			e.BytesTotal, e.Percent = s.bytesTotal, s.percent()
		}
		f(e)
	}
	return r
}
