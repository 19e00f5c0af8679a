package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/builder"
	"github.com/otakit/ota/delta"
	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/release"
	"github.com/otakit/ota/internal/sign"
)

// deltaFlags are the generation options delta and bundle share. They are checked in
// deltaOptions rather than marked required, which would also demand them of the delta
// command's subcommands.
func deltaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "repo", Usage: "repository `DIR` (required)"},
		&cli.StringFlag{Name: "from", Usage: "base `REV`, or \"empty\" for a delta from scratch (default: the parent of --to)"},
		&cli.StringFlag{Name: "to", Usage: "target `REV` (ref, checksum or REF^; required)"},
		&cli.IntFlag{Name: "max-part-size", Value: delta.DefaultMaxPartSize / 1e6, Usage: "largest part payload in `MB`"},
		&cli.IntFlag{Name: "max-bsdiff-size", Value: delta.DefaultMaxBsdiffSize / 1e6, Usage: "largest old+new file pair to bsdiff, in `MB`"},
		&cli.BoolFlag{Name: "disable-bsdiff", Usage: "ship changed files whole"},
		&cli.StringFlag{Name: "compression", Value: "xz", Usage: "part compression: xz or none (ostree 2022.7 apply-offline cannot read uncompressed part files over 16 KiB; inline ones work)"},
		&cli.StringFlag{Name: "xz", Value: delta.XZAuto, Usage: xzUsage},
	}
}

// xzUsage describes --xz of delta, bundle and build.
const xzUsage = "xz `ENCODER` of the parts: auto (the xz command in $PATH, else the built-in one), builtin (the same bytes on every host), or the path of an xz command; --json names the one used"

// generationMemory is the soft memory limit of delta generation: the garbage collector
// works harder instead of letting the heap double past the indexes of large diffs.
// GOMEMLIMIT overrides it.
const generationMemory = 192 << 20

// generationGC is the GOGC of delta generation: its large allocations (files, patches,
// the index of each diff) live for one diff, so the heap grows by what the collector lets
// garbage take. At 50 rather than 100 the bench/ tiny delta's peak RSS was 104 MB rather
// than 141, for the same CPU time: the live heap holds few pointers to scan. GOGC overrides it.
const generationGC = 50

// deltaOptions opens the repository and reads the generation flags delta and bundle share.
func deltaOptions(c *cli.Context) (*ostree.Repo, delta.Options, error) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(generationMemory)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(generationGC)
	}
	for _, f := range []string{"repo", "to"} {
		if c.String(f) == "" {
			return nil, delta.Options{}, otacli.Usagef("--%s is required", f)
		}
	}
	repo, err := ostree.Open(c.String("repo"))
	if err != nil {
		return nil, delta.Options{}, err
	}
	opts, err := generationOptions(c, repo)
	if err == nil {
		opts.Signers, err = loadSigners(c)
	}
	return repo, opts, err
}

func generationOptions(c *cli.Context, repo *ostree.Repo) (delta.Options, error) {
	opts := delta.Options{
		Progress:      otacli.Progress(c),
		MaxPartSize:   uint64(c.Int("max-part-size")) * 1e6,
		MaxBsdiffSize: uint64(c.Int("max-bsdiff-size")) * 1e6,
		DisableBsdiff: c.Bool("disable-bsdiff"),
		XZ:            c.String("xz"),
	}
	switch c.String("compression") {
	case "xz":
	case "none":
		opts.Uncompressed = true
	default:
		return opts, otacli.Usagef("--compression %q: want xz or none", c.String("compression"))
	}
	var err error
	if opts.To, err = repo.Resolve(c.String("to")); err != nil {
		return opts, fmt.Errorf("--to: %w", err)
	}
	switch from := c.String("from"); from {
	case "empty":
	case "":
		f, err := repo.Resolve(opts.To.String() + "^")
		if err != nil {
			return opts, fmt.Errorf("--from not given and %w; use --from empty for a delta from scratch", err)
		}
		opts.From = &f
	default:
		f, err := repo.Resolve(from)
		if err != nil {
			return opts, fmt.Errorf("--from: %w", err)
		}
		opts.From = &f
	}
	return opts, nil
}

