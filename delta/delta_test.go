package delta

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
)

// file is one member of a test tree.
type file struct {
	name, body, link string
	typ              byte
	mode             int64
	xattr            string
}

var epoch = time.Unix(1700000000, 0)

// commitTree commits files to branch main of repo and returns the commit.
func commitTree(t *testing.T, repo *ostree.Repo, files []file) ostree.Checksum {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Mode: f.mode, Linkname: f.link, Size: int64(len(f.body)), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if f.xattr != "" {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.test": f.xattr}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, f.body)
		}
	}
	tw.Close()
	src, err := rootfs.OpenTar(&buf)
	if err != nil {
		t.Fatal(err)
	}
	res, err := commit.Commit(context.Background(), repo, src, commit.Options{Branch: "main", Timestamp: epoch, NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	return res.Commit
}

func randomBytes(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// baseTree and changedTree differ in every way a delta must carry: a changed binary,
// added, removed and renamed files, mode-only and xattr-only changes, a changed symlink.
func trees() (base, changed []file) {
	binary := randomBytes(1, 200_000)
	edited := []byte(binary)
	for i := 1000; i < len(edited); i += 7919 {
		edited[i] ^= 0x5a
	}
	lib := randomBytes(4, 60_000)
	base = []file{
		{name: "usr/bin/app", body: binary, mode: 0o755},
		{name: "usr/lib/libz.so.1.2", body: lib},
		{name: "usr/lib/libold.so", body: randomBytes(2, 30_000)},
		{name: "etc/config", body: "key=1\n"},
		{name: "etc/mode", body: "same content\n", mode: 0o644},
		{name: "etc/attr", body: "xattr only\n", xattr: "a"},
		{name: "usr/share/doc/readme", body: "moved file\n"},
		{name: "usr/lib/current", typ: tar.TypeSymlink, link: "libold.so", mode: 0o777},
		{name: "var/empty", typ: tar.TypeDir, mode: 0o755},
	}
	changed = []file{
		{name: "usr/bin/app", body: string(edited), mode: 0o755},
		{name: "usr/lib/libz.so.1.3", body: lib[:30_000] + "rebuilt" + lib[30_000:]},
		{name: "usr/lib/libnew.so", body: randomBytes(3, 40_000)},
		{name: "etc/config", body: "key=2\n"},
		{name: "etc/mode", body: "same content\n", mode: 0o600},
		{name: "etc/attr", body: "xattr only\n", xattr: "b"},
		{name: "usr/share/doc/README.md", body: "moved file\n"},
		{name: "usr/lib/current", typ: tar.TypeSymlink, link: "libnew.so", mode: 0o777},
		{name: "var/empty", typ: tar.TypeDir, mode: 0o755},
	}
	return base, changed
}

// setup makes a source repository holding both commits, and returns them.
func setup(t *testing.T) (src *ostree.Repo, from, to ostree.Checksum) {
	t.Helper()
	base, changed := trees()
	src, err := ostree.Init(filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	return src, commitTree(t, src, base), commitTree(t, src, changed)
}

// target makes a repository of the given mode holding the base commit (the same tree
// commits to the same checksum).
func target(t *testing.T, mode ostree.Mode, withBase bool) *ostree.Repo {
	t.Helper()
	var base []file
	if withBase {
		base, _ = trees()
	}
	return targetWith(t, mode, base)
}

// targetWith makes a repository of the given mode holding the commit of base, if any.
func targetWith(t *testing.T, mode ostree.Mode, base []file) *ostree.Repo {
	t.Helper()
	repo, err := ostree.Init(filepath.Join(t.TempDir(), "dst"), mode)
	if err != nil {
		t.Fatal(err)
	}
	if base != nil {
		commitTree(t, repo, base)
	}
	return repo
}

func listing(t *testing.T, repo *ostree.Repo, c ostree.Checksum) string {
	t.Helper()
	var b strings.Builder
	err := repo.Walk(c, "/", true, func(e ostree.TreeEntry) error {
		if e.Dir != nil {
			b.WriteString(e.Path + " dir\n")
			return nil
		}
		obj, err := repo.OpenContent(e.Checksum)
		if err != nil {
			return err
		}
		defer obj.Close()
		data, _ := io.ReadAll(obj)
		fmt.Fprintf(&b, "%s %s %o %d %s %d\n", e.Path, e.Checksum, e.Header.Mode, len(e.Header.Xattrs), e.Header.LinkTarget, len(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// generate makes a delta from base (nil: from scratch) to to, at the test epoch.
func generate(t *testing.T, src *ostree.Repo, opts Options, base *ostree.Checksum, to ostree.Checksum) *Result {
	t.Helper()
	opts.From, opts.To, opts.Timestamp = base, to, epoch
	res, err := Generate(context.Background(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestGenerateApply(t *testing.T) {
	src, from, to := setup(t)
	want := listing(t, src, to)
	cases := []struct {
		name    string
		opts    Options
		mode    ostree.Mode
		scratch bool
	}{
		{name: "xz into bare-user", mode: ostree.ModeBareUser},
		{name: "xz into archive", mode: ostree.ModeArchive},
		{name: "inline", mode: ostree.ModeBareUser, opts: Options{Inline: true}},
		{name: "uncompressed", mode: ostree.ModeBareUser, opts: Options{Uncompressed: true}},
		{name: "no bsdiff, tiny parts", mode: ostree.ModeArchive, opts: Options{DisableBsdiff: true, MaxPartSize: 10_000}},
		{name: "from scratch", mode: ostree.ModeBareUser, scratch: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := &from
			if c.scratch {
				base = nil
			}
			res := generate(t, src, c.opts, base, to)
			dst := target(t, c.mode, !c.scratch)
			d, err := Load(filepath.Join(src.Path, res.Dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(context.Background(), dst, d, ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
				t.Fatalf("fsck: %v %v", problems, err)
			}
			if got := listing(t, dst, to); got != want {
				t.Fatalf("applied tree differs:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// A changed binary travels as a bsdiff patch, much smaller than the file.
func TestBsdiffMakesSmallDeltas(t *testing.T) {
	src, from, to := setup(t)
	sizes := map[bool]int64{}
	for _, disable := range []bool{true, false} { // the delta with bsdiff stays
		res, err := Generate(context.Background(), src, Options{From: &from, To: to, DisableBsdiff: disable, Timestamp: epoch})
		if err != nil {
			t.Fatal(err)
		}
		sizes[disable] = res.Size
	}
	if sizes[false]*2 > sizes[true] {
		t.Fatalf("delta with bsdiff is %d bytes, without %d: want less than half", sizes[false], sizes[true])
	}
	// The changed binary (same path) and the renamed library (same stem) are both patched.
	d, err := Load(filepath.Join(src.Path, ostree.DeltaDir(&from, to)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Describe(&out, d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "B:2") {
		t.Fatalf("want two bspatch operations:\n%s", out.String())
	}
}

// An apply stopped part-way leaves no commit; running it again finishes the job, skipping
// the parts already applied.
func TestApplyResumes(t *testing.T) {
	src, from, to := setup(t)
	res := generate(t, src, Options{MaxPartSize: 20_000, DisableBsdiff: true}, &from, to)
	dir := filepath.Join(src.Path, res.Dir)
	if len(res.Superblock.Parts) < 3 {
		t.Fatalf("want several parts, got %d", len(res.Superblock.Parts))
	}
	last := filepath.Join(dir, fmt.Sprint(len(res.Superblock.Parts)-1))
	if err := os.Rename(last, last+".away"); err != nil {
		t.Fatal(err)
	}
	dst := target(t, ostree.ModeBareUser, true)
	d, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), dst, d, ApplyOptions{}); err == nil {
		t.Fatal("apply without its last part succeeded")
	}
	if dst.HasObject(to, ostree.ObjCommit) {
		t.Fatal("interrupted apply wrote the commit")
	}
	if problems, err := dst.Fsck(context.Background()); err != nil || len(problems) > 0 {
		t.Fatalf("fsck after interruption: %v %v", problems, err)
	}
	os.Rename(last+".away", last)
	if err := Apply(context.Background(), dst, d, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := listing(t, dst, to), listing(t, src, to); got != want {
		t.Fatalf("tree after resumed apply differs:\n%s\nwant\n%s", got, want)
	}
}

// Options.XZ chooses the encoder: auto takes the xz command when $PATH has one and the
// built-in encoder otherwise, an explicit command must exist and be xz, and every encoder's
// parts decode alike.
func TestXZEncoders(t *testing.T) {
	ctx := context.Background()
	p := newPart()
	p.addBytes([]byte(strings.Repeat("compressible ", 10_000)))
	encoders := []*xzEncoder{{name: "builtin"}}
	if xzPath, err := exec.LookPath("xz"); err == nil {
		enc, err := newXZEncoder(ctx, xzPath)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(enc.name, "xz ") || !strings.HasSuffix(enc.name, " ("+xzPath+")") {
			t.Errorf("xz command named %q, want \"xz VERSION (%s)\"", enc.name, xzPath)
		}
		encoders = append(encoders, enc)
	}
	for _, enc := range encoders {
		part, err := encodePart(ctx, &p.payload, enc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePart(part, 1<<20)
		if err != nil || !bytes.Equal(got.blob, p.blob) {
			t.Fatalf("%s: round trip: %v", enc.name, err)
		}
	}

	dir := t.TempDir()
	missing, gzip := filepath.Join(dir, "no-xz"), filepath.Join(dir, "gzip")
	if err := os.WriteFile(gzip, []byte("#!/bin/sh\necho gzip 1.12\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ choice, err string }{
		{missing, `xz encoder "` + missing + `": no such file or directory`},
		{dir, `xz encoder "` + dir + `": is a directory`},
		{gzip, "xz encoder " + gzip + ` is not xz: --version printed "gzip 1.12"`},
	} {
		if _, err := newXZEncoder(ctx, tc.choice); err == nil || err.Error() != tc.err {
			t.Errorf("XZ %q: error %v, want %q", tc.choice, err, tc.err)
		}
	}
	t.Setenv("PATH", t.TempDir())
	for _, choice := range []string{"", XZAuto, XZBuiltin} {
		enc, err := newXZEncoder(ctx, choice)
		if err != nil || enc.cmd != "" || !strings.HasPrefix(enc.name, "builtin (github.com/ulikunitz/xz") {
			t.Errorf("XZ %q without xz in $PATH: %+v, %v; want the built-in encoder", choice, enc, err)
		}
	}
	if _, err := newXZEncoder(ctx, "xz"); err == nil || err.Error() != `xz encoder "xz": executable file not found in $PATH` {
		t.Errorf("XZ \"xz\" without xz in $PATH: error %v", err)
	}
}

// The same commits give byte-identical deltas.
func TestDeltaReproducible(t *testing.T) {
	src, from, to := setup(t)
	var sums []string
	for range 2 {
		res, err := Generate(context.Background(), src, Options{From: &from, To: to, Workers: 3})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := os.ReadFile(filepath.Join(src.Path, res.Dir, "superblock"))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, ostree.Sum(sb).String())
	}
	if sums[0] != sums[1] {
		t.Fatalf("superblocks differ: %s %s", sums[0], sums[1])
	}
}

// addBytes appends b to the blob of a part built in memory and returns its offset.
func (p *partBuilder) addBytes(b []byte) uint64 {
	off := len(p.blob)
	p.blob = append(p.blob, b...)
	return uint64(off)
}

// encodePart is writePart for a part built in memory: it returns the part file.
func encodePart(ctx context.Context, p *payload, enc *xzEncoder) ([]byte, error) {
	var buf bytes.Buffer
	err := writePart(ctx, &buf, p, bytes.NewReader(p.blob), int64(len(p.blob)), enc)
	return buf.Bytes(), err
}

// A payload streamed by serialized is the normal-form payloadType encoding of the whole
// payload, whatever the width of its framing offsets.
func TestPayloadSerialized(t *testing.T) {
	for _, n := range []int{0, 10, 300, 70_000} {
		blob := bytes.Repeat([]byte{7}, n)
		p := payload{modes: [][3]uint32{{0, 0, 0o100644}, {1000, 1000, 0o100755}},
			xattrs: [][]ostree.Xattr{nil, {{Name: "security.selinux", Value: []byte("label\x00")}}},
			ops:    []byte{opOpenSpliceClose, 0, 0, byte(n), 0}}
		modes := []any{}
		for _, m := range p.modes {
			modes = append(modes, []any{bits.ReverseBytes32(m[0]), bits.ReverseBytes32(m[1]), bits.ReverseBytes32(m[2])})
		}
		xs := []any{[]any{}, []any{[]any{[]byte("security.selinux\x00"), []byte("label\x00")}}}
		want := gvariant.MustEncode(payloadType, []any{modes, xs, blob, p.ops})
		got, err := io.ReadAll(p.serialized(bytes.NewReader(blob), int64(n)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("blob of %d bytes: serialized %x, %v; want %x", n, got, err, want)
		}
		back, err := parsePayload(got)
		if err != nil || !bytes.Equal(back.blob, blob) || len(back.modes) != 2 || len(back.xattrs) != 2 {
			t.Fatalf("blob of %d bytes: parsed back %+v, %v", n, back, err)
		}
	}
}
