package buildrootext

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/otakit/ota/internal/testsources"
)

// testVersion is the version the release tarball is made with.
const testVersion = "1.2.3-test"

var (
	tarballOnce sync.Once
	tarballPath string
	tarballOut  string
	tarballErr  error
)

// tarballEnv is the environment of make-release-tarball.sh: its default date is the last
// commit's, which a checkout without git history lacks.
func tarballEnv() []string {
	if _, err := runErr(nil, "git", "-C", repoDir, "log", "-1"); err != nil {
		return []string{"SOURCE_DATE_EPOCH=1700000000"}
	}
	return nil
}

// releaseTarball runs scripts/make-release-tarball.sh once per test run.
func releaseTarball(t *testing.T) string {
	t.Helper()
	testsources.RequireTools(t, "go", "git", "tar", "gzip", "sha256sum")
	tarballOnce.Do(func() {
		tarballOut, tarballErr = runErr(tarballEnv(), filepath.Join(extDir, "scripts/make-release-tarball.sh"),
			"-o", filepath.Join(tmpRoot, "release"), testVersion)
		tarballPath = strings.TrimSpace(tarballOut[strings.LastIndex(strings.TrimSpace(tarballOut), "\n")+1:])
	})
	if tarballErr != nil {
		t.Fatalf("make-release-tarball.sh: %v\n%s", tarballErr, tarballOut)
	}
	return tarballPath
}

// Acceptance 5: the vendored source tarball builds ota-build (for the host) and ota-client
// (for arm64, as Buildroot cross-compiles it) with GOFLAGS=-mod=vendor GOPROXY=off and an
// empty module cache; its .hash is right and a second run makes the same bytes.
func TestReleaseTarballBuildsOffline(t *testing.T) {
	tarball := releaseTarball(t)
	if want := filepath.Join(tmpRoot, "release", "ota-"+testVersion+".tar.gz"); tarball != want {
		t.Fatalf("make-release-tarball.sh printed %q, want %q", tarball, want)
	}
	b, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	hash, err := os.ReadFile(tarball + ".hash")
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256  " + hex.EncodeToString(sum[:]) + "  ota-" + testVersion + ".tar.gz\n"; !strings.HasSuffix(string(hash), want) {
		t.Errorf("%s.hash:\n%s\nwant the line %q", tarball, hash, want)
	}

	again := filepath.Join(tmpRoot, "release-again")
	run(t, tarballEnv(), filepath.Join(extDir, "scripts/make-release-tarball.sh"), "-o", again, testVersion)
	b2, err := os.ReadFile(filepath.Join(again, filepath.Base(tarball)))
	if err != nil || string(b2) != string(b) {
		t.Errorf("a second run made another tarball (%v)", err)
	}

	src := filepath.Join(tmpRoot, "release-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "tar", "-xzf", tarball, "-C", src)
	dir := filepath.Join(src, "ota-"+testVersion)
	for _, f := range []string{"go.mod", "vendor/modules.txt", "LICENSE", "cmd/ota-client/main.go", "buildroot-ext/external.desc"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the tarball lacks %s", f)
		}
	}

	// Buildroot's environment for Go packages: vendored modules only, no proxy, no module
	// cache (an empty one), the toolchain that is there.
	modcache := filepath.Join(tmpRoot, "empty-modcache")
	if err := os.MkdirAll(modcache, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"GOFLAGS=-mod=vendor", "GOPROXY=off", "GOMODCACHE=" + modcache, "GOTOOLCHAIN=local",
		"GOWORK=off", "GONOSUMDB=", "GOSUMDB=off"}
	ldflags := "-X github.com/otakit/ota/internal/cli.Version=" + testVersion
	bin := filepath.Join(tmpRoot, "release-bin")
	build := func(extra []string, out, pkg string) {
		t.Helper()
		cmd := []string{"-C", dir, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, pkg}
		run(t, append(env, extra...), "go", cmd...)
	}
	build(nil, filepath.Join(bin, "ota-build"), "github.com/otakit/ota/cmd/ota-build")
	build([]string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}, filepath.Join(bin, "ota-client"), "github.com/otakit/ota/cmd/ota-client")
	if v := run(t, nil, filepath.Join(bin, "ota-build"), "--version"); !strings.Contains(v, testVersion) {
		t.Errorf("ota-build --version: %q", v)
	}
	elf, err := os.ReadFile(filepath.Join(bin, "ota-client"))
	if err != nil || len(elf) < 20 || string(elf[1:4]) != "ELF" || elf[18] != 0xb7 { // EM_AARCH64
		t.Errorf("ota-client is not an arm64 ELF binary (%v)", err)
	}
	if entries, _ := os.ReadDir(modcache); len(entries) != 0 {
		t.Errorf("the build wrote the module cache: %v", entries)
	}
}

