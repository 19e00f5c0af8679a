package progress

import (
	"bytes"
	"strings"
	"testing"
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
