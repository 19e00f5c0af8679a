// Package ext4 creates populated ext4 filesystems inside image files with
// e2fsprogs (mke2fs -d plus a debugfs metadata fix-up), applying recorded
// ownership so no root is needed.
//
// The tree to copy is a staging directory that an unprivileged user may
// have written: mke2fs -d copies its files, modes, symlinks, hardlinks,
// mtimes and xattrs, recording the staging owner; debugfs then sets the
// owner, mode and xattrs recorded for each inode.
//
// The filesystem uses 4 KiB blocks, 256-byte inodes and the ext4 features
// of the host's mke2fs.conf (e2fsprogs 1.47: has_journal, extent, huge_file,
// flex_bg, metadata_csum, 64bit, dir_nlink, extra_isize, …). The mke2fs
// defaults of one inode per 16 KiB and 5% reserved blocks are kept, except
// that the inode count is raised to a quarter above what the tree needs when
// the default would be short. The region is discarded first, which on a
// regular file punches a hole in exactly that region: the image stays sparse
// and mke2fs can skip zeroing the inode tables.
package ext4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/otakit/ota/internal/ostree"
)

// ErrTooSmall is returned, wrapped with the needed and the available size,
// when the contents of the directory do not fit into the filesystem size
// given to Create.
var ErrTooSmall = errors.New("ext4: filesystem size too small for the contents")

// Options are the optional settings of Create.
type Options struct {
	// Label is the volume label, at most 16 bytes.
	Label string
	// UUID is the filesystem UUID, such as
	// "2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b". If empty, it is random,
	// unless SOURCE_DATE_EPOCH is set, in which case it is derived from
	// SOURCE_DATE_EPOCH, Label, the offset and the size so that builds are
	// reproducible. The directory hash seed is derived from the UUID
	// whenever the UUID is known.
	UUID string
	// Progress, if not nil, is called during the metadata fix-up with the
	// number of debugfs commands done and their total.
	Progress func(done, total int)
}

