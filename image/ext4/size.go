package ext4

import (
	"syscall"
)

const (
	blockSize      = 4096
	inodeSize      = 256
	blocksPerGroup = 8 * blockSize // one block bitmap block per group
	maxInodesPG    = 8 * blockSize // one inode bitmap block per group
	descSize       = 64            // group descriptor size with the 64bit feature
	inodeRatio     = 16384         // mke2fs.conf default: one inode per 16 KiB
	firstIno       = 11            // inodes below this are reserved; 11 is lost+found
	reservedPct    = 5             // mke2fs's default -m
	mib            = 1 << 20
	// inlineXattrSpace is the room for xattrs inside a 256-byte inode:
	// 256 - 128 (base inode) - 32 (extra_isize) - 4 (xattr header magic).
	inlineXattrSpace = inodeSize - 128 - 32 - 4
	// symlinks with targets shorter than this are stored in the inode.
	fastSymlinkMax = 60
)

// usage is what the contents of a tree need, apart from the per-filesystem
// and per-group metadata.
type usage struct {
	inodes int64 // used inodes, the root and the tree's lost+found included
	blocks int64 // data, directory, symlink, extent-index and xattr blocks
}

// MinSize estimates the smallest filesystem size, in bytes and rounded up
// to a multiple of 1 MiB, that holds the tree dir as Create lays it out:
// data blocks (4 KiB blocks, hardlinked inodes counted once, symlink
// targets under 60 bytes stored inline), directory blocks, extent-index and
// xattr blocks, inode tables for the needed inodes, the journal, the 5%
// reserved for root, and group metadata (bitmaps, superblock and group
// descriptor backups, resize reservation). The estimate errs on the large
// side by a few percent plus about a megabyte, so that mke2fs never runs
// out of space at the size returned. It is at least 8 MiB, below which
// mke2fs would create no journal.
func MinSize(dir string) (int64, error) {
	ents, err := scan(dir)
	if err != nil {
		return 0, err
	}
	return minSizeFor(measure(ents, nil)), nil
}

// measure sums what ents need. If xattrsOf is non-nil, it gives the xattrs
// the filesystem ends up with for the inode of entry i (by first index);
// otherwise the staging xattrs are used.
func measure(ents []entry, xattrsOf func(i int) []xattr) usage {
	u := usage{inodes: 1} // lost+found, created by mke2fs unless in the tree
	dirBytes := map[int]int64{}
	parent := map[string]int{}
	for i := range ents {
		e := &ents[i]
		if e.rel == "lost+found" {
			u.inodes--
		}
		if e.rel != "" {
			// The directory entry in the parent: 8 bytes of header plus the
			// name, padded to 4 bytes.
			dirBytes[parent[parentOf(e.rel)]] += 8 + align4(int64(len(baseOf(e.rel))))
		}
		if e.first != i {
			continue // another name of an inode already counted
		}
		u.inodes++
		switch e.st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			parent[e.rel] = i
			dirBytes[i] += 12 + 12 // "." and ".."
		case syscall.S_IFREG:
			u.blocks += fileBlocks(e.st.Size)
		case syscall.S_IFLNK:
			if e.st.Size >= fastSymlinkMax {
				u.blocks++
			}
		}
		x := e.xattrs
		if xattrsOf != nil {
			x = xattrsOf(i)
		}
		u.blocks += xattrBlocks(x)
	}
	for _, b := range dirBytes {
		// Each directory block ends in a 12-byte checksum tail
		// (metadata_csum); libext2fs fills blocks in order, leaving some
		// slack at each block end that we cover with a tenth more.
		n := ceilDiv(b+b/10, blockSize-12)
		if n > 1 {
			n++ // room for an htree root, should the tree be indexed
		}
		u.blocks += n + extentIndexBlocks(n)
	}
	// The root and a lost+found of 16 KiB, as mke2fs makes it.
	u.blocks += 1 + 4
	return u
}

func parentOf(rel string) string {
	for i := len(rel) - 1; i >= 0; i-- {
		if rel[i] == '/' {
			return rel[:i]
		}
	}
	return ""
}

func baseOf(rel string) string {
	if p := parentOf(rel); p != "" {
		return rel[len(p)+1:]
	}
	return rel
}

// fileBlocks is the blocks a regular file of size bytes needs: its data
// (holes are not assumed) and the extent index blocks if its extents
// do not fit into the inode.
func fileBlocks(size int64) int64 {
	n := ceilDiv(size, blockSize)
	return n + extentIndexBlocks(n)
}

