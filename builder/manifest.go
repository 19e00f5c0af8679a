// Package builder runs the release pipeline an ota.yaml manifest describes: commit the root
// filesystem, sign it, update the summary, generate static deltas and an offline bundle, and
// write a flash-ready image, skipping what earlier runs already produced.
package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/image"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sysroot"
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
	// Apps lists applications (docs/apps.md) committed after the OS, to the same
	// repository, signed with commit.sign-keys (optional).
	Apps []AppSpec `yaml:"apps"`

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

// AppSpec describes an application's commit, to apps/NAME/ARCH/CHANNEL.
type AppSpec struct {
	// Name is the application's name.
	Name string `yaml:"name"`
	// Rootfs is the application's tree: a directory or a tarball, as commit.rootfs.
	Rootfs string `yaml:"rootfs"`
	// Arch is the device's architecture as uname -m says; Channel defaults to stable.
	Arch    string `yaml:"arch"`
	Channel string `yaml:"channel"`
	// Version defaults to commit.version; a version already on the branch must have the
	// same tree.
	Version string `yaml:"version"`
	// OSVersions lists the OS versions the application supports (path.Match patterns;
	// none: any).
	OSVersions []string `yaml:"os-versions"`
	// Exec is how to run it: a command line whose first word is relative to its tree.
	Exec string `yaml:"exec"`
	// Subject is the commit subject (default: the branch and version).
	Subject string `yaml:"subject"`
	// Owner replaces every file's owner, as commit.owner.
	Owner *Owner `yaml:"owner"`
	// Deltas selects the static deltas to the new commit (optional).
	Deltas *AppDeltaSpec `yaml:"deltas"`
}

// AppDeltaSpec selects the bases of an application's static deltas.
type AppDeltaSpec struct {
	// FromLast makes deltas from each of the last N commits of the application's branch.
	FromLast int `yaml:"from-last"`
	// FromScratch makes a delta from nothing.
	FromScratch bool `yaml:"from-scratch"`
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
	// XZ chooses the xz encoder of the deltas and the bundle (delta.Options.XZ): auto
	// (default), builtin, or an xz command; a path with a slash is relative to the
	// manifest's directory, a bare name is looked up in $PATH.
	XZ string `yaml:"xz"`
	// ZstdParts also gives every delta but the bundle zstd parts (delta.Options.ZstdParts),
	// which ota-client downloads instead of the xz parts: true asks for them (the zstd
	// command must be there), false refuses them; absent, the deltas get them when the
	// zstd command is there, and the build warns when it is not (delta.ZstdByDefault).
	ZstdParts *bool `yaml:"zstd-parts"`
	// Zstd is the zstd command of the zstd parts (delta.Options.Zstd; default zstd in
	// $PATH): a path with a slash is relative to the manifest's directory, a bare name is
	// looked up in $PATH. Naming one asks for zstd parts.
	Zstd string `yaml:"zstd"`
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
	// Values quoted in messages (by the yaml package, in paths) may hold line breaks.
	msg := lineBreaks.Replace(e.Msg)
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	}
	return e.File + ": " + msg
}

// lineBreaks escapes line breaks, to keep an error on one line.
var lineBreaks = strings.NewReplacer("\n", `\n`, "\r", `\r`)

// Load reads and checks a manifest. vars are expanded before the environment (e.g.
// VERSION from --version); a ${NAME} with no value is an error.
func Load(file string, vars map[string]string) (*Manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := &Manifest{file: file}
	if err := parseManifest(m, data, vars); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// path resolves a manifest path relative to the manifest's directory.
func (m *Manifest) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(m.file), p)
}

