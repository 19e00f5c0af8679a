package gvariant

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// Vectors verified byte for byte against GLib's serialisation (docs/format.md, "GVariant",
// states the rules they exercise: alignment, framing offset widths, dictionaries).
var vectors = []struct {
	sig  string
	val  any
	want string
}{
	{"(yt)", []any{byte(1), uint64(2)}, "01 00000000000000 0200000000000000"},
	{"a(uuu)", []any{[]any{uint32(1), uint32(2), uint32(3)}}, "01000000 02000000 03000000"},
	{"()", []any{}, "00"},
	{"a()", []any{[]any{}, []any{}}, "00 00"},
	{"v", Variant{"u", uint32(7)}, "07000000 00 75"},
	{"av", []any{Variant{"s", "x"}, Variant{"t", uint64(9)}}, "78 00 00 73 00000000 0900000000000000 00 74 04 12"},
	{"a{sv}", []DictEntry{{"k", Variant{"b", true}}}, "6b 00 000000000000 01 00 62 02 0c"},
	{"(yay)", []any{byte(0x78), []byte{1, 2}}, "78 01 02"},
	{"aay", []any{[]byte("ab"), []byte{}}, "61 62 02 02"},
	{"as", []string{strings.Repeat("a", 253)}, strings.Repeat("61", 253) + "00 fe"},
	{"(ss)", []any{strings.Repeat("a", 252), "b"}, strings.Repeat("61", 252) + "00 62 00 fd00"},
	{"a{sv}", []DictEntry{{"ostree.sign.dummy", Variant{"aay", []any{[]byte("secretkey1")}}}},
		"6f737472 65652e73 69676e2e 64756d6d 7900 000000000000 73656372 65746b65 7931 0a 00 616179 12 28"},
	{"s", "", "00"},
	{"ay", []byte{}, ""},
	{"(uuua(ayay))", []any{uint32(0), uint32(0), uint32(0xed410000), []any{}}, "00000000 00000000 000041ed"},
	{"(a(say)a(sayay))", []any{[]any{}, []any{}}, "00"},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		got, err := Encode(v.sig, v.val)
		if err != nil {
			t.Errorf("Encode(%q): %v", v.sig, err)
			continue
		}
		want := mustUnhex(v.want)
		if !bytes.Equal(got, want) {
			t.Errorf("Encode(%q) = %x, want %x", v.sig, got, want)
			continue
		}
		back, err := Decode(v.sig, got)
		if err != nil {
			t.Errorf("Decode(%q, %x): %v", v.sig, got, err)
			continue
		}
		again, _ := Encode(v.sig, back)
		if !bytes.Equal(again, got) {
			t.Errorf("round trip of %q: %x != %x", v.sig, again, got)
		}
	}
}

func TestDecodeRejectsNonNormal(t *testing.T) {
	cases := []struct {
		name, sig, data string
	}{
		{"nonzero padding", "(yt)", "01 00000000000001 0200000000000000"},
		{"wide offset", "as", "6100 0200"},
		{"bool 2", "b", "02"},
		{"string without NUL", "s", "61"},
		{"trailing garbage in fixed tuple", "(yy)", "0102 00"},
		{"offset out of range", "as", "6100 09"},
		{"short uint32", "u", "010203"},
		{"empty unit", "()", ""},
		{"truncated variant", "v", "07000000"},
		{"dict entry of one member in a variant", "v", "6100 00 7b737d"},
		{"dict entry of three members", "v", "01 02 03 00 7b797979 7d"},
		{"dict entry with a container key", "v", "00 00 7b61797d"},
		{"variant type over 255 bytes", "v", "00 00 " + strings.Repeat("61", 300) + "79"},
		{"variants nested 100 deep", "v", nestedVariants(100)},
	}
	for _, c := range cases {
		if _, err := Decode(c.sig, mustUnhex(c.data)); err == nil {
			t.Errorf("%s: Decode(%q, %s) succeeded", c.name, c.sig, c.data)
		}
	}
}

// nestedVariants is the hex of n variants, each holding the next, around a byte.
func nestedVariants(n int) string {
	v := []byte{7, 0, 'y'}
	for range n - 1 {
		v = append(v, 0, 'v')
	}
	return hex.EncodeToString(v)
}

func TestNestedVariantsWithinLimit(t *testing.T) {
	if _, err := Decode("v", mustUnhex(nestedVariants(maxVariantDepth))); err != nil {
		t.Fatalf("%d nested variants: %v", maxVariantDepth, err)
	}
}

func TestEncodeMismatch(t *testing.T) {
	for _, c := range []struct {
		sig string
		val any
	}{
		{"u", "x"}, {"s", uint32(1)}, {"(uu)", []any{uint32(1)}}, {"ay", "x"}, {"s", "a\x00b"},
		{"v", Variant{"uu", uint32(1)}}, {"a{sv}", []any{"x"}}, {"m", nil},
	} {
		if _, err := Encode(c.sig, c.val); err == nil {
			t.Errorf("Encode(%q, %#v) succeeded", c.sig, c.val)
		}
	}
}

// Large containers must switch to wider framing offsets exactly at the boundary.
func TestOffsetWidths(t *testing.T) {
	for _, n := range []int{100, 254, 255, 65530, 65540, 70000} {
		val := []string{strings.Repeat("x", n), "y"}
		b, err := Encode("as", val)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode("as", b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if g := got.([]string); len(g) != 2 || g[0] != val[0] || g[1] != "y" {
			t.Fatalf("n=%d: round trip mismatch", n)
		}
		w := offsetSize(len(b))
		if body := n + 1 + 2; body+2*w > len(b) || widthFor(body, 2) != w {
			t.Errorf("n=%d: total %d uses width %d", n, len(b), w)
		}
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts re-encodes to the
// same bytes.
func FuzzDecode(f *testing.F) {
	sigs := []string{"(a{sv}aya(say)sstayay)", "(a(say)a(sayay))", "(uuua(ayay))", "(uuuusa(ayay))",
		"(a(s(taya{sv}))a{sv})", "a{sv}", "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"}
	for i, v := range vectors {
		f.Add(uint8(i%len(sigs)), mustUnhex(v.want))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		sig := sigs[int(which)%len(sigs)]
		v, err := Decode(sig, data)
		if err != nil {
			return
		}
		again, err := Encode(sig, v)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted %x as %q but re-encodes to %x (%v)", data, sig, again, err)
		}
	})
}

func mustUnhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}
