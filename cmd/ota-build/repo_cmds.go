package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/builder"
	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/apps"
	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/rootfs"
	"github.com/otakit/ota/internal/sign"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a repository",
		ArgsUsage: " ",
		Flags: []cli.Flag{repoFlag,
			&cli.StringFlag{Name: "mode", Value: "archive", Usage: "storage `MODE`: archive (to serve over HTTP), bare or bare-user"}},
		Action: func(c *cli.Context) error {
			mode, err := ostree.ParseMode(c.String("mode"))
			if err != nil {
				return otacli.Usagef("--mode: %w", err)
			}
			_, err = ostree.Init(c.String("repo"), mode)
			return err
		},
	}
}

func commitCommand() *cli.Command {
	return &cli.Command{
		Name:      "commit",
		Usage:     "commit a root filesystem (directory or tarball) to a branch",
		ArgsUsage: " ",
		Description: "Prints the new commit's checksum as the last line of standard output (with\n" +
			"--skip-if-unchanged and an unchanged tree, the branch's current commit; with --dry-run,\n" +
			"a line saying what the commit would hold).\n" +
			"--tree dir=PATH walks a directory; --tree tar=FILE reads a tarball (plain, gzip, bzip2, xz or zstd;\n" +
			"FILE - is standard input) whose headers supply ownership, modes and SCHILY.xattr.* xattrs.\n\n" +
			"--bootable converts a Yocto or Buildroot rootfs to the layout ostree admin deploy boots:\n" +
			"- kernel (/boot/vmlinuz-KVER, Image, zImage, bzImage, uImage, symlinks resolved), initramfs and device trees\n" +
			"  (/boot/*.dtb, dtb/, overlays/) go to /usr/lib/modules/KVER/; a real /lib/modules moves there too. KVER:\n" +
			"  the kernel name's suffix, else --kernel-version, else the only directory in /lib/modules;\n" +
			"- /etc moves to /usr/etc; /usr/lib/os-release (or /etc/os-release) must set ID or PRETTY_NAME;\n" +
			"- /var is committed empty: /usr/lib/tmpfiles.d/ota-var.conf recreates it on the device, copying its files\n" +
			"  from /usr/share/ota/var; /home, /root, /opt, /srv, /mnt, /media become symlinks to var/home, var/roothome,\n" +
			"  var/opt, var/srv, var/mnt, run/media, their contents handled like /var's;\n" +
			"- /boot, /dev, /proc, /run, /sys, /tmp are committed empty; /sysroot and /ostree -> sysroot/ostree are added.\n\n" +
			"--app NAME commits an application (docs/apps.md) to the branch apps/NAME/ARCH/CHANNEL, with the metadata\n" +
			apps.MetaName + " (NAME), " + apps.MetaOSVersions + " (--os-versions) and " + apps.MetaExec + " (--exec).",
		Flags: []cli.Flag{
			repoFlag,
			&cli.StringFlag{Name: "branch", Aliases: []string{"b"}, Usage: "branch `REF` to commit to (required without --app)"},
			&cli.StringFlag{Name: "app", Usage: "commit application `NAME` to apps/NAME/ARCH/CHANNEL (see below)"},
			&cli.StringFlag{Name: "arch", Usage: "the application's architecture `ARCH`, as uname -m on the device says (with --app; required)"},
			&cli.StringFlag{Name: "channel", Value: "stable", Usage: "the application's `CHANNEL` (with --app)"},
			&cli.StringFlag{Name: "os-versions", Usage: "OS versions the application supports: comma-separated `PATTERNS` (path.Match syntax, e.g. 1.*,2.0; default: any)"},
			&cli.StringFlag{Name: "exec", Usage: "how to run the application: `COMMAND` line whose first word is relative to its tree (with --app)"},
			&cli.StringFlag{Name: "tree", Usage: "tree to commit: dir=`PATH`, tar=FILE or tar=-", Required: true},
			&cli.StringFlag{Name: "subject", Aliases: []string{"s"}, Usage: "commit subject"},
			&cli.StringFlag{Name: "body", Aliases: []string{"m"}, Usage: "commit body"},
			&cli.StringFlag{Name: "version", Usage: "version string (metadata key \"version\")"},
			&cli.StringSliceFlag{Name: "add-metadata-string", Usage: "add `KEY=VALUE` string metadata; repeatable"},
			&cli.StringFlag{Name: "parent", Usage: "parent commit `CHECKSUM`, or \"none\" (default: the branch's current commit)"},
			&cli.StringFlag{Name: "timestamp", Usage: "commit `TIME`: Unix seconds or RFC 3339 (default: $SOURCE_DATE_EPOCH, else now)"},
			&cli.StringFlag{Name: "owner-uid", Usage: "set every file's owner to `UID`"},
			&cli.StringFlag{Name: "owner-gid", Usage: "set every file's group to `GID`"},
			&cli.StringFlag{Name: "overrides", Usage: "per-path uid, gid, mode and xattr overrides `FILE` (see README)"},
			&cli.StringFlag{Name: "skip-list", Usage: "`FILE` of paths to leave out, one per line"},
			&cli.BoolFlag{Name: "skip-special", Usage: "leave out device nodes, FIFOs and sockets instead of failing"},
			&cli.BoolFlag{Name: "strict", Usage: "fail, writing no commit, instead of warning when an --overrides or --skip-list line matches nothing in the tree"},
			&cli.BoolFlag{Name: "bootable", Usage: "convert a plain rootfs to the layout ostree deploys (see below)"},
			&cli.StringFlag{Name: "kernel-version", Usage: "kernel release `KVER` for --bootable when the tree does not tell it"},
			signKeyFlag,
			&cli.IntFlag{Name: "compression-level", Value: ostree.DefaultCompressionLevel, Usage: "deflate `LEVEL` (1-9) of archive repositories"},
			&cli.BoolFlag{Name: "skip-if-unchanged", Usage: "make no commit when the tree equals the parent's (the branch's current commit is reported; --sign-key adds its signatures to it)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "read and checksum the tree, write nothing (no objects, commit, signature or summary)"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON report instead of the checksum (see docs/json.md)"},
		},
		Action: runCommit,
	}
}

