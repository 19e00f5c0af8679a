package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sysroot"
	"github.com/otakit/ota/internal/update"
)

// refusalEnv is a device whose remote serves v1 and v2, signed by key and served by srv.
type refusalEnv struct {
	d      device
	key    string // prefix of the trusted key's files (publish)
	other  string // prefix of a key the device does not trust
	srv    *hookServer
	bundle string // the bundle of the apply-bundle cases
}

// newRefusalEnv makes a device with the first n versions deployed, publishes both (with
// the static delta v1→v2 when withDelta, made with the extra ota-build delta options
// deltaArgs) through a hookServer, and makes a key the device does not trust.
func newRefusalEnv(t *testing.T, n int, withDelta bool, deltaArgs ...string) *refusalEnv {
	t.Helper()
	d := newDevice(t, n)
	e := &refusalEnv{d: d, key: d.publish(t), other: filepath.Join(t.TempDir(), "other"), bundle: filepath.Join(t.TempDir(), "update.bundle")}
	if withDelta {
		must(t, otaBuild, append([]string{"delta", "--repo", d.repo, "--from", d.commits[0], "--to", d.commits[1]}, deltaArgs...)...)
		must(t, otaBuild, "summary", "--repo", d.repo, "--sign-key", e.key+".key")
	}
	must(t, otaBuild, "keygen", "-o", e.other)
	e.srv = &hookServer{files: http.FileServer(http.Dir(d.repo)), hooks: map[string]http.HandlerFunc{}}
	srv := httptest.NewServer(e.srv)
	t.Cleanup(srv.Close)
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + srv.URL + "\nref: myos/stable\n"})
	return e
}

// hookServer serves a repository as publish's server does, but answers the paths that have
// a hook with it: a server that lies about one file.
type hookServer struct {
	files http.Handler
	mu    sync.Mutex
	hooks map[string]http.HandlerFunc
}

func (s *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.hooks[r.URL.Path]
	s.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	s.files.ServeHTTP(w, r)
}

// hook makes h answer path and returns what removes it.
func (s *hookServer) hook(path string, h http.HandlerFunc) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks[path] = h
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.hooks, path)
	}
}

// object returns the path of an object of the served repository.
func (e *refusalEnv) object(c, suffix string) string {
	return filepath.Join(e.d.repo, "objects", c[:2], c[2:]+"."+suffix)
}

// fileChecksum returns the checksum of the content object at path in version i's tree.
func (e *refusalEnv) fileChecksum(t *testing.T, i int, path string) string {
	t.Helper()
	f := strings.Fields(must(t, "ostree", "ls", "-C", "--repo="+e.d.repo, e.d.commits[i], "/"+path))
	if len(f) < 2 {
		t.Fatalf("ostree ls %s: %q", path, f)
	}
	return f[len(f)-2]
}

// fileObject returns the served .filez of the file at path in version i's tree.
func (e *refusalEnv) fileObject(t *testing.T, i int, path string) string {
	return e.object(e.fileChecksum(t, i, path), "filez")
}

// deltaDir returns the served directory of the static delta v1→v2.
func (e *refusalEnv) deltaDir() string {
	from, _ := ostree.ParseChecksum(e.d.commits[0])
	to, _ := ostree.ParseChecksum(e.d.commits[1])
	return filepath.Join(e.d.repo, ostree.DeltaDir(&from, to))
}

// setRef points the served ref at commit, with a new signed summary, and returns what
// points it back at v2.
func (e *refusalEnv) setRef(t *testing.T, commit string) func() {
	t.Helper()
	set := func(c string) {
		writeFiles(t, filepath.Join(e.d.repo, "refs/heads/myos"), map[string]string{"stable": c + "\n"})
		must(t, otaBuild, "summary", "--repo", e.d.repo, "--sign-key", e.key+".key")
	}
	set(commit)
	return func() { set(e.d.commits[1]) }
}

