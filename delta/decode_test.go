package delta

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// requireXZ returns the path of XZ Utils' xz, skipping the test when it is missing unless
// OTA_REQUIRE_TOOLS=1.
func requireXZ(t *testing.T) string {
	t.Helper()
	p := DecoderXZ()
	if p == "" {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatal("xz (XZ Utils) is required (OTA_REQUIRE_TOOLS=1)")
		}
		t.Skip("xz (XZ Utils) not installed")
	}
	return p
}

// recordingXZ writes a wrapper of the xz command that appends a line to a log file each
// time it runs, and returns the wrapper and the log.
func recordingXZ(t *testing.T, xz string) (cmd, log string) {
	t.Helper()
	dir := t.TempDir()
	cmd, log = filepath.Join(dir, "xz"), filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >>" + log + "\nexec " + xz + " \"$@\"\n"
	if err := os.WriteFile(cmd, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return cmd, log
}

// With ApplyOptions.XZ the parts in files are decompressed by the xz command, one run per
// part, and give the same tree as the built-in decoder; inline parts keep the built-in
// decoder. ApplyOptions.Decoding is told of each run, with the part's window, and of its
// end.
func TestApplyWithXZCommand(t *testing.T) {
	xz := requireXZ(t)
	src, from, to := setup(t)
	want := listing(t, src, to)
	for _, c := range []struct {
		name  string
		opts  Options
		mode  ostree.Mode
		inXZ  bool // the command decompresses the parts
		parts int  // at least
	}{
		{"parts in files", Options{MaxPartSize: 10_000}, ostree.ModeBareUser, true, 2},
		{"into an archive repository", Options{}, ostree.ModeArchive, true, 1},
		{"inline", Options{Inline: true}, ostree.ModeBareUser, false, 1},
		{"uncompressed", Options{Uncompressed: true}, ostree.ModeBareUser, false, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := generate(t, src, c.opts, &from, to)
			if len(res.Superblock.Parts) < c.parts {
				t.Fatalf("%d parts, want at least %d", len(res.Superblock.Parts), c.parts)
			}
			d, err := Load(filepath.Join(src.Path, res.Dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			cmd, log := recordingXZ(t, xz)
			dst := target(t, c.mode, true)
			var mu sync.Mutex
			var windows []uint64
			running := 0
			decoding := func(window uint64) func() {
				mu.Lock()
				defer mu.Unlock()
				windows = append(windows, window)
				running++
				return func() {
					mu.Lock()
					defer mu.Unlock()
					running--
				}
			}
			if err := Apply(context.Background(), dst, d, ApplyOptions{XZ: cmd, Decoding: decoding}); err != nil {
				t.Fatal(err)
			}
			if got := listing(t, dst, to); got != want {
				t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
			}
			if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
				t.Fatalf("fsck: %v %v", problems, err)
			}
			runs := 0
			if data, err := os.ReadFile(log); err == nil {
				runs = strings.Count(string(data), "run\n")
			}
			if want := map[bool]int{true: len(d.Parts), false: 0}[c.inXZ]; runs != want {
				t.Fatalf("the xz command ran %d times for %d parts, want %d", runs, len(d.Parts), want)
			}
			if len(windows) != runs || running != 0 {
				t.Fatalf("Decoding: %d calls, %d not ended, for %d runs of the xz command", len(windows), running, runs)
			}
			for _, w := range windows {
				if w < 4<<10 || w > 8<<20 {
					t.Fatalf("Decoding told of windows %v, want those of xz -6 or -3 (at most 8 MiB)", windows)
				}
			}
		})
	}
}

// A damaged part never reaches the xz command: its checksum is checked first, and the
// repository gains nothing. A command that fails is reported in one line naming it.
func TestApplyXZCommandRefusals(t *testing.T) {
	xz := requireXZ(t)
	src, from, to := setup(t)
	res := generate(t, src, Options{}, &from, to)
	dir := filepath.Join(src.Path, res.Dir)
	part := filepath.Join(dir, "0")
	data, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}

	data[len(data)-1] ^= 1
	if err := os.WriteFile(part, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, log := recordingXZ(t, xz)
	dst := target(t, ostree.ModeBareUser, true)
	before := objectFiles(t, dst)
	err = Apply(context.Background(), dst, d, ApplyOptions{XZ: cmd})
	if err == nil || !strings.Contains(err.Error(), "part 0: checksum or size mismatch") {
		t.Fatalf("apply of a damaged part: error %v, want a checksum mismatch of part 0", err)
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Fatalf("the xz command ran on a damaged part (%v)", err)
	}
	if after := objectFiles(t, dst); !slices.Equal(after, before) {
		t.Fatalf("a refused part changed the repository:\n%s", strings.Join(after, "\n"))
	}

	data[len(data)-1] ^= 1
	if err := os.WriteFile(part, data, 0o644); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(t.TempDir(), "xz")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'xz: out of memory' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = Apply(context.Background(), dst, d, ApplyOptions{XZ: failing})
	if err == nil || !strings.Contains(err.Error(), "part 0: part: "+failing+": exit status 1: xz: out of memory") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("apply with a failing xz: error %v, want one line naming the command and its message", err)
	}
	if after := objectFiles(t, dst); !slices.Equal(after, before) {
		t.Fatalf("a failed part changed the repository:\n%s", strings.Join(after, "\n"))
	}
}

