package delta

import (
	"context"
	"os"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

// Deltas reach devices from the network or a USB stick: parsing must never panic.

func FuzzSuperblock(f *testing.F) {
	sb := Superblock{Commit: (&ostree.Commit{Subject: "s"}).Marshal(), Parts: []PartHeader{{Size: 3, USize: 4,
		Objects: []ObjectRef{{Type: ostree.ObjFile}}}}, Fallbacks: []Fallback{{CompressedSize: 1}}}
	sb.To = ostree.Sum(sb.Commit)
	data, err := sb.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := ParseSuperblock(data); err == nil {
			if _, err := s.Marshal(); err != nil {
				t.Fatalf("parsed superblock does not marshal: %v", err)
			}
		}
	})
}

// FuzzPart runs arbitrary part payloads: decoding, then every operation against a
// repository, which must reject what does not verify and never panic.
func FuzzPart(f *testing.F) {
	h := ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}
	content := []byte("hello\n")
	sum, _ := ostree.ContentChecksum(&h, nil)
	p := newPart()
	m, x := p.mode(&h), p.xattr(nil)
	off := p.addBytes(content)
	p.op(opOpenSpliceClose, m, x, uint64(len(content)), off)
	p.op(opSetReadSource, p.addBytes(sum[:]))
	p.op(opOpen, m, x, 6)
	p.op(opWrite, 6, 0)
	p.op(opBspatch, 0, 3)
	p.op(opClose)
	p.op(opUnsetReadSource)
	xzEnc, err := newXZEncoder(context.Background(), XZAuto)
	if err != nil {
		f.Fatal(err)
	}
	for _, enc := range []*xzEncoder{nil, xzEnc} {
		part, err := encodePart(context.Background(), &p.payload, enc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(part, uint8(2))
	}
	dir, err := os.MkdirTemp("", "fuzzpart")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	repo, err := ostree.Init(dir, ostree.ModeArchive)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, part []byte, nobj uint8) {
		pl, err := decodePart(part, 1<<20)
		if err != nil {
			return
		}
		objs := make([]ObjectRef, int(nobj%8))
		for i := range objs {
			objs[i] = ObjectRef{Type: ostree.ObjectType(1 + i%3), Checksum: sum}
		}
		(&executor{repo: repo, p: pl, objects: objs}).run()
		countOps(pl.ops, objs)
	})
}
