// Package rootfs reads root filesystem trees for committing: a directory walked on disk or a
// tar stream, each normalised into a sequence of Entry values, plus the per-path ownership
// overrides and skip lists a build system supplies.
//
// # Paths
//
// Every path, whether a tar member name, a hard link target, an override or a skip-list
// line, is normalised the same way: leading "/" and "./" are removed and the rest is cleaned
// with path.Clean, so "/etc/passwd", "./etc/passwd" and "etc//passwd" all become
// "etc/passwd", and "/", "./" and "." become the root ".". Absolute names are thus taken
// relative to the tree root, as GNU tar does when extracting. A path that is empty or that
// climbs out of the root once cleaned ("../x", "a/../../x") is an error.
//
// # Tar sources
//
// OpenTar reads a tar stream, compressed with gzip, bzip2, xz or zstd or not at all; the
// compression is recognised from the first bytes, so the stream need not be seekable.
// Ownership comes from the numeric uid and gid fields (user and group names are ignored),
// permission bits including setuid, setgid and sticky from the mode field, and the file type
// from the type flag. Extended attributes come from the PAX records "SCHILY.xattr.NAME"
// (GNU tar, star, bsdtar) and "LIBARCHIVE.xattr.NAME" (bsdtar: NAME percent-encoded, value
// base64); when both describe the same attribute the SCHILY record wins. An attribute with
// an empty value is left out; one with an empty name is an error.
//
// Members are yielded in archive order. A tar may omit directories (consumers create missing
// parents) and may hold the same path more than once, as tar --append produces; the source
// yields every occurrence and the later one describes the path, as extraction would leave
// it. A hard link member (type '1') yields an entry of type regular with HardlinkTo set to
// its target, an earlier regular file or hard link; as in extraction, the link shares the
// content the target has at that point, even if a later member replaces the path that first
// held it. A link to a path not then a regular file or hard link, or to itself, is an
// error. Device nodes and FIFOs are yielded with their type bits; it is for the consumer to
// skip or reject them. PAX global headers and GNU volume labels are skipped; other member
// types are an error.
//
// Errors name the tar member concerned, and with OpenTarNamed or OpenTarFile the tarball
// too. Truncated or corrupt input is reported as such, whether it shows up in a header
// (from Next) or in a file's data (from reading Content), for instance "rootfs.tar: tar
// member usr/bin/x: unexpected EOF (truncated tarball?)". A stream that stops at a member
// boundary without the end-of-archive marker is reported as truncated too; all errors for
// truncated input wrap io.ErrUnexpectedEOF.
// Once the archive ends, the rest of the stream is read, so that the checksums of compressed
// input are verified; for the same reason, garbage after a compressed stream is an error.
//
// # Directory sources
//
// WalkDir walks a directory on disk depth first, the root "." first and each directory's
// names in bytewise order, holding only the pending names of the directories being walked.
// Ownership, mode and extended attributes are those of the files themselves (lstat,
// llistxattr), so a tree meant for uid 0 must have been created as root or under fakeroot,
// or be corrected with overrides. All extended attributes the filesystem reports are
// yielded, including any security.selinux labels of the build host. Files with several
// links are reported once with content and then as hard links to that first path.
//
// # Overrides
//
// ParseOverrides reads a file of per-path metadata changes, one path per line followed by
// whitespace-separated key=value fields:
//
//	# path          fields
//	/usr/bin/sudo   uid=0 gid=0 mode=4755 xattr.security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=
//	/home/user      uid=1000 gid=1000
//	/usr/bin/ping   xattr.security.capability=
//
// Blank lines and lines starting with "#" are ignored. The fields are:
//
//	uid=N, gid=N      numeric owner and group
//	mode=OCTAL        permission bits (at most 7777); the file type is kept
//	xattr.NAME=VALUE  set extended attribute NAME; an empty VALUE removes it
//
// VALUE is "0s" followed by base64 or "0x" followed by hex (the encodings of getfattr -e),
// a double-quoted string with Go (and getfattr) escapes such as \040 for a space, or else
// the literal text. Neither paths nor values may contain unescaped whitespace. Each path may
// appear on one line only, and each field once per line.
//
// # Skip lists
//
// ParseSkipList reads the paths to leave out of a tree, one per line, like ostree commit
// --skip-list; blank lines and lines starting with "#" are ignored and a listed directory
// takes everything under it along.
//
// Errors in either file have the form "name:line: message". Lines whose path matches no
// entry of a tree are reported by Overrides.Unmatched and SkipList.Unmatched, given the
// paths the consumer saw matched (Overrides.Apply, SkipList.Match).
//
// # Checks
//
// Entry.Check refuses what a tree that deploys cannot hold: names that ostree refuses
// or longer than NAME_MAX, and symlink targets and xattrs beyond the limits of Linux and
// ext4 (see the limits in internal/ostree). Consumers call it on each entry after applying
// overrides, so that both sources and the overrides pass the same check.
package rootfs
