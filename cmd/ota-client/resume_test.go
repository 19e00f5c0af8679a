package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// largeFile is the size above which ota-client downloads a file into a partial file that
// it resumes (update's smallObject: smaller objects are fetched into memory).
const largeFile = 1 << 20

// resumeDevice makes a device with v1 deployed and v2 published, with a static delta
// from v1 whose 3 MiB file is shipped whole in a part when method is "delta" (also as a
// zstd part with "delta-zstd"), served by a repoServer that client.yaml points at.
func resumeDevice(t *testing.T, method string) (device, *repoServer) {
	t.Helper()
	d := newDevice(t, 1)
	key := d.publish(t)
	if strings.HasPrefix(method, "delta") {
		args := []string{"delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1], "--disable-bsdiff"}
		if method == "delta-zstd" {
			args = append(args, "--zstd-parts")
		} else {
			args = append(args, "--zstd-parts=false")
		}
		must(t, otaBuild, args...)
		must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
	}
	s := newRepoServer(t, d.repo)
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + s.URL + "\nref: myos/stable\n"})
	return d, s
}

// checkUpdated fails unless v2 is deployed as the default, v1 the rollback, as the real
// ostree sees it, and the deployment matches the commit.
func checkUpdated(t *testing.T, d device) {
	t.Helper()
	if got, want := d.ostreeStatus(t), []string{d.commits[1] + ".0", d.commits[0] + ".0"}; !slices.Equal(got, want) {
		t.Errorf("ostree admin status: %v, want %v", got, want)
	}
	must(t, "ostree", "fsck", "--repo="+filepath.Join(d.sysroot, "ostree/repo"))
	sameAsCommit(t, d, d.commits[1])
}

