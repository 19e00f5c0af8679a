package commit

import (
	"context"
	"crypto"
	"io"

	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/rootfs"
	"github.com/otakit/ota/internal/sign"
	_ "github.com/otakit/ota/internal/sign/vault" // hashivault:// references for OpenSigner
)

// The types below are defined in the module's internal packages, which other modules cannot
// import, and are re-exported here, once, so that every exported function of commit,
// delta, image and builder takes only types its callers can name and obtain (a test,
// TestPublicAPINameable, holds the packages to that). delta re-exports the types of its
// superblock; Signer is declared in commit.go.

// Repo is an OSTree repository on disk: objects, refs, summary and static deltas.
// OpenRepo and InitRepo return one; its Resolve method turns a revision (a branch or a
// checksum, either followed by "^" for its parent) into a Checksum. Its other fields and
// methods serve this module's own packages and may change: other modules use a Repo
// through the functions of commit, delta, image and builder.
type Repo = ostree.Repo

// OpenRepo opens the existing repository at path.
func OpenRepo(path string) (*Repo, error) { return ostree.Open(path) }

// InitRepo creates a repository at path in mode "archive" (compressed objects, served over
// HTTP), "bare", "bare-user" or "bare-user-only" (objects ready to hardlink into a
// deployment), as `ostree init --mode` does. A repository already there is opened if it
// has that mode, and is an error otherwise.
func InitRepo(path, mode string) (*Repo, error) {
	m, err := ostree.ParseMode(mode)
	if err != nil {
		return nil, err
	}
	return ostree.Init(path, m)
}

// Checksum is the SHA-256 name of an object; its String method returns the 64 hex digits
// that ostree prints.
type Checksum = ostree.Checksum

// ParseChecksum parses 64 hex digits.
func ParseChecksum(s string) (Checksum, error) { return ostree.ParseChecksum(s) }

// Source yields the entries of a root filesystem tree, for Commit. OpenTree and OpenTar
// return one; the caller closes it.
type Source = rootfs.Source

// OpenTree opens the tree at path: a directory (owners, modes and xattrs as lstat and
// lgetxattr report them) or a tarball, plain or compressed with gzip, bzip2, xz or zstd,
// detected from its content (owners, modes and SCHILY.xattr records from its headers).
func OpenTree(path string) (Source, error) { return rootfs.Open(path) }

// OpenTar reads a tarball (plain or compressed, as for OpenTree) from r. Every error about
// it starts with name, e.g. "standard input".
func OpenTar(r io.Reader, name string) (Source, error) { return rootfs.OpenTarNamed(r, name) }

// Overrides holds per-path changes to ownership, permission bits and extended attributes
// (Options.Overrides), read by ParseOverrides. A nil *Overrides changes nothing.
type Overrides = rootfs.Overrides

// ParseOverrides reads overrides in the format of `ota-build commit --overrides`, one path
// per line followed by uid=, gid=, mode= and xattr.NAME= fields. name is used in errors
// and warnings, as in "overrides.txt:12: ...".
func ParseOverrides(r io.Reader, name string) (*Overrides, error) {
	return rootfs.ParseOverrides(r, name)
}

// SkipList is a set of paths left out of a commit (Options.SkipList), read by
// ParseSkipList. A nil *SkipList skips nothing.
type SkipList = rootfs.SkipList

// ParseSkipList reads a skip list in the format of `ota-build commit --skip-list`: one
// path per line; a directory takes its contents along. name is used in errors and
// warnings.
func ParseSkipList(r io.Reader, name string) (*SkipList, error) {
	return rootfs.ParseSkipList(r, name)
}

// Reporter receives the progress of long operations (the Progress fields of the options
// of commit, delta, image and builder): Stage(name, total) starts a stage, Add(items,
// bytes) counts work done, Done ends the stage. Implementations must be safe for
// concurrent use.
type Reporter = progress.Reporter

// OpenSigner returns the Signer for a key reference, the syntax of `ota-build --sign-key`
// and of a manifest's sign-keys: a key file's path or file://PATH (relative to dir, or to
// the working directory when dir is ""), env://NAME, or hashivault://NAME. ctx reaches the
// key management service, if any.
func OpenSigner(ctx context.Context, ref, dir string) (*Signer, error) {
	return sign.Open(ctx, ref, dir)
}

// NewSigner returns a Signer that signs through cs, which must hold an ed25519 key and
// sign as ed25519.PrivateKey does (pure Ed25519, crypto.Hash(0)): an ed25519.PrivateKey, a
// hardware token or a cloud key.
func NewSigner(cs crypto.Signer) (*Signer, error) { return sign.FromCryptoSigner(cs) }
