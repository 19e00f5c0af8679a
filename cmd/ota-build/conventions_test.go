package main

// The command-line conventions (issue 10): --version, completion, exit statuses, usage
// errors, progress in build logs and as JSON, --json reports with a schema, and the
// commands and flags that make the names consistent.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVersionFlag: --version prints the build information's version, or the one given to
// the linker.
func TestVersionFlag(t *testing.T) {
	mod := regexp.MustCompile(`(?m)^\tmod\t\S+\t(\S+)`).FindStringSubmatch(must(t, "go", "version", "-m", otaBuild).stdout)
	if mod == nil {
		t.Fatal("go version -m shows no main module")
	}
	want := "ota-build version " + mod[1]
	if mod[1] == "(devel)" {
		want = "ota-build version devel"
	}
	if got := ota(t, "--version").stdout; !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("--version printed %q, want %q", got, want)
	}

	bin := filepath.Join(t.TempDir(), "ota-build")
	must(t, "go", "build", "-o", bin, "-ldflags", "-X github.com/otakit/ota/internal/cli.Version=9.8.7-test", ".")
	if got := must(t, bin, "--version").stdout; got != "ota-build version 9.8.7-test\n" {
		t.Errorf("with -ldflags -X: --version printed %q", got)
	}
}

// TestCompletion: the bash script, sourced, completes commands, subcommands and flags by
// asking ota-build; the zsh and fish scripts name the program and its commands.
func TestCompletion(t *testing.T) {
	requireTool(t, "bash")
	script := filepath.Join(t.TempDir(), "ota-build.bash")
	if err := os.WriteFile(script, []byte(ota(t, "completion", "bash").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		t.Helper()
		// COMP_WORDS as bash fills it: the words typed, the last one being completed.
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		r := must(t, "bash", "-c", ". "+script+"; COMP_WORDS=("+otaBuild+" "+strings.Join(quoted, " ")+
			"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _ota_build; printf '%s\\n' \"${COMPREPLY[@]}\"")
		return strings.Fields(r.stdout)
	}
	if got := complete(""); !slices.Contains(got, "commit") || !slices.Contains(got, "delta") || !slices.Contains(got, "completion") {
		t.Errorf("completing the command: %q", got)
	}
	if got := complete("de"); !slices.Equal(got, []string{"delta"}) {
		t.Errorf("completing de: %q, want delta", got)
	}
	if got := complete("delta", ""); !slices.Equal(got, []string{"apply", "show", "list"}) {
		t.Errorf("completing delta's subcommands: %q", got)
	}
	if got := complete("commit", "--skip"); !slices.Contains(got, "--skip-if-unchanged") || !slices.Contains(got, "--skip-list") {
		t.Errorf("completing commit --skip: %q", got)
	}

	zsh := ota(t, "completion", "zsh").stdout
	if !strings.HasPrefix(zsh, "#compdef ota-build\n") || !strings.Contains(zsh, "--generate-bash-completion") {
		t.Errorf("zsh script:\n%s", zsh)
	}
	fish := ota(t, "completion", "fish").stdout
	for _, want := range []string{"complete -c ota-build", "'commit'", "'delta'", "skip-if-unchanged"} {
		if !strings.Contains(fish, want) {
			t.Errorf("fish script lacks %q", want)
		}
	}
}

// convOneLine fails the test unless r failed with status code and one stderr line
// "ota-build: ..." containing want, and printed nothing on stdout.
func convOneLine(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasPrefix(r.stderr, "ota-build: ") || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and one line with %q", r.code, r.stdout, r.stderr, code, want)
	}
}

