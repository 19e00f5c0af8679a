package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/otakit/ota/internal/sysroot"
)

// updateReport runs ota-client COMMAND --json ARGS and decodes its report.
func updateReport(t *testing.T, d device, command string, args ...string) updateJSON {
	t.Helper()
	var rep updateJSON
	out := mustClient(t, append([]string{"--sysroot", d.sysroot, command, "--json"}, args...)...).stdout
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rep
}

// TestUpdate (acceptance 1): a sysroot deployed with v1 by the real `ostree admin deploy`
// is updated to v2 by objects and by a static delta (also one with zstd parts, of which
// the client downloads the zstd files only, unless the server lacks them, as a copy made
// by a tool that knows only ostree's files does: then the xz parts); the real ostree
// agrees that v2 is the default and v1 the rollback, fsck passes, and every file of the
// deployment is the commit's.
func TestUpdate(t *testing.T) {
	for _, name := range []string{"objects", "delta", "delta-zstd", "delta-zstd-unserved"} {
		t.Run(name, func(t *testing.T) {
			method, unserved := strings.CutSuffix(name, "-unserved")
			method, zstd := strings.CutSuffix(method, "-zstd")
			d := newDevice(t, 1)
			key := d.publish(t)
			if method == "delta" {
				args := []string{"delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1]}
				if zstd {
					args = append(args, "--zstd-parts")
				} else {
					args = append(args, "--zstd-parts=false")
				}
				must(t, otaBuild, args...)
				must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
			}
			if unserved {
				zsts, _ := filepath.Glob(filepath.Join(d.repo, "deltas/*/*/*.zst"))
				if len(zsts) == 0 {
					t.Fatal("the delta has no zstd parts to remove")
				}
				for _, z := range zsts {
					os.Remove(z)
				}
			}
			srv := newRepoServer(t, d.repo)
			writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + srv.URL + "\nref: myos/stable\n"})
			tmpBefore := dirNames(t, filepath.Join(d.sysroot, "ostree/repo/tmp"))
			rep := updateReport(t, d, "update")
			if rep.Pull == nil || rep.Pull.Method != method || !rep.Pull.Available || rep.Deployment == nil || rep.Deployment.Commit != d.commits[1] {
				t.Fatalf("update: %+v %+v", rep.Pull, rep.Deployment)
			}
			var parts []string
			for p := range srv.files() {
				if strings.HasPrefix(p, "deltas/") && path.Base(p) != "superblock" {
					parts = append(parts, path.Base(p))
				}
			}
			if want := map[string]string{"objects": "", "delta": "0", "delta-zstd": "0.zst", "delta-zstd-unserved": "0"}[name]; strings.Join(parts, " ") != want {
				t.Errorf("delta files fetched: %v, want %q", parts, want)
			}
			if got, want := d.ostreeStatus(t), []string{d.commits[1] + ".0", d.commits[0] + ".0"}; !slices.Equal(got, want) {
				t.Errorf("ostree admin status: %v, want %v", got, want)
			}
			must(t, "ostree", "fsck", "--repo="+filepath.Join(d.sysroot, "ostree/repo"))
			sameAsCommit(t, d, d.commits[1])
			s, err := sysroot.Open(d.sysroot, sysroot.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.LastResult("myos")
			s.Close()
			if err != nil || res == nil || res.Operation != "update" || res.Outcome != "success" || res.From != d.commits[0] || res.To != d.commits[1] {
				t.Errorf("last result: %+v %v", res, err)
			}
			if got := readFile(t, filepath.Join(d.sysroot, "boot/firmware/ota-state.txt")); got != "bootcount=0\n" {
				t.Errorf("boot counter after the update: %q", got)
			}
			// Nothing is left in the repository's tmp/, and a second update has nothing to do.
			if left := dirNames(t, filepath.Join(d.sysroot, "ostree/repo/tmp")); !slices.Equal(left, tmpBefore) {
				t.Errorf("tmp/ holds %v after the update, %v before", left, tmpBefore)
			}
			if rep := updateReport(t, d, "update"); rep.Pull.Available || rep.Deployment != nil {
				t.Errorf("second update: %+v", rep)
			}
		})
	}
}

// sameAsCommit compares the deployment of commit, but its merged /etc, with the real
// ostree's checkout of the commit from the sysroot's repository: types, modes, owners,
// contents and link targets.
func sameAsCommit(t *testing.T, d device, commit string) {
	t.Helper()
	want := filepath.Join(t.TempDir(), "checkout")
	must(t, "ostree", "checkout", "--repo="+filepath.Join(d.sysroot, "ostree/repo"), commit, want)
	got := filepath.Join(d.sysroot, "ostree/deploy/myos/deploy", commit+".0")
	a, b := treeList(t, want), treeList(t, got)
	if !slices.Equal(a, b) {
		t.Errorf("deployment %s differs from the commit:\n%s", commit, diffLines(a, b))
	}
}

