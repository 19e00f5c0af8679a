package ext4

import (
	"crypto/sha256"
	"encoding/binary"
)

// fsTime is the filesystem's own timestamp: the newest mtime that is not in the future.
func (l *layout) fsTime() uint32 {
	return uint32(min(max(l.maxMtime, 0), 1<<32-1))
}

// superblock encodes the 1024-byte superblock of the filesystem.
func (l *layout) superblock(uuid [16]byte, label string) []byte {
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
	le.PutUint32(sb[0x20:], blocksPerGroup)
	le.PutUint32(sb[0x24:], blocksPerGroup)
	le.PutUint32(sb[0x28:], uint32(g.ipg))
	t := l.fsTime()
	le.PutUint32(sb[0x30:], t)      // wtime
	le.PutUint16(sb[0x36:], 0xFFFF) // max mount count -1
	le.PutUint16(sb[0x38:], 0xEF53)
	le.PutUint16(sb[0x3A:], 1) // clean
	le.PutUint16(sb[0x3C:], 1) // errors: continue
	le.PutUint32(sb[0x40:], t) // lastcheck
	le.PutUint32(sb[0x4C:], 1) // dynamic rev
	le.PutUint32(sb[0x54:], lostFoundIno)
	le.PutUint16(sb[0x58:], inodeSize)
	le.PutUint32(sb[0x5C:], 0x4|0x8)           // has_journal, ext_attr
	le.PutUint32(sb[0x60:], 0x2|0x40)          // filetype, extents
	le.PutUint32(sb[0x64:], 0x1|0x2|0x20|0x40) // sparse_super, large_file, dir_nlink, extra_isize
	copy(sb[0x68:], uuid[:])
	copy(sb[0x78:], label)
	le.PutUint32(sb[0xE0:], journalIno)
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
	le.PutUint16(sb[0x15C:], extraIsize)
	le.PutUint16(sb[0x15E:], extraIsize)
	le.PutUint32(sb[0x160:], 1) // signed directory hash
	return sb
}

// groupDescriptors encodes the group descriptor table, given the block
// bitmaps and the number of directories of each group.
func (l *layout) groupDescriptors(bbm [][]byte, dirsPerGroup []int64) []byte {
	g := l.geo
	le := binary.LittleEndian
	gdt := make([]byte, g.gdtb*blockSize)
	for i := range g.groups {
		d := gdt[i*descSize:]
		start := i * blocksPerGroup
		bb := start + g.meta(i) - 2 - g.itb
		le.PutUint32(d[0x0:], uint32(bb))
		le.PutUint32(d[0x4:], uint32(bb+1))
		le.PutUint32(d[0x8:], uint32(bb+2))
		var free int64
		for b := int64(0); b < blocksPerGroup; b++ {
			if bbm[i][b/8]&(1<<(b%8)) == 0 {
				free++
			}
		}
		le.PutUint16(d[0xC:], uint16(free))
		le.PutUint16(d[0xE:], uint16(g.ipg-l.inodesUsed(i)))
		le.PutUint16(d[0x10:], uint16(dirsPerGroup[i]))
	}
	return gdt
}

// journalSuperblock encodes the jbd2 superblock (version 2, no features,
// an empty log) of a journal of jblocks blocks in the filesystem with the
// given UUID.
func journalSuperblock(jblocks int64, uuid []byte) []byte {
	jsb := make([]byte, blockSize)
	be := binary.BigEndian
	be.PutUint32(jsb[0x0:], 0xC03B3998)
	be.PutUint32(jsb[0x4:], 4)
	be.PutUint32(jsb[0xC:], blockSize)
	be.PutUint32(jsb[0x10:], uint32(jblocks))
	be.PutUint32(jsb[0x14:], 1)
	be.PutUint32(jsb[0x18:], 1)
	copy(jsb[0x30:], uuid)
	be.PutUint32(jsb[0x40:], 1)
	return jsb
}
