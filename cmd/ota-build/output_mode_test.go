package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutputsHonourUmask (issue 9, item 12): images, block maps, compressed images and
// bundles are created like any file a command creates, mode 0666 less the umask: 0644
// under umask 022, 0640 under 027 (images and block maps were 0600, bundles always 0644).
func TestOutputsHonourUmask(t *testing.T) {
	f := newImageFixture(t)
	for _, tc := range []struct {
		umask string
		want  os.FileMode
	}{{"022", 0o644}, {"027", 0o640}} {
		t.Run("umask "+tc.umask, func(t *testing.T) {
			dir := t.TempDir()
			withUmask := func(args ...string) {
				t.Helper()
				sh := append([]string{"-c", `umask ` + tc.umask + ` && exec "$0" "$@"`, otaBuild}, args...)
				if r := runCmd(t, nil, nil, "sh", sh...); r.code != 0 {
					t.Fatalf("ota-build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
				}
			}
			img := filepath.Join(dir, "disk.img")
			withUmask("image", "--repo", f.repo, "--board", "qemu-aarch64", "-o", img, "--bmap", "--zstd", "myos/stable")
			bundle := filepath.Join(dir, "update.bundle")
			withUmask("bundle", "--repo", f.repo, "--from", f.c1, "--to", f.c2, "-o", bundle)
			for _, p := range []string{img, img + ".bmap", img + ".zst", bundle} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != tc.want {
					t.Errorf("%s: mode %04o, want %04o", filepath.Base(p), st.Mode().Perm(), tc.want)
				}
			}
		})
	}
}
