package ext4

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// requireTools skips the test if an e2fsprogs tool is missing, or fails it
// if OTA_REQUIRE_TOOLS=1.
func requireTools(t testing.TB, names ...string) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"mke2fs", "debugfs", "e2fsck"}
	}
	for _, n := range names {
		if _, err := findTool(n); err != nil {
			if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s missing and OTA_REQUIRE_TOOLS=1: %v", n, err)
			}
			t.Skipf("%s not available: %v", n, err)
		}
	}
}

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := findTool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// findTool finds an e2fsprogs program in PATH or the sbin directories,
// which are often not in an unprivileged user's PATH.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("ext4: %s not found (install e2fsprogs)", name)
}

const (
	padBefore = byte(0xA5)
	padAfter  = byte(0x5A)
)

// makeImage creates an image of offset+size+tail bytes whose bytes before
// offset and after offset+size are patterns and whose region is a hole.
func makeImage(t testing.TB, p string, offset, size, tail int64) {
	makeImageFill(t, p, offset, size, tail, false)
}

// makeImageFill is makeImage, with the region filled with non-zero
// garbage (as an old filesystem would leave) if garbage is set.
func makeImageFill(t testing.TB, p string, offset, size, tail int64, garbage bool) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte{padBefore}, int(offset))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{padAfter}, int(tail)), offset+size); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(offset + size + tail); err != nil {
		t.Fatal(err)
	}
	if garbage {
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xEE}, int(size)), offset); err != nil {
			t.Fatal(err)
		}
	}
}

// fsck runs e2fsck -fn on the filesystem at offset.
func fsck(t testing.TB, img string, offset int64) {
	t.Helper()
	out, err := exec.Command(tool(t, "e2fsck"), "-fn", img+"?offset="+strconv.FormatInt(offset, 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
}

// dbg runs one read-only debugfs request and returns its stdout.
func dbg(t testing.TB, img string, offset int64, req string) string {
	t.Helper()
	cmd := exec.Command(tool(t, "debugfs"), "-R", req, img+"?offset="+strconv.FormatInt(offset, 10))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs -R %q: %v\n%s", req, err, stderr.String())
	}
	if e := strings.TrimSpace(stripBanner(stderr.String())); e != "" {
		t.Fatalf("debugfs -R %q: %s", req, e)
	}
	return stdout.String()
}

func stripBanner(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "debugfs 1.") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type inodeInfo struct {
	ino      int
	typ      string
	mode     uint32 // permission bits
	uid, gid uint32
	links    int
}

var (
	reInode = regexp.MustCompile(`Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)`)
	reOwner = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	reLinks = regexp.MustCompile(`Links: (\d+)`)
)

// stat returns what debugfs says about the inode at path p.
func stat(t testing.TB, img string, offset int64, p string) inodeInfo {
	t.Helper()
	out := dbg(t, img, offset, "stat "+mustQuote(t, p))
	m := reInode.FindStringSubmatch(out)
	o := reOwner.FindStringSubmatch(out)
	l := reLinks.FindStringSubmatch(out)
	if m == nil || o == nil || l == nil {
		t.Fatalf("cannot parse debugfs stat %s:\n%s", p, out)
	}
	var in inodeInfo
	in.ino, _ = strconv.Atoi(m[1])
	in.typ = m[2]
	mode, _ := strconv.ParseUint(m[3], 8, 32)
	in.mode = uint32(mode)
	uid, _ := strconv.ParseUint(o[1], 10, 32)
	gid, _ := strconv.ParseUint(o[2], 10, 32)
	in.uid, in.gid = uint32(uid), uint32(gid)
	in.links, _ = strconv.Atoi(l[1])
	return in
}

// eaGet returns the value of xattr name of p, and whether it exists.
func eaGet(t testing.TB, img string, offset int64, p, name string) ([]byte, bool) {
	t.Helper()
	list := dbg(t, img, offset, "ea_list "+mustQuote(t, p))
	if !strings.Contains(list, "  "+name+" ") {
		return nil, false
	}
	out := filepath.Join(t.TempDir(), "value")
	dbg(t, img, offset, "ea_get -f "+mustQuote(t, out)+" "+mustQuote(t, p)+" "+name)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// dump returns the contents of file p.
func dump(t testing.TB, img string, offset int64, p string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump")
	dbg(t, img, offset, "dump "+mustQuote(t, p)+" "+mustQuote(t, out))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quote quotes s as one argument of a debugfs command line: debugfs's
// parser (libss) takes "..." as one word, with "" standing for a quote.
// A command is one line, so line breaks cannot be expressed.
func quote(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r\x00") {
		return "", fmt.Errorf("ext4: name %q contains a line break, which debugfs cannot take", s)
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

func mustQuote(t testing.TB, s string) string {
	t.Helper()
	q, err := quote(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
