package image

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a byte count written with an optional binary unit: "512", "33KiB", "4MiB",
// "4GiB" (K, M, G and T are accepted for KiB, MiB, GiB and TiB).
type Size int64

var units = []struct {
	suffix string
	shift  uint
}{
	{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
	{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40},
}

// ParseSize parses a Size.
func ParseSize(s string) (Size, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 0, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("invalid size %q (want e.g. 512, 33KiB, 4MiB, 2GiB)", s)
	}
	return Size(n << shift), nil
}

// String formats s with the largest binary unit that divides it.
func (s Size) String() string {
	for i := 3; i >= 0 && s != 0; i-- {
		if u := units[i]; s%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", int64(s)>>u.shift, u.suffix)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalYAML reads a Size from a YAML scalar (a number of bytes or a string with a unit).
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size such as 4MiB", n.Line)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}