// badTree publishes, as the ref, a commit signed by the trusted key whose tree is v2's
// plus a directory "evil" holding the dirtree bad makes from v2's root dirtree: every
// object has a valid checksum and the signature is good, so only the dirtree's entries can
// make the client refuse it. It returns what publishes v2 again.
func (e *refusalEnv) badTree(t *testing.T, bad func(root ostree.DirTree) ostree.DirTree) func() {
	t.Helper()
	repo, err := ostree.Open(e.d.repo)
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := ostree.ParseChecksum(e.d.commits[1])
	cm, _, err := repo.ReadCommit(v2)
	if err != nil {
		t.Fatal(err)
	}
	root, err := repo.ReadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	evil := bad(root)
	evilSum, err := repo.WriteObject(ostree.ObjDirTree, evil.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	root.Dirs = append(root.Dirs, ostree.TreeDir{Name: "evil", Tree: evilSum, Meta: cm.RootMeta})
	if cm.RootTree, err = repo.WriteObject(ostree.ObjDirTree, root.Marshal()); err != nil {
		t.Fatal(err)
	}
	c, err := repo.WriteObject(ostree.ObjCommit, cm.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	must(t, otaBuild, "sign", "--repo", e.d.repo, "--sign-key", e.key+".key", c.String())
	return e.setRef(t, c.String())
}

// genuineBundle returns what writes the genuine bundle from..to, signed (commit and
// envelope) with the trusted key, to e.bundle.
func (e *refusalEnv) genuineBundle(t *testing.T, from, to string) func() {
	return func() {
		must(t, otaBuild, "bundle", "--repo", e.d.repo, "--from", from, "--to", to, "--sign-key", e.key+".key", "-o", e.bundle)
	}
}

// smallFilesystem moves the device's sysroot onto a tmpfs with free bytes more than the
// update's minimum free space (update.DefaultMinFree) and less than v2 needs, and returns
// what makes room. It skips the test when mounting is not permitted, and fails it instead
// under OTA_REQUIRE_TOOLS=1.
func (e *refusalEnv) smallFilesystem(t *testing.T, spare int64) func() {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "ota-refuse", mnt).CombinedOutput(); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("mounting a tmpfs (required with OTA_REQUIRE_TOOLS=1): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	must(t, "cp", "-a", e.d.sysroot+"/.", mnt)
	e.d.sysroot = mnt
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	used := int64(st.Blocks-st.Bfree) * st.Bsize
	resize := func(size int64) {
		must(t, "mount", "-o", "remount,size="+strconv.FormatInt(size, 10), mnt)
	}
	resize(used + update.DefaultMinFree + spare)
	return func() { resize(used + update.DefaultMinFree + 64<<20) }
}

// refused runs ota-client cmd and checks that it exits 1 with want, once, in the one line it
// prints; a command that records the last result records that line as its error.
func (e *refusalEnv) refused(t *testing.T, cmd []string, want string) {
	t.Helper()
	args := []string{"--sysroot", e.d.sysroot}
	for _, a := range cmd {
		switch a {
		case "BUNDLE":
			a = e.bundle
		case "COMMIT0":
			a = e.d.commits[0]
		case "COMMIT1":
			a = e.d.commits[1]
		}
		args = append(args, a)
	}
	r := client(args...)
	line, ok := strings.CutPrefix(strings.TrimSuffix(r.stderr, "\n"), "ota-client: ")
	t.Logf("%s: %s", cmd[0], line)
	if r.code != 1 || r.stdout != "" || !ok || strings.Contains(line, "\n") || strings.Count(line, want) != 1 {
		t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q once", cmd, r.code, r.stdout, r.stderr, want)
	}
	if cmd[0] == "pull" {
		return
	}
	var res sysroot.Result
	data, err := os.ReadFile(filepath.Join(e.d.sysroot, sysroot.ResultPath("myos")))
	if err != nil || json.Unmarshal(data, &res) != nil || res.Operation != cmd[0] || res.Outcome != "failure" || res.Error != line {
		t.Errorf("%v: last result %s (%v), want the failure %q", cmd, data, err, line)
	}
}

// deviceState is what a refusal must not change.
type deviceState struct {
	files   []string        // snapshot
	objects map[string]bool // the sysroot repository's objects, as "checksum.type"
	status  []string        // ostree admin status
}

func (e *refusalEnv) state(t *testing.T) deviceState {
	t.Helper()
	return deviceState{files: snapshot(t, e.d.sysroot), objects: e.objects(t), status: e.d.ostreeStatus(t)}
}

// objects lists the sysroot repository's objects.
func (e *refusalEnv) objects(t *testing.T) map[string]bool {
	t.Helper()
	repo, err := ostree.Open(filepath.Join(e.d.sysroot, "ostree/repo"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	err = repo.WalkObjects(func(c ostree.Checksum, ty ostree.ObjectType, _ string) error {
		out[c.String()+"."+ty.String()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkUnchanged checks that a refused update changed nothing in the sysroot since before
// but what a pull stopped mid-way legitimately keeps, as ostree's pull keeps it:
//   - objects verified before the refusal (and the target's detached metadata, verified
//     first), never an object that fails verification (every loose object is checked, by
//     ostree.Repo.Fsck, and by `ostree fsck`) and never a commit object;
//   - the marker state/COMMIT.commitpartial, which says the commit's objects are incomplete;
//   - under tmp/, the resume state of downloads: the delta's superblock and parts, and
//     large objects, each holding only bytes of the genuine file (checked once the server
//     is honest again);
//   - the last result, which records the failure (checked by refused).
//
// Everything else (refs such as ota/pending, deployments, boot entries, /etc, the boot
// counter) is as it was, and the real ostree lists the same deployments.
func (e *refusalEnv) checkUnchanged(t *testing.T, before deviceState) {
	t.Helper()
	after := e.state(t)
	if !slices.Equal(before.status, after.status) {
		t.Errorf("ostree admin status: %v, before: %v", after.status, before.status)
	}
	for _, l := range before.files {
		if !slices.Contains(after.files, l) && !strings.HasPrefix(l, sysroot.ResultPath("myos")) {
			t.Errorf("changed or removed: %s", l)
		}
	}
	for _, l := range after.files {
		if slices.Contains(before.files, l) {
			continue
		}
		rel, _, _ := strings.Cut(l, " ")
		switch {
		case rel == sysroot.ResultPath("myos") || strings.HasPrefix(sysroot.ResultPath("myos"), rel+"/"): // or a directory made for it
		case rel == "ostree/repo/state" || strings.HasPrefix(rel, "ostree/repo/state/") && strings.HasSuffix(rel, ".commitpartial"):
		case strings.HasPrefix(rel, "ostree/repo/tmp/"):
			e.checkResumeFile(t, rel)
		default:
			t.Errorf("added: %s", l)
		}
	}
	for o := range after.objects {
		if !before.objects[o] && strings.HasSuffix(o, ".commit") {
			t.Errorf("commit object %s stored", o)
		}
	}
	repo, err := ostree.Open(filepath.Join(e.d.sysroot, "ostree/repo"))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := repo.Fsck(context.Background())
	if err != nil || len(problems) > 0 {
		t.Errorf("fsck of the sysroot repository: %v %v", problems, err)
	}
	must(t, "ostree", "fsck", "--repo="+repo.Path)
}

// checkResumeFile checks a file that a refused pull left under the repository's tmp/: a
// download's resume state, holding nothing but bytes of the genuine file it continues.
func (e *refusalEnv) checkResumeFile(t *testing.T, rel string) {
	t.Helper()
	name := strings.TrimPrefix(rel, "ostree/repo/tmp/")
	var genuine string
	switch dir, file, _ := strings.Cut(name, "/"); {
	case strings.HasPrefix(dir, update.DeltaDirPrefix):
		if file == "" {
			// The directory, which only a verified superblock (checked below) creates.
			if _, err := os.Stat(filepath.Join(e.d.sysroot, rel, "superblock")); err != nil {
				t.Errorf("%s holds no superblock: %v", rel, err)
			}
			return
		}
		ends := strings.Split(strings.TrimPrefix(dir, update.DeltaDirPrefix), "-")
		to, err := ostree.ParseChecksum(ends[len(ends)-1])
		var from *ostree.Checksum
		if len(ends) == 2 {
			f, ferr := ostree.ParseChecksum(ends[0])
			from, err = &f, errors.Join(err, ferr)
		}
		if err != nil {
			t.Errorf("unexpected file in tmp/: %s", rel)
			return
		}
		genuine = filepath.Join(e.d.repo, ostree.DeltaDir(from, to), strings.TrimSuffix(file, ".partial"))
	case strings.HasPrefix(name, update.ObjectFilePrefix):
		c := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, update.ObjectFilePrefix), ".partial"), ".filez")
		if len(c) != 64 {
			t.Errorf("unexpected file in tmp/: %s", rel)
			return
		}
		genuine = e.object(c, "filez")
	default:
		t.Errorf("unexpected file in tmp/: %s", rel)
		return
	}
	got, err := os.ReadFile(filepath.Join(e.d.sysroot, rel))
	if err != nil {
		t.Fatal(err)
	}
	want := readFile(t, genuine)
	if !strings.HasPrefix(want, string(got)) || !strings.HasSuffix(rel, ".partial") && len(got) != len(want) {
		t.Errorf("%s: %d bytes that are not those of %s (%d bytes)", rel, len(got), genuine, len(want))
	}
}

// flip inverts the byte at fraction at of file p (1: the last byte), keeping its size, and
// returns what restores it.
func flip(t *testing.T, p string, at float64) func() {
	t.Helper()
	data := []byte(readFile(t, p))
	i := min(int(float64(len(data))*at), len(data)-1)
	data[i] ^= 0xff
	return replace(t, p, data)
}

// replace writes data to the file p and returns what writes its former content back.
func replace(t *testing.T, p string, data []byte) func() {
	t.Helper()
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
