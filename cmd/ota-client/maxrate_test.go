package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	otacli "github.com/otakit/ota/internal/cli"
)

// TestMaxRate: pull --max-rate caps the download rate, whatever the configuration's
// max-rate says, and --max-rate 0 lifts the configuration's cap: a pull of the 3 MiB object
// at 2 MiB/s takes at least the time the token bucket allows, and one capped at 16 KiB/s
// by the configuration (over three minutes) ends within seconds.
func TestMaxRate(t *testing.T) {
	const rate = 2 << 20
	for _, tc := range []struct {
		flag    string
		limited bool
	}{{"2MiB", true}, {"0", false}} {
		t.Run(tc.flag, func(t *testing.T) {
			d, s := resumeDevice(t, "objects")
			writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + s.URL + "\nref: myos/stable\nmax-rate: 16KiB\n"})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			out, err := exec.CommandContext(ctx, otaClient, "--sysroot", d.sysroot, "pull", "--max-rate", tc.flag).CombinedOutput()
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("pull --max-rate %s: %v after %v\n%s", tc.flag, err, elapsed, out)
			}
			var received int64
			for _, rs := range s.files() {
				for _, r := range rs {
					received += r.sent
				}
			}
			// The limiter lets a burst of at most 32 KiB through at once, then rate bytes a second.
			least := time.Duration(float64(received-32<<10) / rate * float64(time.Second))
			t.Logf("%d bytes in %v (at least %v at %d bytes/s)", received, elapsed, least, rate)
			if received < 3<<20 {
				t.Fatalf("only %d bytes pulled", received)
			}
			if tc.limited && elapsed < least*9/10 {
				t.Errorf("%d bytes in %v: faster than %d bytes/s", received, elapsed, rate)
			}
		})
	}
	r := client("pull", "--max-rate", "fast")
	if r.code != otacli.ExitUsage || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `pull: --max-rate: invalid rate "fast"`) {
		t.Errorf("pull --max-rate fast: exit %d, %q", r.code, r.stderr)
	}
}
