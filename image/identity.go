package image

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/otakit/ota/internal/ostree"
)

// identity derives the disk's and partitions' identifiers from the commit and layout, so
// the same inputs give the same image.
type identity struct{ seed [32]byte }

func newIdentity(c ostree.Checksum, l Layout) identity {
	layout, _ := json.Marshal(l) // of plain data: cannot fail
	return identity{sha256.Sum256(fmt.Appendf(nil, "ota-image %s %s", c, layout))}
}

func (id identity) bytes(what string) [16]byte {
	h := sha256.Sum256(append(id.seed[:], what...))
	var b [16]byte
	copy(b[:], h[:])
	b[6] = b[6]&0x0f | 0x40 // version 4 (random) UUID
	b[8] = b[8]&0x3f | 0x80
	return b
}

func uuidString(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// diskID is the MBR disk signature.
func (id identity) diskID() uint32 {
	b := id.bytes("disk")
	return binary.LittleEndian.Uint32(b[:4])
}

// partUUID is the PARTUUID of partition i (0-based) as the kernel's root= expects it.
func (id identity) partUUID(table string, i int) string {
	if table == "mbr" {
		return fmt.Sprintf("%08x-%02x", id.diskID(), i+1)
	}
	return uuidString(id.bytes(fmt.Sprint("partition ", i)))
}

func (id identity) fsUUID() string { return uuidString(id.bytes("ext4")) }
