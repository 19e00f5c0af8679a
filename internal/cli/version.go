package cli

import "runtime/debug"

// Version is the release version, set when linking:
//
//	go build -ldflags "-X github.com/otakit/ota/internal/cli.Version=1.2.0" ./cmd/ota-build
//
// When empty, VersionString takes the version from the build information.
var Version string

// VersionString returns Version when set, else the main module's version from the build
// information: the tag for `go install ...@v1.2.0`, a pseudo-version such as
// v0.0.0-20261207061000-0123456789ab+dirty for a build in a git checkout, or "devel"
// (with the revision when known).
func VersionString() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return "devel " + s.Value
		}
	}
	return "devel"
}
