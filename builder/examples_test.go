package builder

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/otakit/ota/internal/progress"
	"github.com/otakit/ota/internal/sign"
)

// exampleCase describes one directory of examples/: the environment its manifest reads,
// the inputs to fake at the paths it expects, and what the manifest must say.
type exampleCase struct {
	dir string
	// env maps each variable to a path under the test's temporary directory.
	env []string
	// rootfs is the rootfs path after expansion (a directory, or a tarball by extension).
	rootfs string
	// key is where the signing key goes ("<prefix>.key").
	key string
	// bootDir and bootFiles are the fake boot files the board needs.
	bootDir   string
	bootFiles []string
	// doc is the file that must mention every ${VAR} of the manifest.
	doc string

	board, branch string
	outputs       []string
	size          string
	kargs         []string
	deltas        DeltaSpec
}

var exampleCases = []exampleCase{
	{
		dir: "quickstart", env: []string{"OUT"},
		rootfs: "OUT/rootfs", key: "OUT/release.key", doc: "run.sh",
		board: "qemu-aarch64", branch: "quickstart/aarch64/stable", outputs: []string{"raw", "bmap", "zstd"},
		deltas: DeltaSpec{FromLast: 1, FromScratch: true},
	},
	{
		dir: "raspberrypi4", env: []string{"DEPLOY_DIR_IMAGE", "OTA_OUT", "OTA_KEY"},
		rootfs: "DEPLOY_DIR_IMAGE/core-image-minimal-raspberrypi4-64.rootfs.tar.zst",
		key:    "OTA_KEY", doc: "README.md",
		bootDir: "OTA_OUT/boot-files",
		bootFiles: []string{"start4.elf", "start4x.elf", "fixup4.dat", "fixup4x.dat", "config.txt",
			"u-boot.bin", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "overlays/vc4-kms-v3d.dtbo"},
		board: "raspberrypi4-64", branch: "myos/raspberrypi4-64/stable", outputs: []string{"raw", "bmap", "zstd"},
		size: "4GiB", kargs: []string{"console=ttyS0,115200", "8250.nr_uarts=1"},
		deltas: DeltaSpec{FromLast: 2, FromScratch: true},
	},
	{
		dir: "imx8mm", env: []string{"BINARIES_DIR", "OTA_OUT", "OTA_KEY"},
		rootfs: "BINARIES_DIR/rootfs.tar", key: "OTA_KEY", doc: "README.md",
		bootDir: "BINARIES_DIR", bootFiles: []string{"flash.bin", "imx8mm-evk.dtb", "Image"},
		board: "imx8mm", branch: "myos/imx8mm-evk/stable", outputs: []string{"raw", "bmap", "zstd"},
		size: "2GiB", kargs: []string{"console=ttymxc1,115200"},
		deltas: DeltaSpec{FromLast: 2, FromScratch: true},
	},
}

