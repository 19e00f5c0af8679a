// Package testsources gives the tests of the Buildroot external tree (buildroot-ext) and of
// the Yocto layer (meta-ota) the source snapshots they run: it finds the tarballs of
// shared/sources above the checkout, names the test cache outside the checkout they are
// unpacked into, unpacks a tarball there once, and skips a test that lacks a snapshot or a
// tool, saying so, or fails it instead when OTA_REQUIRE_TOOLS=1 (CI, which has them all).
package testsources

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Missing skips t with the message format and args, or fails it when OTA_REQUIRE_TOOLS=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (OTA_REQUIRE_TOOLS=1)", msg)
	} else {
		t.Skipf("%s; set OTA_REQUIRE_TOOLS=1 to fail instead", msg)
	}
}

// RequireTools skips t, or fails it (see Missing), when a program is not installed.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, "%s is not installed", n)
		}
	}
}

// Find returns the directory shared/sources that holds the snapshot name, in dir or the
// nearest of its parents (CI lays shared/ beside the clone).
func Find(dir, name string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		sources := filepath.Join(d, "shared", "sources")
		if _, err := os.Stat(filepath.Join(sources, name)); err == nil {
			return sources, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no shared/sources/%s in %s or its parents", name, dir)
		}
	}
}

// Cache returns the directory the tests keep unpacked sources in between runs: $OTA_CACHE,
// else ota-tests in the cache directory of the user whose home directory is home
// (home/.cache), or of the current user (os.UserCacheDir) when home is "".
func Cache(home string) (string, error) {
	if d := os.Getenv("OTA_CACHE"); d != "" {
		return d, nil
	}
	if home != "" {
		return filepath.Join(home, ".cache", "ota-tests"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %v (set OTA_CACHE)", err)
	}
	return filepath.Join(d, "ota-tests"), nil
}

// Unpack unpacks tarball (any compression tar reads) into cache/prefix-<the first 16 hex
// digits of its SHA-256> unless that directory is there already, and returns it. It unpacks
// into a temporary directory renamed into place, under a lock in cache, so that concurrent
// test runs unpack once and neither they nor an interrupted one see half a tree.
func Unpack(tarball, cache, prefix string) (string, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("reading %s: %v", tarball, err)
	}
	dir := filepath.Join(cache, prefix+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}

	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".unpack.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close() // which unlocks
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %v", lock.Name(), err)
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // unpacked while this waited for the lock
	}

	tmp, err := os.MkdirTemp(cache, "."+prefix+"-unpack-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command("tar", "-xf", tarball, "-C", tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpacking %s: %v\n%s", tarball, err, out)
	}
	// Commands the tests run as another user (uid 65534, the build user) read the tree.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}