// extentIndexBlocks estimates the extent tree blocks for a file of n
// contiguous-as-possible blocks. An extent covers at most 32768 blocks,
// and allocations are split where they run into group metadata (superblock
// backups, or flex_bg's packed bitmaps and inode tables).
func extentIndexBlocks(n int64) int64 {
	if n <= 4 {
		return 0 // at most 4 extents: they fit into the inode
	}
	extents := 2*ceilDiv(n, 32768) + n/2048 + 2
	if extents <= 4 {
		return 0
	}
	return ceilDiv(extents, 340) // 340 extents per 4 KiB index block
}

// xattrBlocks is 1 if the xattrs x do not fit into the inode, else 0.
func xattrBlocks(x []xattr) int64 {
	var n int64
	for _, a := range x {
		// An entry is 16 bytes plus the name without its well-known
		// prefix and the value, each padded to 4 bytes; be pessimistic
		// and keep the prefix.
		n += 16 + align4(int64(len(a.name))) + align4(int64(len(a.value)))
	}
	if n == 0 || n+4 <= inlineXattrSpace {
		return 0
	}
	return 1
}

// inodeCount is the number of inodes Create asks mke2fs for on a
// filesystem of blocks blocks holding used inodes: the mke2fs default of
// one per 16 KiB, but at least a quarter more than needed.
func inodeCount(blocks, used int64) int64 {
	n := blocks * blockSize / inodeRatio
	if need := firstIno + used + used/4 + 256; n < need {
		n = need
	}
	return n
}

// overhead is the metadata mke2fs creates on a filesystem of blocks blocks
// with inodes inodes, in blocks, and whether the layout is possible at all
// (each group holds at most 32768 inodes).
func overhead(blocks, inodes int64) (int64, bool) {
	groups := ceilDiv(blocks, blocksPerGroup)
	ipg := ceilDiv(inodes, groups)
	ipg = ceilDiv(ipg, blockSize/inodeSize) * (blockSize / inodeSize) // fill whole inode table blocks
	if ipg > maxInodesPG {
		return 0, false
	}
	gdt := ceilDiv(groups*descSize, blockSize)
	// Reserved GDT blocks for growing the fs 1024-fold (resize_inode).
	maxBlocks := blocks * 1024
	if maxBlocks > 1<<32-1 {
		maxBlocks = 1<<32 - 1
	}
	rsv := ceilDiv(ceilDiv(maxBlocks, blocksPerGroup), blockSize/descSize) - gdt
	rsv = max(0, min(rsv, blockSize/4))
	var backups int64
	for g := int64(0); g < groups; g++ {
		if hasSuper(g) {
			backups++
		}
	}
	o := backups*(1+gdt+rsv) + 1 // + resize inode's indirect block
	o += groups * 2              // block and inode bitmaps
	o += groups * ipg * inodeSize / blockSize
	o += journalBlocks(blocks)
	return o, true
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

// journalBlocks mirrors ext2fs_default_journal_size in e2fsprogs 1.47.
func journalBlocks(blocks int64) int64 {
	switch {
	case blocks < 2048:
		return 0
	case blocks < 32768:
		return 1024
	case blocks < 256*1024:
		return 4096
	case blocks < 512*1024:
		return 8192
	case blocks < 4096*1024:
		return 16384
	case blocks < 8192*1024:
		return 32768
	case blocks < 16384*1024:
		return 65536
	case blocks < 32768*1024:
		return 131072
	}
	return 262144
}

// minSizeFor finds the smallest size, in bytes rounded up to 1 MiB, at
// which u fits with all metadata, the reserved blocks and a safety margin
// of 3% plus 256 blocks.
func minSizeFor(u usage) int64 {
	blocks := max(u.blocks, 2048) // mke2fs makes no journal below 2048 blocks
	for range 1000 {
		inodes := inodeCount(blocks, u.inodes)
		o, ok := overhead(blocks, inodes)
		if !ok {
			blocks += blocksPerGroup
			continue
		}
		need := u.blocks + o
		need += need*3/100 + 256                // margin for the estimate's guesses
		need = need * 100 / (100 - reservedPct) // reserved blocks
		if need <= blocks {
			break
		}
		blocks = need
	}
	return ceilDiv(blocks*blockSize, mib) * mib
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func align4(n int64) int64 { return (n + 3) &^ 3 }
