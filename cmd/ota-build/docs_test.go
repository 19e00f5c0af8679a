package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/cli.md from the command definitions")

// cliReference renders the command-line reference from the urfave/cli definitions.
func cliReference(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# `%s` command reference\n\n", app.Name)
	b.WriteString("<!-- Generated from cmd/ota-build by `go test ./cmd/ota-build -run TestCLIReference -update`; do not edit. -->\n\n")
	fmt.Fprintf(&b, "%s.\n\n%s\n\n", app.Usage, app.Description)
	for _, c := range app.Commands {
		writeCommand(&b, c, app.Name)
	}
	return b.String()
}

func writeCommand(b *strings.Builder, c *cli.Command, parent string) {
	name := parent + " " + c.Name
	fmt.Fprintf(b, "## `%s`\n\n%s.\n\n", name, c.Usage)
	if c.Description != "" {
		fmt.Fprintf(b, "%s\n\n", c.Description)
	}
	if len(c.Flags) > 0 {
		b.WriteString("| option | meaning |\n|---|---|\n")
		for _, f := range c.Flags {
			line := strings.SplitN(f.String(), "\t", 2)
			usage := ""
			if len(line) == 2 {
				usage = line[1]
			}
			fmt.Fprintf(b, "| `%s` | %s |\n", strings.TrimSpace(line[0]), strings.ReplaceAll(usage, "|", "\\|"))
		}
		b.WriteString("\n")
	}
	for _, sub := range c.Subcommands {
		writeCommand(b, sub, name)
	}
}

// TestCLIReference keeps docs/cli.md in sync with the command definitions.
func TestCLIReference(t *testing.T) {
	want := cliReference(newApp())
	const file = "../../docs/cli.md"
	if *updateDocs {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("docs/cli.md is out of date: run go test ./cmd/ota-build -run TestCLIReference -update")
	}
}
