package progress

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// JSONSchema is the version of the JSON reporter's line format, its "schema" field.
const JSONSchema = 1

// JSON writes one JSON object per line, for programs driving ota-build: events "start",
// "progress" (at most one per Interval) and "done" of each stage, and "log" lines:
//
//	{"schema":1,"time":"2026-12-07T06:10:00Z","stage":"commit","done":1200,"total":11105,"bytes":80300000,"event":"progress"}
//	{"schema":1,"time":"2026-12-07T06:10:42Z","stage":"commit","done":11105,"total":11105,"bytes":480000000,"event":"done","seconds":42.01}
//	{"schema":1,"time":"2026-12-07T06:10:42Z","event":"log","message":"commit   myos/stable 4f2c… (new)"}
type JSON struct {
	// Interval is the least time between two progress events of a stage.
	Interval time.Duration

	w    io.Writer
	now  func() time.Time
	mu   sync.Mutex
	s    stage
	last time.Time
}

// NewJSON returns a JSON reporter writing to w every second.
func NewJSON(w io.Writer) *JSON { return &JSON{Interval: time.Second, w: w, now: time.Now} }

// jsonEvent is one line of a JSON reporter.
type jsonEvent struct {
	Schema  int      `json:"schema"`
	Time    string   `json:"time"`
	Stage   string   `json:"stage,omitempty"`
	Done    *int64   `json:"done,omitempty"`
	Total   *int64   `json:"total,omitempty"`
	Bytes   *int64   `json:"bytes,omitempty"`
	Event   string   `json:"event"`
	Seconds *float64 `json:"seconds,omitempty"`
	Message string   `json:"message,omitempty"`
}

// Stage implements Reporter.
func (j *JSON) Stage(name string, total int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.end()
	j.s = stage{name: name, total: total, start: j.now(), open: true}
	j.event("start")
}

// Add implements Reporter.
func (j *JSON) Add(items, bytes int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.s.items += items
	j.s.bytes += bytes
	if j.s.open && j.now().Sub(j.last) >= j.Interval {
		j.event("progress")
	}
}

// Done implements Reporter.
func (j *JSON) Done() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.end()
}

// Log implements Logger.
func (j *JSON) Log(line string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.write(jsonEvent{Event: "log", Message: line})
}

func (j *JSON) end() {
	if !j.s.open {
		return
	}
	j.event("done")
	j.s.open = false
}

func (j *JSON) event(name string) {
	e := jsonEvent{Stage: j.s.name, Done: &j.s.items, Total: &j.s.total, Bytes: &j.s.bytes, Event: name}
	if name == "done" {
		secs := float64(j.now().Sub(j.s.start).Milliseconds()) / 1000
		e.Seconds = &secs
	}
	j.write(e)
}

func (j *JSON) write(e jsonEvent) {
	j.last = j.now()
	e.Schema, e.Time = JSONSchema, j.last.UTC().Format(time.RFC3339)
	line, _ := json.Marshal(e) // cannot fail: strings and numbers
	j.w.Write(append(line, '\n'))
}
