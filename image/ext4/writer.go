package ext4

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/otakit/ota/internal/ostree"
)

// ErrTooSmall is returned, wrapped with the needed and the available size,
// when the tree does not fit into the filesystem size given to Write.
var ErrTooSmall = errors.New("ext4: filesystem size too small for the contents")

// Inode is a file, directory or symlink of the filesystem Write creates. An
// *Inode that appears in several directories is one inode with several links
// (a hard link). Directories may appear only once.
type Inode struct {
	// Mode is the full st_mode: the file type (S_IFREG, S_IFDIR or S_IFLNK,
	// as ostree.ModeRegular, ostree.ModeDir and ostree.ModeSymlink) and the
	// permission bits, setuid, setgid and sticky included.
	Mode uint32
	// UID and GID are the owner.
	UID, GID uint32
	// Mtime is the modification time in seconds since the epoch; it is also
	// used as access, change and creation time so that the output is
	// reproducible.
	Mtime int64
	// Xattrs are the extended attributes, with full names such as
	// "security.capability" or "user.foo". POSIX ACLs
	// (system.posix_acl_access, system.posix_acl_default) are given in the
	// xattr format getxattr returns and stored in ext4's format.
	Xattrs []ostree.Xattr
	// Size is the content length of a regular file.
	Size int64
	// Data writes the content of a regular file with Size > 0: exactly Size
	// bytes. It may be called from any goroutine, concurrently with the
	// Data of other files.
	Data func(w io.Writer) error
	// Target is the target of a symlink.
	Target string
	// Entries are the entries of a directory, without "." and "..", in the
	// order they are written to the directory (the caller sorts them).
	Entries []DirEntry
}

// DirEntry names an inode in a directory.
type DirEntry struct {
	// Name is the file name: 1 to 255 bytes, no '/' or NUL, not "." or "..".
	Name string
	// Inode is the named file, directory or symlink.
	Inode *Inode
}

// WriterOptions are the optional settings of Write.
type WriterOptions struct {
	// Label is the volume label, at most 16 bytes.
	Label string
	// UUID is the filesystem UUID in canonical text form, such as
	// "2f6b0a1e-5c4d-4e8f-9a7b-0c1d2e3f4a5b". If empty, it is derived from
	// the label, the offset and the size, so that the output is
	// reproducible.
	UUID string
	// Workers is the number of goroutines calling the Data functions; 0
	// means runtime.GOMAXPROCS(0)*2.
	Workers int
	// Progress, if not nil, is called after each regular file's data is
	// written, with the data bytes written so far and their total. It is
	// called from the worker goroutines, but never concurrently.
	Progress func(doneBytes, totalBytes int64)
}

const (
	wBlock        = 4096
	wBPG          = 32768 // blocks per group
	wInodeSize    = 256
	wExtraIsize   = 32
	wInodesPerBlk = wBlock / wInodeSize
	wGDSize       = 32 // group descriptor size without the 64bit feature
	wRootIno      = 2
	wJournalIno   = 8
	wLostIno      = 11
	wMaxExtLen    = 32768
	wLeafMax      = (wBlock - 12) / 12 // extents in one extent tree block
	wMaxExtents   = 4 * wLeafMax       // with a depth-1 tree
	wInodeRatio   = 16384              // bytes per inode, as mke2fs defaults
	wLostBlocks   = 4                  // as mke2fs makes lost+found
	mib           = 1 << 20

	sIFMT  = ostree.ModeTypeMask
	sIFREG = ostree.ModeRegular
	sIFDIR = ostree.ModeDir
	sIFLNK = ostree.ModeSymlink

	extentsFL = 0x80000
)

// wnode is an inode as laid out by Write.
type wnode struct {
	in      *Inode
	ino     uint32
	links   uint32
	subdirs uint32
	path    string
	block   []byte // directory blocks or a slow symlink's block
	xinline []byte // in-inode xattr area (after the magic), or nil
	xblock  []byte // external xattr block, or nil
	nblocks int64  // data blocks (files, directories, slow symlinks)

	xblk    uint32    // external xattr block number
	leaves  []uint32  // extent tree leaf blocks
	extents []wextent // data extents, in logical order
}

type wextent struct {
	lblk, len, pblk uint32
}

// wplan is a tree as laid out by Write, independent of the filesystem size.
type wplan struct {
	nodes     []*wnode // by inode number - 1; nil for unused reserved inodes
	content   int64    // data, directory, symlink and xattr blocks
	dataBytes int64
	maxMtime  int64
}

