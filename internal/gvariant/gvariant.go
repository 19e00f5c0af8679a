// Package gvariant encodes and decodes the subset of GLib's GVariant serialisation format that
// OSTree uses, always in normal form and little-endian.
//
// Values are plain Go values chosen by the type string:
//
//	y byte   b bool   n int16   q uint16   i int32   u uint32   x int64   t uint64   d float64
//	s, o, g string    v Variant    ay []byte    as []string    a{..} []DictEntry
//	other arrays []any    tuples (..) []any
//
// Encode accepts exactly these representations (plus []any for any array) and Decode returns
// them. Decode is strict: it rejects any input that is not the normal-form serialisation of a
// value of the given type, which is what `ostree pull` demands of metadata objects.
package gvariant

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
)

// Variant is a value of type "v": a value together with its own type string.
type Variant struct {
	Type  string
	Value any
}

// DictEntry is one key/value pair of a dictionary ("a{..}").
type DictEntry struct {
	Key   any
	Value any
}

// ErrNotNormal is returned by Decode for data that is not in normal form.
var ErrNotNormal = errors.New("gvariant: not in normal form")

// typeInfo describes one complete type.
type typeInfo struct {
	align int // 1, 2, 4 or 8
	fixed int // fixed size, or 0 when variable-sized
}

// next splits the first complete type off sig.
func next(sig string) (string, string, error) {
	if sig == "" {
		return "", "", errors.New("gvariant: incomplete type")
	}
	switch c := sig[0]; c {
	case 'y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'h', 'd', 's', 'o', 'g', 'v':
		return sig[:1], sig[1:], nil
	case 'a', 'm':
		t, rest, err := next(sig[1:])
		return sig[:1+len(t)], rest, err
	case '(', '{':
		closer := byte(')')
		if c == '{' {
			closer = '}'
		}
		i := 1
		for {
			if i >= len(sig) {
				return "", "", fmt.Errorf("gvariant: unterminated %q", sig)
			}
			if sig[i] == closer {
				if c == '{' && !validDictEntry(sig[:i+1]) {
					return "", "", fmt.Errorf("gvariant: dict entry %q needs a basic key and one value", sig[:i+1])
				}
				return sig[:i+1], sig[i+1:], nil
			}
			t, _, err := next(sig[i:])
			if err != nil {
				return "", "", err
			}
			i += len(t)
		}
	}
	return "", "", fmt.Errorf("gvariant: unsupported type code %q", sig[0])
}

// validDictEntry reports whether t, a "{...}" type, has exactly two members and
// a basic key, as GVariant requires.
func validDictEntry(t string) bool {
	ms, err := splitMembers(t)
	return err == nil && len(ms) == 2 && strings.IndexByte("ybnqiuxthdsog", ms[0][0]) >= 0 && len(ms[0]) == 1
}

// memberCache holds what members returned, by type: objects are encoded and decoded by
// the thousand with a handful of types. It is bounded, as variants in the data being
// decoded bring types of their own.
var memberCache struct {
	sync.RWMutex
	m map[string][]string
}

const memberCacheSize = 256

// members splits the inside of a tuple or dict-entry type into its member types. The
// result is shared: callers must not modify it.
func members(t string) ([]string, error) {
	memberCache.RLock()
	ms, ok := memberCache.m[t]
	memberCache.RUnlock()
	if ok {
		return ms, nil
	}
	ms, err := splitMembers(t)
	if err == nil {
		memberCache.Lock()
		if memberCache.m == nil {
			memberCache.m = map[string][]string{}
		}
		if len(memberCache.m) < memberCacheSize {
			memberCache.m[t] = ms
		}
		memberCache.Unlock()
	}
	return ms, err
}

func splitMembers(t string) ([]string, error) {
	inner := t[1 : len(t)-1]
	var out []string
	for inner != "" {
		m, rest, err := next(inner)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		inner = rest
	}
	return out, nil
}

