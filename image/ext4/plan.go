package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// node is an inode as laid out by Write.
type node struct {
	in      *Inode
	ino     uint32
	links   uint32 // i_links_count
	subdirs uint32 // subdirectories, whose ".." link here
	path    string // the first path found, for errors
	block   []byte // directory blocks or a slow symlink's block
	xinline []byte // in-inode xattr area (after the magic), or nil
	xblock  []byte // external xattr block, or nil
	nblocks int64  // data blocks (files, directories, slow symlinks)

	xblk    uint32   // external xattr block number
	leaves  []uint32 // extent tree leaf blocks
	extents []extent // data extents, in logical order
}

// extent maps len blocks of a file from logical block lblk on to the
// physical blocks from pblk on.
type extent struct {
	lblk, len, pblk uint32
}

// plan is a tree as laid out by Write, independent of the filesystem size.
type plan struct {
	nodes     []*node // by inode number - 1; nil for unused reserved inodes
	content   int64   // data, directory, symlink and xattr blocks
	dataBytes int64   // total size of the regular files
	maxMtime  int64   // the newest mtime not in the future
}

// analyze numbers the inodes of root breadth first in entry order and
// builds directory blocks and xattrs.
func analyze(root *Inode) (*plan, error) {
	now := time.Now().Unix()
	if root == nil || root.Mode&ModeTypeMask != ModeDir {
		return nil, errors.New("ext4: root is not a directory")
	}
	p := &plan{nodes: make([]*node, lostFoundIno)}
	seen := map[*Inode]*node{}
	add := func(in *Inode, ino uint32, path string) *node {
		n := &node{in: in, ino: ino, path: path}
		seen[in] = n
		if int(ino) > len(p.nodes) {
			p.nodes = append(p.nodes, make([]*node, int(ino)-len(p.nodes))...)
		}
		p.nodes[ino-1] = n
		return n
	}
	rootN := add(root, rootIno, "/")
	rootN.links = 2
	rootEntries := root.Entries
	var lost *Inode
	for _, e := range root.Entries {
		if e.Name == "lost+found" {
			lost = e.Inode
		}
	}
	if lost == nil {
		lost = &Inode{Mode: ModeDir | 0o700}
		rootEntries = append([]DirEntry{{Name: "lost+found", Inode: lost}}, rootEntries...)
	} else if lost.Mode&ModeTypeMask != ModeDir {
		return nil, errors.New("ext4: /lost+found is not a directory")
	}
	lostN := add(lost, lostFoundIno, "/lost+found")
	emptyLost := len(lost.Entries) == 0 // gets blocks to spare, as mke2fs makes it
	next := uint32(lostFoundIno + 1)
	queue := []*node{rootN}
	parent := map[*node]uint32{rootN: rootIno}
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
			typ := in.Mode & ModeTypeMask
			switch {
			case c == nil:
				if next == 0 {
					return nil, errors.New("ext4: too many inodes")
				}
				c = add(in, next, joinPath(d.path, e.Name))
				next++
				fallthrough
			case c.ino == lostFoundIno && c.links == 0:
				if typ == ModeDir {
					parent[c] = d.ino
					c.links = 1 // "." adds one below
					queue = append(queue, c)
				}
			default:
				if typ == ModeDir {
					return nil, fmt.Errorf("ext4: %s: directory %s linked twice", joinPath(d.path, e.Name), c.path)
				}
			}
			var ft byte
			switch typ {
			case ModeRegular:
				ft = 1
			case ModeDir:
				ft = 2
				d.subdirs++
			case ModeSymlink:
				ft = 7
			default:
				return nil, fmt.Errorf("ext4: %s: unsupported file type %#o", joinPath(d.path, e.Name), typ)
			}
			c.links++
			db.add(c.ino, e.Name, ft)
		}
		d.block = db.finish()
		if d == lostN && emptyLost {
			for len(d.block) < lostFoundBlocks*blockSize {
				b := make([]byte, blockSize)
				binary.LittleEndian.PutUint16(b[4:], blockSize)
				d.block = append(d.block, b...)
			}
		}
		d.nblocks = int64(len(d.block) / blockSize)
	}
	for _, n := range p.nodes {
		if n == nil {
			continue
		}
		in := n.in
		if in.Mode&^(ModeTypeMask|0o7777) != 0 {
			return nil, fmt.Errorf("ext4: %s: invalid mode %#o", n.path, in.Mode)
		}
		if in.Mode&ModeTypeMask == ModeDir {
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
		switch in.Mode & ModeTypeMask {
		case ModeRegular:
			if in.Size < 0 || in.Size > 1<<40 {
				return nil, fmt.Errorf("ext4: %s: unsupported size %d", n.path, in.Size)
			}
			if in.Size > 0 && in.Data == nil {
				return nil, fmt.Errorf("ext4: %s: no Data function", n.path)
			}
			n.nblocks = (in.Size + blockSize - 1) / blockSize
			p.dataBytes += in.Size
		case ModeSymlink:
			t := in.Target
			if t == "" || len(t) >= blockSize || strings.IndexByte(t, 0) >= 0 {
				return nil, fmt.Errorf("ext4: %s: invalid symlink target %q", n.path, t)
			}
			if len(t) >= 60 {
				n.block = make([]byte, blockSize)
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

// joinPath is the path of name in the directory at path dir.
func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// checkName checks a directory entry name.
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

// add appends an entry, starting a new block if it does not fit in the
// current one.
func (b *dirBuilder) add(ino uint32, name string, ft byte) {
	rec := 8 + (len(name)+3)&^3
	if b.buf == nil || b.used+rec > blockSize {
		if b.buf != nil {
			b.closeBlock()
		}
		b.buf = append(b.buf, make([]byte, blockSize)...)
		b.used = 0
	}
	off := len(b.buf) - blockSize + b.used
	e := b.buf[off:]
	binary.LittleEndian.PutUint32(e[0:], ino)
	binary.LittleEndian.PutUint16(e[4:], uint16(rec))
	e[6] = byte(len(name))
	e[7] = ft
	copy(e[8:], name)
	b.last = off
	b.used += rec
}

// closeBlock extends the last entry of the current block to its end.
func (b *dirBuilder) closeBlock() {
	end := len(b.buf)
	binary.LittleEndian.PutUint16(b.buf[b.last+4:], uint16(end-b.last))
}

// finish returns the directory blocks.
func (b *dirBuilder) finish() []byte {
	b.closeBlock()
	return b.buf
}
