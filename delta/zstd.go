package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
)

// Zstd parts (Options.ZstdParts) are a second copy of a delta's parts that ota-build's
// own clients decode in-process, about five times faster than xz: for each part file N,
// a file N.zst beside it holds the same payload (the part's bytes after its compression
// byte, decompressed) as one zstd frame. The superblock lists their sizes and SHA-256
// checksums in its metadata under ZstdPartsKey, so they are authenticated with the
// superblock (whose checksum the signed summary carries). ostree reads only the parts its
// superblock names and ignores the key: the delta stays what it was for ostree. See
// docs/format.md, "Zstd parts".

// ZstdPartsKey is the superblock metadata key that lists the zstd parts: a(tay), one
// (size, sha256) per part in part order, the size little-endian.
const ZstdPartsKey = "ota.zstd-parts"

const zstdPartsType = "a(tay)"

// ZstdPart describes the zstd file of one part, N.zst.
type ZstdPart struct {
	Size     uint64
	Checksum ostree.Checksum
}

// ZstdPartName is the name of part i's zstd file in the delta directory.
func ZstdPartName(i int) string { return strconv.Itoa(i) + ".zst" }

// ZstdParts returns the zstd parts the superblock lists (nil when it lists none), one per
// part.
func (s *Superblock) ZstdParts() ([]ZstdPart, error) {
	e, ok := ostree.Lookup(s.Metadata, ZstdPartsKey)
	if !ok {
		return nil, nil
	}
	if e.Type != zstdPartsType {
		return nil, fmt.Errorf("superblock: %s has type %s, want %s", ZstdPartsKey, e.Type, zstdPartsType)
	}
	list := e.Value.([]any)
	if len(list) != len(s.Parts) {
		return nil, fmt.Errorf("superblock: %s lists %d parts, the superblock %d", ZstdPartsKey, len(list), len(s.Parts))
	}
	zs := make([]ZstdPart, len(list))
	for i, v := range list {
		f := v.([]any)
		c, err := ostree.ChecksumFromBytes(f[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("superblock: %s, part %d: %w", ZstdPartsKey, i, err)
		}
		zs[i] = ZstdPart{Size: f[0].(uint64), Checksum: c}
	}
	return zs, nil
}

// Zstd returns the zstd parts the superblock lists, as Open checked them (nil: none).
func (l *Loaded) Zstd() []ZstdPart { return l.zstd }

// zstdPartsEntry is the superblock metadata entry listing zs.
func zstdPartsEntry(zs []*ZstdPart) gvariant.DictEntry {
	list := make([]any, len(zs))
	for i, z := range zs {
		list[i] = []any{z.Size, z.Checksum[:]}
	}
	return gvariant.DictEntry{Key: ZstdPartsKey, Value: gvariant.Variant{Type: zstdPartsType, Value: list}}
}

// zstdArgs are the zstd command's options for a part: level 19 with long-distance
// matching over an 8 MiB window (zstdPartWindow, which the decoder accepts), in one
// thread (--single-thread, whose output does not depend on how the command was built), so
// that the same payload gives the same file with the same zstd version. On the bench/
// Debian point release: 10.40 MB against the xz parts' 10.78 MB, for 29 s of CPU over its
// 162 MB of payload (level 22 saves a further 0.25% for 40% more CPU); the decoder's
// window, not the level, bounds the client's memory.
var zstdArgs = []string{"-19", "--long=23", "--single-thread", "--check", "--quiet", "--stdout"}

// zstdPartWindow is the largest window a zstd part's decoder accepts (--long=23).
const zstdPartWindow = 8 << 20

// LookZstd returns the zstd command an Options.Zstd value names: a path, or a name looked
// up in $PATH ("" is "zstd"). An error names it when it is missing or not executable.
func LookZstd(choice string) (string, error) {
	if choice == "" {
		choice = "zstd"
	}
	p, err := lookCommand(choice)
	if err != nil {
		return "", fmt.Errorf("zstd parts: zstd command %q: %w", choice, err)
	}
	return p, nil
}

// ZstdByDefault reports whether a delta whose maker neither asks for zstd parts nor
// refuses them gets them: when the zstd command choice names is there (see LookZstd). When
// it is not, the warning says so and what it costs, for the maker to show with its way of
// turning zstd parts off (docs/cli.md, "ota-build delta").
func ZstdByDefault(choice string) (ok bool, warning string) {
	if _, err := LookZstd(choice); err != nil {
		return false, err.Error() + ": this delta gets xz parts only, which take ota-client about 50% more CPU to apply; install zstd"
	}
	return true, ""
}

// zstdEncoder compresses part payloads into zstd parts with a zstd command.
type zstdEncoder struct {
	cmd  string
	name string // what Result.ZstdEncoder says
}

// newZstdEncoder returns the encoder Options.Zstd chooses. It runs the command's
// --version, which names its version and checks that it is zstd's.
func newZstdEncoder(ctx context.Context, choice string) (*zstdEncoder, error) {
	cmd, err := LookZstd(choice)
	if err != nil {
		return nil, err
	}
	// "*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***"
	first, err := versionLine(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("zstd parts: %w", err)
	}
	_, rest, ok := strings.Cut(first, "Zstandard CLI")
	version := ""
	for _, f := range strings.Fields(rest) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(f, ","), "v"); ok && v != "" {
			version = v
			break
		}
	}
	if !ok || version == "" {
		return nil, fmt.Errorf("zstd parts: %s is not zstd: --version printed %q", cmd, first)
	}
	return &zstdEncoder{cmd: cmd, name: fmt.Sprintf("zstd %s (%s)", version, cmd)}, nil
}