// Buildroot takes the tarball as BR2_OTA_SOURCE_TARBALL: show-info names it and its
// version, Buildroot's own check-hash accepts it with the hash files Buildroot computes
// (and refuses a changed copy), its go-post-process sees it is vendored and runs no go, and
// the package .hash files' license hashes match the files in it.
func TestReleaseTarballInBuildroot(t *testing.T) {
	tarball := releaseTarball(t)
	br := buildroot(t)
	o := filepath.Join(tmpRoot, "tarball-config")
	brMake(t, br, "BR2_EXTERNAL="+extDir, "O="+o, "ota_qemu_aarch64_virt_defconfig")
	f, err := os.OpenFile(filepath.Join(o, ".config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`BR2_OTA_SOURCE_TARBALL="` + tarball + "\"\n")
	f.Close()
	brMake(t, br, "O="+o, "olddefconfig")

	vars := []string{"HOST_OTA_BUILD_HASH_FILES", "OTA_CLIENT_HASH_FILES", "OTA_CLIENT_SITE",
		"OTA_CLIENT_SOURCE", "HOST_OTA_BUILD_VERSION", "OTA_CLIENT_DL_SUBDIR", "OTA_SOURCE_CHECK"}
	v, info := brVars(t, br, o, vars, true)
	if v["HOST_OTA_BUILD_VERSION"] != testVersion || v["OTA_CLIENT_SOURCE"] != filepath.Base(tarball) ||
		v["OTA_CLIENT_SITE"] != "file://"+filepath.Dir(tarball) || v["OTA_CLIENT_DL_SUBDIR"] != "ota" {
		t.Errorf("printvars: %v", v)
	}
	if strings.TrimSpace(v["OTA_SOURCE_CHECK"]) != "" {
		t.Errorf("OTA_SOURCE_CHECK fails although the tarball is set: %q", v["OTA_SOURCE_CHECK"])
	}
	client := info["ota-client"]
	if client.Version != testVersion || len(client.Downloads) != 1 || client.Downloads[0].Source != filepath.Base(tarball) ||
		!strings.Contains(strings.Join(client.Downloads[0].URIs, " "), "file://"+filepath.Dir(tarball)) {
		t.Errorf("show-info ota-client: %+v", client)
	}

	checkHash := filepath.Join(br, "support/download/check-hash")
	for _, pkg := range []string{"HOST_OTA_BUILD", "OTA_CLIENT"} {
		hashFiles := strings.Fields(v[pkg+"_HASH_FILES"])
		if !strings.Contains(v[pkg+"_HASH_FILES"], tarball+".hash") {
			t.Errorf("%s_HASH_FILES = %q lacks the tarball's .hash", pkg, v[pkg+"_HASH_FILES"])
		}
		run(t, nil, checkHash, append([]string{tarball, filepath.Base(tarball)}, hashFiles...)...)

		changed := filepath.Join(tmpRoot, "changed.tar.gz")
		b, _ := os.ReadFile(tarball)
		os.WriteFile(changed, append(b, 0), 0o644)
		if out, err := runErr(nil, checkHash, append([]string{changed, filepath.Base(tarball)}, hashFiles...)...); err == nil ||
			!strings.Contains(out, "has wrong sha256 hash") {
			t.Errorf("%s: check-hash accepted a changed tarball: %v\n%s", pkg, err, out)
		}

		// License files: hashed in the package's .hash, checked by legal-info.
		src := filepath.Join(tmpRoot, "release-src", "ota-"+testVersion)
		if _, err := os.Stat(src); err != nil {
			run(t, nil, "mkdir", "-p", filepath.Dir(src))
			run(t, nil, "tar", "-xzf", tarball, "-C", filepath.Dir(src))
		}
		for _, lic := range []string{"LICENSE", "delta/bsdiff/NOTICE"} {
			run(t, nil, checkHash, append([]string{filepath.Join(src, lic), lic}, hashFiles...)...)
		}
	}

	// go-post-process leaves a vendored tarball alone; with no go in PATH it would fail if it
	// tried to vendor.
	dl := filepath.Join(tmpRoot, "dl")
	os.MkdirAll(dl, 0o755)
	copyFile(t, tarball, filepath.Join(dl, filepath.Base(tarball)))
	cmd := filepath.Join(br, "support/download/go-post-process")
	out, err := runErr([]string{"PATH=/usr/bin:/bin"}, "sh", "-c", `cd "$1" && "$2" -o "$3" -n "$4"`, "sh", dl, cmd,
		filepath.Join(dl, filepath.Base(tarball)), "ota-"+testVersion)
	if err != nil {
		t.Errorf("go-post-process: %v\n%s", err, out)
	}
}
