package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTerminal(t *testing.T) {
	var b bytes.Buffer
	r := NewTerminal(&b)
	r.Stage("commit", 10)
	r.Add(3, 2_000_000)
	r.Add(7, 1_000_000)
	r.Done()
	out := b.String()
	if !strings.HasSuffix(strings.TrimRight(out, "\n"), "s)") || !strings.Contains(out, "commit: 10/10, 3.0 MB") {
		t.Fatalf("terminal output %q lacks the final count", out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("terminal output %q: want one finished line", out)
	}
}

// clock is a fake time source advanced by the tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestStagesEnd: every reporter ends a stage that the next Stage starts without a Done (as
// the image stages did), and a Done with no open stage adds nothing.
func TestStagesEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(*bytes.Buffer) Reporter
		ends string // what marks the end of a stage
	}{
		{"terminal", func(b *bytes.Buffer) Reporter { return NewTerminal(b) }, "s)\n"},
		{"plain", func(b *bytes.Buffer) Reporter { return NewPlain(b) }, ", done in "},
		{"json", func(b *bytes.Buffer) Reporter { return NewJSON(b) }, `"event":"done"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			r := tc.new(&b)
			r.Stage("one", 0)
			r.Add(1, 10)
			r.Stage("two", 0)
			r.Add(2, 20)
			r.Done()
			r.Done()
			if n := strings.Count(b.String(), tc.ends); n != 2 {
				t.Errorf("%d stage ends, want 2:\n%s", n, b.String())
			}
		})
	}
}

// TestPlain: timestamped lines at the start, at most one per interval, and at the end with
// the final count and duration.
func TestPlain(t *testing.T) {
	var b bytes.Buffer
	c := &clock{time.Date(2026, 12, 7, 6, 10, 0, 0, time.UTC)}
	p := NewPlain(&b)
	p.now = c.now
	p.Stage("commit", 11105)
	c.t = c.t.Add(time.Second)
	p.Add(100, 1_000_000) // within the interval: no line
	c.t = c.t.Add(5 * time.Second)
	p.Add(1100, 79_300_000)
	c.t = c.t.Add(36 * time.Second)
	p.Add(9905, 399_700_000)
	p.Log("commit   main abc (new)")
	want := "2026-12-07T06:10:00Z commit: 0/11105, 0.0 MB\n" +
		"2026-12-07T06:10:06Z commit: 1200/11105, 80.3 MB\n" +
		"2026-12-07T06:10:42Z commit: 11105/11105, 480.0 MB\n" +
		"2026-12-07T06:10:42Z commit   main abc (new)\n"
	if b.String() != want {
		t.Fatalf("got\n%swant\n%s", b.String(), want)
	}
	b.Reset()
	p.Done()
	if got := b.String(); got != "2026-12-07T06:10:42Z commit: 11105/11105, 480.0 MB, done in 42.0s\n" {
		t.Fatalf("end line %q", got)
	}
}

// TestJSON: every line is a JSON object with the schema, the stage's counts and the event.
func TestJSON(t *testing.T) {
	var b bytes.Buffer
	c := &clock{time.Date(2026, 12, 7, 6, 10, 0, 0, time.UTC)}
	j := NewJSON(&b)
	j.now = c.now
	j.Stage("delta", 3)
	c.t = c.t.Add(2 * time.Second)
	j.Add(2, 500)
	j.Add(1, 100) // within the interval
	j.Log("a line")
	c.t = c.t.Add(time.Second)
	j.Done()
	type event struct {
		Schema             int
		Time, Stage, Event string
		Done, Total, Bytes *int64
		Seconds            *float64
		Message            string
	}
	var got []event
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.Schema != JSONSchema || e.Time == "" {
			t.Errorf("%q: no schema or time", line)
		}
		got = append(got, e)
	}
	if len(got) != 4 {
		t.Fatalf("%d events, want start, progress, log, done:\n%s", len(got), b.String())
	}
	for i, w := range []struct {
		event             string
		done, total, size int64
	}{{"start", 0, 3, 0}, {"progress", 2, 3, 500}, {"log", -1, -1, -1}, {"done", 3, 3, 600}} {
		e := got[i]
		if e.Event != w.event {
			t.Errorf("event %d is %q, want %q", i, e.Event, w.event)
		}
		if w.done < 0 {
			if e.Message != "a line" || e.Done != nil || e.Stage != "" {
				t.Errorf("log event %+v", e)
			}
			continue
		}
		if e.Stage != "delta" || e.Done == nil || *e.Done != w.done || *e.Total != w.total || *e.Bytes != w.size {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}
	if s := got[3].Seconds; s == nil || *s != 3 {
		t.Errorf("done event seconds %v, want 3", s)
	}
}

// TestNew: auto is plain lines when the output is not a terminal; unknown modes are errors
// naming the modes.
func TestNew(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for mode, want := range map[string]Reporter{"auto": &Plain{}, "plain": &Plain{}, "json": &JSON{}, "none": Discard} {
		r, err := New(mode, f)
		if err != nil {
			t.Fatal(err)
		}
		if got, w := typeName(r), typeName(want); got != w {
			t.Errorf("mode %s: %s, want %s", mode, got, w)
		}
	}
	if _, err := New("bar", f); err == nil || !strings.Contains(err.Error(), "auto, plain, json, none") {
		t.Errorf("mode bar: %v", err)
	}
	if LogWriter(Discard) != nil {
		t.Errorf("Discard has a log writer")
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// A spanned stage reports the overall percent from its bytes, else its items, within its
// range, and the end of its range once done.
func TestSpan(t *testing.T) {
	for _, c := range []struct {
		name                string
		total, bytesTotal   int64
		items, bytes        int64
		from, to            float64
		want, wantAfterDone float64
	}{
		{"by bytes", 10, 1000, 1, 250, 10, 50, 20, 50},
		{"by items", 4, 0, 3, 999, 50, 90, 80, 90},
		{"unknown", 0, 0, 7, 999, 90, 100, 90, 100},
		{"overshoot is capped", 0, 100, 0, 500, 0, 10, 10, 10},
	} {
		var b bytes.Buffer
		clk := &clock{time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)}
		j := NewJSON(&b)
		j.now = clk.now
		j.Stage("download", c.total)
		Span(j, c.bytesTotal, c.from, c.to)
		clk.t = clk.t.Add(2 * time.Second)
		j.Add(c.items, c.bytes)
		j.Done()
		var pcts []float64
		for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			var e struct {
				BytesTotal *int64   `json:"bytes_total"`
				Percent    *float64 `json:"percent"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			if e.Percent == nil || e.BytesTotal == nil {
				if len(pcts) > 0 { // only the start line, before Span, has none
					t.Errorf("%s: %q has no percent or bytes_total", c.name, line)
				}
				continue
			}
			pcts = append(pcts, *e.Percent)
		}
		if len(pcts) != 2 || pcts[0] != c.want || pcts[1] != c.wantAfterDone {
			t.Errorf("%s: percents %v, want [%v %v]", c.name, pcts, c.want, c.wantAfterDone)
		}
	}
	var plain bytes.Buffer
	p := NewPlain(&plain)
	p.Stage("apply", 0)
	Span(p, 200e6, 70, 90)
	p.Add(0, 100e6)
	p.Done()
	if !strings.Contains(plain.String(), "apply: 0, 100.0/200.0 MB, 90.0%, done in") {
		t.Errorf("plain: %q", plain.String())
	}
	Span(Discard, 1, 0, 1) // not a Spanner: nothing happens
}

// TestFunc: a Func reporter passes on each stage's start and end, progress at most once per
// interval, and the overall percent of spanned stages.
func TestFunc(t *testing.T) {
	var got []Event
	c := &clock{t: time.Unix(1000, 0)}
	r := NewFunc(time.Second, func(e Event) { got = append(got, e) })
	r.now = c.now
	r.Stage("download", 4)
	r.Span(400, 10, 50)
	r.Add(1, 100) // within the interval of the start: not passed on
	c.t = c.t.Add(time.Second)
	r.Add(1, 100)
	r.Log("dropped")
	r.Done()
	want := []Event{
		{Event: "start", Stage: "download", Total: 4},
		{Event: "progress", Stage: "download", Items: 2, Total: 4, Bytes: 200, Spanned: true, BytesTotal: 400, Percent: 30},
		{Event: "done", Stage: "download", Items: 2, Total: 4, Bytes: 200, Spanned: true, BytesTotal: 400, Percent: 50},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events:\n%+v\nwant\n%+v", got, want)
	}
}
