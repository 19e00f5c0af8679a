package rootfs

import (
	"errors"
	"path"
	"strings"
)

// cleanPath normalises name into an Entry.Path: leading "/" and "./" removed, cleaned,
// the root being ".". It fails if name is empty or climbs out of the root.
func cleanPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty path")
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errors.New("path escapes the tree root")
	}
	return p, nil
}
