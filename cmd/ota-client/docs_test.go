package main

import (
	"strings"
	"testing"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/cli/clitest"
)

var docs = clitest.Docs{Pkg: "./cmd/ota-client", Reference: "../../docs/ota-client.md", Man: "../../docs/ota-client.1", Command: "mark-good"}

// TestCLIReference keeps docs/ota-client.md in sync with the command definitions.
func TestCLIReference(t *testing.T) { docs.CheckReference(t, newApp()) }

// TestManPage keeps docs/ota-client.1 in sync with the command definitions, and checks that
// `ota-client man` prints it.
func TestManPage(t *testing.T) { docs.CheckManPage(t, newApp(), mustClient(t, "man").stdout) }

// TestCompletion: the completion scripts name the program.
func TestCompletion(t *testing.T) {
	for _, shell := range otacli.Shells {
		if out := mustClient(t, "completion", shell).stdout; !strings.Contains(out, "ota-client") {
			t.Errorf("completion %s does not mention ota-client:\n%.200s", shell, out)
		}
	}
}
