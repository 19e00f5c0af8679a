package main

import (
	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/session"
)

// deploymentInfo is a deployment in the reports.
type deploymentInfo = session.DeploymentInfo

// noArgSession is sessionOptions for the commands that take no argument: a usage error
// when one is given.
func noArgSession(c *cli.Context) (session.Options, error) {
	if c.Args().Present() {
		return session.Options{}, otacli.Usagef("unexpected argument %q", c.Args().First())
	}
	return sessionOptions(c, nil)
}

// sessionOptions are the options of the operations of internal/session that the global
// flags ask for, with progress on standard error and warnings printed as the conventions
// say. maxRate, when set, replaces the configuration's max-rate.
func sessionOptions(c *cli.Context, maxRate *int64) (session.Options, error) {
	line, root, err := bootedBy(c)
	if err != nil {
		return session.Options{}, err
	}
	return session.Options{
		Sysroot:  c.String("sysroot"),
		Config:   c.String("config"),
		Cmdline:  line,
		Root:     root,
		Progress: otacli.Progress(c),
		Warn:     func(msg string) { otacli.Warn(c, []string{msg}) },
		MaxRate:  maxRate,
		Waiting:  waiting(c),
	}, nil
}
