// Package builder runs the release pipeline an ota.yaml manifest describes: commit the root
// filesystem, sign it, update the summary, generate static deltas and an offline bundle, and
// write a flash-ready image, skipping what earlier runs already produced.
package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/otakit/ota/image"
)

// Manifest is an ota.yaml file. Every relative path in it is relative to the manifest's
// directory; ${NAME} expands environment variables (and VERSION, see Load).
type Manifest struct {
	// OS is the stateroot name used by images (default: the branch's first component, as
	// image.Options.OSName).
	OS string `yaml:"os"`
	// Repo is the OSTree repository the pipeline writes.
	Repo RepoSpec `yaml:"repo"`
	// Commit describes the commit made from the root filesystem.
	Commit CommitSpec `yaml:"commit"`
	// Deltas lists the static deltas to generate to the new commit (optional).
	Deltas *DeltaSpec `yaml:"deltas"`
	// Summary says how the repository summary is signed.
	Summary SummarySpec `yaml:"summary"`
	// Image describes the disk image to write (optional).
	Image *ImageSpec `yaml:"image"`

	file string
	root *yaml.Node
}

// RepoSpec locates the repository.
type RepoSpec struct {
	// Path is the repository directory; it is created when missing.
	Path string `yaml:"path"`
	// Mode is the repository mode when it is created (default archive).
	Mode string `yaml:"mode"`
}

// CommitSpec describes the commit.
type CommitSpec struct {
	// Rootfs is the root filesystem: a directory, or a tarball (.tar, .tar.gz, .tar.xz,
	// .tar.zst, .tar.bz2; made by tar under pseudo or fakeroot, it carries the owners).
	Rootfs string `yaml:"rootfs"`
	// Branch is the ref the commit goes to, e.g. myos/raspberrypi4/stable.
	Branch string `yaml:"branch"`
	// Version is the commit's version; a version already on the branch must have the
	// same tree.
	Version string `yaml:"version"`
	// Subject and Body are the commit message.
	Subject string `yaml:"subject"`
	Body    string `yaml:"body"`
	// Metadata adds string metadata to the commit.
	Metadata map[string]string `yaml:"metadata"`
	// Bootable converts the rootfs to the layout ostree boots (default true).
	Bootable *bool `yaml:"bootable"`
	// KernelVersion names the kernel release when the file names do not.
	KernelVersion string `yaml:"kernel-version"`
	// Owner replaces every file's owner (for directory trees made without root).
	Owner *Owner `yaml:"owner"`
	// Overrides and SkipList are files in the formats of ota-build commit --overrides and
	// --skip-list.
	Overrides string `yaml:"overrides"`
	SkipList  string `yaml:"skip-list"`
	// Strict fails the build when a line of Overrides or SkipList matches nothing in the
	// tree, instead of warning.
	Strict bool `yaml:"strict"`
	// SkipSpecial leaves device nodes, FIFOs and sockets out.
	SkipSpecial bool `yaml:"skip-special"`
	// SignKeys sign the commit: key files, file:// URIs, or env://NAME for a key held in
	// an environment variable (as CI secrets are).
	SignKeys []string `yaml:"sign-keys"`
}

// Owner is a uid and gid.
type Owner struct {
	UID uint32 `yaml:"uid"`
	GID uint32 `yaml:"gid"`
}

// DeltaSpec selects the bases of the static deltas to the new commit.
type DeltaSpec struct {
	// FromLast makes deltas from each of the last N commits before the new one.
	FromLast int `yaml:"from-last"`
	// FromVersions makes deltas from the commits of the branch with these versions.
	FromVersions []string `yaml:"from-versions"`
	// FromScratch makes a delta from nothing (a device's first pull).
	FromScratch bool `yaml:"from-scratch"`
	// Bundle writes a self-contained update file for offline updates.
	Bundle *BundleSpec `yaml:"bundle"`
}

// BundleSpec describes the offline bundle.
type BundleSpec struct {
	// Output is the bundle file.
	Output string `yaml:"output"`
	// From is "scratch" (default: applies to any device) or "previous" (the commit before
	// the new one: smaller).
	From string `yaml:"from"`
}

// SummarySpec says how the summary is signed.
type SummarySpec struct {
	// Sign signs the summary with the commit's keys.
	Sign bool `yaml:"sign"`
	// SignKeys sign it with these keys instead.
	SignKeys []string `yaml:"sign-keys"`
}

// ImageSpec describes the disk image.
type ImageSpec struct {
	// Board is a preset; Layout a YAML layout file (which may name a board itself).
	Board  string `yaml:"board"`
	Layout string `yaml:"layout"`
	// BootFiles is the directory of firmware and bootloader files.
	BootFiles string `yaml:"boot-files"`
	// Size is "auto" (default) or a size such as 4GiB.
	Size string `yaml:"size"`
	// Output is the raw image file.
	Output string `yaml:"output"`
	// Outputs lists what to keep: raw, bmap, zstd (the image compressed, FILE.zst); default
	// raw and bmap, as the image command.
	Outputs []string `yaml:"outputs"`
	// Kargs are extra kernel arguments.
	Kargs []string `yaml:"kargs"`
}

