package progress

import (
	"fmt"
	"io"
	"time"
)

// Plain writes timestamped lines, for build logs that are not terminals: one when a stage
// starts, at most one per Interval while it runs, and one when it ends, e.g.
//
//	2026-12-07T06:10:00Z commit: 1200/11105, 80.3 MB
//	2026-12-07T06:10:42Z commit: 11105/11105, 480.0 MB, done in 42.0s
type Plain struct{ lines }

// NewPlain returns a Plain reporter writing to w every 5 seconds.
func NewPlain(w io.Writer) *Plain {
	p := &Plain{lines{Interval: 5 * time.Second, now: time.Now}}
	p.emit = func(at time.Time, event string, s *stage, message string) {
		line := message
		switch event {
		case "start", "progress":
			line = s.String()
		case "done":
			line = fmt.Sprintf("%s, done in %.1fs", s, at.Sub(s.start).Seconds())
		}
		fmt.Fprintf(w, "%s %s\n", at.UTC().Format(time.RFC3339), line)
	}
	return p
}