// largeFiles returns the files over largeFile the server sent.
func largeFiles(t *testing.T, s *repoServer) []string {
	t.Helper()
	var out []string
	for p := range s.files() {
		st, err := os.Stat(filepath.Join(s.dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > largeFile {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// TestResumeDrops (acceptance 2): a server that drops the connection three times in every
// delta part and object ota-client resumes (after a quarter of the file each time); the
// update completes, and no byte of any file is sent twice but for one overlap block per
// drop.
func TestResumeDrops(t *testing.T) {
	for _, name := range []string{"objects", "delta", "delta-zstd"} {
		t.Run(name, func(t *testing.T) {
			method, zstd := strings.CutSuffix(name, "-zstd")
			d, s := resumeDevice(t, name)
			const drops = 3
			s.setPlan(func(p string, size int64, n int) action {
				if size > largeFile && n < drops {
					return action{limit: size / 4}
				}
				return serveAll
			})
			start := time.Now()
			rep := updateReport(t, d, "update")
			t.Logf("update in %v", time.Since(start))
			if rep.Pull == nil || rep.Pull.Method != method || rep.Deployment == nil || rep.Deployment.Commit != d.commits[1] {
				t.Fatalf("update: %+v %+v", rep.Pull, rep.Deployment)
			}
			checkUpdated(t, d)
			large := largeFiles(t, s)
			// The 3 MiB file comes as a delta part or as an object.
			wantPrefix := map[string]string{"delta": "deltas/", "objects": "objects/"}[method]
			if len(large) != 1 || !strings.HasPrefix(large[0], wantPrefix) || zstd != strings.HasSuffix(large[0], ".zst") {
				t.Fatalf("large files sent: %v, want one under %s (a zstd part: %v)", large, wantPrefix, zstd)
			}
			files := s.files()
			for _, p := range large {
				cuts := 0
				for _, r := range files[p] {
					if r.cut {
						cuts++
					}
				}
				t.Logf("%s: %s", p, describeResponses(files[p]))
				if cuts != drops {
					t.Errorf("%s: %d connections dropped, want %d", p, cuts, drops)
				}
			}
			checkFetchedOnce(t, s, nil, nil)
		})
	}
}

// TestResumeAfterKill (acceptance 2): ota-client is killed (SIGKILL) twice in the middle of
// the delta part (xz, or zstd when the delta has zstd parts) or the large object it
// downloads, each time once its partial file holds all the server sent; each rerun
// continues the file with a Range request from the partial's size, the update completes,
// and the file is sent once in all (but for one overlap block per kill).
func TestResumeAfterKill(t *testing.T) {
	for _, name := range []string{"objects", "delta", "delta-zstd"} {
		t.Run(name, func(t *testing.T) {
			method, zstd := strings.CutSuffix(name, "-zstd")
			d, s := resumeDevice(t, name)
			const kills = 2
			var mu sync.Mutex
			var big string // the large file, once requested
			var third int64
			s.setPlan(func(p string, size int64, n int) action {
				if size <= largeFile || n >= kills {
					return serveAll
				}
				mu.Lock()
				big, third = p, size/3
				mu.Unlock()
				return action{limit: size / 3, hold: true}
			})
			var partial string
			for k := 1; k <= kills; k++ {
				cmd := exec.Command(otaClient, "--sysroot", d.sysroot, "update")
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				// Wait until the partial file holds all the server sent: k thirds.
				deadline := time.After(15 * time.Second)
				for size := int64(-1); ; time.Sleep(5 * time.Millisecond) {
					mu.Lock()
					want := int64(k) * third
					mu.Unlock()
					partial, size = findPartial(t, d)
					if want > 0 && size == want {
						break
					}
					select {
					case err := <-exited:
						t.Fatalf("ota-client exited (%v) before the kill: %s", err, stderr.String())
					case <-deadline:
						t.Fatalf("the partial file %q has %d bytes, not %d", partial, size, want)
					default:
					}
				}
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-exited
				if _, size := findPartial(t, d); size != int64(k)*third {
					t.Fatalf("after the kill the partial file has %d bytes, want %d", size, int64(k)*third)
				}
			}
			rep := updateReport(t, d, "update")
			if rep.Pull == nil || rep.Pull.Method != method || rep.Deployment == nil || rep.Deployment.Commit != d.commits[1] {
				t.Fatalf("update after the kills: %+v %+v", rep.Pull, rep.Deployment)
			}
			checkUpdated(t, d)
			if p, _ := findPartial(t, d); p != "" {
				t.Errorf("partial file left: %s", p)
			}
			if zstd != strings.HasSuffix(big, ".zst") {
				t.Errorf("the large file %s, want a zstd part: %v", big, zstd)
			}
			rs := s.files()[big]
			t.Logf("%s: %s", big, describeResponses(rs))
			if len(rs) != kills+1 {
				t.Fatalf("%d responses for %s, want %d", len(rs), big, kills+1)
			}
			for k, r := range rs[1:] {
				if want := fmt.Sprintf("bytes=%d-", int64(k+1)*third); r.rng != want || r.status != http.StatusPartialContent {
					t.Errorf("rerun %d asked %q (status %d), want %q", k+1, r.rng, r.status, want)
				}
			}
			checkFetchedOnce(t, s, map[string]int{big: kills}, func(p string) bool { return p == big })
		})
	}
}

// findPartial returns the partial file of a download in the sysroot repository's tmp/
// and its size, or "" and -1.
func findPartial(t *testing.T, d device) (string, int64) {
	t.Helper()
	tmp := filepath.Join(d.sysroot, "ostree/repo/tmp")
	var found []string
	for _, pattern := range []string{"ota-delta-*/*.partial", "ota-object-*.partial"} {
		m, err := filepath.Glob(filepath.Join(tmp, pattern))
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, m...)
	}
	switch len(found) {
	case 0:
		return "", -1
	case 1:
		st, err := os.Stat(found[0])
		if err != nil {
			return "", -1
		}
		return found[0], st.Size()
	}
	t.Fatalf("several partial files: %v", found)
	return "", -1
}