// Create formats size bytes at byte offset of the existing image file
// imagePath as ext4 populated from the directory dir. It writes nothing
// outside that region and neither truncates nor extends the file, which must
// be at least offset+size bytes long. A size that is not a multiple of 4096
// is rounded down.
//
// attrs gives, for paths relative to dir (slash-separated, no leading slash;
// "" or "." is the root directory), the owner, mode and xattrs to record in
// the filesystem: the UID, GID, the permission bits of Mode (including
// setuid, setgid and sticky; file type bits are ignored) and the Xattrs of
// each ostree.DirMeta are used for any type of file. A path not in attrs
// gets uid 0, gid 0, the permission bits it has in dir and no xattrs.
// Hardlinked paths are one inode, and whichever of its names comes first
// (in byte order, depth first) among those in attrs decides. A path in
// attrs that does not exist in dir is an error.
//
// If SOURCE_DATE_EPOCH is set, the filesystem's own timestamps use it
// (E2FSPROGS_FAKE_TIME); file times are copied from dir.
//
// Create checks up front that the contents fit, with the estimate MinSize
// makes, and returns an error wrapping ErrTooSmall if they do not, or if
// mke2fs runs out of space or inodes.
func Create(ctx context.Context, imagePath string, offset, size int64, dir string, attrs map[string]ostree.DirMeta, opts Options) error {
	if offset < 0 {
		return fmt.Errorf("ext4: negative offset %d", offset)
	}
	if len(opts.Label) > 16 {
		return fmt.Errorf("ext4: label %q longer than 16 bytes", opts.Label)
	}
	if opts.UUID != "" && !validUUID(opts.UUID) {
		return fmt.Errorf("ext4: invalid UUID %q", opts.UUID)
	}
	blocks := size / blockSize
	if imgSize, err := fileSize(imagePath); err != nil {
		return fmt.Errorf("ext4: %w", err)
	} else if offset+blocks*blockSize > imgSize {
		return fmt.Errorf("ext4: region [%d, %d) extends past the end of %s (%d bytes)", offset, offset+blocks*blockSize, imagePath, imgSize)
	}
	mke2fs, err := findTool("mke2fs")
	if err != nil {
		return err
	}
	debugfs, err := findTool("debugfs")
	if err != nil {
		return err
	}

	ents, err := scan(dir)
	if err != nil {
		return fmt.Errorf("ext4: %w", err)
	}
	metas, err := inodeMetas(ents, attrs)
	if err != nil {
		return err
	}
	xattrsOf := func(i int) []xattr {
		m, ok := metas[i]
		if !ok {
			return nil
		}
		return wantXattrs(m.Xattrs)
	}
	u := measure(ents, xattrsOf)
	if need := minSizeFor(u); blocks*blockSize < need {
		return fmt.Errorf("%w: %s needs about %d bytes, have %d", ErrTooSmall, dir, need, blocks*blockSize)
	}

	// debugfs takes commands, and lists directories, one per line: fail
	// before touching the image if a name holds a line break.
	for i := range ents {
		if _, err := quote(ents[i].rel); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "ota-ext4-")
	if err != nil {
		return fmt.Errorf("ext4: %w", err)
	}
	defer os.RemoveAll(tmp)

	env := append(os.Environ(), "LC_ALL=C")
	uuid := opts.UUID
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		env = append(env, "E2FSPROGS_FAKE_TIME="+epoch)
		if uuid == "" {
			uuid = derivedUUID("uuid", opts.Label, strconv.FormatInt(offset, 10), strconv.FormatInt(blocks, 10), epoch)
		}
	}
	ext := "offset=" + strconv.FormatInt(offset, 10) + ",discard"
	args := []string{"-q", "-F", "-t", "ext4", "-b", strconv.Itoa(blockSize), "-I", strconv.Itoa(inodeSize),
		"-N", strconv.FormatInt(inodeCount(blocks, u.inodes), 10)}
	if opts.Label != "" {
		args = append(args, "-L", opts.Label)
	}
	if uuid != "" {
		args = append(args, "-U", uuid)
		ext += ",hash_seed=" + derivedUUID("hash_seed", uuid)
	}
	args = append(args, "-E", ext, "-d", dir, imagePath, strconv.FormatInt(blocks, 10))
	if out, err := run(ctx, env, mke2fs, args...); err != nil {
		if tooSmallRE(out) {
			return fmt.Errorf("%w: %s did not fit into %d bytes (estimated need %d): mke2fs: %s", ErrTooSmall, dir, blocks*blockSize, minSizeFor(u), out)
		}
		return fmt.Errorf("ext4: mke2fs %s: %w: %s", imagePath, err, out)
	}

	target := imagePath
	if strings.Contains(imagePath, "?") {
		// debugfs would take what follows '?' for io options.
		abs, err := filepath.Abs(imagePath)
		if err != nil {
			return fmt.Errorf("ext4: %w", err)
		}
		target = filepath.Join(tmp, "image")
		if err := os.Symlink(abs, target); err != nil {
			return fmt.Errorf("ext4: %w", err)
		}
	}
	target += "?offset=" + strconv.FormatInt(offset, 10)
	// What mke2fs made of each path: one read-only pass listing every
	// directory gives the inode numbers, owners and modes, so that the
	// fix-up addresses inodes as <ino>: debugfs resolves a path by
	// scanning every directory on it, which costs 20 times more than the
	// change itself.
	inos, err := listInodes(ctx, env, debugfs, target, tmp, ents)
	if err != nil {
		return fmt.Errorf("ext4: listing %s after mke2fs: %w", imagePath, err)
	}
	s := &script{dir: tmp, values: map[string]string{}}
	if err := s.build(ents, inos, metas); err != nil {
		return err
	}
	if s.n == 0 {
		return nil
	}
	scriptPath := filepath.Join(tmp, "fixup.debugfs")
	if err := os.WriteFile(scriptPath, s.buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("ext4: %w", err)
	}
	if err := runDebugfs(ctx, env, debugfs, true, target, scriptPath, s.n, opts.Progress, nil); err != nil {
		return fmt.Errorf("ext4: debugfs fix-up of %s: %w", imagePath, err)
	}
	return nil
}

// inodeMetas maps the first entry of each inode named in attrs to its
// recorded metadata.
func inodeMetas(ents []entry, attrs map[string]ostree.DirMeta) (map[int]*ostree.DirMeta, error) {
	byRel := make(map[string]*ostree.DirMeta, len(attrs))
	for k := range attrs {
		m := attrs[k]
		c := cleanRel(k)
		if _, dup := byRel[c]; dup {
			return nil, fmt.Errorf("ext4: attrs names %q twice", c)
		}
		byRel[c] = &m
	}
	metas := make(map[int]*ostree.DirMeta, len(attrs))
	for i := range ents {
		m, ok := byRel[ents[i].rel]
		if !ok {
			continue
		}
		delete(byRel, ents[i].rel)
		if _, done := metas[ents[i].first]; !done {
			metas[ents[i].first] = m
		}
	}
	if len(byRel) > 0 {
		var missing []string
		for k := range byRel {
			missing = append(missing, k)
		}
		return nil, fmt.Errorf("ext4: attrs names paths not in the tree: %q", missing)
	}
	return metas, nil
}

