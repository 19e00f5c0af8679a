package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/builder"
	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/progress"
)

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "run the release pipeline of an ota.yaml manifest",
		ArgsUsage: " ",
		Description: "Commits the manifest's rootfs, signs it, generates the configured static deltas,\n" +
			"commits the applications of apps: with their deltas, updates the summary (once),\n" +
			"writes the offline bundle and the disk image, in that order,\n" +
			"skipping what earlier runs produced (the same tree makes no new commit; existing deltas\n" +
			"and images are kept). The manifest is checked in full first: an error names file:line\n" +
			"and nothing is written. See docs/manifest.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Value: "ota.yaml", Usage: "manifest `FILE`"},
			&cli.StringFlag{Name: "version", Usage: "release `VERSION`: the value of ${VERSION} in the manifest"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON report of everything produced (see docs/json.md)"},
			&cli.StringFlag{Name: "xz", Usage: xzUsage + " (default: the manifest's deltas.xz, else auto)"},
		},
		Action: func(c *cli.Context) error {
			vars := map[string]string{}
			if v := c.String("version"); v != "" {
				vars["VERSION"] = v
			}
			m, err := builder.Load(c.String("file"), vars)
			if err != nil {
				return err
			}
			pr := otacli.Progress(c)
			opts := builder.Options{Progress: pr, Log: progress.LogWriter(pr), XZ: c.String("xz")}
			rep, err := builder.Run(c.Context, m, opts)
			if err != nil {
				return err
			}
			otacli.Warn(c, rep.Warnings)
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rep)
			}
			fmt.Fprintln(c.App.Writer, rep.Commit.Checksum)
			return nil
		},
	}
}