// The xz command writes a part's payload into the spool itself, stopped at the first byte
// beyond the bound of the decompressed size: a part that decompresses to more is refused,
// one that fits exactly is not, and a decompressor that never stops is stopped.
func TestSpoolXZCommandLimit(t *testing.T) {
	xz := requireXZ(t)
	src, from, to := setup(t)
	res := generate(t, src, Options{}, &from, to)
	d, err := Load(filepath.Join(src.Path, res.Dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := target(t, ostree.ModeBareUser, true)
	size := payloadSize(t, dst, d)
	if size < 2048 {
		t.Fatalf("payload of %d bytes: too small to test the bound in blocks of 512", size)
	}
	for _, limit := range []uint64{size - 1, size - 600, 0} {
		if _, _, err := spoolPart(dst, d, 0, limit, xz); err == nil || err.Error() != "part: decompresses to more than its limit" {
			t.Fatalf("limit %d for %d bytes: error %v, want the limit's", limit, size, err)
		}
	}
	endless := filepath.Join(t.TempDir(), "xz")
	if err := os.WriteFile(endless, []byte("#!/bin/sh\nexec yes\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := spoolPart(dst, d, 0, 1<<20, endless); err == nil || err.Error() != "part: decompresses to more than its limit" {
		t.Fatalf("endless output: error %v, want the limit's", err)
	}
	p, spool, err := spoolPart(dst, d, 0, size, xz)
	if err != nil {
		t.Fatalf("limit %d for %d bytes: %v", size, size, err)
	}
	defer spool.Close()
	if p.blobFile == nil {
		t.Fatal("payload without its blob in the spool")
	}
	ents, err := os.ReadDir(filepath.Join(dst.Path, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ostree.TempPrefix) {
			t.Fatalf("tmp/ holds %s: spools are unlinked", e.Name())
		}
	}
}

// xzWindow reads the dictionary size from an .xz stream's first block header, as the xz
// command wrote it, and tells when it cannot.
func TestXZWindow(t *testing.T) {
	xz := requireXZ(t)
	data := bytes.Repeat([]byte("some text to compress "), 1000)
	for _, c := range []struct {
		args []string
		want uint64
	}{
		{[]string{"-3"}, 4 << 20},
		{[]string{"-6"}, 8 << 20},
		{[]string{"--lzma2=dict=32MiB"}, 32 << 20},
		{[]string{"--lzma2=dict=3MiB"}, 3 << 20},
		{[]string{"-6", "--threads=2", "--block-size=4096"}, 8 << 20}, // block headers with sizes
	} {
		cmd := exec.Command(xz, append(c.args, "--stdout")...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		stream := append([]byte{CompressionXZ}, out...)
		if got, ok := xzWindow(bytes.NewReader(stream), 1); !ok || got != c.want {
			t.Errorf("xz %v: window %d (%v), want %d", c.args, got, ok, c.want)
		}
		for _, bad := range [][]byte{out[:12], out[:14], append([]byte{0}, out[1:]...)} {
			if got, ok := xzWindow(bytes.NewReader(bad), 0); ok {
				t.Errorf("xz %v: window %d of a damaged stream", c.args, got)
			}
		}
	}
}

// DecoderXZ finds XZ Utils' xz in $PATH and nothing else.
func TestDecoderXZ(t *testing.T) {
	xz := requireXZ(t)
	if got := lookDecoderXZ(); got != xz {
		t.Fatalf("with xz in $PATH: %q, want %q", got, xz)
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	if got := lookDecoderXZ(); got != "" {
		t.Fatalf("without xz in $PATH: %q, want none", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "xz"), []byte("#!/bin/sh\necho 'xz (BusyBox) 1.36'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := lookDecoderXZ(); got != "" {
		t.Fatalf("with another xz in $PATH: %q, want none", got)
	}
}

// partOrder puts the costliest parts first, ties in their order.
func TestPartOrder(t *testing.T) {
	parts := []PartHeader{
		{Size: 10, USize: 100},      // 140
		{Size: 1000, USize: 1000},   // 5000
		{Size: 10, USize: 100},      // 140
		{Size: 100, USize: 100_000}, // 100400
		{Size: 2000, USize: 10},     // 8010
	}
	if got, want := partOrder(parts), []int{3, 4, 1, 0, 2}; !slices.Equal(got, want) {
		t.Fatalf("partOrder = %v, want %v", got, want)
	}
}

// checkComplete, which walks subtrees on several goroutines, reports the first missing
// object a walk in order meets, in one line.
func TestCheckCompleteFirstMissing(t *testing.T) {
	repo, err := ostree.Init(filepath.Join(t.TempDir(), "repo"), ostree.ModeBareUser)
	if err != nil {
		t.Fatal(err)
	}
	var files []file
	for d := range 12 {
		for f := range 3 {
			files = append(files, file{name: fmt.Sprintf("usr/d%02d/f%d", d, f), body: fmt.Sprintf("file %d of %d", f, d)})
		}
	}
	c := commitTree(t, repo, files)
	cm, _, err := repo.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkComplete(repo, cm.RootTree, cm.RootMeta); err != nil {
		t.Fatalf("complete tree: %v", err)
	}
	sum := func(body string) ostree.Checksum {
		c, err := ostree.ContentChecksum(&ostree.FileHeader{Mode: 0o100644}, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, name := range []string{"file 2 of 9", "file 1 of 4", "file 0 of 11"} {
		if err := os.Remove(repo.ObjectPath(sum(name), ostree.ObjFile)); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		err := checkComplete(repo, cm.RootTree, cm.RootMeta)
		if want := fmt.Sprintf("file %s (f1) missing", sum("file 1 of 4")); err == nil || err.Error() != want {
			t.Fatalf("error %v, want %q", err, want)
		}
	}
}

// largePatchTrees returns two trees whose library, larger than maxReused, changes in a few
// scattered bytes (a bsdiff patch) and grows.
func largePatchTrees() (base, changed []file) {
	big := []byte(randomBytes(7, maxReused+1<<20))
	edited := slices.Clone(big)
	for i := 5000; i < len(edited); i += 100_003 {
		edited[i] ^= 0x5a
	}
	base = []file{{name: "usr/lib/libbig.so", body: string(big)}, {name: "etc/v", body: "1\n"}}
	changed = []file{{name: "usr/lib/libbig.so", body: string(edited) + "more"}, {name: "etc/v", body: "2\n"}}
	return base, changed
}

// A file larger than maxReused is patched straight into the repository rather than
// memory (patchToRepo), from its source's file in the bare modes (setSource), from memory
// in an archive repository, and the result is the same, parts inline (the built-in
// decoder) or not (the xz command).
func TestApplyLargePatch(t *testing.T) {
	base, changed := largePatchTrees()
	src, err := ostree.Init(filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	from, to := commitTree(t, src, base), commitTree(t, src, changed)
	want := listing(t, src, to)
	for _, c := range []struct {
		name string
		opts Options
		mode ostree.Mode
	}{
		{"into bare-user", Options{}, ostree.ModeBareUser},
		{"into archive", Options{}, ostree.ModeArchive},
		{"inline", Options{Inline: true}, ostree.ModeBareUser},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := generate(t, src, c.opts, &from, to)
			if res.Size > 1<<20 {
				t.Fatalf("delta of %d bytes: the large file was not patched", res.Size)
			}
			d, err := Load(filepath.Join(src.Path, res.Dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			dst := targetWith(t, c.mode, base)
			if err := Apply(context.Background(), dst, d, ApplyOptions{XZ: DecoderXZ()}); err != nil {
				t.Fatal(err)
			}
			if got := listing(t, dst, to); got != want {
				t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
			}
			if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
				t.Fatalf("fsck: %v %v", problems, err)
			}
		})
	}
}

// Read sources are not verified as they are read, but what is built from them is: a
// damaged source, small (patched in memory) or large (patched into the repository), fails
// the apply with an error naming it, and the object built from it is not stored.
func TestApplyDamagedSource(t *testing.T) {
	smallBase, smallChanged := trees()
	largeBase, largeChanged := largePatchTrees()
	for _, c := range []struct {
		name          string
		base, changed []file
		path          string
	}{
		{"small", smallBase, smallChanged, "/usr/bin/app"},
		{"large", largeBase, largeChanged, "/usr/lib/libbig.so"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, err := ostree.Init(filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
			if err != nil {
				t.Fatal(err)
			}
			from, to := commitTree(t, src, c.base), commitTree(t, src, c.changed)
			res := generate(t, src, Options{}, &from, to)
			d, err := Load(filepath.Join(src.Path, res.Dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			dst := targetWith(t, ostree.ModeBareUser, c.base)
			source, built := fileChecksum(t, dst, from, c.path), fileChecksum(t, src, to, c.path)
			p := dst.ObjectPath(source, ostree.ObjFile)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			flip(t, p, int(st.Size()/2))
			err = Apply(context.Background(), dst, d, ApplyOptions{XZ: DecoderXZ()})
			want := fmt.Sprintf("object %s: built from a damaged read source: file object %s is corrupt (checksum mismatch)", built, source)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("apply from a damaged source: error %v, want %q", err, want)
			}
			if dst.HasObject(built, ostree.ObjFile) {
				t.Fatalf("object %s built from a damaged source was stored", built)
			}
		})
	}
}

// fileChecksum returns the checksum of the file at path p of commit c.
func fileChecksum(t *testing.T, repo *ostree.Repo, c ostree.Checksum, p string) ostree.Checksum {
	t.Helper()
	var sum ostree.Checksum
	err := repo.Walk(c, "/", true, func(e ostree.TreeEntry) error {
		if e.Path == p {
			sum = e.Checksum
		}
		return nil
	})
	if err != nil || sum == (ostree.Checksum{}) {
		t.Fatalf("%s in %s: %v (found %s)", p, c, err, sum)
	}
	return sum
}

// payloadSize returns the size of part 0's payload of d, spooled into repo.
func payloadSize(t *testing.T, repo *ostree.Repo, d *Loaded) uint64 {
	t.Helper()
	_, spool, err := spoolPart(repo, d, 0, 1<<30, "")
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	st, err := spool.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return uint64(st.Size())
}
