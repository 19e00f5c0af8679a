package image

import (
	"os"

	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/image/fat"
)

// dataFiles counts the regular files with data in the tree at root, and their bytes: what
// writing the sysroot partition reports progress in. A hard-linked file counts once.
func dataFiles(root *ext4.Inode) (files, bytes int64) {
	seen := map[*ext4.Inode]bool{}
	var walk func(*ext4.Inode)
	walk = func(in *ext4.Inode) {
		if seen[in] {
			return
		}
		seen[in] = true
		if in.Mode&ext4.ModeTypeMask == ext4.ModeRegular && in.Size > 0 {
			files++
			bytes += in.Size
		}
		for _, e := range in.Entries {
			walk(e.Inode)
		}
	}
	walk(root)
	return files, bytes
}

// fatBytes returns the size of the files of a FAT partition.
func fatBytes(files []fat.File) int64 {
	var n int64
	for _, f := range files {
		if f.Data != nil {
			n += int64(len(f.Data))
		} else if st, err := os.Stat(f.Source); err == nil {
			n += st.Size()
		}
	}
	return n
}
