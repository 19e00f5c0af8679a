package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/session"
)

// rollbackJSON is the report of rollback --json: the deployments after the swap.
type rollbackJSON struct {
	Default  *deploymentInfo `json:"default"`
	Rollback *deploymentInfo `json:"rollback"`
}

func rollbackCommand() *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "make the rollback deployment the default, and the default the rollback",
		ArgsUsage: " ",
		Description: "The boot configuration is written anew into the other boot/loader.N directory and\n" +
			"swapped in with one symlink rename, as ostree does: a power cut leaves the old order or\n" +
			"the new. Without a rollback deployment it refuses and changes nothing. The result is\n" +
			"recorded as the last result (see status).",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			opts, err := noArgSession(c)
			if err != nil {
				return err
			}
			sw, err := session.Rollback(c.Context, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rollbackJSON{Default: sw.DefaultInfo, Rollback: sw.RollbackInfo})
			}
			fmt.Fprintf(c.App.Writer, "default:  %s %s\nrollback: %s %s\n", sw.Default.Name(), sw.DefaultInfo.Version, sw.Rollback.Name(), sw.RollbackInfo.Version)
			return nil
		},
	}
}

// markJSON is the report of mark-good and mark-bad --json.
type markJSON = session.Mark

func markCommand(good bool) *cli.Command {
	cmd := &cli.Command{
		Name:      "mark-good",
		Usage:     "the running system is healthy: reset the boot counter (bootcount=0)",
		ArgsUsage: " ",
		Description: "The boot script counts boot attempts in the boot-counter file (ota-state.txt on the FAT\n" +
			"boot partition) and boots the rollback entry once the count exceeds its limit. When the\n" +
			"running system is not the default deployment (the boot script fell back; see --cmdline),\n" +
			"that deployment first becomes the default, and the last result says so: resetting the\n" +
			"counter would otherwise send the next boot to the failing default again.",
		Flags: []cli.Flag{jsonFlag()},
	}
	if !good {
		cmd.Name = "mark-bad"
		cmd.Usage = "arm an immediate fallback: the next boot starts the rollback deployment"
		cmd.Description = "Writes a boot count beyond any limit of the boot script, which then boots the rollback\n" +
			"entry of uEnv.txt at the next boot. Refuses, changing nothing, when there is no rollback\n" +
			"deployment to fall back to."
	}
	cmd.Action = func(c *cli.Context) error {
		opts, err := noArgSession(c)
		if err != nil {
			return err
		}
		run := session.MarkGood
		if !good {
			run = session.MarkBad
		}
		rep, err := run(c.Context, opts)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return otacli.PrintJSON(c.App.Writer, rep)
		}
		fmt.Fprintf(c.App.Writer, "%s: bootcount=%x\n", rep.BootCounter, rep.Bootcount)
		return nil
	}
	return cmd
}
