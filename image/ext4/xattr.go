package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

const (
	xattrMagic = 0xEA020000
	// xattrInodeSpace is the in-inode xattr room after the magic.
	xattrInodeSpace = inodeSize - 128 - extraIsize - 4
	xattrBlockHdr   = 32
)

// diskXattr is an xattr as ext4 stores it: a name index standing for the
// namespace prefix, and the rest of the name.
type diskXattr struct {
	index byte
	name  string // without the prefix the index stands for
	value []byte
}

// xattrPrefixes are the name indexes of the namespaces (EXT4_XATTR_INDEX_*).
var xattrPrefixes = []struct {
	prefix string
	index  byte
}{
	{"user.", 1},
	{"trusted.", 4},
	{"security.", 6},
	{"system.", 7},
}

// toDiskXattr converts x to the form ext4 stores.
func toDiskXattr(x Xattr) (diskXattr, error) {
	switch x.Name {
	case "system.posix_acl_access", "system.posix_acl_default":
		v, err := aclToDisk(x.Value)
		if err != nil {
			return diskXattr{}, fmt.Errorf("xattr %s: %w", x.Name, err)
		}
		idx := byte(2)
		if x.Name == "system.posix_acl_default" {
			idx = 3
		}
		return diskXattr{index: idx, value: v}, nil
	}
	for _, p := range xattrPrefixes {
		if s, ok := strings.CutPrefix(x.Name, p.prefix); ok {
			if s == "" || len(s) > 255 {
				return diskXattr{}, fmt.Errorf("invalid xattr name %q", x.Name)
			}
			return diskXattr{index: p.index, name: s, value: x.Value}, nil
		}
	}
	return diskXattr{}, fmt.Errorf("unsupported xattr namespace in %q", x.Name)
}

// aclToDisk converts a POSIX ACL from the xattr format (version 2, 8-byte
// entries) to ext4's (version 1, 4-byte entries for the tags without id).
func aclToDisk(v []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(v) < 4 || (len(v)-4)%8 != 0 || le.Uint32(v) != 2 {
		return nil, errors.New("malformed POSIX ACL")
	}
	out := le.AppendUint32(nil, 1)
	for e := v[4:]; len(e) > 0; e = e[8:] {
		tag := le.Uint16(e)
		out = le.AppendUint16(out, tag)
		out = le.AppendUint16(out, le.Uint16(e[2:]))
		switch tag {
		case 0x01, 0x04, 0x10, 0x20: // user_obj, group_obj, mask, other
		case 0x02, 0x08: // user, group
			out = le.AppendUint32(out, le.Uint32(e[4:]))
		default:
			return nil, fmt.Errorf("unknown POSIX ACL tag %#x", tag)
		}
	}
	return out, nil
}

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

// xattrHash is ext4_xattr_hash_entry (with signed name chars, as x86
// kernels and e2fsprogs have always computed it).
func xattrHash(name string, value []byte) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<5 ^ h>>27 ^ uint32(int32(int8(name[i])))
	}
	if len(value) > 0 {
		padded := make([]byte, pad4(len(value)))
		copy(padded, value)
		for i := 0; i < len(padded); i += 4 {
			h = h<<16 ^ h>>16 ^ binary.LittleEndian.Uint32(padded[i:])
		}
	}
	return h
}

// encodeXattrs lays out xattrs in the inode if they all fit there, or else
// in an external block. inline is the in-inode area after the magic.
func encodeXattrs(xs []Xattr) (inline, block []byte, err error) {
	ds := make([]diskXattr, 0, len(xs))
	seen := map[string]bool{}
	for _, x := range xs {
		if seen[x.Name] {
			return nil, nil, fmt.Errorf("duplicate xattr %s", x.Name)
		}
		seen[x.Name] = true
		d, err := toDiskXattr(x)
		if err != nil {
			return nil, nil, err
		}
		ds = append(ds, d)
	}
	// the order ext4 keeps xattr blocks sorted in
	slices.SortFunc(ds, func(a, b diskXattr) int {
		if a.index != b.index {
			return int(a.index) - int(b.index)
		}
		if len(a.name) != len(b.name) {
			return len(a.name) - len(b.name)
		}
		return strings.Compare(a.name, b.name)
	})
	need := 4 // terminator
	for _, d := range ds {
		need += pad4(16+len(d.name)) + pad4(len(d.value))
	}
	if need <= xattrInodeSpace {
		buf := make([]byte, xattrInodeSpace)
		fill(buf, 0, ds)
		return buf, nil, nil
	}
	if need > blockSize-xattrBlockHdr {
		return nil, nil, fmt.Errorf("xattrs too large: %d bytes, at most %d fit", need, blockSize-xattrBlockHdr)
	}
	buf := make([]byte, blockSize)
	le := binary.LittleEndian
	le.PutUint32(buf[0:], xattrMagic)
	le.PutUint32(buf[4:], 1) // refcount
	le.PutUint32(buf[8:], 1) // blocks
	hashes := fill(buf, xattrBlockHdr, ds)
	var h uint32
	for _, eh := range hashes {
		if eh == 0 {
			h = 0
			break
		}
		h = h<<16 ^ h>>16 ^ eh
	}
	le.PutUint32(buf[12:], h)
	return nil, buf, nil
}

// fill writes entries from first and values from the end of buf (offsets
// relative to buf) and returns the entry hashes.
func fill(buf []byte, first int, ds []diskXattr) []uint32 {
	le := binary.LittleEndian
	off, vend := first, len(buf)
	var hashes []uint32
	for _, d := range ds {
		e := buf[off:]
		var voff int
		if len(d.value) > 0 {
			vend -= pad4(len(d.value))
			voff = vend
			copy(buf[vend:], d.value)
		}
		h := xattrHash(d.name, d.value)
		e[0] = byte(len(d.name))
		e[1] = d.index
		le.PutUint16(e[2:], uint16(voff))
		le.PutUint32(e[4:], 0)
		le.PutUint32(e[8:], uint32(len(d.value)))
		le.PutUint32(e[12:], h)
		copy(e[16:], d.name)
		off += pad4(16 + len(d.name))
		hashes = append(hashes, h)
	}
	return hashes
}