// check validates every field on its own (prepare checks what needs the keys, the
// layout, the boot files or the repository): each error names the field's line, and
// comes before anything is written.
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
	if !ostree.ValidRef(c.Branch) {
		return m.errorAt(fmt.Sprintf("commit.branch: invalid ref name %q (want names such as myos/arm64/stable: letters, digits, '.', '_' and '-' between slashes)", c.Branch), "commit", "branch")
	}
	if m.OS != "" && !sysroot.ValidOSName(m.OS) {
		return m.errorAt(fmt.Sprintf("os: invalid stateroot name %q (one path component: no '/', spaces, '.' or '..')", m.OS), "os")
	}
	if c.KernelVersion != "" && c.Bootable != nil && !*c.Bootable {
		return m.errorAt("commit.kernel-version needs bootable: true", "commit", "kernel-version")
	}
	for k := range c.Metadata {
		if k == "" {
			return m.errorAt("commit.metadata: empty key", "commit", "metadata")
		}
	}
	if m.Summary.Sign && len(m.Summary.SignKeys) == 0 && len(c.SignKeys) == 0 {
		return m.errorAt("summary.sign: true signs with commit.sign-keys, and there are none", "summary", "sign")
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
		if _, err := delta.LookXZ(m.xz()); err != nil {
			return m.errorAt("deltas.xz: "+err.Error(), "deltas", "xz")
		}
		switch {
		case d.ZstdParts != nil && !*d.ZstdParts:
			if d.Zstd != "" {
				return m.errorAt("deltas.zstd names the command of zstd parts, and deltas.zstd-parts is false", "deltas", "zstd")
			}
		case d.ZstdParts != nil || d.Zstd != "":
			if _, err := delta.LookZstd(m.zstd()); err != nil {
				key := "zstd"
				if d.Zstd == "" {
					key = "zstd-parts"
				}
				return m.errorAt("deltas."+key+": "+err.Error(), "deltas", key)
			}
		}
		if b := d.Bundle; b != nil {
			if b.Output == "" {
				return m.errorAt("deltas.bundle.output is required", "deltas", "bundle")
			}
			if b.From != "" && b.From != "scratch" && b.From != "previous" {
				return m.errorAt(fmt.Sprintf("deltas.bundle.from %q is not scratch or previous", b.From), "deltas", "bundle", "from")
			}
			if err := outputDir(m.path(b.Output)); err != nil {
				return m.errorAt("deltas.bundle.output: "+err.Error(), "deltas", "bundle", "output")
			}
		}
	}
	if err := m.checkApps(); err != nil {
		return err
	}
	if im := m.Image; im != nil {
		if (im.Board == "") == (im.Layout == "") {
			return m.errorAt("image: give board or layout", "image")
		}
		if im.Output == "" {
			return m.errorAt("image.output is required", "image")
		}
		if err := outputDir(m.path(im.Output)); err != nil {
			return m.errorAt("image.output: "+err.Error(), "image", "output")
		}
		if b := m.bundle(); b != "" {
			out := m.path(im.Output)
			if slices.Contains([]string{out, out + ".bmap", out + ".zst", out + ".stamp"}, b) {
				return m.errorAt(fmt.Sprintf("deltas.bundle.output: %s is also written by the image", b), "deltas", "bundle", "output")
			}
		}
		if im.Size != "" && im.Size != "auto" {
			if _, err := image.ParseSize(im.Size); err != nil {
				return m.errorAt("image.size: "+err.Error(), "image", "size")
			}
		}
		for i, o := range im.Outputs {
			if o != "raw" && o != "bmap" && o != "zstd" {
				return m.errorAt(fmt.Sprintf("image.outputs: %q is not raw, bmap or zstd", o), "image", "outputs", strconv.Itoa(i))
			}
		}
		for i, a := range im.Kargs {
			if err := image.CheckKarg(a); err != nil {
				return m.errorAt("image.kargs: "+err.Error(), "image", "kargs", strconv.Itoa(i))
			}
		}
	}
	return nil
}