// analyze numbers the inodes of root breadth first in entry order and
// builds directory blocks and xattrs.
func analyze(root *Inode) (*wplan, error) {
	now := time.Now().Unix()
	if root == nil || root.Mode&sIFMT != sIFDIR {
		return nil, errors.New("ext4: root is not a directory")
	}
	p := &wplan{nodes: make([]*wnode, wLostIno)}
	seen := map[*Inode]*wnode{}
	add := func(in *Inode, ino uint32, path string) *wnode {
		n := &wnode{in: in, ino: ino, path: path}
		seen[in] = n
		if int(ino) > len(p.nodes) {
			p.nodes = append(p.nodes, make([]*wnode, int(ino)-len(p.nodes))...)
		}
		p.nodes[ino-1] = n
		return n
	}
	rootN := add(root, wRootIno, "/")
	rootN.links = 2
	rootEntries := root.Entries
	var lost *Inode
	for _, e := range root.Entries {
		if e.Name == "lost+found" {
			lost = e.Inode
		}
	}
	if lost == nil {
		lost = &Inode{Mode: sIFDIR | 0o700}
		rootEntries = append([]DirEntry{{Name: "lost+found", Inode: lost}}, rootEntries...)
	} else if lost.Mode&sIFMT != sIFDIR {
		return nil, errors.New("ext4: /lost+found is not a directory")
	}
	lostN := add(lost, wLostIno, "/lost+found")
	emptyLost := len(lost.Entries) == 0 // gets blocks to spare, as mke2fs makes it
	next := uint32(wLostIno + 1)
	queue := []*wnode{rootN}
	parent := map[*wnode]uint32{rootN: wRootIno}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		ents := d.in.Entries
		if d == rootN {
			ents = rootEntries
		}
		var db dirBuilder
		db.add(d.ino, ".", 2)
		db.add(parent[d], "..", 2)
		names := make(map[string]struct{}, len(ents))
		for _, e := range ents {
			if err := checkName(e.Name); err != nil {
				return nil, fmt.Errorf("ext4: %s: %w", joinPath(d.path, e.Name), err)
			}
			if _, dup := names[e.Name]; dup {
				return nil, fmt.Errorf("ext4: %s: duplicate directory entry", joinPath(d.path, e.Name))
			}
			names[e.Name] = struct{}{}
			in := e.Inode
			if in == nil {
				return nil, fmt.Errorf("ext4: %s: nil inode", joinPath(d.path, e.Name))
			}
			c := seen[in]
			typ := in.Mode & sIFMT
			switch {
			case c == nil:
				if next == 0 {
					return nil, errors.New("ext4: too many inodes")
				}
				c = add(in, next, joinPath(d.path, e.Name))
				next++
				fallthrough
			case c.ino == wLostIno && c.links == 0:
				if typ == sIFDIR {
					parent[c] = d.ino
					c.links = 1 // "." adds one below
					queue = append(queue, c)
				}
			default:
				if typ == sIFDIR {
					return nil, fmt.Errorf("ext4: %s: directory %s linked twice", joinPath(d.path, e.Name), c.path)
				}
			}
			var ft byte
			switch typ {
			case sIFREG:
				ft = 1
			case sIFDIR:
				ft = 2
				d.subdirs++
			case sIFLNK:
				ft = 7
			default:
				return nil, fmt.Errorf("ext4: %s: unsupported file type %#o", joinPath(d.path, e.Name), typ)
			}
			c.links++
			db.add(c.ino, e.Name, ft)
		}
		d.block = db.finish()
		if d == lostN && emptyLost {
			for len(d.block) < wLostBlocks*wBlock {
				b := make([]byte, wBlock)
				binary.LittleEndian.PutUint16(b[4:], wBlock)
				d.block = append(d.block, b...)
			}
		}
		d.nblocks = int64(len(d.block) / wBlock)
	}
	for _, n := range p.nodes {
		if n == nil {
			continue
		}
		in := n.in
		if in.Mode&^(sIFMT|0o7777) != 0 {
			return nil, fmt.Errorf("ext4: %s: invalid mode %#o", n.path, in.Mode)
		}
		if in.Mode&sIFMT == sIFDIR {
			n.links += n.subdirs
			if n.links >= 65000 {
				n.links = 1 // dir_nlink
			}
		} else if n.links > 65000 {
			return nil, fmt.Errorf("ext4: %s: too many links (%d)", n.path, n.links)
		}
		// Future mtimes do not count: e2fsck rejects a superblock time in the future, and
		// capping the newest mtime at the clock would make the output depend on it.
		if in.Mtime > p.maxMtime && in.Mtime <= now {
			p.maxMtime = in.Mtime
		}
		switch in.Mode & sIFMT {
		case sIFREG:
			if in.Size < 0 || in.Size > 1<<40 {
				return nil, fmt.Errorf("ext4: %s: unsupported size %d", n.path, in.Size)
			}
			if in.Size > 0 && in.Data == nil {
				return nil, fmt.Errorf("ext4: %s: no Data function", n.path)
			}
			n.nblocks = (in.Size + wBlock - 1) / wBlock
			p.dataBytes += in.Size
		case sIFLNK:
			t := in.Target
			if t == "" || len(t) >= wBlock || strings.IndexByte(t, 0) >= 0 {
				return nil, fmt.Errorf("ext4: %s: invalid symlink target %q", n.path, t)
			}
			if len(t) >= 60 {
				n.block = make([]byte, wBlock)
				copy(n.block, t)
				n.nblocks = 1
			}
		}
		if len(in.Xattrs) > 0 {
			var err error
			n.xinline, n.xblock, err = encodeXattrs(in.Xattrs)
			if err != nil {
				return nil, fmt.Errorf("ext4: %s: %w", n.path, err)
			}
			if n.xblock != nil {
				p.content++
			}
		}
		p.content += n.nblocks
	}
	return p, nil
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case len(name) > 255:
		return errors.New("name longer than 255 bytes")
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid name %q", name)
	}
	return nil
}

