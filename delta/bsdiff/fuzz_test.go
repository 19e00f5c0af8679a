package bsdiff

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzPatch feeds arbitrary patches, as a device would receive them, to
// Patch and PatchTo: they must not panic, must agree, and must produce
// exactly newSize bytes when they succeed.
func FuzzPatch(f *testing.F) {
	for _, s := range [][2]string{
		{"hello", "hello!"},
		{"", "abc"},
		{"the quick brown fox", "the quick red fox jumps"},
	} {
		p, err := Diff([]byte(s[0]), []byte(s[1]))
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(s[0]), p, int64(len(s[1])))
	}
	f.Fuzz(func(t *testing.T, old, patch []byte, newSize int64) {
		got, err := Patch(old, patch, newSize)
		var buf bytes.Buffer
		err2 := PatchTo(&buf, old, bytes.NewReader(patch), newSize)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Patch error %v, PatchTo error %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err2, ErrCorrupt) {
				t.Fatalf("errors %v, %v do not wrap ErrCorrupt", err, err2)
			}
			return
		}
		if int64(len(got)) != newSize || !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("Patch gave %d bytes, PatchTo %d, want %d and equal", len(got), buf.Len(), newSize)
		}
	})
}

// FuzzDiff checks that every patch Diff makes applies.
func FuzzDiff(f *testing.F) {
	f.Add([]byte("hello, world"), []byte("hello, wide world"))
	f.Add([]byte{}, []byte("x"))
	f.Add([]byte("abababababababab"), []byte{})
	f.Fuzz(func(t *testing.T, old, new []byte) {
		roundTrip(t, old, new)
	})
}