func runCommit(c *cli.Context) error {
	repo, err := ostree.Open(c.String("repo"))
	if err != nil {
		return err
	}
	opts := commit.Options{
		Branch: c.String("branch"), Subject: c.String("subject"), Body: c.String("body"),
		Version: c.String("version"), CompressionLevel: c.Int("compression-level"),
		SkipSpecial: c.Bool("skip-special"), Strict: c.Bool("strict"), Progress: otacli.Progress(c),
		Bootable: c.Bool("bootable"), KernelVersion: c.String("kernel-version"),
		SkipIfUnchanged: c.Bool("skip-if-unchanged"), DryRun: c.Bool("dry-run"),
	}
	if opts.KernelVersion != "" && !opts.Bootable {
		return otacli.Usagef("--kernel-version needs --bootable")
	}
	if err := appOptions(c, &opts); err != nil {
		return err
	}
	for _, kv := range c.StringSlice("add-metadata-string") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return otacli.Usagef("--add-metadata-string %q: want KEY=VALUE", kv)
		}
		opts.Metadata = append(opts.Metadata, commit.KeyValue{Key: k, Value: v})
	}
	switch p := c.String("parent"); p {
	case "":
	case "none":
		opts.NoParent = true
	default:
		pc, err := repo.Resolve(p)
		if err != nil {
			return fmt.Errorf("--parent: %w", err)
		}
		opts.Parent = &pc
	}
	if opts.Timestamp, err = commitTime(c.String("timestamp")); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		dst  **uint32
	}{{"owner-uid", &opts.OwnerUID}, {"owner-gid", &opts.OwnerGID}} {
		if s := c.String(f.name); s != "" {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return otacli.Usagef("--%s %q: not a number", f.name, s)
			}
			v := uint32(n)
			*f.dst = &v
		}
	}
	if p := c.String("overrides"); p != "" {
		err := withFile(p, func(r io.Reader) (err error) {
			opts.Overrides, err = rootfs.ParseOverrides(r, p)
			return err
		})
		if err != nil {
			return err
		}
	}
	if p := c.String("skip-list"); p != "" {
		err := withFile(p, func(r io.Reader) (err error) {
			opts.SkipList, err = rootfs.ParseSkipList(r, p)
			return err
		})
		if err != nil {
			return err
		}
	}
	signers, err := loadSigners(c)
	if err != nil {
		return err
	}
	opts.Signers = signers
	src, err := openTree(c.String("tree"))
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := commit.Commit(c.Context, repo, src, opts)
	if err != nil {
		if sfe := (*commit.SpecialFileError)(nil); errors.As(err, &sfe) {
			return fmt.Errorf("%w; use --skip-special to leave such files out", err)
		}
		return err
	}
	otacli.Warn(c, res.Warnings)
	rep := builder.NewCommitReport(res, opts.Branch, opts.Version)
	if opts.DryRun {
		rep.DryRun = true
		return printCommitReport(c, repo, rep, res.Warnings, start)
	}
	if res.Unchanged && len(signers) > 0 { // the tree's commit gets the signatures a new one would have
		if err := addSignatures(repo, res.Commit, signers); err != nil {
			return err
		}
	}
	sigs, err := commit.Signatures(repo, res.Commit)
	if err != nil {
		return err
	}
	rep.Signatures = len(sigs)
	if err := builder.UpdateSummary(repo, signers); err != nil {
		return fmt.Errorf("commit %s written, but updating the summary failed: %w", res.Commit, err)
	}
	return printCommitReport(c, repo, rep, res.Warnings, start)
}