// dirBuilder packs linear ext4_dir_entry_2 entries into blocks.
type dirBuilder struct {
	buf  []byte
	last int // offset of the last entry, -1 if none in the current block
	used int // bytes used in the current block
}

func (b *dirBuilder) add(ino uint32, name string, ft byte) {
	rec := 8 + (len(name)+3)&^3
	if b.buf == nil || b.used+rec > wBlock {
		if b.buf != nil {
			b.closeBlock()
		}
		b.buf = append(b.buf, make([]byte, wBlock)...)
		b.used = 0
	}
	off := len(b.buf) - wBlock + b.used
	e := b.buf[off:]
	binary.LittleEndian.PutUint32(e[0:], ino)
	binary.LittleEndian.PutUint16(e[4:], uint16(rec))
	e[6] = byte(len(name))
	e[7] = ft
	copy(e[8:], name)
	b.last = off
	b.used += rec
}

func (b *dirBuilder) closeBlock() {
	end := len(b.buf)
	binary.LittleEndian.PutUint16(b.buf[b.last+4:], uint16(end-b.last))
}

func (b *dirBuilder) finish() []byte {
	b.closeBlock()
	return b.buf
}

// wgeo is the geometry of the filesystem.
type wgeo struct {
	blocks  int64 // s_blocks_count
	groups  int64
	ipg     int64 // inodes per group
	itb     int64 // inode table blocks per group
	gdtb    int64 // group descriptor table blocks
	jblocks int64 // journal blocks
}

func (g *wgeo) meta(i int64) int64 {
	m := 2 + g.itb
	if hasSuper(i) {
		m += 1 + g.gdtb
	}
	return m
}

// hasSuper reports whether group g holds a superblock backup (sparse_super).
func hasSuper(g int64) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []int64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

func (g *wgeo) groupEnd(i int64) int64 { return min((i+1)*wBPG, g.blocks) }

// geometry chooses the layout of a filesystem of at most blocks blocks
// holding inodes inodes (reserved ones included).
func geometry(blocks, inodes int64) (*wgeo, error) {
	if blocks > 1<<32-wBPG {
		blocks = 1<<32 - wBPG
	}
	g := &wgeo{blocks: blocks, jblocks: 1024}
	if blocks >= wBPG {
		g.jblocks = 4096
	}
	want := inodes + inodes/5 + 64
	for {
		if g.blocks < 64 {
			return nil, fmt.Errorf("%w: %d bytes hold no filesystem", ErrTooSmall, blocks*wBlock)
		}
		g.groups = (g.blocks + wBPG - 1) / wBPG
		g.gdtb = (g.groups*wGDSize + wBlock - 1) / wBlock
		ipg := max(want, g.blocks*wBlock/wInodeRatio)
		ipg = (ipg + g.groups - 1) / g.groups
		ipg = (ipg + wInodesPerBlk - 1) / wInodesPerBlk * wInodesPerBlk
		if ipg > wBPG {
			// the ratio default never exceeds this; only the need can
			if (want+g.groups-1)/g.groups > wBPG {
				return nil, fmt.Errorf("%w: %d inodes need more than %d block groups", ErrTooSmall, inodes, g.groups)
			}
			ipg = wBPG
		}
		g.ipg = ipg
		g.itb = ipg / wInodesPerBlk
		last := g.groups - 1
		if g.blocks-last*wBPG < g.meta(last)+64 {
			if last == 0 {
				// a single group: shrink the inode table to what fits
				room := g.blocks - 1 - g.gdtb - 2 - 64
				ipg = max(room*wInodesPerBlk/2, 0) / wInodesPerBlk * wInodesPerBlk
				if ipg < want {
					return nil, fmt.Errorf("%w: %d bytes hold no filesystem with %d inodes", ErrTooSmall, blocks*wBlock, inodes)
				}
				g.ipg = ipg
				g.itb = ipg / wInodesPerBlk
				return g, nil
			}
			g.blocks = last * wBPG // drop the short last group
			continue
		}
		return g, nil
	}
}

