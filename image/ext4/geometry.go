package ext4

import "fmt"

// The fixed parameters of the filesystems Write makes.
const (
	blockSize       = 4096
	blocksPerGroup  = 32768
	inodeSize       = 256
	extraIsize      = 32 // i_extra_isize: the inode fields used past the first 128 bytes
	inodesPerBlock  = blockSize / inodeSize
	descSize        = 32 // group descriptor size without the 64bit feature
	rootIno         = 2
	journalIno      = 8
	lostFoundIno    = 11 // the first non-reserved inode
	maxExtentLen    = 32768
	leafExtents     = (blockSize - 12) / 12 // extents in one extent tree block
	maxExtents      = 4 * leafExtents       // with a depth-1 tree
	inodeRatio      = 16384                 // bytes per inode, as mke2fs defaults
	lostFoundBlocks = 4                     // as mke2fs makes lost+found
	mib             = 1 << 20
)

// geometry is the layout of the block groups of a filesystem.
type geometry struct {
	blocks  int64 // s_blocks_count
	groups  int64
	ipg     int64 // inodes per group
	itb     int64 // inode table blocks per group
	gdtb    int64 // group descriptor table blocks
	jblocks int64 // journal blocks
}

// meta is the number of metadata blocks at the start of group i: the
// superblock and group descriptor backups if any, the two bitmaps and the
// inode table.
func (g *geometry) meta(i int64) int64 {
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

// groupEnd is the block after the last one of group i.
func (g *geometry) groupEnd(i int64) int64 { return min((i+1)*blocksPerGroup, g.blocks) }

// newGeometry chooses the layout of a filesystem of at most blocks blocks
// holding inodes inodes (reserved ones included).
func newGeometry(blocks, inodes int64) (*geometry, error) {
	if blocks > 1<<32-blocksPerGroup {
		blocks = 1<<32 - blocksPerGroup
	}
	g := &geometry{blocks: blocks, jblocks: 1024}
	if blocks >= blocksPerGroup {
		g.jblocks = 4096
	}
	want := inodes + inodes/5 + 64
	for {
		if g.blocks < 64 {
			return nil, fmt.Errorf("%w: %d bytes hold no filesystem", ErrTooSmall, blocks*blockSize)
		}
		g.groups = (g.blocks + blocksPerGroup - 1) / blocksPerGroup
		g.gdtb = (g.groups*descSize + blockSize - 1) / blockSize
		ipg := max(want, g.blocks*blockSize/inodeRatio)
		ipg = (ipg + g.groups - 1) / g.groups
		ipg = (ipg + inodesPerBlock - 1) / inodesPerBlock * inodesPerBlock
		if ipg > blocksPerGroup {
			// the ratio default never exceeds this; only the need can
			if (want+g.groups-1)/g.groups > blocksPerGroup {
				return nil, fmt.Errorf("%w: %d inodes need more than %d block groups", ErrTooSmall, inodes, g.groups)
			}
			ipg = blocksPerGroup
		}
		g.ipg = ipg
		g.itb = ipg / inodesPerBlock
		last := g.groups - 1
		if g.blocks-last*blocksPerGroup < g.meta(last)+64 {
			if last == 0 {
				// a single group: shrink the inode table to what fits
				room := g.blocks - 1 - g.gdtb - 2 - 64
				ipg = max(room*inodesPerBlock/2, 0) / inodesPerBlock * inodesPerBlock
				if ipg < want {
					return nil, fmt.Errorf("%w: %d bytes hold no filesystem with %d inodes", ErrTooSmall, blocks*blockSize, inodes)
				}
				g.ipg = ipg
				g.itb = ipg / inodesPerBlock
				return g, nil
			}
			g.blocks = last * blocksPerGroup // drop the short last group
			continue
		}
		return g, nil
	}
}
