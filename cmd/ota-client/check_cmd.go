package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/update"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "fetch and verify the remote's summary and commit: is an update available?",
		ArgsUsage: " ",
		Description: "Fetches the summary, summary.sig and the configured ref's commit with its detached\n" +
			"metadata (metadata only, nothing is stored), verifies the summary's and the commit's\n" +
			"ed25519 signatures against the trusted keys and the commit's checksum, and refuses a\n" +
			"remote commit older than the booted (else the default) deployment's unless\n" +
			"allow-downgrade is set. It reports whether the remote commit differs from the default\n" +
			"deployment's, its version, and the static delta from the default commit the summary\n" +
			"lists. With a delta, its superblock (metadata, checked against the summary) gives the\n" +
			"download size and the space the update needs; without one, both are unknown until the\n" +
			"objects are fetched.",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			opts, err := noArgSession(c)
			if err != nil {
				return err
			}
			res, err := session.Check(c.Context, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, res)
			}
			printCheck(c.App.Writer, res)
			return nil
		},
	}
}

// printCheck writes the text form of check.
func printCheck(w io.Writer, r *update.CheckResult) {
	if r.Available {
		fmt.Fprintf(w, "update available: %s\n", r.Ref)
	} else {
		fmt.Fprintf(w, "up to date: %s\n", r.Ref)
	}
	version := r.Remote.Version
	if version == "" {
		version = "(no version)"
	}
	fmt.Fprintf(w, "%-10s %s %s %s %s\n", "remote:", r.Remote.Checksum, version, r.Remote.Timestamp.Format(time.RFC3339), otacli.OneLine(r.Remote.Subject))
	def := "none"
	if r.Default != nil {
		def = *r.Default
	}
	fmt.Fprintf(w, "%-10s %s\n", "default:", def)
	if r.Available {
		delta := "none (objects)"
		if r.Delta != "" {
			delta = r.Delta
		}
		fmt.Fprintf(w, "%-10s %s\n", "delta:", delta)
	}
	size := "unknown"
	if r.DownloadSize != nil {
		size = fmt.Sprint(*r.DownloadSize)
	}
	fmt.Fprintf(w, "%-10s %s\n", "download:", size)
	if r.SpaceNeeded != nil {
		fmt.Fprintf(w, "%-10s %d\n", "space:", *r.SpaceNeeded)
	}
}