// walloc hands out data blocks in order, skipping group metadata.
type walloc struct {
	g    *wgeo
	grp  int64
	next int64
}

func newAlloc(g *wgeo) walloc { return walloc{g: g, grp: 0, next: g.meta(0)} }

// take allocates n blocks as few runs as possible, or reports false.
func (a *walloc) take(n int64, runs []wextent) ([]wextent, bool) {
	var lblk uint32
	for n > 0 {
		if a.grp >= a.g.groups {
			return runs, false
		}
		end := a.g.groupEnd(a.grp)
		if a.next >= end {
			a.grp++
			a.next = a.grp*wBPG + a.g.meta(a.grp)
			continue
		}
		k := min(n, end-a.next, wMaxExtLen)
		if l := len(runs); l > 0 && int64(runs[l-1].pblk)+int64(runs[l-1].len) == a.next && int64(runs[l-1].len)+k <= wMaxExtLen {
			runs[l-1].len += uint32(k)
		} else {
			runs = append(runs, wextent{lblk: lblk, len: uint32(k), pblk: uint32(a.next)})
		}
		lblk += uint32(k)
		a.next += k
		n -= k
	}
	return runs, true
}

// free is the number of blocks left.
func (a *walloc) free() int64 {
	var f int64
	for i := a.grp; i < a.g.groups; i++ {
		start := i*wBPG + a.g.meta(i)
		if i == a.grp {
			start = a.next
		}
		f += max(a.g.groupEnd(i)-start, 0)
	}
	return f
}

// allocFile allocates the extent tree leaves and data blocks of n.
func (a *walloc) allocFile(n *wnode, what string) error {
	if n.nblocks == 0 {
		return nil
	}
	try := *a
	runs, ok := try.take(n.nblocks, nil)
	if !ok {
		return fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, what)
	}
	if len(runs) <= 4 {
		*a, n.extents = try, runs
		return nil
	}
	for leaves := int64((len(runs) + wLeafMax - 1) / wLeafMax); ; leaves++ {
		if leaves > 4 {
			return fmt.Errorf("ext4: %s needs more than %d extents", what, wMaxExtents)
		}
		try = *a
		lr, ok := try.take(leaves, nil)
		if !ok {
			return fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, what)
		}
		runs, ok = try.take(n.nblocks, nil)
		if !ok {
			return fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, what)
		}
		if int64(len(runs)) <= leaves*wLeafMax {
			n.leaves = n.leaves[:0]
			for _, r := range lr {
				for i := uint32(0); i < r.len; i++ {
					n.leaves = append(n.leaves, r.pblk+i)
				}
			}
			*a, n.extents = try, runs
			return nil
		}
	}
}

// wlayout is a plan placed on a geometry.
type wlayout struct {
	*wplan
	geo     *wgeo
	journal wnode
	used    int64 // blocks used by files, directories, xattrs and the journal
}

// place allocates all blocks of p on a filesystem of blocks blocks.
func place(p *wplan, blocks int64) (*wlayout, error) {
	geo, err := geometry(blocks, int64(len(p.nodes)))
	if err != nil {
		return nil, err
	}
	l := &wlayout{wplan: p, geo: geo}
	a := newAlloc(geo)
	total := a.free()
	l.journal = wnode{ino: wJournalIno, nblocks: geo.jblocks, links: 1, in: &Inode{Mode: sIFREG | 0o600, Size: geo.jblocks * wBlock, Mtime: 0}}
	if err := a.allocFile(&l.journal, "the journal"); err != nil {
		return nil, err
	}
	for _, n := range p.nodes {
		if n == nil {
			continue
		}
		n.xblk, n.leaves, n.extents = 0, nil, nil
		if n.xblock != nil {
			r, ok := a.take(1, nil)
			if !ok {
				return nil, fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, n.path)
			}
			n.xblk = r[0].pblk
		}
		if err := a.allocFile(n, n.path); err != nil {
			return nil, err
		}
	}
	l.used = total - a.free()
	return l, nil
}

