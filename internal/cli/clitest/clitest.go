// Package clitest holds what the tests of both commands (ota-build, ota-client) check the
// same way: the generated CLI reference and man page stay in sync with the command
// definitions they are generated from.
package clitest

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the CLI reference and the man page from the command definitions")

// Docs names a command's generated documents and how a test checks them.
type Docs struct {
	Pkg       string // the command's package, as `go test` takes it: ./cmd/ota-build
	Reference string // the Markdown reference, relative to the package: ../../docs/cli.md
	Man       string // the man page, relative to the package: ../../docs/ota-build.1
	Command   string // a subcommand the man page must mention
}

// CheckReference fails t unless d.Reference holds app's generated reference.
func (d Docs) CheckReference(t *testing.T, app *cli.App) {
	t.Helper()
	d.inSync(t, d.Reference, otacli.Reference(app), "TestCLIReference")
}

// CheckManPage fails t unless d.Man holds app's generated man page, section 1 of app.Name
// mentioning d.Command, and printed is what `NAME man` printed.
func (d Docs) CheckManPage(t *testing.T, app *cli.App, printed string) {
	t.Helper()
	want, err := otacli.Man(app)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, ".nh\n.TH "+app.Name+" 1") || !strings.Contains(want, d.Command) {
		t.Fatalf("man page does not look like section 1 of %s:\n%.300s", app.Name, want)
	}
	d.inSync(t, d.Man, want, "TestManPage")
	if printed != want {
		t.Errorf("%s man prints another page than %s", app.Name, d.Man)
	}
}

// inSync fails t unless file holds want; -update writes it first.
func (d Docs) inSync(t *testing.T, file, want, test string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date: run go test %s -run %s -update", file, d.Pkg, test)
	}
}