func info(t string) typeInfo {
	switch t[0] {
	case 'y', 'b':
		return typeInfo{1, 1}
	case 'n', 'q':
		return typeInfo{2, 2}
	case 'i', 'u', 'h':
		return typeInfo{4, 4}
	case 'x', 't', 'd':
		return typeInfo{8, 8}
	case 's', 'o', 'g':
		return typeInfo{1, 0}
	case 'v':
		return typeInfo{8, 0}
	case 'a', 'm':
		return typeInfo{info(t[1:]).align, 0}
	}
	// tuple or dict entry
	ms, _ := members(t)
	ti := typeInfo{align: 1}
	size, fixed := 0, true
	for _, m := range ms {
		mi := info(m)
		ti.align = max(ti.align, mi.align)
		if mi.fixed == 0 {
			fixed = false
		}
		size = alignUp(size, mi.align) + mi.fixed
	}
	if fixed {
		if len(ms) == 0 {
			ti.fixed = 1
		} else {
			ti.fixed = alignUp(size, ti.align)
		}
	}
	return ti
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// offsetSize returns the framing offset width for a container of the given total size.
func offsetSize(total int) int {
	switch {
	case total == 0:
		return 0
	case total <= math.MaxUint8:
		return 1
	case total <= math.MaxUint16:
		return 2
	case uint64(total) <= math.MaxUint32:
		return 4
	}
	return 8
}

// widthFor returns the smallest offset width such that body+n*w fits in w bytes.
func widthFor(body, n int) int {
	for _, w := range []int{1, 2, 4} {
		if uint64(body+n*w) <= 1<<(8*w)-1 {
			return w
		}
	}
	return 8
}

func putOffset(buf []byte, v, w int) []byte {
	for i := 0; i < w; i++ {
		buf = append(buf, byte(v>>(8*i)))
	}
	return buf
}

func readOffset(b []byte) int {
	v := 0
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | int(b[i])
	}
	return v
}

// Encode serialises v as a value of type sig in normal form.
func Encode(sig string, v any) ([]byte, error) {
	t, rest, err := next(sig)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("gvariant: %q is not a single complete type", sig)
	}
	return AppendEncode(nil, t, v)
}

// MustEncode is Encode for values built by the program itself, whose shape is known to match
// the type; it panics on a mismatch, which is a programming error.
func MustEncode(sig string, v any) []byte {
	b, err := Encode(sig, v)
	if err != nil {
		panic(err)
	}
	return b
}

// AppendEncode appends the serialisation of v, of the single complete type t, to buf. The
// start of buf counts as offset 0 for alignment, so buf must be empty or hold a value whose
// length keeps t aligned (as it does inside a container being built).
func AppendEncode(buf []byte, t string, v any) ([]byte, error) {
	return (&encoder{buf: buf, base: 0}).value(t, v)
}

type encoder struct {
	buf  []byte
	base int // offset of the outermost value within buf
}

func (e *encoder) pad(a int) {
	for (len(e.buf)-e.base)%a != 0 {
		e.buf = append(e.buf, 0)
	}
}

func mismatch(t string, v any) error {
	return fmt.Errorf("gvariant: cannot encode %T as %q", v, t)
}

func (e *encoder) value(t string, v any) ([]byte, error) {
	var ok bool
	switch t[0] {
	case 'y':
		var x byte
		if x, ok = v.(byte); ok {
			e.buf = append(e.buf, x)
		}
	case 'b':
		var x bool
		if x, ok = v.(bool); ok {
			if x {
				e.buf = append(e.buf, 1)
			} else {
				e.buf = append(e.buf, 0)
			}
		}
	case 'n':
		var x int16
		if x, ok = v.(int16); ok {
			e.pad(2)
			e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(x))
		}
	case 'q':
		var x uint16
		if x, ok = v.(uint16); ok {
			e.pad(2)
			e.buf = binary.LittleEndian.AppendUint16(e.buf, x)
		}
	case 'i', 'h':
		var x int32
		if x, ok = v.(int32); ok {
			e.pad(4)
			e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(x))
		}
	case 'u':
		var x uint32
		if x, ok = v.(uint32); ok {
			e.pad(4)
			e.buf = binary.LittleEndian.AppendUint32(e.buf, x)
		}
	case 'x':
		var x int64
		if x, ok = v.(int64); ok {
			e.pad(8)
			e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(x))
		}
	case 't':
		var x uint64
		if x, ok = v.(uint64); ok {
			e.pad(8)
			e.buf = binary.LittleEndian.AppendUint64(e.buf, x)
		}
	case 'd':
		var x float64
		if x, ok = v.(float64); ok {
			e.pad(8)
			e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(x))
		}
	case 's', 'o', 'g':
		var x string
		if x, ok = v.(string); ok {
			if i := bytes.IndexByte([]byte(x), 0); i >= 0 {
				return nil, fmt.Errorf("gvariant: string %q contains NUL", x)
			}
			e.buf = append(append(e.buf, x...), 0)
		}
	case 'v':
		var x Variant
		if x, ok = v.(Variant); ok {
			vt, rest, err := next(x.Type)
			if err != nil || rest != "" {
				return nil, fmt.Errorf("gvariant: bad variant type %q", x.Type)
			}
			e.pad(8)
			sub := encoder{buf: e.buf, base: len(e.buf)}
			if _, err := sub.value(vt, x.Value); err != nil {
				return nil, err
			}
			e.buf = append(append(sub.buf, 0), vt...)
		}
	case 'a':
		return e.array(t, v)
	case '(', '{':
		return e.tuple(t, v)
	default:
		return nil, fmt.Errorf("gvariant: unsupported type %q", t)
	}
	if !ok {
		return nil, mismatch(t, v)
	}
	return e.buf, nil
}

