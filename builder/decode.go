package builder

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseManifest parses data into its node tree and decodes the tree into m. Every error
// names the line of the node it is about.
func parseManifest(m *Manifest, data []byte, vars map[string]string) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return syntaxError(m.file, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return &Error{File: m.file, Msg: "empty manifest"}
	}
	m.root = &root
	return newDecoder(m.file, vars).decode(root.Content[0], reflect.ValueOf(m).Elem())
}

// syntaxLineRE matches the message of a syntax error of the YAML parser.
var syntaxLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// syntaxError locates an error of the YAML parser, met before any node exists. yaml.v3
// (v3.0.6) gives such errors no type, only the text "yaml: line N: problem" (or "yaml:
// problem" when it has no line), so this is the one place that reads a line number out
// of a message; every other error is located from the node tree. The line is the
// parser's own.
func syntaxError(file string, err error) error {
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if g := syntaxLineRE.FindStringSubmatch(err.Error()); g != nil {
		e.Line, _ = strconv.Atoi(g[1])
		e.Msg = g[2]
	}
	return e
}

// decoder decodes a manifest's node tree into a Manifest value by value, so that each
// error carries the line of its node: an unknown or repeated key the key's, a value of
// the wrong type the value's. ${NAME} is expanded in each value as it is decoded, so a
// value under an unknown key is never expanded. The first error in the walk (document
// order, merged entries after a mapping's own) is returned.
type decoder struct {
	file string
	vars map[string]string
	// merged holds the entries of each mapping flattened so far; busy the mappings
	// being flattened, to catch a merge key (<<) that merges a mapping into itself.
	merged map[*yaml.Node][]keyValue
	busy   map[*yaml.Node]bool
}

// keyValue is an entry of a mapping node.
type keyValue struct{ key, value *yaml.Node }