func deltaCommand() *cli.Command {
	return &cli.Command{
		Name:      "delta",
		Usage:     "generate a static delta between two commits (and apply, show or list deltas)",
		ArgsUsage: " ",
		Description: "Writes deltas/…/superblock and parts into the repository and updates the summary and\n" +
			"delta index, so `ostree pull` uses it. Run `ota-build summary --sign-key` again\n" +
			"afterwards if the summary is signed.",
		Flags: append(deltaFlags(),
			&cli.BoolFlag{Name: "inline", Usage: "put the parts inside the superblock"},
			&cli.BoolFlag{Name: "zstd-parts", Usage: "also write each part compressed with zstd (N.zst, listed in the superblock), which ota-client downloads and decodes faster than the xz parts; ostree ignores them; --zstd-parts=false: never", DefaultText: "when the zstd command is there and the parts are in files, else a warning"},
			&cli.StringFlag{Name: "zstd", Value: "zstd", Usage: "zstd `COMMAND` that compresses the zstd parts (a path, or a name looked up in $PATH; giving it asks for zstd parts); --json names the one used"},
			&cli.IntFlag{Name: "min-fallback-size", Usage: "leave new files larger than `MB` out of the parts, for clients to fetch as objects (0: never; such deltas cannot be applied offline)"},
			&cli.StringSliceFlag{Name: "sign-key", Usage: "sign the superblock (OSTSGNDT) with this ed25519 `KEY` (as commit --sign-key), whose signature the commit must carry; ostree 2022.7 pull cannot read signed superblocks"},
			jsonFlag()),
		Subcommands: []*cli.Command{deltaApplyCommand(), deltaShowCommand(), deltaListCommand()},
		Action: func(c *cli.Context) error {
			repo, opts, err := deltaOptions(c)
			if err != nil {
				return err
			}
			opts.Inline = c.Bool("inline")
			if opts.ZstdParts, err = zstdParts(c, opts.Inline); err != nil {
				return err
			}
			opts.Zstd = c.String("zstd")
			opts.MinFallbackSize = uint64(c.Int("min-fallback-size")) * 1e6
			start := time.Now()
			res, err := delta.Generate(c.Context, repo, opts)
			if err != nil {
				return err
			}
			if err := builder.UpdateSummary(repo, nil); err != nil {
				return fmt.Errorf("delta written, but updating the summary failed: %w", err)
			}
			return printDeltaResult(c, repo, res, filepath.Join(repo.Path, res.Dir), start)
		},
	}
}

// zstdParts resolves --zstd-parts and --zstd: zstd parts when either asks for them, none
// when --zstd-parts=false refuses them, and otherwise (delta.ZstdByDefault) when the zstd
// command is there and the parts are in files, with a warning when it is not.
func zstdParts(c *cli.Context, inline bool) (bool, error) {
	switch {
	case c.IsSet("zstd-parts") && !c.Bool("zstd-parts"):
		if c.IsSet("zstd") {
			return false, otacli.Usagef("--zstd names the command of zstd parts, and --zstd-parts=false refuses them")
		}
		return false, nil
	case c.IsSet("zstd-parts") || c.IsSet("zstd"):
		return true, nil
	case inline:
		return false, nil
	}
	ok, warning := delta.ZstdByDefault(c.String("zstd"))
	if !ok {
		otacli.Warn(c, []string{warning + ", or pass --zstd-parts=false"})
	}
	return ok, nil
}

// deltaJSON is the report of delta --json and bundle --json: the delta as build reports it.
type deltaJSON struct {
	Repo string `json:"repo"`
	builder.DeltaReport
	Seconds float64 `json:"seconds"`
}

