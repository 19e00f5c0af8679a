// Command ota-build is the build-host tool of the OTA system: it turns root filesystems into
// signed OSTree commits and inspects, signs and verifies OSTree repositories.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/otakit/ota/internal/sign"
	"github.com/urfave/cli/v2"
)

func main() {
	// Interrupted commands return through their cleanup (temporary files, staging trees)
	// instead of dying on the spot.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().RunContext(ctx, os.Args)
	stop()
	if err != nil {
		// Only cli's own exit errors carry an exit code; a wrapped *exec.ExitError of a
		// tool we ran would otherwise pass on that tool's status.
		if exit, ok := err.(cli.ExitCoder); ok {
			if msg := exit.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "ota-build: "+oneLine(msg))
			}
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "ota-build: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

// oneLine keeps an error message on a single line, as scripts and build logs expect.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newApp() *cli.App {
	return &cli.App{
		Name:  "ota-build",
		Usage: "build signed OSTree commits, static deltas and flash-ready images for OTA updates of embedded Linux devices",
		Description: "ota-build writes OSTree repositories that the ostree tools read:\n" +
			"commits from a root filesystem directory or tarball, ed25519 signatures, the summary,\n" +
			"static deltas and offline bundles, and disk images with the commit deployed. `build`\n" +
			"runs all of it from an ota.yaml manifest; `serve` serves a repository over HTTP.",
		HideHelpCommand: true,
		// main prints errors, on one line; cli's default handler would exit first.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			initCommand(), commitCommand(), summaryCommand(), deltaCommand(), bundleCommand(),
			keygenCommand(), signCommand(), verifyCommand(),
			logCommand(), lsCommand(), fsckCommand(), pruneCommand(), imageCommand(), buildCommand(), serveCommand(),
		},
	}
}

// repoFlag is the --repo flag every repository command takes.
var repoFlag = &cli.StringFlag{Name: "repo", Usage: "repository `DIR`", Required: true}

// signKeyFlag is the repeatable --sign-key flag.
var signKeyFlag = &cli.StringSliceFlag{Name: "sign-key", Usage: "ed25519 signing `KEY`: " + sign.KeyRefSyntax + "; repeatable"}