// appOptions sets the branch and the metadata of an application's commit (--app), and
// checks that the application flags go with --app and a branch is named.
func appOptions(c *cli.Context, opts *commit.Options) error {
	name := c.String("app")
	if name == "" {
		for _, f := range []string{"arch", "os-versions", "exec"} {
			if c.IsSet(f) {
				return otacli.Usagef("--%s needs --app", f)
			}
		}
		if opts.Branch == "" {
			return otacli.Usagef("--branch is required (or --app)")
		}
		return nil
	}
	err := builder.AppCommitOptions(opts, builder.App{Name: name, Arch: c.String("arch"),
		Channel: c.String("channel"), OSVersions: c.String("os-versions"), Exec: c.String("exec")})
	if ae := (*builder.AppError)(nil); errors.As(err, &ae) {
		switch ae.Field {
		case "name":
			return otacli.Usagef("--app: %v", ae.Err)
		case "bootable":
			return otacli.Usagef("--app and --bootable: %v", ae.Err)
		case "arch":
			if c.String("arch") == "" {
				return otacli.Usagef("--app needs --arch")
			}
		case "branch":
			return otacli.Usagef("--%v", ae.Err)
		}
		return otacli.Usagef("%v", ae.Err)
	}
	return err
}

// commitJSON is the report of commit --json: the commit as build reports it.
type commitJSON struct {
	Repo string `json:"repo"`
	builder.CommitReport
	Seconds  float64  `json:"seconds"`
	Warnings []string `json:"warnings,omitempty"`
}

// printCommitReport prints commit's report: JSON, or the checksum (a dry run: what the
// commit would hold).
func printCommitReport(c *cli.Context, repo *ostree.Repo, rep builder.CommitReport, warnings []string, start time.Time) error {
	if c.Bool("json") {
		return otacli.PrintJSON(c.App.Writer, commitJSON{Repo: repo.Path, CommitReport: rep,
			Seconds: float64(time.Since(start).Milliseconds()) / 1000, Warnings: warnings})
	}
	if rep.DryRun {
		fmt.Fprintf(c.App.Writer, "dry run: content checksum %s, %d files, %d bytes; nothing written\n", rep.ContentChecksum, rep.Files, rep.Bytes)
		return nil
	}
	fmt.Fprintln(c.App.Writer, rep.Checksum)
	return nil
}

// commitTime parses --timestamp, falling back to SOURCE_DATE_EPOCH and then the clock.
func commitTime(flag string) (time.Time, error) {
	s, what := flag, "--timestamp"
	if s == "" {
		s, what = os.Getenv("SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH"
	}
	if s == "" {
		return time.Now(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	err := fmt.Errorf("%s %q: want Unix seconds or an RFC 3339 time", what, s)
	if flag != "" {
		return time.Time{}, otacli.Usagef("%w", err)
	}
	return time.Time{}, err
}

// openTree opens the --tree argument.
func openTree(spec string) (rootfs.Source, error) {
	kind, p, ok := strings.Cut(spec, "=")
	switch {
	case ok && kind == "dir":
		return rootfs.WalkDir(p)
	case ok && kind == "tar" && p == "-":
		return rootfs.OpenTarNamed(os.Stdin, "standard input")
	case ok && kind == "tar":
		return rootfs.OpenTarFile(p)
	}
	return nil, otacli.Usagef("--tree %q: want dir=PATH, tar=FILE or tar=-", spec)
}

func withFile(p string, fn func(io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// loadSigners opens the keys of the --sign-key flags (see sign.Open).
func loadSigners(c *cli.Context) ([]*sign.Signer, error) {
	var out []*sign.Signer
	for _, ref := range c.StringSlice("sign-key") {
		s, err := sign.Open(c.Context, ref, "")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func summaryCommand() *cli.Command {
	return &cli.Command{
		Name:      "summary",
		Usage:     "regenerate (and sign) the repository summary",
		ArgsUsage: " ",
		Flags:     []cli.Flag{repoFlag, signKeyFlag},
		Action: func(c *cli.Context) error {
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			signers, err := loadSigners(c)
			if err != nil {
				return err
			}
			return builder.UpdateSummary(repo, signers)
		},
	}
}