// printDeltaResult prints the report of the delta or bundle res, written to path.
func printDeltaResult(c *cli.Context, repo *ostree.Repo, res *delta.Result, path string, start time.Time) error {
	rep := builder.NewDeltaReport(res.Superblock, path, res.Size)
	rep.New, rep.Encoder, rep.ZstdEncoder = true, res.Encoder, res.ZstdEncoder
	if c.Bool("json") {
		return otacli.PrintJSON(c.App.Writer, deltaJSON{Repo: repo.Path, DeltaReport: rep,
			Seconds: float64(time.Since(start).Milliseconds()) / 1000})
	}
	fmt.Fprintf(c.App.Writer, "%s: %d part(s), %d bytes in %s\n", rep.Name, rep.Parts, rep.Bytes, res.Dir)
	return nil
}

func loadPubkeys(paths []string) ([]ed25519.PublicKey, error) {
	var pubs []ed25519.PublicKey
	for _, p := range paths {
		keys, err := sign.LoadPublicKeys(p)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, keys...)
	}
	return pubs, nil
}

// Signing, trust and downgrade rules of bundle and delta apply, as the help text, README and docs/cli.md state
// them.
const (
	bundleRule = "With --sign-key, the commit must already carry a valid signature by one of the keys\n" +
		"(ota-build sign, or commit --sign-key): an unsigned commit is refused, never packaged."
	trustRule = "`delta apply --pubkey` trusts the commit's own signature: the commit must carry a valid\n" +
		"signature by a trusted key (in the detached metadata the delta or bundle carries); a signed\n" +
		"superblock (a bundle's envelope) must verify with a trusted key too, an additional check that\n" +
		"never replaces the commit's signature."
	downgradeRule = "`delta apply --branch REF` refuses a commit older than the one REF points to (an earlier\n" +
		"timestamp, or a lower version when both commits have one; versions compare like dpkg's:\n" +
		"1.9 < 1.10 < 1.10.1, 1.0~rc1 < 1.0 < 1.0-rc1) unless --allow-downgrade is given."
)

func deltaApplyCommand() *cli.Command {
	return &cli.Command{
		Name:      "apply",
		Usage:     "apply a delta (directory, superblock or bundle file) to a repository",
		ArgsUsage: "FILE|DIR",
		Description: trustRule + "\n" + downgradeRule + "\n" +
			"A delta refused by either rule writes nothing: no object, no ref.",
		Flags: []cli.Flag{repoFlag,
			&cli.StringSliceFlag{Name: "pubkey", Usage: "trusted public key `FILE` (PEM, or OSTree base64 lines); repeatable"},
			&cli.StringFlag{Name: "branch", Aliases: []string{"b"}, Usage: "point local branch `REF` at the applied commit"},
			&cli.BoolFlag{Name: "allow-downgrade", Usage: "let --branch move to a commit older than the one it points to"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return otacli.Usagef("want one FILE or DIR argument")
			}
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			keys, err := loadPubkeys(c.StringSlice("pubkey"))
			if err != nil {
				return err
			}
			d, err := delta.Open(c.Args().First(), keys)
			if err != nil {
				return err
			}
			opts := delta.ApplyOptions{Keys: keys, Ref: c.String("branch"), AllowDowngrade: c.Bool("allow-downgrade")}
			if err := delta.Apply(c.Context, repo, d, opts); err != nil {
				if errors.Is(err, release.ErrDowngrade) {
					return fmt.Errorf("%w; --allow-downgrade applies it anyway", err)
				}
				return err
			}
			fmt.Fprintln(c.App.Writer, d.To)
			return nil
		},
	}
}

func deltaShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "describe a delta: commits, parts, sizes and operations",
		ArgsUsage: "NAME|FILE|DIR",
		Flags: []cli.Flag{&cli.StringFlag{Name: "repo", Usage: "repository `DIR` holding delta NAME (FROM-TO or TO)"},
			jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return otacli.Usagef("want one NAME, FILE or DIR argument")
			}
			p := c.Args().First()
			if _, err := os.Stat(p); err != nil && c.String("repo") != "" {
				if p, err = deltaPath(c.String("repo"), p); err != nil {
					return err
				}
			}
			d, err := delta.Load(p, nil)
			if err != nil {
				return err
			}
			if !c.Bool("json") {
				return delta.Describe(c.App.Writer, d)
			}
			desc, err := delta.Inspect(d)
			if err != nil {
				return err
			}
			return otacli.PrintJSON(c.App.Writer, desc)
		},
	}
}

// deltaListJSON is the report of delta list --json.
type deltaListJSON struct {
	Repo   string           `json:"repo"`
	Deltas []deltaListEntry `json:"deltas"`
}

// deltaListEntry is a delta of delta list --json, with the keys of build's delta reports.
type deltaListEntry struct {
	Name  string `json:"name"`
	From  string `json:"from,omitempty"`
	To    string `json:"to"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

func deltaListCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the static deltas of a repository, one FROM-TO (or TO) name a line, as ostree static-delta list",
		ArgsUsage: " ",
		Flags:     []cli.Flag{repoFlag, jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return otacli.Usagef("unexpected argument %q", c.Args().First())
			}
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			deltas, err := repo.ListDeltas()
			if err != nil {
				return err
			}
			rep := deltaListJSON{Repo: repo.Path, Deltas: []deltaListEntry{}}
			for _, d := range deltas {
				e := deltaListEntry{Name: d.Name(), To: d.To.String(), Path: filepath.Join(repo.Path, ostree.DeltaDir(d.From, d.To))}
				if d.From != nil {
					e.From = d.From.String()
				}
				if e.Bytes, err = deltaSize(e.Path); err != nil {
					return err
				}
				rep.Deltas = append(rep.Deltas, e)
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rep)
			}
			for _, e := range rep.Deltas {
				fmt.Fprintln(c.App.Writer, e.Name)
			}
			return nil
		},
	}
}

// deltaSize returns the size of a delta's files: the superblock and the parts.
func deltaSize(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		if info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n, nil
}

// deltaPath finds a delta named FROM-TO or TO (hex) in a repository.
func deltaPath(repo, name string) (string, error) {
	fromHex, toHex, pair := strings.Cut(name, "-")
	if !pair {
		fromHex, toHex = "", fromHex
	}
	to, err := ostree.ParseChecksum(toHex)
	if err != nil {
		return "", fmt.Errorf("delta name %q: %w", name, err)
	}
	var from *ostree.Checksum
	if pair {
		f, err := ostree.ParseChecksum(fromHex)
		if err != nil {
			return "", fmt.Errorf("delta name %q: %w", name, err)
		}
		from = &f
	}
	return filepath.Join(repo, ostree.DeltaDir(from, to)), nil
}

func bundleCommand() *cli.Command {
	return &cli.Command{
		Name:      "bundle",
		Usage:     "write a self-contained, signed update file for USB or offline updates",
		ArgsUsage: " ",
		Description: "The bundle is a static delta with its parts inline and the commit's signatures,\n" +
			"wrapped in a signed envelope when --sign-key is given; `ota-build delta apply`\n" +
			"applies it.\n" + bundleRule + "\n" + trustRule,
		Flags: append(deltaFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "bundle `FILE` to write", Required: true},
			signKeyFlag,
			jsonFlag()),
		Action: func(c *cli.Context) error {
			repo, opts, err := deltaOptions(c)
			if err != nil {
				return err
			}
			opts.Output = c.String("output")
			start := time.Now()
			res, err := delta.Generate(c.Context, repo, opts)
			if err != nil {
				return err
			}
			return printDeltaResult(c, repo, res, opts.Output, start)
		},
	}
}