// TestUsageErrorExit2: an unknown flag or command, a missing argument or required flag and
// a bad flag value exit 2 with one line naming the command and its help, not the help.
func TestUsageErrorExit2(t *testing.T) {
	dir := t.TempDir()
	repo, _ := accRepo(t, dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"commit", "--foo"}, "ota-build: commit: flag provided but not defined: -foo (see ota-build commit --help)"},
		{[]string{"commit", "--repo", repo}, "commit: --tree is required (see ota-build commit --help)"},
		{[]string{"commit", "--repo", repo, "--tree", "dir=" + dir}, "commit: --branch is required (or --app) (see ota-build commit --help)"},
		{[]string{"commit", "--repo", repo, "--tree", "dir=" + dir, "-b", "main", "--exec", "bin/x"}, "commit: --exec needs --app (see ota-build commit --help)"},
		{[]string{"commit", "--repo", repo, "-b", "main", "--tree", "zip=x"}, `commit: --tree "zip=x": want dir=PATH, tar=FILE or tar=- (see ota-build commit --help)`},
		{[]string{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + dir, "--timestamp", "soon"}, `--timestamp "soon"`},
		{[]string{"log", "--repo", repo}, "log: want exactly one REF or CHECKSUM argument (see ota-build log --help)"},
		{[]string{"log", "--repo", repo, "main", "--json"}, "log: option --json after REF"},
		{[]string{"delta", "apply", "--repo", repo}, "delta apply: want one FILE or DIR argument (see ota-build delta apply --help)"},
		{[]string{"delta", "--repo", repo, "--to", "main", "--compression", "lz4"}, `--compression "lz4"`},
		{[]string{"delta", "--repo", repo, "--to", "main", "--max-part-size", "big"}, `invalid value "big" for flag -max-part-size`},
		{[]string{"init", "--repo", filepath.Join(dir, "new"), "--mode", "fancy"}, "init: --mode"},
		{[]string{"image", "--repo", repo, "-o", filepath.Join(dir, "x.img"), "main"}, "image: --board or --layout is required"},
		{[]string{"keygen", "--out", filepath.Join(dir, "k")}, "keygen: flag provided but not defined: -out"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see ota-build --help)`},
		{[]string{"--progress", "loud", "fsck", "--repo", repo}, `--progress "loud": want auto, plain, json, none`},
		{[]string{"completion", "csh"}, `shell "csh"`},
	} {
		r := runCmd(t, nil, nil, otaBuild, tc.args...)
		t.Logf("%v: exit %d, %s", tc.args, r.code, strings.TrimSpace(r.stderr))
		convOneLine(t, r, 2, tc.want)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Errorf("init with a bad --mode created the repository")
	}
}

// TestInterruptExit130: SIGINT stops a running commit, which cleans up and exits 130 with
// one line; SIGTERM exits 143. The branch is not created and both fscks pass.
func TestInterruptExit130(t *testing.T) {
	requireTool(t, "ostree", "cp")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	crashTree(t, tree, 1)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			ota(t, "init", "--repo", repo)
			cmd := exec.Command(otaBuild, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signal once the commit is storing objects: well before it ends.
			for deadline := time.Now().Add(30 * time.Second); crashObjects(repo) == 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("commit finished before the signal (%v): the test proved nothing", err)
			}
			want, line := 128+int(sig), map[syscall.Signal]string{syscall.SIGINT: "ota-build: interrupted by SIGINT\n", syscall.SIGTERM: "ota-build: interrupted by SIGTERM\n"}[sig]
			if ee.ExitCode() != want || stderr.String() != line || stdout.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", ee.ExitCode(), stdout.String(), stderr.String(), want, line)
			}
			if head := crashRef(t, repo); head != "" {
				t.Errorf("the interrupted commit moved main to %s", head)
			}
			crashFscks(t, repo)
		})
	}
}

// qsOut prepares an output directory for examples/quickstart/ota.yaml, as run.sh does:
// the rootfs of a release and the signing key.
func qsOut(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	rootfs := filepath.Join(out, "rootfs")
	must(t, "cp", "-a", "../../examples/quickstart/rootfs", rootfs)
	boot := filepath.Join(rootfs, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	accWriteFile(t, boot, "vmlinuz-6.1.0-quickstart", []byte(strings.Repeat("fake arm64 kernel\n", 2000)))
	accWriteFile(t, boot, "initramfs-6.1.0-quickstart.img", []byte("fake initramfs\n"))
	accWriteFile(t, boot, "qemu-virt.dtb", []byte("fake device tree\n"))
	ota(t, "keygen", "-o", filepath.Join(out, "release"))
	return out
}

// stageLine is a line of --progress=plain: "TIME STAGE: DONE[/TOTAL], X MB[, done in Ns]".
var stageLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) ([^:]+): (\d+)(?:/(\d+))?, (\d+\.\d) MB(, done in \d+\.\ds)?$`)

