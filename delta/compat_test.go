package delta

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// requireOstree skips the test when ostree is missing, unless OTA_REQUIRE_TOOLS=1.
func requireOstree(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ostree", "/usr/bin/python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is required (OTA_REQUIRE_TOOLS=1)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ostreeTarget makes a repository with the real ostree holding the base commit, pulled
// locally from src.
func ostreeTarget(t *testing.T, src *ostree.Repo, mode string, base ostree.Checksum) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "target")
	run(t, "ostree", "init", "--repo="+dir, "--mode="+mode)
	run(t, "ostree", "pull-local", "--repo="+dir, src.Path, base.String())
	return dir
}

// The real ostree applies our deltas offline, whatever their options.
func TestOstreeAppliesOurDeltas(t *testing.T) {
	requireOstree(t)
	src, from, to := setup(t)
	cases := []struct {
		name    string
		opts    Options
		scratch bool
	}{
		{name: "bsdiff xz"},
		{name: "built-in xz encoder", opts: Options{XZ: XZBuiltin}},
		{name: "xz command", opts: Options{XZ: "xz"}},
		{name: "inline", opts: Options{Inline: true}},
		// ostree 2022.7 reads uncompressed part files with mmap at offset 1, which fails
		// (EINVAL) for parts over 16 KiB; inline uncompressed parts avoid that path.
		{name: "uncompressed inline", opts: Options{Uncompressed: true, Inline: true}},
		// ostree reads the parts its superblock names, and ignores the zstd ones.
		{name: "zstd parts", opts: Options{ZstdParts: true, MaxPartSize: 10_000}},
		{name: "from scratch", scratch: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := &from
			if c.scratch {
				base = nil
			}
			if _, err := exec.LookPath(c.opts.XZ); c.opts.XZ == "xz" && err != nil && os.Getenv("OTA_REQUIRE_TOOLS") != "1" {
				t.Skip("xz not installed")
			}
			res := generate(t, src, c.opts, base, to)
			if want := map[string]string{XZBuiltin: "builtin (", "xz": "xz "}[c.opts.XZ]; !strings.HasPrefix(res.Encoder, want) {
				t.Errorf("encoder %q, want one starting %q", res.Encoder, want)
			}
			var dst string
			if c.scratch {
				dst = filepath.Join(t.TempDir(), "target")
				run(t, "ostree", "init", "--repo="+dst, "--mode=bare-user")
			} else {
				dst = ostreeTarget(t, src, "bare-user", from)
			}
			run(t, "ostree", "static-delta", "apply-offline", "--repo="+dst, filepath.Join(src.Path, res.Dir, "superblock"))
			if out := run(t, "ostree", "fsck", "--repo="+dst); !strings.Contains(out, "no errors found") {
				t.Fatalf("ostree fsck:\n%s", out)
			}
			run(t, "ostree", "show", "--repo="+dst, to.String())
			if got, want := run(t, "ostree", "ls", "-R", "-C", "-X", "--repo="+dst, to.String()),
				run(t, "ostree", "ls", "-R", "-C", "-X", "--repo="+src.Path, to.String()); got != want {
				t.Fatalf("tree after apply-offline differs:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// Deltas made by the real ostree (rollsum and bsdiff operations) are applied by ours.
func TestApplyOstreeDelta(t *testing.T) {
	requireOstree(t)
	src, from, to := setup(t)
	run(t, "ostree", "static-delta", "generate", "--repo="+src.Path, "--from="+from.String(), "--to="+to.String())
	d, err := Load(filepath.Join(src.Path, ostree.DeltaDir(&from, to)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []ostree.Mode{ostree.ModeBareUser, ostree.ModeArchive} {
		dst := target(t, mode, true)
		if err := Apply(context.Background(), dst, d, ApplyOptions{}); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
			t.Fatalf("%s: fsck: %v %v", mode, problems, err)
		}
		if got, want := listing(t, dst, to), listing(t, src, to); got != want {
			t.Fatalf("%s: tree differs:\n%s\nwant\n%s", mode, got, want)
		}
	}
}

// Damaged deltas fail with a clear error and leave the target without the new commit.
func TestCorruptDeltas(t *testing.T) {
	src, from, to := setup(t)
	_, other, err := func() (*ostree.Repo, ostree.Checksum, error) {
		c := commitTree(t, src, []file{{name: "unrelated", body: "x"}})
		return src, c, nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		damage  func(dir string)
		from    *ostree.Checksum
		wantErr string
	}{
		{name: "flipped byte in part", damage: func(dir string) { flip(t, filepath.Join(dir, "0"), 100) }, wantErr: "part 0"},
		{name: "truncated part", damage: func(dir string) { truncate(t, filepath.Join(dir, "0")) }, wantErr: "part 0"},
		{name: "missing part", damage: func(dir string) { os.Remove(filepath.Join(dir, "0")) }, wantErr: "part 0"},
		{name: "different base", from: &other, wantErr: "delta base commit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := &from
			if c.from != nil {
				base = c.from
			}
			out := filepath.Join(t.TempDir(), "d")
			res, err := Generate(context.Background(), src, Options{From: base, To: to, Timestamp: epoch})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(src.Path, res.Dir), out); err != nil {
				t.Fatal(err)
			}
			if c.damage != nil {
				c.damage(out)
			}
			dst := target(t, ostree.ModeBareUser, true)
			d, err := Load(out, nil)
			if err == nil {
				err = Apply(context.Background(), dst, d, ApplyOptions{})
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			if dst.HasObject(to, ostree.ObjCommit) {
				t.Fatal("target gained the commit")
			}
			if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
				t.Fatalf("fsck: %v %v", problems, err)
			}
		})
	}
}

func flip(t *testing.T, p string, at int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at%len(b)] ^= 0xff
	os.WriteFile(p, b, 0o644)
}

func truncate(t *testing.T, p string) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(p, st.Size()/2)
}

// `ostree pull` over HTTP fetches the delta's superblock and parts, and takes the changed
// objects from them. ostree 2022.7 walks the new commit's tree while parts are still being
// applied and downloads what it finds missing, so it may fetch some objects the delta also
// carries (it does so with its own deltas too, and more under load); the others must come
// from the delta.
func TestOstreePullUsesDelta(t *testing.T) {
	requireOstree(t)
	src, from, to := setup(t)
	res := generate(t, src, Options{}, &from, to)
	if err := src.UpdateSummary(ostree.SummaryOptions{Timestamp: 1}); err != nil {
		t.Fatal(err)
	}
	carried := 0
	for _, p := range res.Superblock.Parts {
		for _, o := range p.Objects {
			if o.Type == ostree.ObjFile {
				carried++
			}
		}
	}
	url, logs := serve(t, src.Path)
	client := filepath.Join(t.TempDir(), "client")
	run(t, "ostree", "init", "--repo="+client, "--mode=bare-user")
	run(t, "ostree", "remote", "add", "--repo="+client, "--no-gpg-verify", "origin", url)
	run(t, "ostree", "pull", "--repo="+client, "origin", "main@"+from.String())
	logs.Reset()
	run(t, "ostree", "pull", "--repo="+client, "--require-static-deltas", "origin", "main")
	if out := run(t, "ostree", "fsck", "--repo="+client); !strings.Contains(out, "no errors found") {
		t.Fatalf("fsck:\n%s", out)
	}
	if got := strings.TrimSpace(run(t, "ostree", "rev-parse", "--repo="+client, "origin:main")); got != to.String() {
		t.Fatalf("origin:main = %s, want %s", got, to)
	}
	log := logs.String()
	dir := "/" + res.Dir
	for i := range res.Superblock.Parts {
		for _, want := range []string{dir + "/superblock", fmt.Sprintf("%s/%d", dir, i)} {
			if !strings.Contains(log, "GET "+want+" ") {
				t.Errorf("server log lacks %s:\n%s", want, log)
			}
		}
	}
	if n := strings.Count(log, ".filez "); n >= carried {
		t.Errorf("client fetched %d of the %d content objects the delta carries:\n%s", n, carried, log)
	} else if n > 0 {
		t.Logf("client re-fetched %d of %d objects the delta carries", n, carried)
	}
}

// serve runs python's http.server for dir on a free loopback port until the test ends,
// collecting its request log.
func serve(t *testing.T, dir string) (string, *syncBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command("/usr/bin/python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", port, "--directory", dir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	logs := &syncBuffer{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteLine(sc.Text())
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return fmt.Sprintf("http://127.0.0.1:%s/", port), logs
		}
	}
	t.Fatal("http.server did not start")
	return "", nil
}

// syncBuffer collects log lines from another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// WriteLine appends one line.
func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s + "\n")
}

// Reset forgets what was logged so far.
func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// String returns the log.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Uncompressed part files are applied by the real ostree too, as long as they stay under
// the 16 KiB where ostree 2022.7 starts to mmap them at an unaligned offset.
func TestOstreeAppliesUncompressedParts(t *testing.T) {
	requireOstree(t)
	src, err := ostree.Init(filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	from := commitTree(t, src, []file{{name: "etc/a", body: "one\n"}, {name: "bin/b", body: "two\n", mode: 0o755}})
	to := commitTree(t, src, []file{{name: "etc/a", body: "one, changed\n"}, {name: "bin/c", body: "three\n"}})
	res := generate(t, src, Options{Uncompressed: true, MaxPartSize: 4096}, &from, to)
	dst := ostreeTarget(t, src, "bare-user", from)
	run(t, "ostree", "static-delta", "apply-offline", "--repo="+dst, filepath.Join(src.Path, res.Dir, "superblock"))
	if out := run(t, "ostree", "fsck", "--repo="+dst); !strings.Contains(out, "no errors found") {
		t.Fatalf("ostree fsck:\n%s", out)
	}
	run(t, "ostree", "show", "--repo="+dst, to.String())
}
