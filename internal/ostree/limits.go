package ostree

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of what a checkout can create on Linux, and of what fits in the ext4 filesystems
// this module writes (4 KiB blocks, no ea_inode feature). Content beyond them passes
// ostree's own checks but fails to deploy, so commit refuses it and fsck reports it.
const (
	// MaxNameLen is NAME_MAX, the longest file name in bytes.
	MaxNameLen = 255
	// MaxLinkTarget is the longest symlink target in bytes: PATH_MAX (4096) less the
	// terminating NUL; ext4 also keeps a target in one 4 KiB block with its NUL.
	MaxLinkTarget = 4095
	// MaxXattrName is XATTR_NAME_MAX, the longest xattr name including its namespace.
	MaxXattrName = 255
	// MaxXattrValue is XATTR_SIZE_MAX, the largest xattr value.
	MaxXattrValue = 65536
	// MaxXattrSpace is the room for one file's xattrs, counted as XattrSpace counts them:
	// without ea_inode, ext4 keeps them in the inode or else in one 4 KiB block, whose
	// first 32 bytes are its header.
	MaxXattrSpace = 4096 - 32
)

// xattrNamespaces are the name prefixes of the xattrs Linux can set on ext4, with the
// index ext4 stores instead of the prefix (POSIX ACLs are in aclNames).
var xattrNamespaces = []string{"user.", "trusted.", "security."}

// aclNames are the xattrs of POSIX ACLs, the only system.* ones ext4 stores; ext4 keeps
// them as an index and no name.
var aclNames = []string{"system.posix_acl_access", "system.posix_acl_default"}

// checkName returns why name may not be an entry of a dirtree by ostree's rules
// (ot_util_filename_validate, used by its fsck, pull and checkout): it must be non-empty,
// not "." or "..", hold no "/" or NUL (a GVariant string cannot) and be valid UTF-8.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case name == "." || name == "..":
		return fmt.Errorf("file name %q is not allowed", name)
	case strings.ContainsAny(name, "/\x00"):
		return errors.New("file name contains a / or NUL")
	case !utf8.ValidString(name):
		return errors.New("file name is not valid UTF-8")
	}
	return nil
}

// ValidName reports whether name may appear in a dirtree by ostree's rules.
func ValidName(name string) bool { return checkName(name) == nil }

// CheckName returns why name cannot be a file name in a tree that deploys: ostree's rules
// (see ValidName) and Linux's NAME_MAX. It returns nil for a good name.
func CheckName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("file name is %d bytes, more than the %d Linux allows", len(name), MaxNameLen)
	}
	return nil
}

// checkTarget returns why target may not be a symlink target in a file header: an
// ostree symlink needs one, and the GVariant string holding it must be valid UTF-8
// without NUL (ostree reads another string back, and the checksum no longer matches).
func checkTarget(target string) error {
	switch {
	case target == "":
		return errors.New("symlink with an empty target")
	case strings.IndexByte(target, 0) >= 0:
		return errors.New("symlink target contains NUL")
	case !utf8.ValidString(target):
		return errors.New("symlink target is not valid UTF-8")
	}
	return nil
}

// CheckLinkTarget returns why target cannot be the target of a symlink that deploys:
// ostree's rules (non-empty, valid UTF-8) and PATH_MAX (MaxLinkTarget bytes).
func CheckLinkTarget(target string) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	if len(target) > MaxLinkTarget {
		return fmt.Errorf("symlink target is %d bytes, more than the %d Linux allows", len(target), MaxLinkTarget)
	}
	return nil
}

// CheckXattr returns why a checkout on ext4 cannot set the xattr x on every kind of file:
// an empty, NUL-holding or over-long (MaxXattrName) name, a namespace Linux cannot set on
// ext4 (user.*, trusted.*, security.* and the POSIX ACLs can be), or a value over
// MaxXattrValue.
func CheckXattr(x Xattr) error {
	switch {
	case x.Name == "":
		return errors.New("xattr with an empty name")
	case strings.IndexByte(x.Name, 0) >= 0:
		return fmt.Errorf("xattr name %q contains NUL", x.Name)
	case len(x.Name) > MaxXattrName:
		return fmt.Errorf("xattr name %.40q... is %d bytes, more than the %d Linux allows", x.Name, len(x.Name), MaxXattrName)
	case len(x.Value) > MaxXattrValue:
		return fmt.Errorf("xattr %q: value is %d bytes, more than the %d Linux allows", x.Name, len(x.Value), MaxXattrValue)
	}
	if _, ok := xattrSuffix(x.Name); !ok {
		return fmt.Errorf("xattr %q: not in a namespace ext4 stores (user., trusted., security., system.posix_acl_*)", x.Name)
	}
	return nil
}

// CheckXattrs returns why a checkout on ext4 cannot set all the xattrs of a file of the
// given st_mode: one CheckXattr refuses, a user.* xattr on a file other than a regular
// file or directory (Linux allows them on those only), a name given twice, or more than
// MaxXattrSpace bytes in all (see XattrSpace).
func CheckXattrs(xs []Xattr, mode uint32) error {
	seen := make(map[string]bool, len(xs))
	for _, x := range xs {
		if err := CheckXattr(x); err != nil {
			return err
		}
		if seen[x.Name] {
			return fmt.Errorf("xattr %q given twice", x.Name)
		}
		seen[x.Name] = true
		if t := mode & ModeTypeMask; strings.HasPrefix(x.Name, "user.") && t != ModeRegular && t != ModeDir {
			return fmt.Errorf("xattr %q: Linux allows user.* xattrs on regular files and directories only", x.Name)
		}
	}
	if n := XattrSpace(xs); n > MaxXattrSpace {
		return fmt.Errorf("xattrs take %d bytes in ext4, more than the %d of one 4 KiB block", n, MaxXattrSpace)
	}
	return nil
}

// xattrSuffix returns the part of an xattr name ext4 stores after the namespace index,
// and whether the namespace is one ext4 stores.
func xattrSuffix(name string) (string, bool) {
	for _, acl := range aclNames {
		if name == acl {
			return "", true
		}
	}
	for _, ns := range xattrNamespaces {
		if s, ok := strings.CutPrefix(name, ns); ok && s != "" {
			return s, true
		}
	}
	return "", false
}

// XattrSpace returns the bytes the xattrs take in an ext4 xattr block as image/ext4 writes
// it: per attribute a 16-byte entry plus the name without its namespace prefix, and the
// value, each rounded up to 4 bytes; and a 4-byte end marker. POSIX ACL values are counted
// in the xattr format, which is never smaller than ext4's.
func XattrSpace(xs []Xattr) int {
	pad := func(n int) int { return (n + 3) &^ 3 }
	n := 4
	for _, x := range xs {
		s, _ := xattrSuffix(x.Name)
		n += pad(16+len(s)) + pad(len(x.Value))
	}
	return n
}

// CheckLimits returns why a checkout on Linux ext4 cannot create the file the header
// describes (CheckLinkTarget for a symlink, CheckXattrs), or nil.
func (h *FileHeader) CheckLimits() error {
	if h.IsSymlink() {
		if err := CheckLinkTarget(h.LinkTarget); err != nil {
			return err
		}
	}
	return CheckXattrs(h.Xattrs, h.Mode)
}

// CheckLimits returns why a checkout on Linux ext4 cannot set the directory's xattrs, or
// nil.
func (m *DirMeta) CheckLimits() error { return CheckXattrs(m.Xattrs, m.Mode) }
