package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/builder"
	"github.com/otakit/ota/image"
	otacli "github.com/otakit/ota/internal/cli"
)

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:      "image",
		Usage:     "write a flash-ready disk image with a commit deployed",
		ArgsUsage: "REF|CHECKSUM",
		Description: "Deploys a bootable commit into a fresh OSTree sysroot and writes a sparse disk image for\n" +
			"a board: partition table, FAT boot partition with the board's firmware and a U-Boot boot\n" +
			"script (boot counting, rollback), ext4 sysroot partition, raw bootloader blobs. Runs as an\n" +
			"ordinary user: file owners come from the commit. Boards: " + strings.Join(image.Boards(), ", ") + ".\n" +
			"A --layout YAML file can start from a board (board: NAME) and replace any of its fields.",
		Flags: []cli.Flag{
			repoFlag,
			&cli.StringFlag{Name: "board", Usage: "board preset `NAME`"},
			&cli.StringFlag{Name: "layout", Usage: "YAML layout `FILE` (instead of or on top of --board)"},
			&cli.StringFlag{Name: "boot-files", Value: ".", Usage: "`DIR` holding the firmware and bootloader files the board needs (Yocto: tmp/deploy/images/MACHINE; Buildroot: output/images)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "image `FILE` to write", Required: true},
			&cli.StringFlag{Name: "size", Value: "auto", Usage: "image `SIZE` (e.g. 4GiB; the sysroot partition fills it), or auto: twice the sysroot plus 64 MiB"},
			&cli.BoolFlag{Name: "bmap", Value: true, Usage: "also write FILE.bmap for bmaptool (--bmap=false: not)"},
			&cli.BoolFlag{Name: "zstd", Usage: "also write FILE.zst"},
			&cli.StringFlag{Name: "os", Usage: "stateroot `NAME` (default: the first component of the ref, e.g. myos for myos/stable)"},
			&cli.StringSliceFlag{Name: "karg", Usage: "kernel argument `ARG` (repeatable); replaces a default with the same key, e.g. root=/dev/mmcblk0p2"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON report (see docs/json.md)"},
		},
		Action: func(c *cli.Context) error {
			opts, err := imageOptions(c)
			if err != nil {
				return err
			}
			res, err := image.Build(c.Context, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, builder.ImageReport{Result: res, New: true})
			}
			fmt.Fprintf(c.App.Writer, "%s: %d bytes (%d on disk)", res.Image, res.Size, res.Allocated)
			for _, p := range []string{res.Bmap, res.Zstd} {
				if p != "" {
					fmt.Fprintf(c.App.Writer, ", %s", p)
				}
			}
			fmt.Fprintln(c.App.Writer)
			return nil
		},
	}
}

func imageOptions(c *cli.Context) (image.Options, error) {
	var opts image.Options
	var err error
	switch board, layout := c.String("board"), c.String("layout"); {
	case layout != "":
		if board != "" {
			return opts, otacli.Usagef("give --board or --layout (a layout file names its board with board: %s)", board)
		}
		opts.Layout, err = image.LoadLayout(layout)
	case board != "":
		if opts.Layout, err = image.Preset(board); err != nil {
			return opts, otacli.Usagef("--board: %w", err)
		}
	default:
		return opts, otacli.Usagef("--board or --layout is required (boards: %s)", strings.Join(image.Boards(), ", "))
	}
	if err != nil {
		return opts, err
	}
	if s := c.String("size"); s != "auto" {
		size, err := image.ParseSize(s)
		if err != nil {
			return opts, otacli.Usagef("--size: %w", err)
		}
		opts.Size = int64(size)
	}
	if opts.Repo, opts.Commit, err = openRev(c); err != nil {
		return opts, err
	}
	ref := c.Args().First()
	if ref != opts.Commit.String() && !strings.HasSuffix(ref, "^") {
		opts.Refspec = ref
	}
	opts.OSName = c.String("os")
	opts.BootFiles = c.String("boot-files")
	opts.Output = c.String("output")
	opts.Kargs = c.StringSlice("karg")
	opts.Bmap, opts.Zstd = c.Bool("bmap"), c.Bool("zstd")
	opts.Progress = otacli.Progress(c)
	return opts, nil
}
