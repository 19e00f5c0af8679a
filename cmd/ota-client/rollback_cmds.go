package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/sysroot"
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
			if c.Args().Present() {
				return otacli.Usagef("unexpected argument %q", c.Args().First())
			}
			s, err := openSysroot(c)
			if err != nil {
				return err
			}
			defer s.Close()
			deps := s.Deployments()
			if len(deps) < 2 {
				return errors.New("no rollback deployment: nothing changed")
			}
			list := append([]*sysroot.Deployment{deps[1], deps[0]}, deps[2:]...)
			if err := writeRecorded(c, s, "rollback", deps[0], deps[1], list, ""); err != nil {
				return err
			}
			var rep rollbackJSON
			if rep.Default, err = describe(s, deps[1]); err != nil {
				return err
			}
			if rep.Rollback, err = describe(s, deps[0]); err != nil {
				return err
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rep)
			}
			fmt.Fprintf(c.App.Writer, "default:  %s %s\nrollback: %s %s\n", deps[1].Name(), rep.Default.Version, deps[0].Name(), rep.Rollback.Version)
			return nil
		},
	}
}

// writeRecorded makes list the sysroot's deployments, from being the default before and to
// after, and records the outcome of operation as the last result, with note as its
// message.
func writeRecorded(c *cli.Context, s *sysroot.Sysroot, operation string, from, to *sysroot.Deployment, list []*sysroot.Deployment, note string) error {
	res := sysroot.Result{Operation: operation, From: from.Commit.String(), To: to.Commit.String(), Outcome: "success", Message: note}
	err := s.WriteDeployments(c.Context, list)
	res.Time = time.Now().UTC().Truncate(time.Second)
	if err != nil {
		res.Outcome, res.Error, res.Message = "failure", err.Error(), ""
		if rerr := s.WriteResult(from.OSName, res); rerr != nil {
			otacli.Warn(c, []string{rerr.Error()})
		}
		return err
	}
	return s.WriteResult(to.OSName, res)
}

// markJSON is the report of mark-good and mark-bad --json.
type markJSON struct {
	// BootCounter is the state file written; Bootcount the count it holds now.
	BootCounter string `json:"boot_counter"`
	Bootcount   int64  `json:"bootcount"`
	// FellBack is true when mark-good found the system booted from the rollback entry
	// and made that deployment the default.
	FellBack bool `json:"fell_back"`
}

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
		if c.Args().Present() {
			return otacli.Usagef("unexpected argument %q", c.Args().First())
		}
		cfg, err := loadConfig(c)
		if err != nil {
			return err
		}
		b := sysroot.BootCounter{Path: cfg.BootCounter}
		rep := markJSON{BootCounter: b.Path}
		if good {
			if rep.FellBack, err = keepFallback(c, b); err == nil {
				err = b.MarkGood()
			}
		} else {
			if err = requireRollback(c); err == nil {
				err = b.MarkBad()
			}
		}
		if err != nil {
			return err
		}
		if rep.Bootcount, err = b.Count(); err != nil {
			return err
		}
		if c.Bool("json") {
			return otacli.PrintJSON(c.App.Writer, rep)
		}
		fmt.Fprintf(c.App.Writer, "%s: bootcount=%x\n", b.Path, rep.Bootcount)
		return nil
	}
	return cmd
}

// keepFallback makes the booted deployment the default when the boot script fell back to
// it, and records it; it reports whether it did.
func keepFallback(c *cli.Context, b sysroot.BootCounter) (bool, error) {
	s, err := openSysroot(c)
	if err != nil {
		return false, err
	}
	defer s.Close()
	deps := s.Deployments()
	running, err := booted(c, s)
	if err != nil || running == nil || len(deps) == 0 || running == deps[0] {
		return false, err
	}
	n, err := b.Count()
	if err != nil {
		return false, err
	}
	def := deps[0]
	list := append([]*sysroot.Deployment{running}, slices.DeleteFunc(deps, func(d *sysroot.Deployment) bool { return d == running })...)
	note := fmt.Sprintf("rolled back: %s failed to boot (bootcount %x), the boot script started %s", def.Name(), n, running.Name())
	return true, writeRecorded(c, s, "fallback", def, running, list, note)
}

// requireRollback fails unless the sysroot has a deployment to fall back to.
func requireRollback(c *cli.Context) error {
	s, err := openSysroot(c)
	if err != nil {
		return err
	}
	defer s.Close()
	if len(s.Deployments()) < 2 {
		return errors.New("no rollback deployment to fall back to: nothing changed")
	}
	return nil
}
