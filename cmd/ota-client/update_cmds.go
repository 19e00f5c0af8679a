package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/update"
)

// updateJSON is the report of pull, deploy, update and apply-bundle --json: what was
// pulled (null for deploy and apply-bundle) and the new default deployment (null for pull).
type updateJSON struct {
	Pull       *update.PullResult `json:"pull"`
	Deployment *deploymentInfo    `json:"deployment"`
}

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download and verify the remote's commit, without deploying it",
		ArgsUsage: " ",
		Description: "Checks as check does, then fetches the static delta from the booted (else the default)\n" +
			"deployment's commit when the signed summary lists one, else only the objects the\n" +
			"repository lacks, " + "verifying every object before it is stored. Delta parts and large objects\n" +
			"resume where an interrupted pull left them. The free space the delta declares must fit\n" +
			"first. The pulled commit is kept by the ref " + update.PendingRef + " until deploy.",
		Flags: []cli.Flag{jsonFlag(), maxRateFlag()},
		Action: func(c *cli.Context) error {
			return runUpdate(c, true, false)
		},
	}
}

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:      "deploy",
		Usage:     "deploy the pulled commit as the new default, the current default becoming the rollback",
		ArgsUsage: "[COMMIT]",
		Description: "Deploys COMMIT (default: the ref " + update.PendingRef + " that pull wrote) after checking its signature\n" +
			"and the downgrade rule once more: hardlinked checkout, /etc merged three ways, /var\n" +
			"shared, boot entries written into the other boot/loader.N and swapped in with one\n" +
			"rename, boot counter reset. A failure or power cut before the swap leaves the device\n" +
			"booting what it booted.",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return otacli.Usagef("unexpected argument %q", c.Args().Get(1))
			}
			rev := update.PendingRef
			if c.Args().Present() {
				rev = c.Args().First()
			}
			opts, err := sessionOptions(c, nil)
			if err != nil {
				return err
			}
			out, err := session.Deploy(c.Context, opts, rev)
			if err != nil {
				return err
			}
			return report(c, out)
		},
	}
}

func updateCommand() *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "pull and deploy the remote's commit when it is an update",
		ArgsUsage: " ",
		Description: "pull, then deploy when the remote commit is not the default deployment's already. With\n" +
			"--reboot, reboots into it once it is deployed. The outcome is recorded as the last\n" +
			"result (see status). When the remote commit is the default already, finishes the cleanup\n" +
			"that an update interrupted after its swap left (the previous boot version's files).",
		Flags: []cli.Flag{jsonFlag(), maxRateFlag(), &cli.BoolFlag{Name: "reboot", Usage: "reboot (the reboot command) after deploying an update"}},
		Action: func(c *cli.Context) error {
			return runUpdate(c, false, c.Bool("reboot"))
		},
	}
}

// maxRateFlag is the --max-rate flag of the commands that download.
func maxRateFlag() cli.Flag {
	return &cli.StringFlag{Name: "max-rate", Usage: "cap the download rate at `RATE` bytes per second (e.g. 512KiB, 2MiB; 0: no cap) instead of the configuration's max-rate"}
}

// runUpdate is pull (pullOnly) and update.
func runUpdate(c *cli.Context, pullOnly, reboot bool) error {
	if c.Args().Present() {
		return otacli.Usagef("unexpected argument %q", c.Args().First())
	}
	var maxRate *int64
	if c.IsSet("max-rate") {
		rate, err := clientconfig.ParseRate(c.String("max-rate"))
		if err != nil {
			return otacli.Usagef("--max-rate: %v", err)
		}
		maxRate = &rate
	}
	opts, err := sessionOptions(c, maxRate)
	if err != nil {
		return err
	}
	run := session.Update
	if pullOnly {
		run = session.Pull
	}
	out, err := run(c.Context, opts)
	if err != nil {
		return err
	}
	if err := report(c, out); err != nil {
		return err
	}
	if reboot && out.Deployment != nil {
		return rebootNow(c)
	}
	return nil
}

func applyBundleCommand() *cli.Command {
	return &cli.Command{
		Name:      "apply-bundle",
		Usage:     "update from an ota-build bundle (a self-contained static delta), e.g. on a USB stick",
		ArgsUsage: "FILE",
		Description: "Applies the bundle into the sysroot's repository, every object verified; the target\n" +
			"commit must carry a signature by a trusted key (a signed bundle must also verify), and\n" +
			"must not be older than the booted deployment's unless allow-downgrade is set. Its base\n" +
			"commit, for a delta bundle, must be in the repository. Then deploys it as deploy does.",
		Flags: []cli.Flag{jsonFlag(), &cli.BoolFlag{Name: "reboot", Usage: "reboot (the reboot command) after deploying"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return otacli.Usagef("apply-bundle takes one FILE, the bundle")
			}
			opts, err := sessionOptions(c, nil)
			if err != nil {
				return err
			}
			out, err := session.ApplyBundle(c.Context, opts, c.Args().First())
			if err != nil {
				return err
			}
			if err := report(c, out); err != nil {
				return err
			}
			if c.Bool("reboot") {
				return rebootNow(c)
			}
			return nil
		},
	}
}

// report prints what pull, deploy, update or apply-bundle did.
func report(c *cli.Context, out *session.Outcome) error {
	rep := updateJSON{Pull: out.Pull, Deployment: out.Info}
	if c.Bool("json") {
		return otacli.PrintJSON(c.App.Writer, rep)
	}
	w := c.App.Writer
	if res := out.Pull; res != nil {
		switch {
		case !res.Available:
			fmt.Fprintf(w, "up to date: %s %s\n", res.Ref, res.Remote.Checksum)
		case res.Method == "none":
			fmt.Fprintf(w, "pulled: %s %s (already in the repository)\n", res.Ref, res.Remote.Checksum)
		default:
			fmt.Fprintf(w, "pulled: %s %s (%s, %d files fetched)\n", res.Ref, res.Remote.Checksum, res.Method, res.Fetched)
		}
	}
	if out.Deployment != nil {
		fmt.Fprintf(w, "deployed: %s %s (default; rollback: %s)\n", out.Deployment.Name(), out.Info.Version, out.Previous.Name())
	}
	return nil
}

// rebootNow runs the reboot command.
func rebootNow(c *cli.Context) error { return session.Reboot(c.Context) }
