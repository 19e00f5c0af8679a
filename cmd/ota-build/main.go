// Command ota-build is the build-host tool of the OTA system: it turns root filesystems into
// signed OSTree commits and inspects, signs and verifies OSTree repositories.
package main

import (
	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/sign"
	_ "github.com/otakit/ota/internal/sign/vault" // hashivault:// signing keys
)

func main() {
	otacli.Main(newApp())
}

// newApp returns the ota-build application, with the conventions of internal/cli applied.
func newApp() *cli.App {
	app := &cli.App{
		Name:  "ota-build",
		Usage: "build signed OSTree commits, static deltas and flash-ready images for OTA updates of embedded Linux devices",
		Description: "ota-build writes OSTree repositories that the ostree tools read:\n" +
			"commits from a root filesystem directory or tarball, ed25519 signatures, the summary,\n" +
			"static deltas and offline bundles, and disk images with the commit deployed. `build`\n" +
			"runs all of it from an ota.yaml manifest; `serve` serves a repository over HTTP.\n\n" +
			"A command that reads one commit takes it as its argument: REF, CHECKSUM or REF^ (log, ls,\n" +
			"sign, verify, image); one that moves a branch takes -b/--branch (commit, delta apply);\n" +
			"delta and bundle take their two commits as --from and --to. Options go before arguments.\n" +
			otacli.Conventions,
		Commands: []*cli.Command{
			initCommand(), commitCommand(), summaryCommand(), deltaCommand(), bundleCommand(),
			keygenCommand(), pubkeyCommand(), signCommand(), verifyCommand(),
			logCommand(), lsCommand(), fsckCommand(), pruneCommand(), imageCommand(), buildCommand(), serveCommand(),
		},
	}
	otacli.Setup(app)
	return app
}

// repoFlag is the --repo flag every repository command takes.
var repoFlag = &cli.StringFlag{Name: "repo", Usage: "repository `DIR`", Required: true}

// signKeyFlag is the repeatable --sign-key flag.
var signKeyFlag = &cli.StringSliceFlag{Name: "sign-key", Usage: "ed25519 signing `KEY`: " + sign.KeyRefSyntax + "; repeatable"}