// TestBuildLogProgress: `ota-build build ... 2>&1 | cat`, as in a Yocto or Buildroot log,
// shows timestamped lines for every stage, each started and ended, the image stages with
// their real counts; --progress=json gives JSON lines with the schema.
func TestBuildLogProgress(t *testing.T) {
	requireTool(t, "bash", "cp")
	out := qsOut(t)
	env := []string{"OUT=" + out, "OTA_PROGRESS=", "SOURCE_DATE_EPOCH=" + accTimestamp}
	r := runCmd(t, env, nil, "bash", "-c", otaBuild+" build -f ../../examples/quickstart/ota.yaml --version 1.0 2>&1 | cat")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	started, ended := map[string]int{}, map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := stageLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, err := time.Parse(time.RFC3339, m[1]); err != nil {
			t.Errorf("%q: %v", line, err)
		}
		if m[6] == "" {
			started[m[2]]++
			continue
		}
		ended[m[2]]++
		if m[3] == "0" || (m[4] != "" && m[3] != m[4]) {
			t.Errorf("stage ended without its count: %q", line)
		}
	}
	for _, stage := range []string{"commit", "delta", "deploying the sysroot", "writing FAT partition boot",
		"writing the sysroot partition", "writing the block map", "compressing"} {
		if started[stage] == 0 || started[stage] != ended[stage] {
			t.Errorf("stage %q: started %d times, ended %d times", stage, started[stage], ended[stage])
		}
	}
	if !regexp.MustCompile(`(?m)^\S+Z image +\S+quickstart-1\.0\.img \(new\)$`).MatchString(r.stdout) {
		t.Errorf("no timestamped line for the image")
	}
	if t.Failed() {
		t.Logf("output:\n%s", r.stdout)
	}

	// JSON lines.
	accWriteFile(t, filepath.Join(out, "rootfs", "etc"), "hostname", []byte("two\n"))
	env[1] = "OTA_PROGRESS=json"
	r = runCmd(t, env, nil, otaBuild, "build", "-f", "../../examples/quickstart/ota.yaml", "--version", "2.0")
	if r.code != 0 {
		t.Fatalf("build 2.0: exit %d\n%s", r.code, r.stderr)
	}
	events := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	for sc.Scan() {
		var e struct {
			Schema      int
			Time, Event string
			Stage       string
			Done, Total *int64
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", sc.Text(), err)
		}
		if e.Schema != 1 || e.Time == "" || e.Event == "" {
			t.Errorf("line %q lacks schema, time or event", sc.Text())
		}
		if e.Event != "log" {
			events[e.Stage+" "+e.Event]++
		}
	}
	for _, want := range []string{"commit start", "commit done", "delta done", "writing the sysroot partition done"} {
		if events[want] == 0 {
			t.Errorf("no %q event: %v", want, events)
		}
	}
}

// convJSON runs ota-build with args, which must succeed, and returns its --json report,
// failing the test unless the report's first key is "schema": 1.
func convJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	r := ota(t, args...)
	var rep map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("ota-build %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"schema\": 1,") || rep["schema"] != 1.0 {
		t.Errorf("ota-build %s: the report does not start with \"schema\": 1:\n%.200s", strings.Join(args, " "), r.stdout)
	}
	return rep
}

// convKeys fails the test unless the report has every key.
func convKeys(t *testing.T, what string, rep map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := rep[k]; !ok {
			t.Errorf("%s report lacks %q: %v", what, k, rep)
		}
	}
}

