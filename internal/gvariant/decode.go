package gvariant

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

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