// WriteSize returns the smallest size, in bytes and a multiple of 1 MiB,
// that Write needs for root, including a journal and some slack (1% and at
// least 1 MiB of free space). It returns 0 if root cannot be written at
// all, for which Write returns the error.
func WriteSize(root *Inode) int64 {
	p, err := analyze(root)
	if err != nil {
		return 0
	}
	return p.size()
}

func (p *wplan) size() int64 {
	fits := func(blocks int64) (bool, error) {
		_, err := place(p, blocks)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, ErrTooSmall) {
			return false, nil
		}
		return false, err
	}
	blocks := p.content + 1024 + 64
	for range 1 << 20 {
		g, err := geometry(blocks, int64(len(p.nodes)))
		if err != nil {
			blocks += 256
			continue
		}
		ok, err := fits(blocks)
		if err != nil {
			return 0
		}
		if ok {
			final := (blocks + max(blocks/100, 256)) * wBlock
			final = (final + mib - 1) / mib * mib
			if ok, _ := fits(final / wBlock); ok {
				return final
			}
			blocks += 256
			continue
		}
		var meta int64
		for i := range g.groups {
			meta += g.meta(i)
		}
		need := p.content + g.jblocks + meta + int64(len(p.nodes))/wLeafMax + 1
		blocks += max(256, need-g.blocks)
	}
	return 0
}

