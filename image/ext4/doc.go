// Package ext4 writes populated ext4 filesystems into a region of an image
// file or block device, natively and without root or external tools.
//
// Write lays out a tree of Inode values (regular files, directories and
// symlinks, with hard links as one *Inode named in several directories)
// with the owners, modes, mtimes and extended attributes (POSIX ACLs
// included) given for each, and a journal. Regular files' data comes from
// their Data functions, which Write calls from several goroutines in
// parallel, each file's bytes going straight to its blocks; the image stays
// sparse and the same input gives a byte-identical filesystem. WriteSize
// tells the size a tree needs.
//
// The package has its own input types (Inode, DirEntry, Xattr and the Mode
// constants, which have st_mode's values) and depends on no other package
// of this module; callers convert their trees, as image does from an OSTree
// deployment.
//
// # What it writes
//
// A filesystem of 4 KiB blocks in block groups of 32768 blocks, at most
// 16 TiB (a larger region is not filled), with the features has_journal, ext_attr, filetype, extents,
// sparse_super, large_file, dir_nlink and extra_isize:
//   - 256-byte inodes, one per 16 KiB as mke2fs makes them or more if the
//     tree needs them, with 32-bit owners and timestamps in seconds (the
//     mtime is used as access, change and creation time);
//   - files, directories and slow symlinks mapped by extents, in the inode
//     or in a tree of depth 1 with up to four leaf blocks (1360 extents of
//     at most 128 MiB); symlink targets under 60 bytes in the inode;
//   - linear directories, whose entries are in the order given;
//   - xattrs in the inode if they all fit there, else in one external block
//     per inode; POSIX ACLs converted to ext4's on-disk format;
//   - an empty journal of 4 MiB (16 MiB from 128 MiB of filesystem on), a
//     lost+found as mke2fs makes it, and superblock and group descriptor
//     backups in groups 0, 1 and the powers of 3, 5 and 7;
//   - a filesystem UUID given or derived from the label, offset and size,
//     and the newest mtime not in the future as the filesystem's time.
//
// # What it does not write
//
// No hashed directories (dir_index, htree), no metadata checksums
// (metadata_csum), no 64bit, flex_bg, huge_file, inline_data or
// resize_inode features, no shared xattr blocks, no reserved blocks, no
// device nodes, FIFOs or sockets, and no sub-second timestamps.
package ext4
