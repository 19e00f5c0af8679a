package rootfs

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/otakit/ota/internal/ostree"
)

// maxLine bounds the length of an override or skip-list line; an xattr value of the
// maximum Linux size (64 KiB) fits even in base64.
const maxLine = 1 << 20

// Overrides holds per-path changes to ownership, permission bits and extended attributes,
// read by ParseOverrides. A nil *Overrides changes nothing.
type Overrides struct {
	name   string // of the file, for Unmatched
	byPath map[string]*override
}

// override holds the changes for one path.
type override struct {
	line                    int    // where it was read, for errors and Unmatched
	text                    string // the path as written
	uid, gid, mode          uint32
	setUID, setGID, setMode bool
	xattrs                  []Xattr // an empty Value removes the attribute
}

// ParseOverrides reads overrides in the format described in the package documentation.
// Errors have the form "name:line: message".
func ParseOverrides(r io.Reader, name string) (*Overrides, error) {
	o := &Overrides{name: name, byPath: make(map[string]*override)}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		p, err := cleanPath(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", name, n, fields[0], err)
		}
		if prev, ok := o.byPath[p]; ok {
			return nil, fmt.Errorf("%s:%d: %s: already overridden on line %d", name, n, fields[0], prev.line)
		}
		ov, err := parseOverride(fields[1:])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		ov.line, ov.text = n, fields[0]
		o.byPath[p] = ov
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return o, nil
}

// parseOverride parses the key=value fields of an override line.
func parseOverride(fields []string) (*override, error) {
	if len(fields) == 0 {
		return nil, errors.New("no fields after the path")
	}
	ov := new(override)
	seen := make(map[string]bool)
	for _, f := range fields {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("field %q is not key=value", f)
		}
		if seen[key] {
			return nil, fmt.Errorf("field %s given twice", key)
		}
		seen[key] = true
		switch attr, isXattr := strings.CutPrefix(key, "xattr."); {
		case key == "uid" || key == "gid":
			id, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s %q is not a decimal number below 2^32", key, val)
			}
			if key == "uid" {
				ov.uid, ov.setUID = uint32(id), true
			} else {
				ov.gid, ov.setGID = uint32(id), true
			}
		case key == "mode":
			m, err := strconv.ParseUint(val, 8, 32)
			if err != nil || m > ModePermMask {
				return nil, fmt.Errorf("mode %q is not octal permission bits up to 7777", val)
			}
			ov.mode, ov.setMode = uint32(m), true
		case isXattr && attr != "":
			v, err := parseXattrValue(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", key, err)
			}
			x := Xattr{Name: attr, Value: v}
			if err := ostree.CheckXattr(x); err != nil {
				return nil, err
			}
			ov.xattrs = append(ov.xattrs, x)
		default:
			return nil, fmt.Errorf("unknown field %q", key)
		}
	}
	return ov, nil
}

// parseXattrValue decodes an xattr value written as getfattr does: "0s" and base64, "0x"
// and hex, a double-quoted string, or else literal text.
func parseXattrValue(v string) ([]byte, error) {
	if len(v) >= 2 && v[0] == '0' {
		switch v[1] {
		case 's', 'S':
			b, err := base64.StdEncoding.DecodeString(v[2:])
			if err != nil {
				return nil, fmt.Errorf("bad base64 value: %v", err)
			}
			return b, nil
		case 'x', 'X':
			b, err := hex.DecodeString(v[2:])
			if err != nil {
				return nil, fmt.Errorf("bad hex value: %v", err)
			}
			return b, nil
		}
	}
	if strings.HasPrefix(v, `"`) {
		s, err := strconv.Unquote(v)
		if err != nil {
			return nil, fmt.Errorf("bad quoted string %s", v)
		}
		return []byte(s), nil
	}
	return []byte(v), nil
}