// Write formats size bytes at byte offset of the existing file imagePath as
// ext4 holding root, a directory Inode. A size that is not a multiple of
// 4096 is rounded down. Write neither truncates nor extends the file, which
// must be at least offset+size bytes long, and writes nothing outside the
// region.
//
// The region is first turned into a hole (on files and filesystems that
// support punching holes; otherwise the inode tables and the journal are
// written as zeros) and then only the blocks the filesystem uses are
// written, so the image stays sparse. Regular files' data is produced by
// their Data functions, called by opts.Workers goroutines in parallel, each
// file's bytes going straight to its blocks. The superblock is written
// last, so an error leaves no valid filesystem behind.
//
// The filesystem has 4 KiB blocks, 256-byte inodes, a 4 or 16 MiB journal
// and the features has_journal, ext_attr, filetype, extents, sparse_super,
// large_file, dir_nlink and extra_isize; directories are linear (no
// dir_index) and there are no metadata checksums, no flex_bg and no
// reserved blocks. The same input gives a byte-identical filesystem.
//
// Write returns an error wrapping ErrTooSmall if the tree does not fit.
func Write(ctx context.Context, imagePath string, offset, size int64, root *Inode, opts WriterOptions) error {
	if offset < 0 || size < 0 {
		return fmt.Errorf("ext4: invalid region offset %d size %d", offset, size)
	}
	if len(opts.Label) > 16 {
		return fmt.Errorf("ext4: label %q longer than 16 bytes", opts.Label)
	}
	var uuid [16]byte
	u := opts.UUID
	if u == "" {
		u = derivedUUID("writer", opts.Label, fmt.Sprint(offset), fmt.Sprint(size))
	}
	if !validUUID(u) {
		return fmt.Errorf("ext4: invalid UUID %q", opts.UUID)
	}
	if _, err := hex.Decode(uuid[:], []byte(strings.ReplaceAll(u, "-", ""))); err != nil {
		return fmt.Errorf("ext4: invalid UUID %q", opts.UUID)
	}
	p, err := analyze(root)
	if err != nil {
		return err
	}
	blocks := size / wBlock
	l, err := place(p, blocks)
	if err != nil {
		if errors.Is(err, ErrTooSmall) {
			return fmt.Errorf("%w (need %d bytes, have %d)", err, p.size(), size)
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(imagePath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	imgSize, err := fileSize(imagePath)
	if err != nil {
		return err
	}
	if offset+size > imgSize {
		return fmt.Errorf("ext4: region [%d, %d) extends past the end of %s (%d bytes)", offset, offset+size, imagePath, imgSize)
	}
	w := &imgWriter{f: f, base: offset}
	w.zeroed = !noPunch && punchHole(f, offset, size) == nil
	if err := l.writeData(ctx, w, opts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sb := l.superblock(uuid, opts.Label)
	if err := l.writeMeta(w, sb); err != nil {
		return err
	}
	// the primary superblock last
	b0 := make([]byte, wBlock)
	copy(b0[1024:], sb)
	if err := w.writeBlocks(0, b0); err != nil {
		return err
	}
	return nil
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

// validUUID reports whether s is a UUID in canonical text form.
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

// fsTime is the filesystem's own timestamp: the newest mtime that is not in the future.
func (l *wlayout) fsTime() uint32 {
	return uint32(min(max(l.maxMtime, 0), 1<<32-1))
}

func (l *wlayout) superblock(uuid [16]byte, label string) []byte {
	g := l.geo
	sb := make([]byte, 1024)
	le := binary.LittleEndian
	inodes := g.groups * g.ipg
	var meta int64
	for i := range g.groups {
		meta += g.meta(i)
	}
	le.PutUint32(sb[0x0:], uint32(inodes))
	le.PutUint32(sb[0x4:], uint32(g.blocks))
	le.PutUint32(sb[0x8:], 0)
	le.PutUint32(sb[0xC:], uint32(g.blocks-meta-l.used))
	le.PutUint32(sb[0x10:], uint32(inodes-int64(len(l.nodes))))
	le.PutUint32(sb[0x14:], 0) // first data block
	le.PutUint32(sb[0x18:], 2) // log block size: 4096
	le.PutUint32(sb[0x1C:], 2)
	le.PutUint32(sb[0x20:], wBPG)
	le.PutUint32(sb[0x24:], wBPG)
	le.PutUint32(sb[0x28:], uint32(g.ipg))
	t := l.fsTime()
	le.PutUint32(sb[0x30:], t)      // wtime
	le.PutUint16(sb[0x36:], 0xFFFF) // max mount count -1
	le.PutUint16(sb[0x38:], 0xEF53)
	le.PutUint16(sb[0x3A:], 1) // clean
	le.PutUint16(sb[0x3C:], 1) // errors: continue
	le.PutUint32(sb[0x40:], t) // lastcheck
	le.PutUint32(sb[0x4C:], 1) // dynamic rev
	le.PutUint32(sb[0x54:], wLostIno)
	le.PutUint16(sb[0x58:], wInodeSize)
	le.PutUint32(sb[0x5C:], 0x4|0x8)           // has_journal, ext_attr
	le.PutUint32(sb[0x60:], 0x2|0x40)          // filetype, extents
	le.PutUint32(sb[0x64:], 0x1|0x2|0x20|0x40) // sparse_super, large_file, dir_nlink, extra_isize
	copy(sb[0x68:], uuid[:])
	copy(sb[0x78:], label)
	le.PutUint32(sb[0xE0:], wJournalIno)
	seed := sha256.Sum256(append([]byte("otakit/ext4 hash seed\x00"), uuid[:]...))
	copy(sb[0xEC:], seed[:16])
	sb[0xFC] = 1                      // half_md4
	sb[0xFD] = 1                      // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
	le.PutUint32(sb[0x100:], 0x4|0x8) // default mount options user_xattr, acl
	le.PutUint32(sb[0x108:], t)       // mkfs time
	ji := l.inode(&l.journal)
	copy(sb[0x10C:], ji[0x28:0x28+60])
	le.PutUint32(sb[0x10C+60:], le.Uint32(ji[0x6C:]))
	le.PutUint32(sb[0x10C+64:], le.Uint32(ji[0x4:]))
	le.PutUint16(sb[0x15C:], wExtraIsize)
	le.PutUint16(sb[0x15E:], wExtraIsize)
	le.PutUint32(sb[0x160:], 1) // signed directory hash
	return sb
}

// inode encodes the 256-byte on-disk inode of n.
func (l *wlayout) inode(n *wnode) []byte {
	b := make([]byte, wInodeSize)
	le := binary.LittleEndian
	in := n.in
	le.PutUint16(b[0x0:], uint16(in.Mode))
	le.PutUint16(b[0x2:], uint16(in.UID))
	le.PutUint16(b[0x78:], uint16(in.UID>>16))
	le.PutUint16(b[0x18:], uint16(in.GID))
	le.PutUint16(b[0x7A:], uint16(in.GID>>16))
	var size int64
	switch in.Mode & sIFMT {
	case sIFREG:
		size = in.Size
	case sIFDIR:
		size = int64(len(n.block))
	case sIFLNK:
		size = int64(len(in.Target))
	}
	le.PutUint32(b[0x4:], uint32(size))
	le.PutUint32(b[0x6C:], uint32(size>>32))
	lo, extra := uint32(in.Mtime), uint32((in.Mtime-int64(int32(in.Mtime)))>>32)&3
	for _, o := range []int{0x8, 0xC, 0x10, 0x90} {
		le.PutUint32(b[o:], lo)
	}
	for _, o := range []int{0x84, 0x88, 0x8C, 0x94} {
		le.PutUint32(b[o:], extra)
	}
	le.PutUint16(b[0x1A:], uint16(n.links))
	sectors := (n.nblocks + int64(len(n.leaves))) * (wBlock / 512)
	if n.xblk != 0 {
		sectors += wBlock / 512
		le.PutUint32(b[0x68:], n.xblk)
	}
	le.PutUint32(b[0x1C:], uint32(sectors))
	le.PutUint16(b[0x74:], uint16(sectors>>32))
	le.PutUint16(b[0x80:], wExtraIsize)
	if in.Mode&sIFMT == sIFLNK && n.nblocks == 0 {
		copy(b[0x28:0x28+60], in.Target)
	} else {
		le.PutUint32(b[0x20:], extentsFL)
		ib := b[0x28 : 0x28+60]
		if len(n.leaves) == 0 {
			putExtentHeader(ib, len(n.extents), 4, 0)
			for i, e := range n.extents {
				putExtent(ib[12+12*i:], e)
			}
		} else {
			putExtentHeader(ib, len(n.leaves), 4, 1)
			for i, blk := range n.leaves {
				e := ib[12+12*i:]
				le.PutUint32(e[0:], n.extents[i*wLeafMax].lblk)
				le.PutUint32(e[4:], blk)
			}
		}
	}
	if n.xinline != nil {
		le.PutUint32(b[0x80+wExtraIsize:], xattrMagic)
		copy(b[0x80+wExtraIsize+4:], n.xinline)
	}
	return b
}

func putExtentHeader(b []byte, entries, maxEntries, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xF30A)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(maxEntries))
	le.PutUint16(b[6:], uint16(depth))
}

func putExtent(b []byte, e wextent) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], e.lblk)
	le.PutUint16(b[4:], uint16(e.len))
	le.PutUint16(b[6:], 0)
	le.PutUint32(b[8:], e.pblk)
}

