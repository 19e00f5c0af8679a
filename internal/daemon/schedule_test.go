package daemon

import (
	"testing"
	"time"

	"github.com/otakit/ota/internal/gvariant"
)

// TestCheckDelay: the wait doubles with each consecutive failure up to max(interval,
// MaxBackoff), and the jitter adds at most its own length.
func TestCheckDelay(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{time.Second, 0, time.Second},
		{time.Second, 1, 2 * time.Second},
		{time.Second, 3, 8 * time.Second},
		{time.Second, 40, MaxBackoff},
		{10 * time.Minute, 2, 40 * time.Minute},
		{10 * time.Minute, 3, MaxBackoff},
		{6 * time.Hour, 0, 6 * time.Hour},
		{6 * time.Hour, 5, 6 * time.Hour},
	} {
		if got := checkDelay(tc.interval, 0, tc.failures); got != tc.want {
			t.Errorf("checkDelay(%v, 0, %d) = %v, want %v", tc.interval, tc.failures, got, tc.want)
		}
	}
	seen := map[time.Duration]bool{}
	for range 100 {
		d := checkDelay(time.Minute, 10*time.Second, 0)
		if d < time.Minute || d >= time.Minute+10*time.Second {
			t.Fatalf("checkDelay with 10s of jitter: %v", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("only %d different delays in 100: no jitter", len(seen))
	}
}

// TestMetadataJSON: commit metadata as the properties show it.
func TestMetadataJSON(t *testing.T) {
	m := []gvariant.DictEntry{
		{Key: "version", Value: gvariant.Variant{Type: "s", Value: "2.0"}},
		{Key: "ostree.bootable", Value: gvariant.Variant{Type: "b", Value: true}},
		{Key: "ostree.ref-binding", Value: gvariant.Variant{Type: "as", Value: []string{"myos/stable"}}},
		{Key: "build.id", Value: gvariant.Variant{Type: "t", Value: uint64(42)}},
		{Key: "checksum", Value: gvariant.Variant{Type: "ay", Value: []byte{0xca, 0xfe}}},
	}
	want := `{"build.id":42,"checksum":"cafe","ostree.bootable":true,"ostree.ref-binding":["myos/stable"],"version":"2.0"}`
	if got := metadataJSON(m); got != want {
		t.Errorf("metadataJSON:\n%s\nwant\n%s", got, want)
	}
	if got := metadataJSON(nil); got != "{}" {
		t.Errorf("no metadata: %s", got)
	}
}