// checkApps validates the apps: list; errors name the line of the item's field.
func (m *Manifest) checkApps() error {
	branches := map[string]int{}
	for i, a := range m.Apps {
		at := func(msg string, key ...string) error {
			return m.errorAt(fmt.Sprintf("apps[%d]: %s", i, msg), append([]string{"apps", strconv.Itoa(i)}, key...)...)
		}
		if a.Name == "" {
			return at("name is required")
		}
		if a.Rootfs == "" {
			return at("rootfs is required")
		}
		if _, err := os.Stat(m.path(a.Rootfs)); err != nil {
			return at("rootfs: "+err.Error(), "rootfs")
		}
		var opts commit.Options
		if err := AppCommitOptions(&opts, m.app(i)); err != nil {
			field := "name"
			if ae := (*AppError)(nil); errors.As(err, &ae) && ae.Field != "bootable" {
				field = ae.Field
			}
			if field == "arch" && a.Arch == "" {
				return at("arch is required")
			}
			return at(err.Error(), field)
		}
		if j, ok := branches[opts.Branch]; ok {
			return at(fmt.Sprintf("%s is also the branch of apps[%d]", opts.Branch, j), "name")
		}
		if opts.Branch == m.Commit.Branch {
			return at(opts.Branch+" is also commit.branch", "name")
		}
		branches[opts.Branch] = i
		if a.Version == "" && m.Commit.Version == "" {
			return at("version is required (commit.version, which it defaults to, is empty)")
		}
		for j, p := range a.OSVersions {
			if _, err := path.Match(p, ""); err != nil || p == "" || strings.Contains(p, ",") {
				return at(fmt.Sprintf("os-versions: %q is not a path.Match pattern without commas", p), "os-versions", strconv.Itoa(j))
			}
		}
		if a.Deltas != nil && a.Deltas.FromLast < 0 {
			return at("deltas.from-last must not be negative", "deltas", "from-last")
		}
	}
	return nil
}

// app returns the i'th application of the manifest as AppCommitOptions takes it.
func (m *Manifest) app(i int) App {
	a := m.Apps[i]
	return App{Name: a.Name, Arch: a.Arch, Channel: a.Channel, OSVersions: strings.Join(a.OSVersions, ","), Exec: a.Exec}
}

// zstdParts says whether the deltas get zstd parts (DeltaSpec.ZstdParts) and, when by
// default they do not, why, for the build's warnings.
func (m *Manifest) zstdParts() (on bool, warning string) {
	switch d := m.Deltas; {
	case d == nil || d.ZstdParts != nil && !*d.ZstdParts:
		return false, ""
	case d.ZstdParts != nil || d.Zstd != "":
		return true, ""
	}
	if on, warning = delta.ZstdByDefault(""); !on {
		warning = "deltas: " + warning + ", or set deltas.zstd-parts: false"
	}
	return on, warning
}

// zstd returns the zstd command of the zstd parts, a path resolved against the manifest's
// directory ("": zstd in $PATH).
func (m *Manifest) zstd() string {
	if m.Deltas == nil {
		return ""
	}
	return m.command(m.Deltas.Zstd)
}

// appVersion returns the version of the i'th application.
func (m *Manifest) appVersion(i int) string {
	return cmpOr(m.Apps[i].Version, m.Commit.Version)
}

// xz returns the deltas' xz encoder choice, a path resolved against the manifest's
// directory.
func (m *Manifest) xz() string {
	if m.Deltas == nil {
		return ""
	}
	return m.command(m.Deltas.XZ)
}

// command resolves a command the manifest names: a path with a slash against the
// manifest's directory; a bare name (or auto, builtin, "") as it is, for $PATH or the
// caller to read.
func (m *Manifest) command(name string) string {
	if strings.Contains(name, "/") {
		return m.path(name)
	}
	return name
}

// bundle returns the bundle's path, or "" when the manifest makes none.
func (m *Manifest) bundle() string {
	if m.Deltas == nil || m.Deltas.Bundle == nil {
		return ""
	}
	return m.path(m.Deltas.Bundle.Output)
}

// outputDir checks that the output file p can be made: it is not a directory, and its
// directory exists or can be created (the nearest existing ancestor is a directory).
func outputDir(p string) error {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		switch {
		case err == nil && st.IsDir():
			if unix.Access(dir, unix.W_OK|unix.X_OK) != nil {
				return fmt.Errorf("%s is not writable", dir)
			}
			return nil
		case err == nil:
			return fmt.Errorf("%s is not a directory", dir)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR):
			return err
		case dir == filepath.Dir(dir):
			return err
		}
	}
}
