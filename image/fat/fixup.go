package fat

import (
	"encoding/binary"
	"fmt"
	"os"
)

// layout is the geometry of a formatted FAT16/FAT32 volume.
type layout struct {
	f            *os.File
	fat32        bool
	clusterBytes int64
	fatStart     int64 // absolute offset of the first FAT
	fatBytes     int64
	nFATs        int
	rootStart    int64 // FAT16 fixed root directory
	rootEntries  int
	dataStart    int64 // absolute offset of cluster 2
	rootCluster  uint32
}

func readLayout(f *os.File, offset int64) (*layout, error) {
	buf := make([]byte, sectorSize)
	if _, err := f.ReadAt(buf, offset); err != nil {
		return nil, fmt.Errorf("fat: read boot sector: %w", err)
	}
	bs, err := readBootSector(f, offset)
	if err != nil {
		return nil, err
	}
	l := &layout{
		f:            f,
		fat32:        binary.LittleEndian.Uint16(buf[22:]) == 0,
		clusterBytes: int64(buf[13]) * sectorSize,
		fatStart:     offset + int64(bs.reserved)*sectorSize,
		fatBytes:     int64(bs.fatSectors) * sectorSize,
		nFATs:        int(bs.nFATs),
		rootEntries:  int(bs.rootEntries),
	}
	l.rootStart = l.fatStart + int64(l.nFATs)*l.fatBytes
	l.dataStart = l.rootStart + int64(l.rootEntries)*32
	if l.fat32 {
		l.rootCluster = binary.LittleEndian.Uint32(buf[44:])
	}
	return l, nil
}

func (l *layout) entry(c uint32) (uint32, error) {
	if l.fat32 {
		var b [4]byte
		_, err := l.f.ReadAt(b[:], l.fatStart+int64(c)*4)
		return binary.LittleEndian.Uint32(b[:]) & 0x0fffffff, err
	}
	var b [2]byte
	_, err := l.f.ReadAt(b[:], l.fatStart+int64(c)*2)
	return uint32(binary.LittleEndian.Uint16(b[:])), err
}

func (l *layout) setEntry(c, v uint32) error {
	for i := 0; i < l.nFATs; i++ {
		base := l.fatStart + int64(i)*l.fatBytes
		var err error
		if l.fat32 {
			var b [4]byte
			if _, err = l.f.ReadAt(b[:], base+int64(c)*4); err != nil {
				return err
			}
			old := binary.LittleEndian.Uint32(b[:])
			binary.LittleEndian.PutUint32(b[:], old&0xf0000000|v&0x0fffffff)
			_, err = l.f.WriteAt(b[:], base+int64(c)*4)
		} else {
			var b [2]byte
			binary.LittleEndian.PutUint16(b[:], uint16(v))
			_, err = l.f.WriteAt(b[:], base+int64(c)*2)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *layout) isEOC(v uint32) bool {
	if l.fat32 {
		return v >= 0x0ffffff8
	}
	return v >= 0xfff8
}

func (l *layout) maxCluster() uint32 {
	if l.fat32 {
		return uint32(l.fatBytes / 4)
	}
	return uint32(l.fatBytes / 2)
}

// chain returns the clusters of the chain starting at c.
func (l *layout) chain(c uint32) ([]uint32, error) {
	var out []uint32
	for c >= 2 && c < l.maxCluster() {
		out = append(out, c)
		if len(out) > int(l.maxCluster()) {
			return nil, fmt.Errorf("fat: cluster chain loop at %d", c)
		}
		v, err := l.entry(c)
		if err != nil {
			return nil, err
		}
		if l.isEOC(v) || v < 2 {
			break
		}
		c = v
	}
	return out, nil
}

// fixEmptyFiles walks the directory tree and releases the cluster that
// go-diskfs v1.9.4 allocates to zero-length files (fsck.vfat: "File size
// is 0 bytes, cluster chain length is > 0 bytes"); an empty file must have
// start cluster 0. It also zeroes the ".." cluster of top-level
// directories, which go-diskfs sets to the FAT32 root cluster.
func fixEmptyFiles(f *os.File, offset int64) error {
	l, err := readLayout(f, offset)
	if err != nil {
		return err
	}
	var roots []int64
	if l.fat32 {
		cl, err := l.chain(l.rootCluster)
		if err != nil {
			return err
		}
		for _, c := range cl {
			roots = append(roots, l.clusterOffset(c))
		}
		return l.walk(roots, l.clusterBytes, 0)
	}
	return l.walk([]int64{l.rootStart}, int64(l.rootEntries)*32, 0)
}

func (l *layout) clusterOffset(c uint32) int64 {
	return l.dataStart + int64(c-2)*l.clusterBytes
}

// walk scans directory entries in the given regions (each regionBytes long).
func (l *layout) walk(regions []int64, regionBytes int64, depth int) error {
	if depth > 64 {
		return fmt.Errorf("fat: directory tree too deep")
	}
	buf := make([]byte, regionBytes)
	for _, r := range regions {
		if _, err := l.f.ReadAt(buf, r); err != nil {
			return fmt.Errorf("fat: read directory: %w", err)
		}
		for i := int64(0); i+32 <= regionBytes; i += 32 {
			e := buf[i : i+32]
			switch {
			case e[0] == 0:
				return nil
			case e[0] == '.' && e[1] == '.' && depth == 1:
				// go-diskfs points ".." of a top-level FAT32 directory at
				// the root cluster; it must be 0 (fsck.vfat: "Invalid '..'
				// entry in the second slot").
				var z [2]byte
				if _, err := l.f.WriteAt(z[:], r+i+26); err != nil {
					return err
				}
				if _, err := l.f.WriteAt(z[:], r+i+20); err != nil {
					return err
				}
				continue
			case e[0] == 0xe5, e[11] == 0x0f, e[11]&0x08 != 0, e[0] == '.':
				continue
			}
			c := uint32(binary.LittleEndian.Uint16(e[26:]))
			if l.fat32 {
				c |= uint32(binary.LittleEndian.Uint16(e[20:])) << 16
			}
			size := binary.LittleEndian.Uint32(e[28:])
			if e[11]&0x10 != 0 {
				cl, err := l.chain(c)
				if err != nil {
					return err
				}
				var sub []int64
				for _, sc := range cl {
					sub = append(sub, l.clusterOffset(sc))
				}
				if err := l.walk(sub, l.clusterBytes, depth+1); err != nil {
					return err
				}
				continue
			}
			if size != 0 || c == 0 {
				continue
			}
			cl, err := l.chain(c)
			if err != nil {
				return err
			}
			for _, fc := range cl {
				if err := l.setEntry(fc, 0); err != nil {
					return fmt.Errorf("fat: write FAT: %w", err)
				}
			}
			var z [2]byte
			if _, err := l.f.WriteAt(z[:], r+i+26); err != nil {
				return err
			}
			if l.fat32 {
				if _, err := l.f.WriteAt(z[:], r+i+20); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
