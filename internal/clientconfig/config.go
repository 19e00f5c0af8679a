// Package clientconfig reads the device client's configuration: /etc/ota/client.yaml, or,
// when that file is absent, the standard ostree remote configuration
// (/etc/ostree/remotes.d/*.conf), so that a device already updated by ostree can switch to
// ota-client without a new file.
package clientconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Default paths, on the device (relative to the sysroot when it is not /).
const (
	DefaultFile        = "/etc/ota/client.yaml"
	DefaultTrustedKeys = "/etc/ostree/trusted.ed25519.d"
	DefaultBootCounter = "/boot/firmware/ota-state.txt"
	RemotesDir         = "/etc/ostree/remotes.d"
)

// Config is the client's configuration.
type Config struct {
	// Source is the file the configuration was read from.
	Source string `json:"source"`
	// Remote is the name of the ostree remote the configuration came from, or empty for
	// client.yaml.
	Remote string `json:"remote,omitempty"`
	// URL is the repository's base URL; empty in a client.yaml for a device updated only
	// from bundles.
	URL string `json:"url"`
	// Ref is the branch the device follows; empty when remotes.d gives none (ostree keeps
	// it in each deployment's origin file).
	Ref string `json:"ref,omitempty"`
	// TrustedKeys is the directory of files of base64 ed25519 public keys.
	TrustedKeys string `json:"trusted_keys"`
	// SignVerify is false only when an ostree remote sets sign-verify=false.
	SignVerify bool `json:"sign_verify"`
	// TLS holds the CA, client certificate and key files, each optional.
	TLS TLS `json:"tls"`
	// MaxRate caps the download rate in bytes per second; 0 for no cap.
	MaxRate int64 `json:"max_rate,omitempty"`
	// BootCounter is the U-Boot state file of the image's boot script (ota-state.txt on
	// the FAT boot partition).
	BootCounter string `json:"boot_counter"`
	// AllowDowngrade permits updates to an older commit.
	AllowDowngrade bool `json:"allow_downgrade"`
	// Daemon is the policy of ota-client daemon (DefaultDaemon without a daemon mapping).
	Daemon Daemon `json:"-"`
}

// TLS are the TLS files of the remote.
type TLS struct {
	// CA is a file of CA certificates that replaces the system's roots.
	CA string `json:"ca,omitempty"`
	// Cert and Key are the client certificate and its key, presented when the server
	// asks for one.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// Error is an error in a configuration file, at a line when Line > 0.
type Error struct {
	File string
	Line int
	Msg  string
}

// Error is the one-line message "FILE:LINE: message".
func (e *Error) Error() string {
	msg := strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(e.Msg)
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	}
	return e.File + ": " + msg
}