// elements converts an array value to a slice of element values.
func elements(t string, v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, t == "as" || t == "ao" || t == "ag"
	case []DictEntry:
		out := make([]any, len(x))
		for i, d := range x {
			out[i] = d
		}
		return out, t[1] == '{'
	}
	return nil, false
}

func (e *encoder) array(t string, v any) ([]byte, error) {
	et := t[1:]
	if et == "y" {
		b, ok := v.([]byte)
		if !ok {
			return nil, mismatch(t, v)
		}
		e.buf = append(e.buf, b...)
		return e.buf, nil
	}
	elems, ok := elements(t, v)
	if !ok {
		return nil, mismatch(t, v)
	}
	ei := info(et)
	e.pad(ei.align)
	start := len(e.buf)
	var ends []int
	for _, el := range elems {
		e.pad(ei.align)
		if _, err := e.value(et, el); err != nil {
			return nil, err
		}
		if ei.fixed == 0 {
			ends = append(ends, len(e.buf)-start)
		}
	}
	if len(ends) > 0 {
		w := widthFor(len(e.buf)-start, len(ends))
		for _, end := range ends {
			e.buf = putOffset(e.buf, end, w)
		}
	}
	return e.buf, nil
}

func (e *encoder) tuple(t string, v any) ([]byte, error) {
	ms, err := members(t)
	if err != nil {
		return nil, err
	}
	var vals []any
	if t[0] == '{' {
		d, ok := v.(DictEntry)
		if !ok || len(ms) != 2 {
			return nil, mismatch(t, v)
		}
		vals = []any{d.Key, d.Value}
	} else {
		var ok bool
		if vals, ok = v.([]any); !ok || len(vals) != len(ms) {
			return nil, mismatch(t, v)
		}
	}
	ti := info(t)
	e.pad(ti.align)
	start := len(e.buf)
	if len(ms) == 0 {
		e.buf = append(e.buf, 0)
		return e.buf, nil
	}
	var ends []int
	for i, m := range ms {
		e.pad(info(m).align)
		if _, err := e.value(m, vals[i]); err != nil {
			return nil, err
		}
		if info(m).fixed == 0 && i != len(ms)-1 {
			ends = append(ends, len(e.buf)-start)
		}
	}
	if ti.fixed != 0 {
		e.pad(ti.align)
		return e.buf, nil
	}
	e.buf = AppendTupleFraming(e.buf, len(e.buf)-start, ends)
	return e.buf, nil
}

// AppendTupleFraming appends to buf the framing offsets that end a tuple in normal form, as
// Encode writes them: body is the length of the tuple's members (with their padding), ends
// the offsets from the tuple's start at which its variable-size members other than the last
// end. It is for writers that stream a large tuple's members instead of encoding it whole.
func AppendTupleFraming(buf []byte, body int, ends []int) []byte {
	w := widthFor(body, len(ends))
	for i := len(ends) - 1; i >= 0; i-- {
		buf = putOffset(buf, ends[i], w)
	}
	return buf
}

// Decode parses data as a normal-form value of type sig.
func Decode(sig string, data []byte) (any, error) {
	t, rest, err := next(sig)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("gvariant: %q is not a single complete type", sig)
	}
	v, err := decode(t, data, 0)
	if err != nil {
		return nil, err
	}
	// Decoding is structural; re-encoding proves the padding, offset widths and
	// everything else are exactly what normal form demands.
	again, err := AppendEncode(nil, t, v)
	if err != nil || !bytes.Equal(again, data) {
		return nil, ErrNotNormal
	}
	return v, nil
}

var errShort = errors.New("gvariant: data too short")

// Untrusted data names its own types inside variants; these bound the work it can ask
// for (GLib: G_VARIANT_MAX_RECURSION_DEPTH and a 255-byte type string).
const (
	maxVariantDepth   = 64
	maxVariantTypeLen = 255
)