func newDecoder(file string, vars map[string]string) *decoder {
	return &decoder{file: file, vars: vars, merged: map[*yaml.Node][]keyValue{}, busy: map[*yaml.Node]bool{}}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) error {
	return &Error{File: d.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

// Short tags of the YAML core schema that decoding tests for.
const (
	nullTag  = "!!null"
	mergeTag = "!!merge"
)

// resolve returns the node an alias names, or n itself.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// decode decodes node at, written in the manifest where the value of v belongs, into v,
// a settable value of a Manifest field's type. A null makes a pointer, list or map nil and
// leaves the rest as it is, as the yaml package does.
func (d *decoder) decode(at *yaml.Node, v reflect.Value) error {
	n := resolve(at)
	if n.ShortTag() == nullTag {
		if k := v.Kind(); k == reflect.Pointer || k == reflect.Slice || k == reflect.Map {
			v.SetZero()
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.decode(at, p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return d.typeError(at, n, v.Type())
		}
		entries, err := d.entries(n)
		if err != nil {
			return err
		}
		fields := yamlFields(v.Type())
		for _, e := range entries {
			k := resolve(e.key)
			if k.Kind != yaml.ScalarNode {
				return d.typeError(e.key, k, reflect.TypeFor[string]())
			}
			i, ok := fields[k.Value]
			if !ok {
				return d.errorf(e.key, "unknown key %q", k.Value)
			}
			if err := d.decode(e.value, v.Field(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return d.typeError(at, n, v.Type())
		}
		entries, err := d.entries(n)
		if err != nil {
			return err
		}
		out := reflect.MakeMapWithSize(v.Type(), len(entries))
		for _, e := range entries {
			k, val := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(e.key, k); err != nil {
				return err
			}
			if err := d.decode(e.value, val); err != nil {
				return err
			}
			out.SetMapIndex(k, val)
		}
		v.Set(out)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.typeError(at, n, v.Type())
		}
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for _, item := range n.Content {
			if resolve(item).ShortTag() == nullTag {
				continue // the yaml package leaves null items out of lists
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(item, e); err != nil {
				return err
			}
			out = reflect.Append(out, e)
		}
		v.Set(out)
	default:
		return d.scalar(at, n, v)
	}
	return nil
}

// scalar decodes a value of a scalar type (string, bool, a number) from n, which node at
// writes, after expanding the variables in it.
func (d *decoder) scalar(at, n *yaml.Node, v reflect.Value) error {
	c := *n
	if c.Kind == yaml.ScalarNode {
		s, err := d.expand(&c)
		if err != nil {
			return err
		}
		c.Value = s
	}
	err := c.Decode(v.Addr().Interface())
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
		return d.typeError(at, &c, v.Type())
	} else if err != nil {
		// The yaml package's other decoding errors (a tag that does not fit the value,
		// bad base64) carry no line: they are about n.
		return &Error{File: d.file, Line: at.Line, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	return nil
}

// typeError reports that n, written at node at, does not decode into type t, in the yaml
// package's words.
func (d *decoder) typeError(at, n *yaml.Node, t reflect.Type) error {
	tag, value := n.ShortTag(), ""
	if n.Kind == yaml.ScalarNode {
		value = n.Value
		if r := []rune(value); len(r) > 10 {
			value = string(r[:7]) + "..."
		}
		value = " `" + value + "`"
	}
	return d.errorf(at, "cannot unmarshal %s%s into %s", tag, value, t)
}

// entries returns the entries of mapping node n with its merge key (<<) applied as the
// yaml package applies it: n's own entries, then those of the merged mappings that n
// lacks, an earlier merged mapping winning over a later one. A key repeated within a
// mapping is an error.
func (d *decoder) entries(n *yaml.Node) ([]keyValue, error) {
	if out, ok := d.merged[n]; ok {
		return out, nil
	}
	d.busy[n] = true
	defer delete(d.busy, n)
	type id struct {
		kind  yaml.Kind
		value string
	}
	seen := map[id]*yaml.Node{}
	var out []keyValue
	var merge *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if first := seen[id{k.Kind, k.Value}]; first != nil {
			return nil, d.errorf(k, "mapping key %q already defined at line %d", k.Value, first.Line)
		}
		seen[id{k.Kind, k.Value}] = k
		if k.Kind == yaml.ScalarNode && k.ShortTag() == mergeTag {
			merge = n.Content[i+1]
			continue
		}
		out = append(out, keyValue{k, n.Content[i+1]})
	}
	if merge != nil {
		sources := []*yaml.Node{merge}
		if m := resolve(merge); m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, s := range sources {
			m := resolve(s)
			if m.Kind != yaml.MappingNode {
				return nil, d.errorf(s, "map merge requires map or sequence of maps as the value")
			}
			if d.busy[m] {
				return nil, d.errorf(s, "anchor %q value contains itself", m.Anchor)
			}
			merged, err := d.entries(m)
			if err != nil {
				return nil, err
			}
			for _, e := range merged {
				if seen[id{e.key.Kind, e.key.Value}] == nil {
					seen[id{e.key.Kind, e.key.Value}] = e.key
					out = append(out, e)
				}
			}
		}
	}
	d.merged[n] = out
	return out, nil
}

// yamlFields maps the yaml keys of struct type t to its fields' indexes.
func yamlFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand returns the value of scalar n with each ${NAME} replaced by the value of vars or
// of the environment.
func (d *decoder) expand(n *yaml.Node) (string, error) {
	var missing string
	s := varRE.ReplaceAllStringFunc(n.Value, func(s string) string {
		name := s[2 : len(s)-1]
		if v, ok := d.vars[name]; ok {
			return v
		}
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		if missing == "" {
			missing = name
		}
		return s
	})
	if missing != "" {
		hint := ""
		if missing == "VERSION" {
			hint = " (give --version)"
		}
		return "", d.errorf(n, "${%s} is not set%s", missing, hint)
	}
	return s, nil
}

// errorAt returns an error located at the key path (e.g. "commit", "rootfs"; an index
// such as "1" names an item of a list), or at the deepest part of it the file has. Aliases
// and merge keys are followed, as when the manifest was decoded: the line is where the
// value is written.
func (m *Manifest) errorAt(msg string, path ...string) error {
	e := &Error{File: m.file, Msg: msg}
	if m.root == nil || len(m.root.Content) == 0 {
		return e
	}
	d := newDecoder(m.file, nil)
	n := m.root.Content[0]
	for _, key := range path {
		var next *yaml.Node
		switch n = resolve(n); n.Kind {
		case yaml.MappingNode:
			entries, _ := d.entries(n) // Load decoded them without error
			for _, kv := range entries {
				if resolve(kv.key).Value == key {
					e.Line, next = kv.key.Line, kv.value
				}
			}
		case yaml.SequenceNode:
			// An index counts the items decoded: null items are left out of lists.
			i, err := strconv.Atoi(key)
			for _, item := range n.Content {
				if err != nil || resolve(item).ShortTag() == nullTag {
					continue
				}
				if i == 0 {
					e.Line, next = item.Line, item
					break
				}
				i--
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return e
}
