package delta

import (
	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// The types of a superblock's contents, re-exported from the module's internal packages
// (see package commit for the others).

// ObjectType is the kind of object a part produces (ObjectRef.Type): its String method
// returns "file", "dirtree" or "dirmeta", and its value is the object type byte of the
// format (docs/format.md, "Objects").
type ObjectType = ostree.ObjectType

// DictEntry is one entry of a GVariant dictionary: of a superblock's metadata
// (Superblock.Metadata, type a{sv}: a string Key and a Variant Value) and of the detached
// metadata it carries for the target commit (Superblock.CommitMeta).
type DictEntry = gvariant.DictEntry

// Variant is a GVariant value of type "v": its type string and its value as a Go value
// (byte for y, uint64 for t, string for s, []byte for ay, []string for as, []DictEntry for
// a{..}, []any for other arrays and for tuples; see docs/format.md, "GVariant").
type Variant = gvariant.Variant