// Apply makes the changes overridden for e.Path to e and reports whether there were any.
// The values of the extended attributes it sets are shared between calls and must not be
// modified.
func (o *Overrides) Apply(e *Entry) bool {
	if o == nil {
		return false
	}
	ov, ok := o.byPath[e.Path]
	if !ok {
		return false
	}
	if ov.setUID {
		e.UID = ov.uid
	}
	if ov.setGID {
		e.GID = ov.gid
	}
	if ov.setMode {
		e.Mode = e.Mode&ModeTypeMask | ov.mode
	}
	for _, x := range ov.xattrs {
		e.Xattrs = setXattr(e.Xattrs, x)
	}
	return true
}

// setXattr sets x in the sorted list xs, or removes x.Name from it if x.Value is empty.
func setXattr(xs []Xattr, x Xattr) []Xattr {
	i, found := slices.BinarySearchFunc(xs, x.Name, func(a Xattr, name string) int {
		return strings.Compare(a.Name, name)
	})
	switch {
	case len(x.Value) == 0 && found:
		return slices.Delete(xs, i, i+1)
	case len(x.Value) == 0:
		return xs
	case found:
		xs[i].Value = x.Value
		return xs
	}
	return slices.Insert(xs, i, x)
}

// SkipList is a set of paths to leave out of a tree, read by ParseSkipList. A nil
// *SkipList skips nothing.
type SkipList struct {
	name  string // of the file, for Unmatched
	paths map[string]listed
}

// listed is where a path of a list was read.
type listed struct {
	line int
	text string // the path as written
}

// ParseSkipList reads a skip list in the format described in the package documentation.
// Errors have the form "name:line: message".
func ParseSkipList(r io.Reader, name string) (*SkipList, error) {
	s := &SkipList{name: name, paths: make(map[string]listed)}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		p, err := cleanPath(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", name, n, line, err)
		}
		if p == "." {
			return nil, fmt.Errorf("%s:%d: %s: cannot skip the root", name, n, line)
		}
		if _, ok := s.paths[p]; !ok {
			s.paths[p] = listed{n, line}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// Match reports whether the entry at p, an Entry.Path, is to be left out: whether p or a
// directory above it is listed. It returns the listed path, cleaned.
func (s *SkipList) Match(p string) (string, bool) {
	if s == nil {
		return "", false
	}
	for ; p != "." && p != "/"; p = path.Dir(p) {
		if _, ok := s.paths[p]; ok {
			return p, true
		}
	}
	return "", false
}

// Unmatched is a line of an overrides file or skip list whose path matched nothing in a
// tree, as a mistyped or outdated path does.
type Unmatched struct {
	File string
	Line int
	// Path is the path as written on the line.
	Path string
}

// String formats the line as `overrides.txt:12: "usr/bin/missing" matches nothing in the
// tree`.
func (u Unmatched) String() string {
	return fmt.Sprintf("%s:%d: %q matches nothing in the tree", u.File, u.Line, u.Path)
}

// Unmatched returns, in line order, the overrides whose path (cleaned, as an Entry.Path)
// matched reports false for.
func (o *Overrides) Unmatched(matched func(path string) bool) []Unmatched {
	if o == nil {
		return nil
	}
	var out []Unmatched
	for p, ov := range o.byPath {
		if !matched(p) {
			out = append(out, Unmatched{o.name, ov.line, ov.text})
		}
	}
	return sortUnmatched(out)
}

// Unmatched returns, in line order, the listed paths (cleaned, as Match returns them)
// matched reports false for.
func (s *SkipList) Unmatched(matched func(path string) bool) []Unmatched {
	if s == nil {
		return nil
	}
	var out []Unmatched
	for p, l := range s.paths {
		if !matched(p) {
			out = append(out, Unmatched{s.name, l.line, l.text})
		}
	}
	return sortUnmatched(out)
}

func sortUnmatched(us []Unmatched) []Unmatched {
	slices.SortFunc(us, func(a, b Unmatched) int { return a.Line - b.Line })
	return us
}
