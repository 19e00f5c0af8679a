package main

import (
	"testing"

	"github.com/otakit/ota/internal/cli/clitest"
)

var docs = clitest.Docs{Pkg: "./cmd/ota-build", Reference: "../../docs/cli.md", Man: "../../docs/ota-build.1", Command: "delta list"}

// TestCLIReference keeps docs/cli.md in sync with the command definitions.
func TestCLIReference(t *testing.T) { docs.CheckReference(t, newApp()) }

// TestManPage keeps docs/ota-build.1 in sync with the command definitions, and checks that
// `ota-build man` prints it.
func TestManPage(t *testing.T) { docs.CheckManPage(t, newApp(), ota(t, "man").stdout) }
