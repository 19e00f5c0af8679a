package ext4

import (
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
)

// pattern fills b with the bytes of a pattern stream at offset off.
func pattern(b []byte, off int64, seed byte) {
	for i := range b {
		o := off + int64(i)
		b[i] = byte(o*31) ^ byte(o>>12) ^ seed
	}
}

// file is a regular file holding data.
func file(mode uint32, data []byte) *Inode {
	return &Inode{Mode: ModeRegular | mode, Size: int64(len(data)), Mtime: 1700000000, Data: func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}}
}

// patFile is a file of size bytes of pattern, written in odd-sized chunks.
func patFile(mode uint32, size int64, seed byte) *Inode {
	return &Inode{Mode: ModeRegular | mode, Size: size, Mtime: 1600000000, Data: func(w io.Writer) error {
		buf := make([]byte, 65521)
		for off := int64(0); off < size; {
			n := min(int64(len(buf)), size-off)
			pattern(buf[:n], off, seed)
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			off += n
		}
		return nil
	}}
}

// directory is a directory with the entries ents.
func directory(mode uint32, ents ...DirEntry) *Inode {
	return &Inode{Mode: ModeDir | mode, Mtime: 1500000000, Entries: ents}
}

// symlink is a symlink to target.
func symlink(target string) *Inode {
	return &Inode{Mode: ModeSymlink | 0o777, Target: target, Mtime: 1400000000}
}

// ent names in in a directory.
func ent(name string, in *Inode) DirEntry { return DirEntry{Name: name, Inode: in} }

// treePath is one name of an inode in the input tree.
type treePath struct {
	path string // relative, "" for the root
	in   *Inode
}

// walkInput lists the tree breadth first.
func walkInput(root *Inode) []treePath {
	out := []treePath{{"", root}}
	for i := 0; i < len(out); i++ {
		for _, e := range out[i].in.Entries {
			p := e.Name
			if out[i].path != "" {
				p = out[i].path + "/" + e.Name
			}
			out = append(out, treePath{p, e.Inode})
		}
	}
	return out
}

// wantLinks is the link count in should have in the filesystem written from root.
func wantLinks(root *Inode, in *Inode) int {
	if in.Mode&ModeTypeMask == ModeDir {
		n := 2
		for _, e := range in.Entries {
			if e.Inode.Mode&ModeTypeMask == ModeDir {
				n++
			}
		}
		if in == root {
			hasLost := false
			for _, e := range in.Entries {
				hasLost = hasLost || e.Name == "lost+found"
			}
			if !hasLost {
				n++
			}
		}
		return n
	}
	if linkCache.root != root {
		linkCache.root, linkCache.n = root, map[*Inode]int{}
		for _, p := range walkInput(root) {
			linkCache.n[p.in]++
		}
	}
	return linkCache.n[in]
}

// linkCache holds the link counts of the last tree wantLinks saw.
var linkCache struct {
	root *Inode
	n    map[*Inode]int
}

// dataSum is the SHA-256 of the data of regular file in.
func dataSum(t testing.TB, in *Inode) [32]byte {
	t.Helper()
	h := sha256.New()
	if in.Size > 0 {
		if err := in.Data(h); err != nil {
			t.Fatal(err)
		}
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// acl encodes a POSIX ACL in the xattr format from (tag, perm, id) entries.
func acl(entries ...[3]uint32) []byte {
	b := []byte{2, 0, 0, 0}
	for _, e := range entries {
		b = append(b, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8), byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	return b
}

// benchTree is 10k files of mixed sizes, about 400 MB, in directories of
// 100: ten of 20 MiB, ninety of 1 MiB and the rest up to 24 KB.
func benchTree() (*Inode, int64) {
	pat := make([]byte, 64<<10)
	pattern(pat, 0, 5)
	var total int64
	var dirs []DirEntry
	for d := range 100 {
		var ents []DirEntry
		for j := range 100 {
			i := d*100 + j
			size := int64(i*7919) % 24000
			switch {
			case i%1000 == 0:
				size = 20 << 20
			case i%100 == 0:
				size = 1 << 20
			}
			total += size
			in := &Inode{Mode: ModeRegular | 0o644, Size: size, Data: func(w io.Writer) error {
				for left := size; left > 0; {
					n := min(left, int64(len(pat)-i%512))
					if _, err := w.Write(pat[i%512 : int64(i%512)+n]); err != nil {
						return err
					}
					left -= n
				}
				return nil
			}}
			ents = append(ents, ent(fmt.Sprintf("file-%05d", i), in))
		}
		dirs = append(dirs, ent(fmt.Sprintf("dir-%03d", d), directory(0o755, ents...)))
	}
	return directory(0o755, ent("usr", directory(0o755, dirs...))), total
}
