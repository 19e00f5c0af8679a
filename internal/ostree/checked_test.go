package ostree

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
)

// WriteCheckedContent and WriteContentFrom store an object only when its header and
// content hash to its checksum and the content has the size given; anything else fails
// with a *CorruptError (or the producer's own error) and leaves no object. An object
// present is kept without reading or producing anything.
func TestWriteCheckedContent(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644}
	const data = "the content of a file\n"
	good, err := ContentChecksum(&h, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	link := FileHeader{Mode: ModeSymlink | 0o777, LinkTarget: "target"}
	linkSum, _ := ContentChecksum(&link, nil)
	errProduce := errors.New("patch failed")
	for _, mode := range []Mode{ModeBareUser, ModeArchive} {
		for _, tc := range []struct {
			name    string
			h       FileHeader
			sum     Checksum
			content string
			size    int64
			produce error // WriteContentFrom's producer fails with it
			wantErr string
		}{
			{name: "sound", h: h, sum: good, content: data, size: int64(len(data))},
			{name: "symlink", h: link, sum: linkSum},
			{name: "other bytes", h: h, sum: good, content: strings.ToUpper(data), size: int64(len(data)), wantErr: "checksum mismatch"},
			{name: "other symlink target", h: FileHeader{Mode: link.Mode, LinkTarget: "elsewhere"}, sum: linkSum, wantErr: "checksum mismatch"},
			{name: "short", h: h, sum: good, content: data[:10], size: int64(len(data)), wantErr: "truncated"},
			{name: "long", h: h, sum: good, content: data + "x", size: int64(len(data)), wantErr: "content longer"},
			{name: "producer fails", h: h, sum: good, content: data[:5], size: int64(len(data)), produce: errProduce, wantErr: errProduce.Error()},
		} {
			for _, from := range []bool{false, true} {
				if tc.produce != nil && !from {
					continue
				}
				name := mode.String() + "/" + tc.name
				if from {
					name += "/from"
				}
				t.Run(name, func(t *testing.T) {
					tc := tc // the second write below changes its content
					r, err := Init(t.TempDir(), mode)
					if err != nil {
						t.Fatal(err)
					}
					write := func() (bool, error) {
						if !from {
							return r.WriteCheckedContent(tc.sum, &tc.h, strings.NewReader(tc.content), tc.size, DefaultCompressionLevel)
						}
						return r.WriteContentFrom(tc.sum, &tc.h, tc.size, DefaultCompressionLevel, func(w io.Writer) error {
							if _, err := io.WriteString(w, tc.content); err != nil {
								return err
							}
							return tc.produce
						})
					}
					stored, err := write()
					if tc.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
							t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
						}
						if stored || r.HasObject(tc.sum, ObjFile) {
							t.Fatal("the object was stored")
						}
						return
					}
					if err != nil || !stored {
						t.Fatalf("stored %v, %v", stored, err)
					}
					if !tc.h.IsSymlink() {
						o, err := r.OpenContent(tc.sum)
						if err != nil {
							t.Fatal(err)
						}
						got, err := io.ReadAll(o)
						o.Close()
						if err != nil || string(got) != tc.content {
							t.Fatalf("stored content %q, %v", got, err)
						}
					}
					// Present: kept, and nothing is read or produced.
					tc.content = "not read"
					if stored, err := write(); stored || err != nil {
						t.Fatalf("second write: stored %v, %v", stored, err)
					}
				})
			}
		}
	}
}

// An archive object, as a server sends it, whose header states more content than it holds
// is corrupt when read, and one stating a size past int64 is refused when opened: neither
// may panic (the verifier counts the content left in an int64).
func TestOpenArchiveStatedSize(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644}
	const data = "content\n"
	c, _ := ContentChecksum(&h, strings.NewReader(data))
	archive := func(size uint64) []byte {
		var b bytes.Buffer
		b.Write(h.ArchiveHeader(size))
		w, _ := flate.NewWriter(&b, 6)
		io.WriteString(w, data)
		w.Close()
		return b.Bytes()
	}
	for _, size := range []uint64{1 << 40, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		o, err := OpenArchive(bytes.NewReader(archive(size)), c)
		if size > 1<<63-1 {
			if err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Errorf("size %d: open error %v, want one saying it is out of range", size, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		_, err = io.Copy(io.Discard, o)
		o.Close()
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("size %d: read error %v, want a *CorruptError", size, err)
		}
	}
}