// treeList describes every path under root but etc/ (merged at deploy).
func treeList(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "etc" {
			return fs.SkipDir
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d", rel, info.Mode(), st.Uid, st.Gid)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case info.Mode().IsRegular():
			line += " " + fileHash(t, p)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileHash(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// diffLines lists the lines only in a (-) or only in b (+).
func diffLines(a, b []string) string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUpdateProgressJSON: --progress=json reports the phases of an update in order, each
// line with the overall percent, which never goes back and ends at 100.
func TestUpdateProgressJSON(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	must(t, otaBuild, "delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1])
	must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", key+".key")
	cmd := exec.Command(otaClient, "--sysroot", d.sysroot, "--progress=json", "update")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("update: %v\n%s", err, stderr.String())
	}
	var stages []string
	last := -1.0
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var e struct {
			Schema     int
			Stage      string
			Event      string
			Bytes      *int64
			BytesTotal *int64 `json:"bytes_total"`
			Percent    *float64
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.Event == "start" {
			stages = append(stages, e.Stage)
			continue
		}
		if e.Percent == nil || e.BytesTotal == nil || e.Bytes == nil {
			t.Errorf("%q: no percent, bytes or bytes_total", line)
			continue
		}
		if *e.Percent < last || *e.Percent > 100 {
			t.Errorf("%q: percent %v after %v", line, *e.Percent, last)
		}
		last = *e.Percent
	}
	if want := []string{"check", "download", "apply", "deploy", "finalize"}; !slices.Equal(stages, want) {
		t.Errorf("stages %v, want %v", stages, want)
	}
	if last != 100 {
		t.Errorf("the last percent is %v, not 100", last)
	}
}

// TestUpdateKeepsBooted: a device that booted its rollback deployment (the boot script fell
// back, and it is not marked good yet) keeps it through an update, as ostree does: it is
// the running system.
func TestUpdateKeepsBooted(t *testing.T) {
	d := newDevice(t, 2)
	tree := filepath.Join(t.TempDir(), "tree")
	writeFiles(t, tree, map[string]string{
		"boot/vmlinuz-6.1.0-test":                "KERNEL",
		"usr/lib/modules/6.1.0-test/modules.dep": "",
		"usr/share/app/version":                  "3.0",
		"etc/os-release":                         "ID=myos\nVERSION_ID=3.0\n",
	})
	out := strings.Fields(must(t, otaBuild, "commit", "--repo", d.repo, "-b", "myos/stable", "--tree", "dir="+tree, "--bootable",
		"--version", "3.0", "--timestamp", "1700000002"))
	d.commits = append(d.commits, out[len(out)-1])
	d.publish(t)
	booted := d.cmdlineOf(t, d.commits[0])
	mustClient(t, "--sysroot", d.sysroot, "--cmdline", booted, "update")
	want := []string{d.commits[2] + ".0", d.commits[1] + ".0", d.commits[0] + ".0"}
	if got := d.ostreeStatus(t); !slices.Equal(got, want) {
		t.Errorf("ostree admin status: %v, want %v (new default, rollback, booted)", got, want)
	}
	if _, err := os.Stat(filepath.Join(d.sysroot, "ostree/deploy/myos/deploy", d.commits[0]+".0")); err != nil {
		t.Errorf("the booted deployment is gone: %v", err)
	}
}

// TestUpdateReboot: update --reboot runs reboot once the update is deployed, and not when
// there was nothing to deploy.
func TestUpdateReboot(t *testing.T) {
	d := newDevice(t, 1)
	d.publish(t)
	bin := t.TempDir()
	marker := filepath.Join(t.TempDir(), "rebooted")
	writeFiles(t, bin, map[string]string{"reboot": "#!/bin/sh\necho \"$@\" >> " + marker + "\n"})
	os.Chmod(filepath.Join(bin, "reboot"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	mustClient(t, "--sysroot", d.sysroot, "update", "--reboot")
	if data, err := os.ReadFile(marker); err != nil || string(data) != "\n" {
		t.Fatalf("reboot after the update: %q, %v", data, err)
	}
	mustClient(t, "--sysroot", d.sysroot, "update", "--reboot")
	if data, _ := os.ReadFile(marker); string(data) != "\n" {
		t.Errorf("reboot ran again with nothing deployed: %q", data)
	}
}

// TestApplyBundle: a signed bundle from v1 to v2 (ota-build bundle) updates a device
// without a network: v2 is the default, v1 the rollback, as the real ostree sees it.
func TestApplyBundle(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	bundle := filepath.Join(t.TempDir(), "v2.bundle")
	must(t, otaBuild, "bundle", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1], "-o", bundle, "--sign-key", key+".key")
	// No remote: client.yaml without a url.
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "ref: myos/stable\n"})
	rep := updateReport(t, d, "apply-bundle", bundle)
	if rep.Pull != nil || rep.Deployment == nil || rep.Deployment.Commit != d.commits[1] {
		t.Fatalf("apply-bundle: %+v", rep)
	}
	if got, want := d.ostreeStatus(t), []string{d.commits[1] + ".0", d.commits[0] + ".0"}; !slices.Equal(got, want) {
		t.Errorf("ostree admin status: %v, want %v", got, want)
	}
	must(t, "ostree", "fsck", "--repo="+filepath.Join(d.sysroot, "ostree/repo"))
	sameAsCommit(t, d, d.commits[1])
}
