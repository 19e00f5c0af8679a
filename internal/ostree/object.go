// Package ostree implements the OSTree 2022.7 repository format: object types and checksums,
// the GVariant layouts of file headers, dirtrees, dirmetas and commits, and repositories
// (modes, loose objects, refs, config, summary and the repository lock).
package ostree

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Checksum is the SHA-256 name of an object.
type Checksum [32]byte

// String returns the 64-character lowercase hex form.
func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// ParseChecksum parses a 64-character hex checksum.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if len(s) != 64 {
		return c, fmt.Errorf("invalid checksum %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("invalid checksum %q: %v", s, err)
	}
	return c, nil
}

// ChecksumFromBytes converts a 32-byte binary checksum, as stored inside metadata objects.
func ChecksumFromBytes(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != len(c) {
		return c, fmt.Errorf("invalid binary checksum of length %d, want 32", len(b))
	}
	copy(c[:], b)
	return c, nil
}

// Sum returns the checksum of a metadata object's bytes.
func Sum(data []byte) Checksum { return sha256.Sum256(data) }

// ObjectType is the kind of an object, numbered as in libostree's OstreeObjectType.
type ObjectType uint8

// Object types. Only File, DirTree, DirMeta and Commit carry content addressed by their own
// checksum; CommitMeta and TombstoneCommit are named by the commit they belong to.
const (
	ObjFile            ObjectType = 1
	ObjDirTree         ObjectType = 2
	ObjDirMeta         ObjectType = 3
	ObjCommit          ObjectType = 4
	ObjTombstoneCommit ObjectType = 5
	ObjCommitMeta      ObjectType = 6
)

var typeNames = map[ObjectType]string{
	ObjFile: "file", ObjDirTree: "dirtree", ObjDirMeta: "dirmeta", ObjCommit: "commit",
	ObjTombstoneCommit: "tombstone-commit", ObjCommitMeta: "commitmeta",
}

// String returns the type's name, which is also its loose-object file suffix.
func (t ObjectType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("objtype(%d)", uint8(t))
}

// selfNamed reports whether objects of this type are named by the SHA-256 of their bytes
// as stored (content objects are named by that of their canonical stream instead).
func (t ObjectType) selfNamed() bool {
	return t == ObjDirTree || t == ObjDirMeta || t == ObjCommit
}

// IsMeta reports whether objects of this type are GVariant metadata stored verbatim.
func (t ObjectType) IsMeta() bool { return t != ObjFile }

// Variant type strings of the metadata objects.
const (
	DirTreeType    = "(a(say)a(sayay))"
	DirMetaType    = "(uuua(ayay))"
	CommitType     = "(a{sv}aya(say)sstayay)"
	MetadataType   = "a{sv}"
	FileHeaderType = "(uuuusa(ayay))"
	ZHeaderType    = "(tuuuusa(ayay))"
	SummaryType    = "(a(s(taya{sv}))a{sv})"
)

// variantType returns the GVariant type of a metadata object type.
func (t ObjectType) variantType() string {
	switch t {
	case ObjDirTree:
		return DirTreeType
	case ObjDirMeta:
		return DirMetaType
	case ObjCommit:
		return CommitType
	}
	return MetadataType
}