// TestExampleManifests loads each example manifest with the real parser, its variables
// pointing at fake inputs, and runs the pipeline's checks (keys, board, boot files) without
// writing anything.
func TestExampleManifests(t *testing.T) {
	for _, tc := range exampleCases {
		t.Run(tc.dir, func(t *testing.T) {
			tmp := t.TempDir()
			// A variable named like a file (OTA_KEY) is that file; the others are directories.
			at := func(p string) string {
				v, rest, _ := strings.Cut(p, "/")
				return filepath.Join(tmp, v, rest)
			}
			for _, v := range tc.env {
				if v == "OTA_KEY" {
					t.Setenv(v, filepath.Join(tmp, "keys", "release.key"))
				} else {
					t.Setenv(v, filepath.Join(tmp, v))
				}
			}
			keyPath := at(tc.key)
			if tc.key == "OTA_KEY" {
				keyPath = os.Getenv("OTA_KEY")
			}
			makeRootfs(t, at(tc.rootfs))
			if err := os.MkdirAll(filepath.Dir(keyPath), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := sign.GenerateKey(strings.TrimSuffix(keyPath, ".key"), nil); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.bootFiles {
				writeFile(t, filepath.Join(at(tc.bootDir), f), "fake "+f+"\n")
			}

			file := filepath.Join("..", "examples", tc.dir, "ota.yaml")
			m, err := Load(file, map[string]string{"VERSION": "1.0"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Commit.Branch != tc.branch || m.Commit.Version != "1.0" {
				t.Errorf("commit: branch %q version %q, want %q 1.0", m.Commit.Branch, m.Commit.Version, tc.branch)
			}
			if got := m.path(m.Commit.Rootfs); got != at(tc.rootfs) {
				t.Errorf("commit.rootfs = %s, want %s", got, at(tc.rootfs))
			}
			if m.Commit.Bootable != nil && !*m.Commit.Bootable {
				t.Error("commit.bootable is false")
			}
			if len(m.Commit.SignKeys) == 0 || !m.Summary.Sign {
				t.Errorf("commit.sign-keys %q, summary.sign %v: want signed commits and summary", m.Commit.SignKeys, m.Summary.Sign)
			}
			if d := m.Deltas; d == nil || d.FromLast != tc.deltas.FromLast || d.FromScratch != tc.deltas.FromScratch || d.Bundle == nil {
				t.Errorf("deltas = %+v, want from-last %d, from-scratch %v and a bundle", d, tc.deltas.FromLast, tc.deltas.FromScratch)
			} else if !strings.Contains(d.Bundle.Output, "1.0") {
				t.Errorf("deltas.bundle.output %q does not carry the version", d.Bundle.Output)
			}
			im := m.Image
			if im == nil {
				t.Fatal("no image")
			}
			if im.Board != tc.board || !slices.Equal(im.Outputs, tc.outputs) || im.Size != tc.size || !slices.Equal(im.Kargs, tc.kargs) {
				t.Errorf("image: board %q outputs %q size %q kargs %q, want %q %q %q %q",
					im.Board, im.Outputs, im.Size, im.Kargs, tc.board, tc.outputs, tc.size, tc.kargs)
			}
			if !strings.Contains(im.Output, "1.0") || !strings.HasPrefix(m.path(im.Output), tmp) {
				t.Errorf("image.output %q: want it under the output directory, with the version", im.Output)
			}
			if tc.bootDir != "" && m.path(im.BootFiles) != at(tc.bootDir) {
				t.Errorf("image.boot-files = %s, want %s", m.path(im.BootFiles), at(tc.bootDir))
			}
			// Everything the pipeline checks before writing: keys, board, boot files.
			p, err := prepare(context.Background(), m, progress.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.signers) != 1 || len(p.sumSigners) != 1 {
				t.Errorf("%d commit and %d summary signers, want 1 and 1", len(p.signers), len(p.sumSigners))
			}
			if _, err := os.Stat(m.path(m.Repo.Path)); err == nil {
				t.Error("prepare created the repository")
			}
		})
	}
}

// TestExampleVariablesDocumented: every ${VAR} an example manifest reads is named in the
// example's README (run.sh for the quickstart).
func TestExampleVariablesDocumented(t *testing.T) {
	for _, tc := range exampleCases {
		dir := filepath.Join("..", "examples", tc.dir)
		manifest, err := os.ReadFile(filepath.Join(dir, "ota.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := os.ReadFile(filepath.Join(dir, tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		// Comments are not expanded: drop them (a # after a blank or at the line's start).
		text := regexp.MustCompile(`(?m)(^|\s)#.*$`).ReplaceAllString(string(manifest), "")
		vars := map[string]bool{}
		for _, g := range varRE.FindAllStringSubmatch(text, -1) {
			vars[g[1]] = true
		}
		if len(vars) == 0 {
			t.Errorf("%s/ota.yaml uses no variables", tc.dir)
		}
		for v := range vars {
			if !regexp.MustCompile(`\b` + v + `\b`).Match(doc) {
				t.Errorf("%s/ota.yaml uses ${%s}, which %s/%s does not mention", tc.dir, v, tc.dir, tc.doc)
			}
		}
		for _, v := range tc.env {
			if !vars[v] {
				t.Errorf("%s/ota.yaml does not use ${%s}, which the test sets", tc.dir, v)
			}
		}
	}
}

// makeRootfs writes a small bootable tree at p: a directory, or a tarball (.tar, .tar.zst)
// with the owners a build under fakeroot or pseudo records.
func makeRootfs(t *testing.T, p string) {
	t.Helper()
	files := map[string]string{
		"etc/os-release":                     "ID=myos\nVERSION_ID=1.0\n",
		"boot/vmlinuz-6.6.0-test":            "fake kernel\n",
		"boot/initramfs-6.6.0-test.img":      "fake initramfs\n",
		"usr/bin/app":                        "#!/bin/sh\n",
		"lib/modules/6.6.0-test/modules.dep": "",
		"boot/freescale/imx8mm-evk.dtb":      "fake dtb\n",
		"usr/share/myos/release":             "1.0\n",
		"var/lib/myos/.keep":                 "",
		"boot/overlays/vc4-kms-v3d.dtbo":     "fake overlay\n",
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if !strings.Contains(filepath.Base(p), ".tar") {
		for _, n := range names {
			writeFile(t, filepath.Join(p, n), files[n])
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var zw *zstd.Encoder
	var tw *tar.Writer
	if strings.HasSuffix(p, ".zst") {
		if zw, err = zstd.NewWriter(f); err != nil {
			t.Fatal(err)
		}
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(f)
	}
	dirs := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var all []string
	for d := range dirs {
		all = append(all, d)
	}
	slices.Sort(all)
	for _, d := range all {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./" + d + "/", Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./" + n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