// wantXattrs converts recorded xattrs, the last of duplicate names winning.
func wantXattrs(x []ostree.Xattr) []xattr {
	out := make([]xattr, 0, len(x))
	idx := map[string]int{}
	for _, a := range x {
		if i, ok := idx[a.Name]; ok {
			out[i].value = a.Value
			continue
		}
		idx[a.Name] = len(out)
		out = append(out, xattr{a.Name, a.Value})
	}
	return out
}

// script accumulates debugfs commands.
type script struct {
	buf    bytes.Buffer
	n      int               // commands
	dir    string            // where value files go
	values map[string]string // xattr value -> file holding it
}

func (s *script) cmd(parts ...string) {
	s.buf.WriteString(strings.Join(parts, " "))
	s.buf.WriteByte('\n')
	s.n++
}

// build emits, for each inode once, the commands that turn what mke2fs
// made (inos, by entry) into the wanted metadata.
func (s *script) build(ents []entry, inos []fsInode, metas map[int]*ostree.DirMeta) error {
	// mke2fs keeps hardlinked regular files as one inode but gives every name of a
	// hardlinked symlink its own: fix each filesystem inode once.
	done := make(map[uint32]bool, len(ents))
	for i := range ents {
		e := &ents[i]
		in := inos[i]
		if done[in.ino] {
			continue
		}
		done[in.ino] = true
		p := "<" + strconv.FormatUint(uint64(in.ino), 10) + ">"
		uid, gid, perm := uint32(0), uint32(0), e.st.Mode&0o7777
		var want []xattr
		if m := metas[e.first]; m != nil {
			uid, gid, perm = m.UID, m.GID, m.Mode&0o7777
			want = wantXattrs(m.Xattrs)
		}
		if in.uid != uid {
			s.cmd("set_inode_field", p, "uid", strconv.FormatUint(uint64(uid), 10))
		}
		if in.gid != gid {
			s.cmd("set_inode_field", p, "gid", strconv.FormatUint(uint64(gid), 10))
		}
		if in.mode&0o7777 != perm {
			s.cmd("set_inode_field", p, "mode", "0"+strconv.FormatUint(uint64(in.mode&^0o7777|perm), 8))
		}
		// mke2fs copied the staging xattrs: remove the unwanted ones and
		// set those that differ.
		have := map[string][]byte{}
		for _, a := range e.xattrs {
			have[a.name] = a.value
		}
		wanted := map[string]bool{}
		for _, a := range want {
			wanted[a.name] = true
		}
		for _, a := range e.xattrs {
			if !wanted[a.name] {
				n, err := quote(a.name)
				if err != nil {
					return err
				}
				s.cmd("ea_rm", p, n)
			}
		}
		for _, a := range want {
			if v, ok := have[a.name]; ok && bytes.Equal(v, a.value) {
				continue
			}
			if a.name == "" {
				return fmt.Errorf("ext4: empty xattr name for %q", e.rel)
			}
			n, err := quote(a.name)
			if err != nil {
				return err
			}
			f, err := s.valueFile(a.value)
			if err != nil {
				return err
			}
			s.cmd("ea_set", "-f", f, p, n)
		}
	}
	return nil
}

// fsInode is an inode as debugfs lists it.
type fsInode struct {
	ino, mode, uid, gid uint32
}

// listInodes lists every directory of ents in the filesystem at target
// with debugfs and returns the inode of each entry.
func listInodes(ctx context.Context, env []string, debugfs, target, tmp string, ents []entry) ([]fsInode, error) {
	var dirs []string
	var buf bytes.Buffer
	for i := range ents {
		if ents[i].st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			q, err := quote("/" + ents[i].rel)
			if err != nil {
				return nil, err
			}
			dirs = append(dirs, ents[i].rel)
			buf.WriteString("ls -p " + q + "\n")
		}
	}
	scriptPath := filepath.Join(tmp, "list.debugfs")
	if err := os.WriteFile(scriptPath, buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	// listing[dir index] maps names to inodes.
	listing := make([]map[string]fsInode, len(dirs))
	var parseErr error
	err := runDebugfs(ctx, env, debugfs, false, target, scriptPath, len(dirs), nil, func(cmd int, line string) {
		if line == "" || parseErr != nil {
			return
		}
		// "/ino/mode/uid/gid/name/size/"; names cannot hold '/'.
		f := strings.Split(line, "/")
		var in fsInode
		var ok bool
		if len(f) == 8 && f[0] == "" && f[7] == "" && cmd >= 0 {
			in, ok = parseListed(f[1], f[2], f[3], f[4])
		}
		if !ok {
			parseErr = fmt.Errorf("unexpected debugfs ls output %q", line)
			return
		}
		if listing[cmd] == nil {
			listing[cmd] = map[string]fsInode{}
		}
		listing[cmd][f[5]] = in
	})
	if err != nil {
		return nil, err
	}
	if parseErr != nil {
		return nil, parseErr
	}
	dirIdx := make(map[string]int, len(dirs))
	for i, d := range dirs {
		dirIdx[d] = i
	}
	inos := make([]fsInode, len(ents))
	for i := range ents {
		dir, name := parentOf(ents[i].rel), baseOf(ents[i].rel)
		if ents[i].rel == "" {
			name = "."
		}
		in, ok := listing[dirIdx[dir]][name]
		if !ok {
			return nil, fmt.Errorf("%q is missing from the filesystem", ents[i].rel)
		}
		inos[i] = in
	}
	return inos, nil
}

