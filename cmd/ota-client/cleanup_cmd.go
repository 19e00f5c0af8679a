package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
)

// cleanupJSON is the report of cleanup --json.
type cleanupJSON struct {
	DeploymentsRemoved int            `json:"deployments_removed"`
	BootFilesRemoved   int            `json:"boot_files_removed"`
	RefsRemoved        int            `json:"refs_removed"`
	Objects            int            `json:"objects"`
	ObjectsKept        int            `json:"objects_kept"`
	ObjectsRemoved     int            `json:"objects_removed"`
	RemovedByType      map[string]int `json:"objects_removed_by_type"`
	PartialKept        int            `json:"partial_commits_kept"`
	DeltasRemoved      int            `json:"deltas_removed"`
	TempFilesRemoved   int            `json:"temp_files_removed"`
	BytesFreed         int64          `json:"bytes_freed"`
}

func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:      "cleanup",
		Usage:     "remove old deployments and boot files, and prune the objects nothing references",
		ArgsUsage: " ",
		Description: "As ostree admin cleanup: removes the deployments and kernels the deployment list does not\n" +
			"use, the boot configuration not in use and stale deployment refs; then removes every object\n" +
			"of the sysroot's repository that no deployment, ref (ota/pending, a pulled update not yet\n" +
			"deployed, included) or commit being pulled reaches, history not kept, and the temporary\n" +
			"files nobody uses: interrupted downloads' partial files are kept a day (core.tmp-expiry-secs)\n" +
			"for a rerun to resume, locked ones always. Commits go before the objects they reach, so an\n" +
			"interruption leaves a valid repository and a rerun finishes the work.",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return otacli.Usagef("unexpected argument %q", c.Args().First())
			}
			s, err := openSysroot(c)
			if err != nil {
				return err
			}
			defer s.Close()
			res, err := s.Cleanup(c.Context)
			if err != nil {
				return err
			}
			p := res.Repo
			rep := cleanupJSON{
				DeploymentsRemoved: res.Deployments, BootFilesRemoved: res.BootFiles, RefsRemoved: res.Refs,
				Objects: p.Objects, ObjectsKept: p.Reachable, RemovedByType: p.Removed, PartialKept: p.Partial,
				DeltasRemoved: p.Deltas, TempFilesRemoved: p.TempFiles, BytesFreed: res.Bytes + p.Bytes,
			}
			var kinds []string
			for _, t := range slices.Sorted(maps.Keys(p.Removed)) {
				rep.ObjectsRemoved += p.Removed[t]
				kinds = append(kinds, fmt.Sprintf("%d %s", p.Removed[t], t))
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rep)
			}
			detail := ""
			if len(kinds) > 0 {
				detail = " (" + strings.Join(kinds, ", ") + ")"
			}
			fmt.Fprintf(c.App.Writer, "cleanup: removed %d deployments, %d boot files, %d refs; %d objects, %d kept (%d partial commits being pulled); removed %d unreachable%s, %d static deltas, %d temporary files: %d bytes freed\n",
				rep.DeploymentsRemoved, rep.BootFilesRemoved, rep.RefsRemoved, rep.Objects, rep.ObjectsKept, rep.PartialKept,
				rep.ObjectsRemoved, detail, rep.DeltasRemoved, rep.TempFilesRemoved, rep.BytesFreed)
			return nil
		},
	}
}
