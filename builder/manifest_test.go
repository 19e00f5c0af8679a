package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestManifestDocs: the example in docs/manifest.md is a valid manifest for the strict
// decoder, and it shows every key of the schema.
func TestManifestDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/manifest.md has no yaml block")
	}
	dec := yaml.NewDecoder(bytes.NewReader(m[1]))
	dec.KnownFields(true)
	var man Manifest
	if err := dec.Decode(&man); err != nil {
		t.Fatalf("docs/manifest.md example: %v", err)
	}
	var missing []string
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if !regexp.MustCompile(`(?m)(^\s*(- )?|[{,] *)` + regexp.QuoteMeta(tag) + `:`).Match(m[1]) {
				missing = append(missing, tag)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(man))
	if len(missing) > 0 {
		t.Errorf("docs/manifest.md does not show the keys %v", missing)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "anexe"), nil, 0o755)
	t.Setenv("OTA_TEST_BRANCH", "t/stable")
	for _, tc := range []struct {
		name, yaml, err string
		check           func(*Manifest) bool
	}{
		{name: "expansion and paths", yaml: "repo: {path: build/repo}\ncommit:\n  rootfs: rootfs\n  branch: ${OTA_TEST_BRANCH}\n  version: ${VERSION}\n",
			check: func(m *Manifest) bool {
				return m.Commit.Branch == "t/stable" && m.Commit.Version == "9.9" && m.path(m.Repo.Path) == filepath.Join(dir, "build/repo")
			}},
		{name: "syntax", yaml: "repo: [\n", err: "ota.yaml:1: did not find expected node content"},
		{name: "unknown nested key", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: b\n  sign-key: k\n", err: `ota.yaml:5: unknown key "sign-key"`},
		{name: "wrong type", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  from-last: two\n", err: "ota.yaml:4: cannot unmarshal !!str `two` into int"},
		{name: "no repo", yaml: "commit: {rootfs: rootfs, branch: b}\n", err: "ota.yaml: repo.path is required"},
		{name: "bad mode", yaml: "repo: {path: r, mode: zip}\ncommit: {rootfs: rootfs, branch: b}\n", err: `ota.yaml:1: repo.mode "zip"`},
		{name: "no branch", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n", err: "ota.yaml:2: commit.branch is required"},
		{name: "unset", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: ${NOPE_NOT_SET}\n", err: "ota.yaml:4: ${NOPE_NOT_SET} is not set"},
		{name: "bad output kind", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  output: x.img\n  outputs: [raw, vhd]\n", err: `ota.yaml:6: image.outputs: "vhd"`},
		{name: "board and layout", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  layout: l.yaml\n  output: x.img\n", err: "ota.yaml:3: image: give board or layout"},
		{name: "bad bundle base", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  bundle: {output: b.bundle, from: last}\n", err: `ota.yaml:4: deltas.bundle.from "last"`},
		// Issue 9, item 10: every field whose validity is known before writing, with its line.
		{name: "branch escapes", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: \"../../evil\"\n", err: `ota.yaml:4: commit.branch: invalid ref name "../../evil"`},
		{name: "branch with a space", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: my os\n", err: `ota.yaml:4: commit.branch: invalid ref name "my os"`},
		{name: "stateroot with a slash", yaml: "os: my/os\nrepo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\n", err: `ota.yaml:1: os: invalid stateroot name "my/os"`},
		{name: "kernel version of a plain commit", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: b\n  bootable: false\n  kernel-version: 6.1.0\n", err: "ota.yaml:6: commit.kernel-version needs bootable: true"},
		{name: "empty metadata key", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: b\n  metadata: {\"\": x}\n", err: "ota.yaml:5: commit.metadata: empty key"},
		{name: "signed summary without keys", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nsummary:\n  sign: true\n", err: "ota.yaml:4: summary.sign: true signs with commit.sign-keys, and there are none"},
		{name: "bundle below a file", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  bundle:\n    output: afile/sub/b.bundle\n", err: "ota.yaml:5: deltas.bundle.output: " + filepath.Join(dir, "afile") + " is not a directory"},
		{name: "image output is a directory", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  output: rootfs\n", err: "ota.yaml:5: image.output: " + filepath.Join(dir, "rootfs") + " is a directory"},
		{name: "bundle over the block map", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  bundle:\n    output: x.img.bmap\nimage:\n  board: imx8mm\n  output: x.img\n", err: "ota.yaml:5: deltas.bundle.output: " + filepath.Join(dir, "x.img.bmap") + " is also written by the image"},
		{name: "karg with a newline", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  output: x.img\n  kargs:\n    - quiet\n    - \"a\\nbootcmd=x\"\n", err: `ota.yaml:8: image.kargs: kernel argument "a\nbootcmd=x" holds the control character '\n'`},
		{name: "empty karg", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  output: x.img\n  kargs: [\"\"]\n", err: "ota.yaml:6: image.kargs: empty kernel argument"},
		// Issue 10: the deltas' xz encoder.
		{name: "missing xz command", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  from-last: 1\n  xz: tools/xz\n", err: `ota.yaml:5: deltas.xz: xz encoder "` + filepath.Join(dir, "tools/xz") + `": no such file or directory`},
		{name: "xz command not in PATH", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas: {xz: no-such-xz}\n", err: `ota.yaml:3: deltas.xz: xz encoder "no-such-xz": executable file not found in $PATH`},
		{name: "xz relative to the manifest", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas: {xz: ./afile}\n", err: `ota.yaml:3: deltas.xz: xz encoder "` + filepath.Join(dir, "afile") + `": permission denied`},
		// Issue 11: zstd parts and their command.
		{name: "zstd command not in PATH", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  zstd-parts: true\n  zstd: no-such-zstd\n",
			err: `ota.yaml:5: deltas.zstd: zstd parts: zstd command "no-such-zstd": executable file not found in $PATH`},
		{name: "zstd command without zstd parts", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  zstd-parts: false\n  zstd: zstd\n",
			err: "ota.yaml:5: deltas.zstd names the command of zstd parts, and deltas.zstd-parts is false"},
		{name: "zstd relative to the manifest", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas: {zstd-parts: true, zstd: ./anexe}\n",
			check: func(m *Manifest) bool { return m.zstd() == filepath.Join(dir, "anexe") }},
		{name: "no zstd parts", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas: {from-last: 1, zstd-parts: false}\n",
			check: func(m *Manifest) bool { on, w := m.zstdParts(); return !on && w == "" }},
		{name: "zstd command without zstd-parts", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas: {zstd: ./anexe}\n",
			check: func(m *Manifest) bool { on, w := m.zstdParts(); return on && w == "" }},
		{name: "no deltas, no zstd parts", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\n",
			check: func(m *Manifest) bool { on, w := m.zstdParts(); return !on && w == "" }},
		{name: "built-in xz", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas: {xz: builtin}\n",
			check: func(m *Manifest) bool { return m.xz() == "builtin" }},
		// Issue 10: lines come from the node tree, aliases and merge keys (<<) followed.
		{name: "tag that does not fit", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\ndeltas:\n  from-last: !!int x\n", err: "ota.yaml:4: cannot decode !!str `x` as a !!int"},
		{name: "bad base64", yaml: "repo: {path: r}\ncommit:\n  rootfs: rootfs\n  branch: b\n  subject: !!binary x\n", err: "ota.yaml:5: !!binary value contains invalid base64 data"},
		{name: "merge of a scalar", yaml: "repo: {path: r}\ncommit:\n  branch: b\n  <<: 3\n", err: "ota.yaml:4: map merge requires map or sequence of maps as the value"},
		{name: "merge into itself", yaml: "repo: {path: r}\ncommit: &c\n  branch: b\n  <<: *c\n", err: `ota.yaml:4: anchor "c" value contains itself`},
		{name: "unknown key in a merged mapping", yaml: "repo: {path: r}\ncommit:\n  branch: b\n  <<:\n    rootfs: rootfs\n    sign-key: k\n", err: `ota.yaml:6: unknown key "sign-key"`},
		{name: "null key", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\n~: x\n", err: `ota.yaml:3: unknown key "~"`},
		{name: "wrong type through an alias", yaml: "repo: {path: r}\ncommit:\n  rootfs: &r rootfs\n  branch: b\n  owner: *r\n", err: "ota.yaml:5: cannot unmarshal !!str `rootfs` into builder.Owner"},
		{name: "checked value in a merged mapping", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  <<:\n    output: rootfs\n", err: "ota.yaml:6: image.output: " + filepath.Join(dir, "rootfs") + " is a directory"},
		{name: "list index past a null item", yaml: "repo: {path: r}\ncommit: {rootfs: rootfs, branch: b}\nimage:\n  board: imx8mm\n  output: x.img\n  kargs:\n    - ~\n    - \"\"\n", err: "ota.yaml:8: image.kargs: empty kernel argument"},
		{name: "merged and aliased values", yaml: "repo: {path: r}\ncommit:\n  <<: {rootfs: rootfs, branch: x}\n  branch: t/stable\n  sign-keys: &k [a.key]\nsummary: {sign-keys: *k}\n",
			check: func(m *Manifest) bool {
				return m.Commit.Rootfs == "rootfs" && m.Commit.Branch == "t/stable" && reflect.DeepEqual(m.Summary.SignKeys, []string{"a.key"})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "ota.yaml")
			os.WriteFile(file, []byte(tc.yaml), 0o644)
			m, err := Load(file, map[string]string{"VERSION": "9.9"})
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case tc.check != nil && !tc.check(m):
				t.Errorf("loaded %+v", m)
			}
		})
	}
}
