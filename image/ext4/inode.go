package ext4

import "encoding/binary"

// extentsFL is EXT4_EXTENTS_FL: the inode maps its blocks with an extent tree.
const extentsFL = 0x80000

// inode encodes the 256-byte on-disk inode of n.
func (l *layout) inode(n *node) []byte {
	b := make([]byte, inodeSize)
	le := binary.LittleEndian
	in := n.in
	le.PutUint16(b[0x0:], uint16(in.Mode))
	le.PutUint16(b[0x2:], uint16(in.UID))
	le.PutUint16(b[0x78:], uint16(in.UID>>16))
	le.PutUint16(b[0x18:], uint16(in.GID))
	le.PutUint16(b[0x7A:], uint16(in.GID>>16))
	var size int64
	switch in.Mode & ModeTypeMask {
	case ModeRegular:
		size = in.Size
	case ModeDir:
		size = int64(len(n.block))
	case ModeSymlink:
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
	sectors := (n.nblocks + int64(len(n.leaves))) * (blockSize / 512)
	if n.xblk != 0 {
		sectors += blockSize / 512
		le.PutUint32(b[0x68:], n.xblk)
	}
	le.PutUint32(b[0x1C:], uint32(sectors))
	le.PutUint16(b[0x74:], uint16(sectors>>32))
	le.PutUint16(b[0x80:], extraIsize)
	if in.Mode&ModeTypeMask == ModeSymlink && n.nblocks == 0 {
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
				le.PutUint32(e[0:], n.extents[i*leafExtents].lblk)
				le.PutUint32(e[4:], blk)
			}
		}
	}
	if n.xinline != nil {
		le.PutUint32(b[0x80+extraIsize:], xattrMagic)
		copy(b[0x80+extraIsize+4:], n.xinline)
	}
	return b
}

// putExtentHeader encodes an ext4_extent_header.
func putExtentHeader(b []byte, entries, maxEntries, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xF30A)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(maxEntries))
	le.PutUint16(b[6:], uint16(depth))
}

// putExtent encodes an ext4_extent (a leaf entry).
func putExtent(b []byte, e extent) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], e.lblk)
	le.PutUint16(b[4:], uint16(e.len))
	le.PutUint16(b[6:], 0)
	le.PutUint32(b[8:], e.pblk)
}

// leafBlocks encodes the extent tree leaves of n.
func leafBlocks(n *node) [][]byte {
	var out [][]byte
	for i := range n.leaves {
		b := make([]byte, blockSize)
		ext := n.extents[i*leafExtents : min((i+1)*leafExtents, len(n.extents))]
		putExtentHeader(b, len(ext), leafExtents, 0)
		for j, e := range ext {
			putExtent(b[12+12*j:], e)
		}
		out = append(out, b)
	}
	return out
}
