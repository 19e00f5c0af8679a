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
package ext4