// TestJSONReports: every command that reports something has --json, with the schema, and
// commit, delta and bundle report what build reports for them, under the same keys.
func TestJSONReports(t *testing.T) {
	requireTool(t, "cp")
	out := qsOut(t)
	t.Setenv("OUT", out)
	t.Setenv("SOURCE_DATE_EPOCH", accTimestamp)
	build := convJSON(t, "build", "-f", "../../examples/quickstart/ota.yaml", "--version", "1.0", "--json")
	convKeys(t, "build", build, "manifest", "repo", "commit", "summary", "deltas", "bundle", "image", "seconds", "stage_seconds")
	buildCommit := build["commit"].(map[string]any)
	repo, rev := filepath.Join(out, "repo"), "quickstart/aarch64/stable"

	// The manifest's commit: bootable, owned by root.
	commit := convJSON(t, "commit", "--repo", repo, "-b", "other", "--tree", "dir="+filepath.Join(out, "rootfs"),
		"--bootable", "--owner-uid", "0", "--owner-gid", "0", "--json")
	for k := range buildCommit {
		if _, ok := commit[k]; !ok && k != "version" {
			t.Errorf("commit --json lacks build's commit key %q: %v", k, commit)
		}
	}
	convKeys(t, "commit", commit, "repo", "seconds")
	if commit["content_checksum"] != buildCommit["content_checksum"] {
		t.Errorf("the same tree has content checksum %v in commit, %v in build", commit["content_checksum"], buildCommit["content_checksum"])
	}

	deltaKeys := slices.Collect(func(yield func(string) bool) {
		for k := range build["deltas"].([]any)[0].(map[string]any) {
			if !yield(k) {
				return
			}
		}
	})
	d := convJSON(t, "delta", "--repo", repo, "--from", "empty", "--to", "other", "--json")
	convKeys(t, "delta", d, append(deltaKeys, "repo", "seconds")...)
	b := convJSON(t, "bundle", "--repo", repo, "--from", "empty", "--to", "other", "-o", filepath.Join(out, "b.bundle"), "--json")
	// A bundle's parts are inline: it has no zstd parts, which build's deltas have.
	bundleKeys := slices.DeleteFunc(deltaKeys, func(k string) bool { return k == "zstd_encoder" })
	convKeys(t, "bundle", b, append(bundleKeys, "repo", "seconds")...)

	convKeys(t, "delta show", convJSON(t, "delta", "show", "--repo", repo, "--json", d["name"].(string)),
		"name", "to", "timestamp", "signed", "parts", "bytes", "fallbacks")
	convKeys(t, "delta list", convJSON(t, "delta", "list", "--repo", repo, "--json"), "repo", "deltas")
	convKeys(t, "verify", convJSON(t, "verify", "--repo", repo, "--pubkey", filepath.Join(out, "release.pub"), "--json", rev),
		"checksum", "valid", "signatures", "keys")
	convKeys(t, "fsck", convJSON(t, "fsck", "--repo", repo, "--json"), "repo", "problems")
	log := convJSON(t, "log", "--repo", repo, "--json", rev)
	convKeys(t, "log", log, "commits", "truncated")
	if c := log["commits"].([]any)[0].(map[string]any); c["checksum"] != buildCommit["checksum"] || c["version"] != "1.0" {
		t.Errorf("log --json: %v, want commit %v of version 1.0", c, buildCommit["checksum"])
	}
	ls := convJSON(t, "ls", "--repo", repo, "--json", "-R", rev, "/usr/etc")
	convKeys(t, "ls", ls, "checksum", "entries")
	if len(ls["entries"].([]any)) < 2 {
		t.Errorf("ls --json -R /usr/etc: %v", ls)
	}

	// image: the same keys as build's image, and the .bmap by default, as in the manifest.
	img := filepath.Join(out, "cli.img")
	image := convJSON(t, "image", "--repo", repo, "--board", "qemu-aarch64", "-o", img, "--json", rev)
	for k := range build["image"].(map[string]any) {
		if _, ok := image[k]; !ok && k != "zstd" {
			t.Errorf("image --json lacks build's image key %q", k)
		}
	}
	if image["bmap"] != img+".bmap" {
		t.Errorf("image wrote no .bmap by default: %v", image["bmap"])
	}
	noBmap := filepath.Join(out, "plain.img")
	ota(t, "image", "--repo", repo, "--board", "qemu-aarch64", "-o", noBmap, "--bmap=false", rev)
	if _, err := os.Stat(noBmap + ".bmap"); err == nil {
		t.Errorf("--bmap=false wrote a .bmap")
	}
}

// TestDeltaList: delta list prints the names `ostree static-delta list` prints.
func TestDeltaList(t *testing.T) {
	requireTool(t, "ostree")
	dir := t.TempDir()
	repo, first := accRepo(t, dir)
	if got := ota(t, "delta", "list", "--repo", repo).stdout; got != "" {
		t.Errorf("delta list of a repository without deltas: %q", got)
	}
	tree := filepath.Join(dir, "good-tree")
	accWriteFile(t, tree, "new-file", []byte("new\n"))
	second := ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree, "--timestamp", accTimestamp).lastLine()
	ota(t, "delta", "--repo", repo, "--to", "main")
	ota(t, "delta", "--repo", repo, "--from", "empty", "--to", "main")
	got := strings.Fields(ota(t, "delta", "list", "--repo", repo).stdout)
	want := strings.Fields(must(t, "ostree", "static-delta", "list", "--repo="+repo).stdout)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(got) != 2 || !slices.Contains(got, second) || !slices.Contains(got, first+"-"+second) {
		t.Errorf("delta list: %q; ostree static-delta list: %q", got, want)
	}
}