func parseListed(ino, mode, uid, gid string) (fsInode, bool) {
	i, err1 := strconv.ParseUint(ino, 10, 32)
	m, err2 := strconv.ParseUint(mode, 8, 32)
	// uid and gid are printed as signed ints.
	u, err3 := strconv.ParseInt(uid, 10, 64)
	g, err4 := strconv.ParseInt(gid, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return fsInode{}, false
	}
	return fsInode{uint32(i), uint32(m), uint32(u), uint32(g)}, true
}

// valueFile returns the quoted name of a file holding v, writing it once.
func (s *script) valueFile(v []byte) (string, error) {
	if f, ok := s.values[string(v)]; ok {
		return f, nil
	}
	name := filepath.Join(s.dir, "v"+strconv.Itoa(len(s.values)))
	if err := os.WriteFile(name, v, 0o600); err != nil {
		return "", fmt.Errorf("ext4: %w", err)
	}
	q, err := quote(name)
	if err != nil {
		return "", err
	}
	s.values[string(v)] = q
	return q, nil
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

// runDebugfs runs the command file script against target with debugfs
// (opened read-write if write is set) and fails if any command reported an
// error: debugfs exits 0 regardless. Each output line that is not a
// command echo goes to output with the index of the command it follows, or
// is an error if output is nil.
func runDebugfs(ctx context.Context, env []string, debugfs string, write bool, target, script string, total int, progress func(done, total int), output func(cmd int, line string)) error {
	args := []string{"-f", script, target}
	if write {
		args = append([]string{"-w"}, args...)
	}
	cmd := exec.CommandContext(ctx, debugfs, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var odd []string // stdout lines that are not command echoes
	done := 0
	if progress != nil {
		progress(0, total)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "debugfs: ") {
			done++
			if progress != nil && (done%512 == 0 || done == total) {
				progress(done, total)
			}
			continue
		}
		if output != nil {
			output(done-1, line)
			continue
		}
		if strings.TrimSpace(line) != "" && len(odd) < 20 {
			odd = append(odd, line)
		}
	}
	scanErr := sc.Err()
	if scanErr != nil {
		_, _ = io.Copy(io.Discard, stdout)
	}
	waitErr := cmd.Wait()
	var msgs []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debugfs 1.") { // the version banner
			continue
		}
		msgs = append(msgs, l)
	}
	msgs = append(msgs, odd...)
	switch {
	case waitErr != nil:
		return fmt.Errorf("%w: %s", waitErr, trim(strings.Join(msgs, "\n")))
	case scanErr != nil:
		return scanErr
	case len(msgs) > 0:
		return fmt.Errorf("command failed: %s", trim(strings.Join(msgs, "\n")))
	case done != total:
		return fmt.Errorf("ran %d of %d commands", done, total)
	}
	return nil
}

// run runs a tool and returns its trimmed combined output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return trim(out.String()), err
}

// trim shortens tool output for error messages.
func trim(s string) string {
	s = strings.TrimSpace(s)
	const maxLen = 2000
	if len(s) > maxLen {
		s = s[:maxLen] + "…"
	}
	return s
}

// tooSmallRE reports whether mke2fs's output says it ran out of room.
func tooSmallRE(out string) bool {
	for _, m := range []string{
		"Could not allocate block",
		"Could not allocate inode",
		"No space left on device",
		"No free space in the directory",
		"too big for a", // inode tables: "... too big for a\n\tfilesystem with N blocks"
		"too many inodes",
	} {
		if strings.Contains(out, m) {
			return true
		}
	}
	return false
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

// fileSize is the size of a regular file or block device.
func fileSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	if fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		return f.Seek(0, io.SeekEnd)
	}
	return 0, fmt.Errorf("%s is not a regular file or block device", p)
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// derivedUUID makes a version 4 style UUID from a hash of parts.
func derivedUUID(parts ...string) string {
	h := sha256.Sum256([]byte("otakit/ext4\x00" + strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
