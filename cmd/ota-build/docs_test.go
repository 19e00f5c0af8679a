package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/cli.md and docs/ota-build.1 from the command definitions")

// cliReference renders the command-line reference from the urfave/cli definitions.
func cliReference(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# `%s` command reference\n\n", app.Name)
	b.WriteString("<!-- Generated from cmd/ota-build by `go test ./cmd/ota-build -run TestCLIReference -update`; do not edit. -->\n\n")
	fmt.Fprintf(&b, "%s.\n\n%s\n\n", app.Usage, app.Description)
	app.Setup() // the help and version flags
	b.WriteString("## Global options\n\nGiven before the command: `ota-build [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]`.\n\n")
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

// TestCLIReference keeps docs/cli.md in sync with the command definitions.
func TestCLIReference(t *testing.T) {
	docsInSync(t, "../../docs/cli.md", cliReference(newApp()), "TestCLIReference")
}

// TestManPage keeps docs/ota-build.1 in sync with the command definitions, and checks that
// `ota-build man` prints it.
func TestManPage(t *testing.T) {
	want, err := otacli.Man(newApp())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, ".nh\n.TH ota-build 1") || !strings.Contains(want, "delta list") {
		t.Fatalf("man page does not look like section 1 of ota-build:\n%.300s", want)
	}
	docsInSync(t, "../../docs/ota-build.1", want, "TestManPage")
	if got := ota(t, "man").stdout; got != want {
		t.Errorf("ota-build man prints another page than docs/ota-build.1")
	}
}

// docsInSync fails the test unless file holds want; -update writes it first.
func docsInSync(t *testing.T, file, want, test string) {
	t.Helper()
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
		t.Errorf("%s is out of date: run go test ./cmd/ota-build -run %s -update", file, test)
	}
}