// TestCommitDryRunAndSkipIfUnchanged: --dry-run writes nothing and reports the content
// checksum the real commit gets; --skip-if-unchanged makes no commit of an unchanged tree
// and prints the branch's commit, but commits a changed one.
func TestCommitDryRunAndSkipIfUnchanged(t *testing.T) {
	dir := t.TempDir()
	repo, first := accRepo(t, dir)
	tree := filepath.Join(dir, "good-tree")
	accWriteFile(t, tree, "added", []byte("added\n"))
	args := []string{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + tree, "--timestamp", accTimestamp}

	before := repoState(t, repo)
	dry := convJSON(t, append(args, "--dry-run", "--json")...)
	if after := repoState(t, repo); after != before {
		t.Errorf("--dry-run changed the repository:\nbefore\n%s\nafter\n%s", before, after)
	}
	if dry["checksum"] != "" || dry["dry_run"] != true || dry["new"] != false || dry["parent"] != first {
		t.Errorf("dry run report: %v", dry)
	}
	if text := ota(t, append(args, "--dry-run")...).lastLine(); !strings.Contains(text, dry["content_checksum"].(string)) || !strings.Contains(text, "nothing written") {
		t.Errorf("dry run printed %q", text)
	}
	second := ota(t, args...).lastLine()
	if log := convJSON(t, "log", "--repo", repo, "--json", "main")["commits"].([]any)[0].(map[string]any); log["checksum"] != second || log["content_checksum"] != dry["content_checksum"] {
		t.Errorf("the commit %s has content checksum %v, the dry run said %v", second, log["content_checksum"], dry["content_checksum"])
	}

	before = repoState(t, repo)
	args[len(args)-1] = "1700000001" // another time: without the option, another commit
	if got := ota(t, append(args, "--skip-if-unchanged")...).lastLine(); got != second {
		t.Errorf("--skip-if-unchanged of the same tree printed %s, want the branch's commit %s", got, second)
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("--skip-if-unchanged of the same tree changed the repository:\nbefore\n%s\nafter\n%s", before, after)
	}
	if crashRef(t, repo) != second {
		t.Errorf("main moved")
	}
	key := sigKeygen(t, dir, "k")
	if rep := convJSON(t, append(args, "--skip-if-unchanged", "--sign-key", key+".key", "--json")...); rep["checksum"] != second || rep["new"] != false || rep["signatures"] != 1.0 {
		t.Errorf("--skip-if-unchanged --sign-key of the same tree: %v, want the commit %s signed", rep, second)
	}
	accWriteFile(t, tree, "added", []byte("changed\n"))
	rep := convJSON(t, append(args, "--skip-if-unchanged", "--json")...)
	if rep["new"] != true || rep["parent"] != second || rep["checksum"] == second {
		t.Errorf("--skip-if-unchanged of a changed tree: %v", rep)
	}
}

// TestVerifyReport: verify tells "unsigned" and "no valid signature" apart in its report
// (exit 1 both), and an error that stopped the check (exit 1) prints no report.
func TestVerifyReport(t *testing.T) {
	dir := t.TempDir()
	repo, c := accRepo(t, dir)
	key := sigKeygen(t, dir, "k")
	other := sigKeygen(t, dir, "other")
	verify := func(pub string) (result, map[string]any) {
		r := runCmd(t, nil, nil, otaBuild, "verify", "--repo", repo, "--pubkey", pub, "--json", "main")
		var rep map[string]any
		if r.stdout != "" {
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("verify --json: %v\n%s", err, r.stdout)
			}
		}
		return r, rep
	}
	r, rep := verify(key + ".pub")
	convOneLine(t, result{stderr: r.stderr, code: r.code}, 1, "commit "+c+": no valid signature")
	if rep["valid"] != false || rep["reason"] != "unsigned" || rep["schema"] != 1.0 {
		t.Errorf("unsigned commit: %v", rep)
	}
	ota(t, "sign", "--repo", repo, "--sign-key", key+".key", "main")
	r, rep = verify(other + ".pub")
	convOneLine(t, result{stderr: r.stderr, code: r.code}, 1, "no valid signature")
	if rep["valid"] != false || rep["reason"] != "no-valid-signature" || rep["signatures"] != 1.0 {
		t.Errorf("commit signed by another key: %v", rep)
	}
	if r, rep = verify(key + ".pub"); r.code != 0 || rep["valid"] != true || rep["reason"] != nil {
		t.Errorf("good signature: exit %d, %v", r.code, rep)
	}
	missing := filepath.Join(dir, "missing.pub")
	r, _ = verify(missing)
	convOneLine(t, r, 1, missing)
}
