package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/apps"
	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/session"
)

func appCommand() *cli.Command {
	return &cli.Command{
		Name:  "app",
		Usage: "install, update, roll back and remove applications that update independently of the OS",
		Description: "An application is a signed commit on its own ref, apps/NAME/ARCH/CHANNEL, of the OS's\n" +
			"repository (ota-build commit --app, or apps: in ota.yaml). It is pulled into the device's\n" +
			"repository, sharing its objects with the OS, verified as an OS commit is, and checked\n" +
			"out hardlinked as /var/lib/ota/apps/NAME/COMMIT.SERIAL in the stateroot's shared /var, so\n" +
			"OS updates keep it; the symlinks current and previous name the version that runs and the\n" +
			"one rollback returns to, each switched by a rename. The OS deployments are never touched.\n" +
			"See docs/apps.md.",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list the installed applications", ArgsUsage: " ",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					opts, err := noArgSession(c)
					if err != nil {
						return err
					}
					list, err := session.ListApps(opts)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return otacli.PrintJSON(c.App.Writer, struct {
							Apps []apps.Info `json:"apps"`
						}{list})
					}
					for _, a := range list {
						fmt.Fprintf(c.App.Writer, "%s %s %s %s\n", a.Name, cmpOr(a.Version, "-"), a.Current, a.Ref)
					}
					return nil
				},
			},
			{
				Name: "install", Usage: "install application NAME (an installed one is updated)", ArgsUsage: "NAME",
				Description: "Checks the remote's signed summary and the commit's signature and metadata before\n" +
					"anything is written: its " + apps.MetaName + " must be NAME and its " + apps.MetaOSVersions + "\n" +
					"must match the version of the booted (else the default) deployment. Then pulls it (only\n" +
					"the objects the repository lacks: files identical to the OS's are not downloaded) and\n" +
					"makes it current.",
				Flags: []cli.Flag{jsonFlag(),
					&cli.StringFlag{Name: "ref", Usage: "the application's `REF` (default: apps/NAME/ARCH/stable, ARCH as uname -m says)"}},
				Action: func(c *cli.Context) error {
					return runApp(c, func(opts session.Options, name string) (*session.AppOutcome, error) {
						return session.InstallApp(c.Context, opts, name, c.String("ref"))
					})
				},
			},
			{
				Name: "update", Usage: "update application NAME from the ref it was installed from", ArgsUsage: "NAME",
				Description: "As install, through the static delta from the current (else previous) version when\n" +
					"the summary lists one. The current version becomes the previous one. A kill leaves the\n" +
					"version that was current, complete, current; running update again finishes.",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					return runApp(c, func(opts session.Options, name string) (*session.AppOutcome, error) {
						return session.UpdateApp(c.Context, opts, name)
					})
				},
			},
			{
				Name: "rollback", Usage: "make the previous version of application NAME current", ArgsUsage: "NAME",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					return runApp(c, func(opts session.Options, name string) (*session.AppOutcome, error) {
						return session.RollbackApp(opts, name)
					})
				},
			},
			{
				Name: "remove", Usage: "remove application NAME (cleanup then frees its objects)", ArgsUsage: "NAME",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					return runApp(c, func(opts session.Options, name string) (*session.AppOutcome, error) {
						return session.RemoveApp(opts, name)
					})
				},
			},
		},
	}
}

// runApp runs an app subcommand on its one argument, NAME, and reports what it did.
func runApp(c *cli.Context, run func(session.Options, string) (*session.AppOutcome, error)) error {
	if c.NArg() != 1 {
		return otacli.Usagef("%s takes one NAME, the application's", c.Command.Name)
	}
	opts, err := sessionOptions(c, nil)
	if err != nil {
		return err
	}
	name := c.Args().First()
	out, err := run(opts, name)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return otacli.PrintJSON(c.App.Writer, out)
	}
	w := c.App.Writer
	switch a := out.App; {
	case a == nil:
		fmt.Fprintf(w, "removed: %s\n", name)
	case !out.Changed:
		fmt.Fprintf(w, "up to date: %s %s %s\n", a.Name, cmpOr(a.Version, "-"), a.Current)
	default:
		fmt.Fprintf(w, "current: %s %s %s (previous: %s)\n", a.Name, cmpOr(a.Version, "-"), a.Current, cmpOr(a.Previous, "none"))
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
