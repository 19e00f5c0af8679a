package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/apps"
	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/sysroot"
)

// statusJSON is the report of status --json. A deployment that does not exist is null.
type statusJSON struct {
	Booted     *deploymentInfo      `json:"booted"`
	Default    *deploymentInfo      `json:"default"`
	Rollback   *deploymentInfo      `json:"rollback"`
	Remote     *clientconfig.Config `json:"remote"`
	LastResult *sysroot.Result      `json:"last_result"`
	// Apps are the applications installed in the default deployment's stateroot.
	Apps []apps.Info `json:"apps"`
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the booted, default and rollback deployments, the remote, the last result and the applications",
		ArgsUsage: " ",
		Description: "The default deployment boots next; the rollback one is what the boot script falls back\n" +
			"to. Each shows its commit, version and timestamp, read from the sysroot's repository. The\n" +
			"last result is that of the last update, rollback or fallback, kept in the default\n" +
			"deployment's stateroot as /var/lib/ota/last-result.json. Without a configuration, the\n" +
			"remote is null (a warning says why). The applications (ota-client app) are those installed\n" +
			"in the default deployment's stateroot. status does not wait for a command that holds the\n" +
			"sysroot's lock: it reads without it, as ostree admin status does.",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return otacli.Usagef("unexpected argument %q", c.Args().First())
			}
			rep := statusJSON{Apps: []apps.Info{}}
			cfg, err := loadConfig(c)
			if err != nil {
				otacli.Warn(c, []string{"no remote: " + err.Error()})
			}
			rep.Remote = cfg
			// Read-only, as ostree admin status: a report does not wait for an update.
			s, err := sysroot.Open(c.String("sysroot"), sysroot.OpenOptions{ReadOnly: true})
			if err != nil {
				return err
			}
			defer s.Close()
			deps := s.Deployments()
			for i, p := range []**deploymentInfo{&rep.Default, &rep.Rollback} {
				if i < len(deps) {
					if *p, err = session.Describe(s, deps[i]); err != nil {
						return err
					}
				}
			}
			if d, err := booted(c, s); err != nil {
				return err
			} else if d != nil {
				if rep.Booted, err = session.Describe(s, d); err != nil {
					return err
				}
			}
			if len(deps) > 0 {
				if rep.LastResult, err = s.LastResult(deps[0].OSName); err != nil {
					return err
				}
				list, err := apps.List(s.Repo(), apps.Dir(c.String("sysroot"), deps[0].OSName))
				if err != nil {
					return err
				}
				rep.Apps = append(rep.Apps, list...)
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rep)
			}
			printStatus(c.App.Writer, rep)
			return nil
		},
	}
}

// printStatus writes the text form of status.
func printStatus(w io.Writer, rep statusJSON) {
	for _, d := range []struct {
		name string
		info *deploymentInfo
	}{{"booted", rep.Booted}, {"default", rep.Default}, {"rollback", rep.Rollback}} {
		if d.info == nil {
			fmt.Fprintf(w, "%-12s none\n", d.name+":")
			continue
		}
		version := d.info.Version
		if version == "" {
			version = "(no version)"
		}
		fmt.Fprintf(w, "%-12s %s %s.%d %s %s\n", d.name+":", d.info.Stateroot, d.info.Commit, d.info.Serial, version, d.info.Timestamp.Format(time.RFC3339))
	}
	switch r := rep.Remote; {
	case r == nil:
		fmt.Fprintf(w, "%-12s none\n", "remote:")
	default:
		url, ref := r.URL, r.Ref
		if url == "" {
			url = "(no url)"
		}
		if ref == "" {
			ref = "(no ref)"
		}
		fmt.Fprintf(w, "%-12s %s %s (%s)\n", "remote:", url, ref, r.Source)
	}
	if r := rep.LastResult; r != nil {
		fmt.Fprintf(w, "%-12s %s %s %s", "last result:", r.Operation, r.Outcome, r.Time.Format(time.RFC3339))
		if r.From != "" || r.To != "" {
			fmt.Fprintf(w, " %s -> %s", r.From, r.To)
		}
		for _, m := range []string{r.Error, r.Message} {
			if m != "" {
				fmt.Fprintf(w, ": %s", otacli.OneLine(m))
			}
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "%-12s none\n", "last result:")
	}
	if len(rep.Apps) == 0 {
		fmt.Fprintf(w, "%-12s none\n", "apps:")
	}
	for _, a := range rep.Apps {
		fmt.Fprintf(w, "%-12s %s %s %s %s\n", "app:", a.Name, cmpOr(a.Version, "-"), a.Current, a.Ref)
	}
}
