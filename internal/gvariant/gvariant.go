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
