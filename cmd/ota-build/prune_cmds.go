package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/ostree"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "remove objects no ref reaches, static deltas to removed commits and stale temporary files",
		ArgsUsage: " ",
		Description: "Like ostree prune --refs-only: keeps every commit a ref (local, remote or mirror) points\n" +
			"to, the ancestors of those still stored, their trees and signatures, and removes every\n" +
			"other object, the static deltas whose target commit is gone, the temporary files\n" +
			"interrupted ota-build commands left in tmp/ and, as ostree does, any other entry of tmp/\n" +
			"not modified for core.tmp-expiry-secs (a day) that nobody holds locked. A refused or\n" +
			"interrupted commit or delta apply can leave such unreachable objects. Takes the\n" +
			"repository lock. Does not rewrite the summary (run summary afterwards if it listed a\n" +
			"removed delta).",
		Flags: []cli.Flag{
			repoFlag,
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "report what would be removed, remove nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON report"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("prune: unexpected argument %q", c.Args().First())
			}
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			dry := c.Bool("dry-run")
			res, err := repo.Prune(c.Context, ostree.PruneOptions{DryRun: dry})
			if err != nil {
				return fmt.Errorf("prune: %w", err)
			}
			removed := 0
			for _, n := range res.Removed {
				removed += n
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, map[string]any{
					"repo": repo.Path, "dry_run": dry,
					"objects": res.Objects, "objects_kept": res.Reachable,
					"removed": removed, "removed_by_type": res.Removed,
					"deltas_removed": res.Deltas, "temp_files_removed": res.TempFiles,
					"bytes_freed": res.Bytes,
				})
			}
			verb := "removed"
			if dry {
				verb = "would remove"
			}
			var kinds []string
			for _, t := range slices.Sorted(maps.Keys(res.Removed)) {
				kinds = append(kinds, fmt.Sprintf("%d %s", res.Removed[t], t))
			}
			detail := ""
			if len(kinds) > 0 {
				detail = " (" + strings.Join(kinds, ", ") + ")"
			}
			fmt.Fprintf(c.App.Writer, "prune: %d objects, %d kept; %s %d unreachable%s, %d static deltas, %d temporary files: %d bytes\n",
				res.Objects, res.Reachable, verb, removed, detail, res.Deltas, res.TempFiles, res.Bytes)
			return nil
		},
	}
}