// leafBlocks encodes the extent tree leaves of n.
func leafBlocks(n *wnode) [][]byte {
	var out [][]byte
	for i := range n.leaves {
		b := make([]byte, wBlock)
		ext := n.extents[i*wLeafMax : min((i+1)*wLeafMax, len(n.extents))]
		putExtentHeader(b, len(ext), wLeafMax, 0)
		for j, e := range ext {
			putExtent(b[12+12*j:], e)
		}
		out = append(out, b)
	}
	return out
}

// writeMeta writes group metadata, inode tables, directory, symlink,
// extent tree and xattr blocks and the journal superblock; all but the
// primary superblock.
func (l *wlayout) writeMeta(w *imgWriter, sb []byte) error {
	g := l.geo
	le := binary.LittleEndian
	// scattered blocks: block number -> contents
	blocks := map[uint32][]byte{}
	putRuns := func(n *wnode, data []byte) {
		for _, e := range n.extents {
			for i := uint32(0); i < e.len; i++ {
				blocks[e.pblk+i] = data[int(e.lblk+i)*wBlock : int(e.lblk+i+1)*wBlock]
			}
		}
	}
	nodes := append([]*wnode{&l.journal}, l.nodes...)
	// block bitmap marks: every allocated block
	bbm := make([][]byte, g.groups)
	for i := range bbm {
		bbm[i] = make([]byte, wBlock)
		n := g.groupEnd(int64(i)) - int64(i)*wBPG
		for b := int64(0); b < g.meta(int64(i)); b++ {
			bbm[i][b/8] |= 1 << (b % 8)
		}
		for b := n; b < wBPG; b++ {
			bbm[i][b/8] |= 1 << (b % 8)
		}
	}
	mark := func(blk uint32, cnt uint32) {
		for b := blk; b < blk+cnt; b++ {
			grp, off := b/wBPG, b%wBPG
			bbm[grp][off/8] |= 1 << (off % 8)
		}
	}
	itab := make([]byte, len(l.nodes)*wInodeSize)
	dirsPerGroup := make([]int64, g.groups)
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, e := range n.extents {
			mark(e.pblk, e.len)
		}
		for i, lb := range leafBlocks(n) {
			blocks[n.leaves[i]] = lb
			mark(n.leaves[i], 1)
		}
		if n.xblk != 0 {
			blocks[n.xblk] = n.xblock
			mark(n.xblk, 1)
		}
		if n.block != nil {
			putRuns(n, n.block)
		}
		if n.ino != wJournalIno && n.in.Mode&sIFMT == sIFDIR {
			dirsPerGroup[int64(n.ino-1)/g.ipg]++
		}
		copy(itab[int(n.ino-1)*wInodeSize:], l.inode(n))
	}
	// journal superblock
	jsb := make([]byte, wBlock)
	be := binary.BigEndian
	be.PutUint32(jsb[0x0:], 0xC03B3998)
	be.PutUint32(jsb[0x4:], 4)
	be.PutUint32(jsb[0xC:], wBlock)
	be.PutUint32(jsb[0x10:], uint32(g.jblocks))
	be.PutUint32(jsb[0x14:], 1)
	be.PutUint32(jsb[0x18:], 1)
	copy(jsb[0x30:], sb[0x68:0x78])
	be.PutUint32(jsb[0x40:], 1)
	blocks[l.journal.extents[0].pblk] = jsb
	if !w.zeroed {
		zero := make([]byte, wBlock)
		for _, e := range l.journal.extents {
			for i := uint32(0); i < e.len; i++ {
				if e.pblk+i != l.journal.extents[0].pblk {
					blocks[e.pblk+i] = zero
				}
			}
		}
	}
	// group descriptors
	gdt := make([]byte, g.gdtb*wBlock)
	usedInodes := int64(len(l.nodes))
	for i := range g.groups {
		d := gdt[i*wGDSize:]
		start := i * wBPG
		bb := start + g.meta(i) - 2 - g.itb
		le.PutUint32(d[0x0:], uint32(bb))
		le.PutUint32(d[0x4:], uint32(bb+1))
		le.PutUint32(d[0x8:], uint32(bb+2))
		var free int64
		for b := int64(0); b < wBPG; b++ {
			if bbm[i][b/8]&(1<<(b%8)) == 0 {
				free++
			}
		}
		le.PutUint16(d[0xC:], uint16(free))
		usedHere := min(max(usedInodes-i*g.ipg, 0), g.ipg)
		le.PutUint16(d[0xE:], uint16(g.ipg-usedHere))
		le.PutUint16(d[0x10:], uint16(dirsPerGroup[i]))
	}
	// per group: [superblock, gdt], bitmaps, inode table
	for i := range g.groups {
		start := i * wBPG
		var buf []byte
		first := start
		if hasSuper(i) {
			if i == 0 {
				first = 1 // block 0 (primary superblock) goes last
			} else {
				s := make([]byte, wBlock)
				copy(s, sb)
				le.PutUint16(s[0x5A:], uint16(i))
				buf = append(buf, s...)
			}
			buf = append(buf, gdt...)
		}
		buf = append(buf, bbm[i]...)
		ibm := make([]byte, wBlock)
		usedHere := min(max(usedInodes-i*g.ipg, 0), g.ipg)
		for b := int64(0); b < wBPG; b++ {
			if b < usedHere || b >= g.ipg {
				ibm[b/8] |= 1 << (b % 8)
			}
		}
		buf = append(buf, ibm...)
		tbytes := usedHere * wInodeSize
		if !w.zeroed {
			tbytes = g.itb * wBlock
		}
		tbytes = (tbytes + wBlock - 1) / wBlock * wBlock
		t := make([]byte, tbytes)
		if usedHere > 0 {
			copy(t, itab[i*g.ipg*wInodeSize:(i*g.ipg+usedHere)*wInodeSize])
		}
		buf = append(buf, t...)
		if err := w.writeBlocks(first, buf); err != nil {
			return err
		}
	}
	// scattered blocks, coalesced
	keys := make([]uint32, 0, len(blocks))
	for k := range blocks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var run []byte
	var runStart uint32
	for i, k := range keys {
		if i > 0 && (k != keys[i-1]+1 || len(run) >= 8<<20) {
			if err := w.writeBlocks(int64(runStart), run); err != nil {
				return err
			}
			run = run[:0]
		}
		if len(run) == 0 {
			runStart = k
		}
		run = append(run, blocks[k]...)
	}
	if len(run) > 0 {
		return w.writeBlocks(int64(runStart), run)
	}
	return nil
}

func defaultWorkers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0) * 2
}
