package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	otacli "github.com/otakit/ota/internal/cli"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/ota-client.md and docs/ota-client.1 from the command definitions")

// TestCLIReference keeps docs/ota-client.md in sync with the command definitions.
func TestCLIReference(t *testing.T) {
	docsInSync(t, "../../docs/ota-client.md", otacli.Reference(newApp()), "TestCLIReference")
}

// TestManPage keeps docs/ota-client.1 in sync with the command definitions, and checks that
// `ota-client man` prints it.
func TestManPage(t *testing.T) {
	want, err := otacli.Man(newApp())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, ".nh\n.TH ota-client 1") || !strings.Contains(want, "mark-good") {
		t.Fatalf("man page does not look like section 1 of ota-client:\n%.300s", want)
	}
	docsInSync(t, "../../docs/ota-client.1", want, "TestManPage")
	if got := mustClient(t, "man").stdout; got != want {
		t.Errorf("ota-client man prints another page than docs/ota-client.1")
	}
}

// TestCompletion: the completion scripts name the program.
func TestCompletion(t *testing.T) {
	for _, shell := range otacli.Shells {
		if out := mustClient(t, "completion", shell).stdout; !strings.Contains(out, "ota-client") {
			t.Errorf("completion %s does not mention ota-client:\n%.200s", shell, out)
		}
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
		t.Errorf("%s is out of date: run go test ./cmd/ota-client -run %s -update", file, test)
	}
}
