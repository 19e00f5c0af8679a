package yoctotest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// SeedDownloads puts into DL_DIR what the fetcher of recipe (ota-build or ota-client) would
// download, so that bitbake builds it with BB_NO_NETWORK: the git clone of OTA_SRC_URI,
// made from this repository, and every gomod:// entry of the recipe's *-go-mods.inc.
func (e *Env) SeedDownloads(t *testing.T, recipe string) {
	t.Helper()
	dl := filepath.Join(e.Cache, "downloads")
	uid, gid := e.Owner()
	mkdir := func(dir string) {
		if out, err := e.Command("", "mkdir", "-p", dir).CombinedOutput(); err != nil {
			t.Fatalf("mkdir %s: %v: %s", dir, err, out)
		}
	}
	mkdir(filepath.Join(dl, "git2"))

	// The clone the git fetcher keeps in DL_DIR/git2, with the recipe's SRCREV on branch main.
	srcrev := recipeVar(t, filepath.Join(e.Layer, "recipes-ota", "ota-source.inc"), "SRCREV")
	clone := filepath.Join(dl, "git2", "github.com.otakit.ota.git")
	if err := exec.Command("git", "--git-dir", clone, "cat-file", "-e", srcrev+"^{commit}").Run(); err != nil {
		tmp := clone + ".tmp"
		os.RemoveAll(tmp)
		for _, args := range [][]string{
			{"clone", "--quiet", "--mirror", "--no-hardlinks", e.Repo, tmp},
			{"--git-dir", tmp, "cat-file", "-e", srcrev + "^{commit}"},
			{"--git-dir", tmp, "update-ref", "refs/heads/main", gitHead(t, e.Repo)},
			{"--git-dir", tmp, "merge-base", "--is-ancestor", srcrev, "refs/heads/main"},
		} {
			if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
				t.Fatalf("git %s: %v: %s (the recipes' SRCREV %s must be in this checkout's history)", strings.Join(args, " "), err, out, srcrev)
			}
		}
		if err := ChownR(tmp, uid, gid); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(clone)
		if err := os.Rename(tmp, clone); err != nil {
			t.Fatal(err)
		}
	}

	// The modules: from Go's module cache (the one `go build` of this repository filled), else
	// downloaded into it from the module proxy.
	entries := goModEntries(t, filepath.Join(e.Layer, "recipes-ota", recipe, recipe+"-go-mods.inc"))
	gomodcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	for _, m := range entries {
		dst := filepath.Join(dl, strings.ReplaceAll(m.path, "/", ".")+"@"+m.version+m.ext)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		src := filepath.Join(strings.TrimSpace(string(gomodcache)), "cache", "download", escapeModule(m.path), "@v", m.version+m.ext)
		if _, err := os.Stat(src); err != nil {
			src = downloadModule(t, m)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(dst, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// goMod is a gomod:// entry of a *-go-mods.inc: the module zip, or its go.mod (mod=1).
type goMod struct{ path, version, ext string }

func goModEntries(t *testing.T, inc string) []goMod {
	t.Helper()
	data, err := os.ReadFile(inc)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`gomod://([^;\s]+);version=([^;\s]+)(;mod=1)?`)
	var mods []goMod
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		ext := ".zip"
		if m[3] != "" {
			ext = ".mod"
		}
		mods = append(mods, goMod{m[1], m[2], ext})
	}
	if len(mods) == 0 {
		t.Fatalf("%s lists no gomod:// module", inc)
	}
	return mods
}

// downloadModule fetches a module into Go's module cache (go mod download) and returns the
// file of m there.
func downloadModule(t *testing.T, m goMod) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", m.path+"@"+m.version)
	cmd.Dir = t.TempDir() // outside any module
	out, err := cmd.Output()
	var info struct{ Zip, GoMod, Error string }
	if jerr := json.Unmarshal(out, &info); err != nil || jerr != nil || info.Error != "" {
		t.Fatalf("go mod download %s@%s: %v %v %s", m.path, m.version, err, jerr, info.Error)
	}
	if m.ext == ".mod" {
		return info.GoMod
	}
	return info.Zip
}

// escapeModule is the module cache's spelling of a module path: each capital letter becomes
// '!' and the letter in lower case.
func escapeModule(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// recipeVar returns the value of NAME ?= "VALUE" (or =) in a recipe file.
func recipeVar(t *testing.T, file, name string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*\??=\s*"([^"]*)"`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s sets no %s", file, name)
	}
	return string(m[1])
}

// gitHead returns the commit checked out in repo.
func gitHead(t *testing.T, repo string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD in %s: %v", repo, err)
	}
	return strings.TrimSpace(string(out))
}

// ChownR gives a tree to the build user (a no-op when the tests run as that user).
func ChownR(dir string, uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
