package clientconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// loadRemotes reads the one remote that the ostree remote configuration files in dir
// define (GKeyFile syntax: [remote "NAME"] groups of key=value lines). yamlFile is named in
// the error when there is none.
func loadRemotes(dir, yamlFile string) (*Config, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	var found []*Config
	for _, f := range files {
		cs, err := parseRemotes(f)
		if err != nil {
			return nil, err
		}
		found = append(found, cs...)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no configuration: neither %s nor a remote in %s/*.conf", yamlFile, dir)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%s: %d remotes (%s in %s, %s in %s): write %s to choose", dir, len(found),
		found[0].Remote, filepath.Base(found[0].Source), found[1].Remote, filepath.Base(found[1].Source), yamlFile)
}

// parseRemotes returns the remotes of one ostree remote configuration file. The keys the
// client uses are read; ostree's others (gpg-verify, contenturl, ...) are ignored.
func parseRemotes(file string) ([]*Config, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []*Config
	var cur *Config // nil outside a remote group
	var curLine int
	finish := func() error {
		if cur != nil && cur.URL == "" {
			return &Error{File: file, Line: curLine, Msg: fmt.Sprintf("remote %q has no url", cur.Remote)}
		}
		return nil
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		n := i + 1
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, &Error{File: file, Line: n, Msg: fmt.Sprintf("invalid group header %q", line)}
			}
			if err := finish(); err != nil {
				return nil, err
			}
			cur = nil
			group := line[1 : len(line)-1]
			if name, ok := strings.CutPrefix(group, "remote \""); ok && strings.HasSuffix(name, "\"") && len(name) > 1 {
				cur = defaults()
				cur.Source, cur.Remote, curLine = file, name[:len(name)-1], n
				out = append(out, cur)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &Error{File: file, Line: n, Msg: fmt.Sprintf("want key=value, got %q", line)}
		}
		if cur == nil {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "url":
			cur.URL = v
		case "sign-verify":
			// A boolean, or the list of signature types to verify ("ed25519;").
			cur.SignVerify = v != "false"
			if v != "true" && v != "false" && !strings.Contains(v, "ed25519") {
				return nil, &Error{File: file, Line: n, Msg: fmt.Sprintf("sign-verify=%s: want true, false or a list with ed25519", v)}
			}
		case "tls-ca-path":
			cur.TLS.CA = v
		case "tls-client-cert-path":
			cur.TLS.Cert = v
		case "tls-client-key-path":
			cur.TLS.Key = v
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}
