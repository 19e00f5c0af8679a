package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	otacli "github.com/otakit/ota/internal/cli"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/cli.md and docs/ota-build.1 from the command definitions")

// TestCLIReference keeps docs/cli.md in sync with the command definitions.
func TestCLIReference(t *testing.T) {
	docsInSync(t, "../../docs/cli.md", otacli.Reference(newApp()), "TestCLIReference")
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
