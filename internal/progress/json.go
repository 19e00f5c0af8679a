package progress

import (
	"encoding/json"
	"io"
	"time"
)

// JSONSchema is the version of the JSON reporter's line format, its "schema" field.
const JSONSchema = 1

// JSON writes one JSON object per line, for programs driving ota-build: events "start",
// "progress" (at most one per Interval) and "done" of each stage, and "log" lines; the
// stages of an operation that reports an overall percent (Spanner: ota-client's update)
// also carry "bytes_total" (0: unknown) and "percent":
//
//	{"schema":1,"time":"2026-12-07T06:10:00Z","stage":"commit","done":1200,"total":11105,"bytes":80300000,"event":"progress"}
//	{"schema":1,"time":"2026-12-07T06:10:42Z","stage":"commit","done":11105,"total":11105,"bytes":480000000,"event":"done","seconds":42.01}
//	{"schema":1,"time":"2026-12-07T06:10:42Z","event":"log","message":"commit   myos/stable 4f2c… (new)"}
//	{"schema":1,"time":"2026-12-07T08:00:03Z","stage":"download","done":3,"total":9,"bytes":41000000,"event":"progress","bytes_total":120000000,"percent":25.2}
type JSON struct{ lines }

// NewJSON returns a JSON reporter writing to w every second.
func NewJSON(w io.Writer) *JSON {
	j := &JSON{lines{Interval: time.Second, now: time.Now}}
	j.emit = func(at time.Time, event string, s *stage, message string) {
		e := jsonEvent{Schema: JSONSchema, Time: at.UTC().Format(time.RFC3339), Event: event, Message: message}
		if event != "log" {
			e.Stage, e.Done, e.Total, e.Bytes = s.name, &s.items, &s.total, &s.bytes
			if s.spanned {
				pct := s.percent()
				e.BytesTotal, e.Percent = &s.bytesTotal, &pct
			}
		}
		if event == "done" {
			secs := float64(at.Sub(s.start).Milliseconds()) / 1000
			e.Seconds = &secs
		}
		line, _ := json.Marshal(e) // cannot fail: strings and numbers
		w.Write(append(line, '\n'))
	}
	return j
}

// jsonEvent is one line of a JSON reporter.
type jsonEvent struct {
	Schema int    `json:"schema"`
	Time   string `json:"time"`
	Stage  string `json:"stage,omitempty"`
	Done   *int64 `json:"done,omitempty"`
	Total  *int64 `json:"total,omitempty"`
	Bytes  *int64 `json:"bytes,omitempty"`
	// Set for the stages of an operation that reports an overall percent (Spanner).
	BytesTotal *int64   `json:"bytes_total,omitempty"`
	Percent    *float64 `json:"percent,omitempty"`
	Event      string   `json:"event"`
	Seconds    *float64 `json:"seconds,omitempty"`
	Message    string   `json:"message,omitempty"`
}