// compressZstd writes part idx's payload, read from raw, to the file N.zst of the delta
// being generated and returns its size and checksum. The zstd command is killed when the
// generation's context ends.
func (p *packer) compressZstd(idx int, raw io.Reader) (z ZstdPart, err error) {
	f, err := os.OpenFile(filepath.Join(p.g.tmp, ZstdPartName(idx)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return z, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	hash := sha256.New()
	var n countWriter
	cmd := exec.CommandContext(p.g.ctx, p.g.zstdEnc.cmd, zstdArgs...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = raw, io.MultiWriter(f, hash, &n), &stderr
	// A wrapper script's children may hold the pipes after it is killed.
	cmd.WaitDelay = time.Second
	if err := runTied(cmd); err != nil {
		if p.g.ctx.Err() != nil {
			return z, p.g.ctx.Err()
		}
		return z, fmt.Errorf("%s: %v: %s", p.g.zstdEnc.cmd, err, bytes.TrimSpace(stderr.Bytes()))
	}
	z.Size = uint64(n)
	hash.Sum(z.Checksum[:0])
	return z, nil
}

// zstdFile returns the path of part i's zstd file when the superblock lists zstd parts,
// the part is not inline and the file is there; else "".
func (d *Loaded) zstdFile(i int) string {
	if d.zstd == nil {
		return ""
	}
	if _, inline := d.inline[i]; inline {
		return ""
	}
	p := filepath.Join(d.Dir, ZstdPartName(i))
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// spoolZstdPart is spoolPart for a part read from its zstd file (see zstdFile). The file is
// read twice: first to check its size and checksum against the superblock's list, so that
// the decoder only reads verified bytes, then by the decoder, in this process (one
// goroutine, its window at most 8 MiB), into the spool. maxSize bounds the payload.
func spoolZstdPart(repo *ostree.Repo, d *Loaded, i int, maxSize uint64, path string) (*payload, *os.File, error) {
	f, err := openChecked(path, d.zstd[i].Size, d.zstd[i].Checksum)
	if errors.Is(err, errMismatch) {
		err = fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdPartWindow))
	if err != nil {
		return nil, nil, err
	}
	defer dec.Close()
	spool, err := repo.CreateTemp(0o600)
	if err != nil {
		return nil, nil, err
	}
	// Unlinked at once: a crash or kill leaves nothing behind in tmp/.
	os.Remove(spool.Name())
	n, err := spoolBounded(spool, dec, maxSize, "zstd")
	var p *payload
	if err == nil {
		p, err = openPayload(spool, n)
	}
	if err != nil {
		spool.Close()
		return nil, nil, err
	}
	return p, spool, nil
}