// Error is a manifest error, located in the file when possible.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Load reads and checks a manifest. vars are expanded before the environment (e.g.
// VERSION from --version); a ${NAME} with no value is an error.
func Load(file string, vars map[string]string) (*Manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := &Manifest{file: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, m.yamlError(err)
	}
	if root.Kind == 0 {
		return nil, &Error{File: file, Msg: "empty manifest"}
	}
	// Unknown keys: the yaml package checks them only when decoding bytes, so the file is
	// decoded strictly once before expansion (unknown keys do not depend on it).
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var strict Manifest
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				if strings.Contains(msg, " not found in type ") {
					return nil, m.yamlError(errors.New(msg))
				}
			}
		}
	}
	if err := expand(&root, file, vars); err != nil {
		return nil, err
	}
	m.root = &root
	if err := root.Decode(m); err != nil {
		return nil, m.yamlError(err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

var (
	lineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type`)
)

// yamlError turns the yaml package's errors into file:line errors.
func (m *Manifest) yamlError(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := &Error{File: m.file}
	for _, s := range msgs {
		if g := lineRE.FindStringSubmatch(s); g != nil {
			n, _ := strconv.Atoi(g[1])
			s = g[2]
			if f := unknownRE.FindStringSubmatch(s); f != nil {
				s = fmt.Sprintf("unknown key %q", f[1])
			}
			if out.Line == 0 {
				out.Line = n
			}
		}
		s = strings.TrimPrefix(s, "yaml: ")
		if out.Msg == "" {
			out.Msg = s
		}
	}
	return out
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${NAME} in every scalar.
func expand(n *yaml.Node, file string, vars map[string]string) error {
	if n.Kind == yaml.ScalarNode {
		var missing string
		n.Value = varRE.ReplaceAllStringFunc(n.Value, func(s string) string {
			name := s[2 : len(s)-1]
			if v, ok := vars[name]; ok {
				return v
			}
			if v, ok := os.LookupEnv(name); ok {
				return v
			}
			missing = name
			return s
		})
		if missing != "" {
			hint := ""
			if missing == "VERSION" {
				hint = " (give --version)"
			}
			return &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("${%s} is not set%s", missing, hint)}
		}
	}
	for _, c := range n.Content {
		if err := expand(c, file, vars); err != nil {
			return err
		}
	}
	return nil
}

// errorAt returns an error located at the value of the key path (e.g. "commit",
// "rootfs"), or at the deepest part of it the file has.
func (m *Manifest) errorAt(msg string, path ...string) error {
	e := &Error{File: m.file, Msg: msg}
	n := m.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			break
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				e.Line = n.Content[i].Line
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return e
}

// path resolves a manifest path relative to the manifest's directory.
func (m *Manifest) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(m.file), p)
}

// check validates what needs no filesystem access beyond the manifest's own inputs.
func (m *Manifest) check() error {
	if m.Repo.Path == "" {
		return m.errorAt("repo.path is required", "repo")
	}
	switch m.Repo.Mode {
	case "", "archive", "archive-z2", "bare-user", "bare-user-only", "bare":
	default:
		return m.errorAt(fmt.Sprintf("repo.mode %q is not archive, bare-user, bare-user-only or bare", m.Repo.Mode), "repo", "mode")
	}
	c := &m.Commit
	if c.Rootfs == "" {
		return m.errorAt("commit.rootfs is required", "commit")
	}
	if _, err := os.Stat(m.path(c.Rootfs)); err != nil {
		return m.errorAt(fmt.Sprintf("commit.rootfs: %v", err), "commit", "rootfs")
	}
	if c.Branch == "" {
		return m.errorAt("commit.branch is required", "commit")
	}
	for _, f := range []struct{ key, path string }{{"overrides", c.Overrides}, {"skip-list", c.SkipList}} {
		if f.path != "" {
			if _, err := os.Stat(m.path(f.path)); err != nil {
				return m.errorAt(fmt.Sprintf("commit.%s: %v", f.key, err), "commit", f.key)
			}
		}
	}
	if d := m.Deltas; d != nil {
		if d.FromLast < 0 {
			return m.errorAt("deltas.from-last must not be negative", "deltas", "from-last")
		}
		if b := d.Bundle; b != nil {
			if b.Output == "" {
				return m.errorAt("deltas.bundle.output is required", "deltas", "bundle")
			}
			if b.From != "" && b.From != "scratch" && b.From != "previous" {
				return m.errorAt(fmt.Sprintf("deltas.bundle.from %q is not scratch or previous", b.From), "deltas", "bundle", "from")
			}
		}
	}
	if im := m.Image; im != nil {
		if (im.Board == "") == (im.Layout == "") {
			return m.errorAt("image: give board or layout", "image")
		}
		if im.Output == "" {
			return m.errorAt("image.output is required", "image")
		}
		if im.Size != "" && im.Size != "auto" {
			if _, err := image.ParseSize(im.Size); err != nil {
				return m.errorAt("image.size: "+err.Error(), "image", "size")
			}
		}
		for _, o := range im.Outputs {
			if o != "raw" && o != "bmap" && o != "zstd" {
				return m.errorAt(fmt.Sprintf("image.outputs: %q is not raw, bmap or zstd", o), "image", "outputs")
			}
		}
	}
	return nil
}
