package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// maxClientSize is the most a stripped static ota-client may weigh (issue 11): devices
// keep it in every deployment and in the initramfs.
const maxClientSize = 12 << 20

// TestStaticBinarySize: ota-client builds without cgo for every device architecture, and
// stripped it stays under maxClientSize (the signing key stores, which pull in large
// clients, must stay out of it).
func TestStaticBinarySize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the client three times")
	}
	for _, arch := range []struct{ goarch, goarm string }{{"arm64", ""}, {"arm", "7"}, {"amd64", ""}} {
		t.Run(arch.goarch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "ota-client")
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.goarch, "GOARM="+arch.goarm)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s: %v\n%s", arch.goarch, err, msg)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > maxClientSize {
				t.Errorf("stripped ota-client for %s is %.1f MB, more than %d MB", arch.goarch, float64(st.Size())/(1<<20), maxClientSize>>20)
			}
			t.Logf("%s: %.1f MB", arch.goarch, float64(st.Size())/(1<<20))
		})
	}
}
