package ext4

import (
	"encoding/binary"
	"slices"
)

// writeMeta writes group metadata, inode tables, directory, symlink,
// extent tree and xattr blocks and the journal superblock; all but the
// primary superblock.
func (l *layout) writeMeta(w *imgWriter, sb []byte) error {
	g := l.geo
	le := binary.LittleEndian
	// scattered blocks: block number -> contents
	blocks := map[uint32][]byte{}
	putRuns := func(n *node, data []byte) {
		for _, e := range n.extents {
			for i := uint32(0); i < e.len; i++ {
				blocks[e.pblk+i] = data[int(e.lblk+i)*blockSize : int(e.lblk+i+1)*blockSize]
			}
		}
	}
	nodes := append([]*node{&l.journal}, l.nodes...)
	// block bitmap marks: every allocated block
	bbm := make([][]byte, g.groups)
	for i := range bbm {
		bbm[i] = make([]byte, blockSize)
		n := g.groupEnd(int64(i)) - int64(i)*blocksPerGroup
		for b := int64(0); b < g.meta(int64(i)); b++ {
			bbm[i][b/8] |= 1 << (b % 8)
		}
		for b := n; b < blocksPerGroup; b++ {
			bbm[i][b/8] |= 1 << (b % 8)
		}
	}
	mark := func(blk uint32, cnt uint32) {
		for b := blk; b < blk+cnt; b++ {
			grp, off := b/blocksPerGroup, b%blocksPerGroup
			bbm[grp][off/8] |= 1 << (off % 8)
		}
	}
	itab := make([]byte, len(l.nodes)*inodeSize)
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
		if n.ino != journalIno && n.in.Mode&ModeTypeMask == ModeDir {
			dirsPerGroup[int64(n.ino-1)/g.ipg]++
		}
		copy(itab[int(n.ino-1)*inodeSize:], l.inode(n))
	}
	blocks[l.journal.extents[0].pblk] = journalSuperblock(g.jblocks, sb[0x68:0x78])
	if !w.zeroed {
		zero := make([]byte, blockSize)
		for _, e := range l.journal.extents {
			for i := uint32(0); i < e.len; i++ {
				if e.pblk+i != l.journal.extents[0].pblk {
					blocks[e.pblk+i] = zero
				}
			}
		}
	}
	gdt := l.groupDescriptors(bbm, dirsPerGroup)
	// per group: [superblock, gdt], bitmaps, inode table
	for i := range g.groups {
		start := i * blocksPerGroup
		var buf []byte
		first := start
		if hasSuper(i) {
			if i == 0 {
				first = 1 // block 0 (primary superblock) goes last
			} else {
				s := make([]byte, blockSize)
				copy(s, sb)
				le.PutUint16(s[0x5A:], uint16(i))
				buf = append(buf, s...)
			}
			buf = append(buf, gdt...)
		}
		buf = append(buf, bbm[i]...)
		ibm := make([]byte, blockSize)
		usedHere := l.inodesUsed(i)
		for b := int64(0); b < blocksPerGroup; b++ {
			if b < usedHere || b >= g.ipg {
				ibm[b/8] |= 1 << (b % 8)
			}
		}
		buf = append(buf, ibm...)
		tbytes := usedHere * inodeSize
		if !w.zeroed {
			tbytes = g.itb * blockSize
		}
		tbytes = (tbytes + blockSize - 1) / blockSize * blockSize
		t := make([]byte, tbytes)
		if usedHere > 0 {
			copy(t, itab[i*g.ipg*inodeSize:(i*g.ipg+usedHere)*inodeSize])
		}
		buf = append(buf, t...)
		if err := w.writeBlocks(first, buf); err != nil {
			return err
		}
	}
	return writeScattered(w, blocks)
}

// writeScattered writes blocks (block number -> contents), coalescing
// consecutive ones into writes of up to 8 MiB.
func writeScattered(w *imgWriter, blocks map[uint32][]byte) error {
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

// inodesUsed is the number of used inodes in group i: the first
// len(l.nodes) inodes, the reserved ones included.
func (l *layout) inodesUsed(i int64) int64 {
	return min(max(int64(len(l.nodes))-i*l.geo.ipg, 0), l.geo.ipg)
}
