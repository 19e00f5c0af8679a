package gvariant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

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