// decode parses d as type t; depth counts the variants being decoded around it.
func decode(t string, d []byte, depth int) (any, error) {
	ti := info(t)
	if ti.fixed != 0 && len(d) != ti.fixed {
		return nil, fmt.Errorf("gvariant: %q needs %d bytes, have %d", t, ti.fixed, len(d))
	}
	switch t[0] {
	case 'y':
		return d[0], nil
	case 'b':
		if d[0] > 1 {
			return nil, ErrNotNormal
		}
		return d[0] == 1, nil
	case 'n':
		return int16(binary.LittleEndian.Uint16(d)), nil
	case 'q':
		return binary.LittleEndian.Uint16(d), nil
	case 'i', 'h':
		return int32(binary.LittleEndian.Uint32(d)), nil
	case 'u':
		return binary.LittleEndian.Uint32(d), nil
	case 'x':
		return int64(binary.LittleEndian.Uint64(d)), nil
	case 't':
		return binary.LittleEndian.Uint64(d), nil
	case 'd':
		return math.Float64frombits(binary.LittleEndian.Uint64(d)), nil
	case 's', 'o', 'g':
		if len(d) == 0 || d[len(d)-1] != 0 || bytes.IndexByte(d[:len(d)-1], 0) >= 0 {
			return nil, errors.New("gvariant: malformed string")
		}
		return string(d[:len(d)-1]), nil
	case 'v':
		i := bytes.LastIndexByte(d, 0)
		if i < 0 {
			return nil, errors.New("gvariant: malformed variant")
		}
		if depth >= maxVariantDepth || len(d)-i-1 > maxVariantTypeLen {
			return nil, errors.New("gvariant: variant nested too deep or type too long")
		}
		vt, rest, err := next(string(d[i+1:]))
		if err != nil || rest != "" {
			return nil, fmt.Errorf("gvariant: malformed variant type %q", d[i+1:])
		}
		val, err := decode(vt, d[:i], depth+1)
		if err != nil {
			return nil, err
		}
		return Variant{Type: vt, Value: val}, nil
	case 'a':
		return decodeArray(t, d, depth)
	case '(', '{':
		return decodeTuple(t, d, depth)
	}
	return nil, fmt.Errorf("gvariant: unsupported type %q", t)
}

func decodeArray(t string, d []byte, depth int) (any, error) {
	et := t[1:]
	if et == "y" {
		return bytes.Clone(d), nil
	}
	ei := info(et)
	var elems [][]byte
	if ei.fixed != 0 {
		if len(d)%ei.fixed != 0 {
			return nil, fmt.Errorf("gvariant: %q size %d not a multiple of %d", t, len(d), ei.fixed)
		}
		for i := 0; i < len(d); i += ei.fixed {
			elems = append(elems, d[i:i+ei.fixed])
		}
	} else if len(d) > 0 {
		w := offsetSize(len(d))
		if len(d) < w {
			return nil, errShort
		}
		tableStart := readOffset(d[len(d)-w:])
		if tableStart > len(d) || (len(d)-tableStart)%w != 0 || tableStart == len(d) {
			return nil, fmt.Errorf("gvariant: bad framing in %q", t)
		}
		n := (len(d) - tableStart) / w
		pos := 0
		for i := 0; i < n; i++ {
			end := readOffset(d[tableStart+i*w : tableStart+(i+1)*w])
			pos = alignUp(pos, ei.align)
			if end < pos || end > tableStart {
				return nil, fmt.Errorf("gvariant: bad framing in %q", t)
			}
			elems = append(elems, d[pos:end])
			pos = end
		}
	}
	out := make([]any, 0, len(elems))
	for _, el := range elems {
		v, err := decode(et, el, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	switch {
	case et == "s" || et == "o" || et == "g":
		ss := make([]string, len(out))
		for i, v := range out {
			ss[i] = v.(string)
		}
		return ss, nil
	case et[0] == '{':
		ds := make([]DictEntry, len(out))
		for i, v := range out {
			ds[i] = v.(DictEntry)
		}
		return ds, nil
	}
	return out, nil
}

func decodeTuple(t string, d []byte, depth int) (any, error) {
	ms, err := members(t)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		if len(d) != 1 {
			return nil, ErrNotNormal
		}
		return []any{}, nil
	}
	w := offsetSize(len(d))
	offEnd := len(d) // offsets are consumed from the end
	pos := 0
	vals := make([]any, len(ms))
	for i, m := range ms {
		mi := info(m)
		pos = alignUp(pos, mi.align)
		var end int
		switch {
		case mi.fixed != 0:
			end = pos + mi.fixed
		case i == len(ms)-1:
			end = offEnd
		default:
			if offEnd-w < 0 {
				return nil, errShort
			}
			end = readOffset(d[offEnd-w : offEnd])
			offEnd -= w
		}
		if pos > end || end > offEnd {
			return nil, fmt.Errorf("gvariant: bad framing in %q", t)
		}
		v, err := decode(m, d[pos:end], depth)
		if err != nil {
			return nil, err
		}
		vals[i] = v
		pos = end
	}
	if t[0] == '{' {
		return DictEntry{Key: vals[0], Value: vals[1]}, nil
	}
	return vals, nil
}