// Load reads the configuration of the device whose root is sysroot. file is client.yaml's
// path on the device (DefaultFile when empty); when it does not exist, the one remote of
// remotes.d is used. Every path, file's and those the configuration names, is taken
// relative to sysroot. The paths in the result are as they are on the host.
func Load(sysroot, file string) (*Config, error) {
	if file == "" {
		file = DefaultFile
	}
	host := hostPath(sysroot, file)
	data, err := os.ReadFile(host)
	var c *Config
	switch {
	case err == nil:
		c, err = parseYAML(host, data)
	case errors.Is(err, fs.ErrNotExist):
		c, err = loadRemotes(hostPath(sysroot, RemotesDir), host)
	default:
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	for _, p := range []*string{&c.TrustedKeys, &c.BootCounter, &c.TLS.CA, &c.TLS.Cert, &c.TLS.Key} {
		if *p != "" {
			*p = hostPath(sysroot, *p)
		}
	}
	return c, nil
}

// hostPath returns path p of the device whose root is sysroot.
func hostPath(sysroot, p string) string {
	if sysroot == "" || sysroot == "/" {
		return p
	}
	return filepath.Join(sysroot, p)
}

func defaults() *Config {
	return &Config{TrustedKeys: DefaultTrustedKeys, BootCounter: DefaultBootCounter, SignVerify: true, Daemon: DefaultDaemon()}
}

// parseYAML decodes client.yaml strictly: an unknown or repeated key, or a value of the
// wrong type, is an error at its line.
func parseYAML(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// The parser's errors have no type, only the text "yaml: line N: problem" (as
		// builder's syntaxError reads them).
		e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if g := syntaxLineRE.FindStringSubmatch(err.Error()); g != nil {
			e.Line, _ = strconv.Atoi(g[1])
			e.Msg = g[2]
		}
		return nil, e
	}
	c := defaults()
	c.Source = file
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty configuration"}
	}
	d := decoder{file: file}
	err := d.mapping(root.Content[0], map[string]func(*yaml.Node) error{
		"url":             d.str(&c.URL),
		"ref":             d.str(&c.Ref),
		"trusted-keys":    d.str(&c.TrustedKeys),
		"boot-counter":    d.str(&c.BootCounter),
		"allow-downgrade": d.boolean(&c.AllowDowngrade),
		"max-rate":        d.rate(&c.MaxRate),
		"daemon":          d.daemon(&c.Daemon),
		"tls": func(n *yaml.Node) error {
			return d.mapping(n, map[string]func(*yaml.Node) error{
				"ca": d.str(&c.TLS.CA), "cert": d.str(&c.TLS.Cert), "key": d.str(&c.TLS.Key),
			})
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// syntaxLineRE matches the message of a syntax error of the YAML parser.
var syntaxLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// decoder decodes the nodes of one file, each error at its node's line (as builder's
// manifest decoder does).
type decoder struct{ file string }

func (d decoder) errorf(n *yaml.Node, format string, args ...any) error {
	return &Error{File: d.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

// mapping decodes mapping node n with one function per known key.
func (d decoder) mapping(n *yaml.Node, fields map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, "want a mapping")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if line, ok := seen[k.Value]; ok {
			return d.errorf(k, "key %q already defined at line %d", k.Value, line)
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			keys := make([]string, 0, len(fields))
			for name := range fields {
				keys = append(keys, name)
			}
			slices.Sort(keys)
			return d.errorf(k, "unknown key %q (want %s)", k.Value, strings.Join(keys, ", "))
		}
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

func (d decoder) scalar(n *yaml.Node, want string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", d.errorf(n, "want %s", want)
	}
	return n.Value, nil
}

func (d decoder) str(p *string) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		v, err := d.scalar(n, "a string")
		if err == nil && n.ShortTag() != "!!str" {
			err = d.errorf(n, "want a string, not %s", n.Value)
		}
		*p = v
		return err
	}
}

func (d decoder) boolean(p *bool) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return d.errorf(n, "want true or false")
		}
		*p = n.Value == "true"
		return nil
	}
}

func (d decoder) rate(p *int64) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		v, err := d.scalar(n, "a rate")
		if err != nil {
			return err
		}
		if *p, err = ParseRate(v); err != nil {
			return d.errorf(n, "%v", err)
		}
		return nil
	}
}

// rateRE is a rate: a number of bytes per second, with a binary unit.
var rateRE = regexp.MustCompile(`^([0-9]+)\s*(|K|KiB|M|MiB|G|GiB)(/s)?$`)

// ParseRate parses a rate in bytes per second: 1048576, 512KiB, 2M or 2MiB/s.
func ParseRate(s string) (int64, error) {
	m := rateRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid rate %q (want bytes per second, e.g. 262144, 512KiB, 2MiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "K": 10, "KiB": 10, "M": 20, "MiB": 20, "G": 30, "GiB": 30}[m[2]]
	if err != nil || n > (1<<62)>>shift {
		return 0, fmt.Errorf("rate %q is too large", s)
	}
	return n << shift, nil
}
