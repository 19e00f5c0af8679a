package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Reference returns app's command-line reference in Markdown (docs/cli.md for
// ota-build), rendered from the command definitions. The program's TestCLIReference
// (cmd/NAME) keeps the copy in docs/ in sync with it.
func Reference(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# `%s` command reference\n\n", app.Name)
	fmt.Fprintf(&b, "<!-- Generated from cmd/%[1]s by `go test ./cmd/%[1]s -run TestCLIReference -update`; do not edit. -->\n\n", app.Name)
	fmt.Fprintf(&b, "%s.\n\n%s\n\n", app.Usage, app.Description)
	app.Setup() // the help and version flags
	fmt.Fprintf(&b, "## Global options\n\nGiven before the command: `%s [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]`.\n\n", app.Name)
	writeFlags(&b, app.VisibleFlags())
	for _, c := range app.VisibleCommands() {
		writeCommand(&b, c, app.Name)
	}
	return b.String()
}

func writeFlags(b *strings.Builder, flags []cli.Flag) {
	b.WriteString("| option | meaning |\n|---|---|\n")
	for _, f := range flags {
		line := strings.SplitN(f.String(), "\t", 2)
		usage := ""
		if len(line) == 2 {
			usage = line[1]
		}
		fmt.Fprintf(b, "| `%s` | %s |\n", strings.TrimSpace(line[0]), strings.ReplaceAll(usage, "|", "\\|"))
	}
	b.WriteString("\n")
}

func writeCommand(b *strings.Builder, c *cli.Command, parent string) {
	name := parent + " " + c.Name
	fmt.Fprintf(b, "## `%s`\n\n%s.\n\n", name, c.Usage)
	if c.Description != "" {
		fmt.Fprintf(b, "%s\n\n", c.Description)
	}
	if len(c.Flags) > 0 {
		writeFlags(b, c.Flags)
	}
	for _, sub := range c.Subcommands {
		writeCommand(b, sub, name)
	}
}
