package main

// Issue 11, acceptance 5: rollback, mark-good and mark-bad change exactly the entries and
// counters they should, and nothing else.

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/sysroot"
)

// bootState is the boot configuration of a sysroot with every boot link path
// (/ostree/boot.N/<os>/<bootcsum>/<i>) replaced by the name of the deployment it leads to:
// what a rollback swaps. Everything else must stay as it was.
type bootState struct {
	// Order is the deployments by descending BLS entry version: the default first.
	Order []string
	// Entries is each deployment's BLS entry, without its version and the "(ostree:I)"
	// index of its title.
	Entries map[string]string
	// UEnv is the variables of uEnv.txt by entry: the default's (no suffix) and the
	// rollback's (suffix 2), the suffix left out.
	UEnv [2]map[string]string
	// Refs is the commits of the deployment refs ostree/N/M/0, 1, ...
	Refs []string
}

var (
	bootLinkRE   = regexp.MustCompile(`/ostree/boot\.[01]/[^/\s]+/[0-9a-f]{64}/[0-9]+`)
	titleIndexRE = regexp.MustCompile(` \(ostree:[0-9]+\)$`)
	uEnvVarRE    = regexp.MustCompile(`^([a-z_]+?)(2?)=(.*)$`)
)

// readBootState reads the boot configuration boot/loader points to.
func readBootState(t *testing.T, root string) bootState {
	t.Helper()
	resolve := func(s string) string {
		return bootLinkRE.ReplaceAllStringFunc(s, func(link string) string {
			target, err := filepath.EvalSymlinks(filepath.Join(root, link))
			if err != nil {
				t.Fatalf("boot link %s: %v", link, err)
			}
			return "<" + filepath.Base(target) + ">"
		})
	}
	st := bootState{Entries: map[string]string{}, UEnv: [2]map[string]string{{}, {}}}
	entries, _ := filepath.Glob(filepath.Join(root, "boot/loader/entries/*.conf"))
	versions := map[string]int{}
	for _, e := range entries {
		data, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		version, name := -1, ""
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			key, value, _ := strings.Cut(line, " ")
			switch key {
			case "version":
				version, _ = strconv.Atoi(value)
				continue
			case "title":
				line = titleIndexRE.ReplaceAllString(line, "")
			case "options":
				if m := bootLinkRE.FindString(line); m != "" {
					name = strings.Trim(resolve(m), "<>")
				}
			}
			lines = append(lines, resolve(line))
		}
		if version < 0 || name == "" {
			t.Fatalf("%s: no version or ostree= argument:\n%s", e, data)
		}
		st.Entries[name] = strings.Join(lines, "\n")
		versions[name] = version
		st.Order = append(st.Order, name)
	}
	sort.Slice(st.Order, func(i, j int) bool { return versions[st.Order[i]] > versions[st.Order[j]] })
	data, err := os.ReadFile(filepath.Join(root, "boot/loader/uEnv.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		m := uEnvVarRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("uEnv.txt: unexpected line %q", line)
		}
		st.UEnv[len(m[2])][m[1]] = resolve(m[3])
	}
	bv, _ := os.Readlink(filepath.Join(root, "ostree", "boot."+strings.TrimPrefix(mustReadlink(t, filepath.Join(root, "boot/loader")), "loader.")))
	refs, _ := filepath.Glob(filepath.Join(root, "ostree/repo/refs/heads/ostree", strings.ReplaceAll(strings.TrimPrefix(bv, "boot."), ".", "/"), "*"))
	slices.SortFunc(refs, func(a, b string) int {
		i, _ := strconv.Atoi(filepath.Base(a))
		j, _ := strconv.Atoi(filepath.Base(b))
		return i - j
	})
	for _, r := range refs {
		data, _ := os.ReadFile(r)
		st.Refs = append(st.Refs, strings.TrimSpace(string(data)))
	}
	if len(st.Refs) != len(st.Order) {
		t.Fatalf("%d deployment refs for %d entries", len(st.Refs), len(st.Order))
	}
	return st
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// swapped returns the state with the default and rollback deployments swapped: what
// rollback must make of it.
func (s bootState) swapped() bootState {
	out := bootState{Order: slices.Clone(s.Order), Entries: s.Entries, UEnv: [2]map[string]string{s.UEnv[1], s.UEnv[0]}, Refs: slices.Clone(s.Refs)}
	out.Order[0], out.Order[1] = out.Order[1], out.Order[0]
	out.Refs[0], out.Refs[1] = out.Refs[1], out.Refs[0]
	return out
}

func (s bootState) equal(o bootState) bool {
	return slices.Equal(s.Order, o.Order) && maps.Equal(s.Entries, o.Entries) && maps.Equal(s.UEnv[0], o.UEnv[0]) &&
		maps.Equal(s.UEnv[1], o.UEnv[1]) && slices.Equal(s.Refs, o.Refs)
}

// fullSnapshot is snapshot plus the repository's objects: every path of the sysroot.
func fullSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range snapshot(t, root) {
		p, rest, _ := strings.Cut(line, " ")
		out[p] = rest
	}
	for _, p := range repoFiles(t, filepath.Join(root, "ostree/repo")) {
		if strings.HasPrefix(p, "objects/") {
			out["ostree/repo/"+p] = "object"
		}
	}
	return out
}

// changed returns the paths added, removed or changed from before to after.
func changed(before, after map[string]string) []string {
	var out []string
	for p, v := range before {
		if w, ok := after[p]; !ok || w != v {
			out = append(out, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// boot configuration paths a deployment list's write replaces: the boot/loader link and
// directories, the ostree/boot.N links and the deployment refs.
var listPaths = regexp.MustCompile(`^(boot/loader(\.[01])?(/.*)?|ostree/boot\.[01](\.[01])?(/.*)?|ostree/repo/refs/heads/ostree(/.*)?)$`)

// checkSwap checks that only the boot configuration, the last result (when result is
// set) and the files of extra changed from before to after, and that the configuration is
// the one before with default and rollback swapped.
func checkSwap(t *testing.T, d device, before map[string]string, state bootState, result string, extra ...string) {
	t.Helper()
	after := fullSnapshot(t, d.sysroot)
	resultPath := sysroot.ResultPath("myos")
	sawResult := false
	for _, p := range changed(before, after) {
		switch {
		case p == resultPath || p == filepath.Dir(resultPath) || p == filepath.Dir(filepath.Dir(resultPath)):
			sawResult = sawResult || p == resultPath
		case listPaths.MatchString(p), slices.Contains(extra, p):
		default:
			t.Errorf("changed: %s (%q, now %q)", p, before[p], after[p])
		}
	}
	if sawResult != (result != "") {
		t.Errorf("last result written: %v, want %v", sawResult, result != "")
	}
	if before["boot/loader"] == after["boot/loader"] {
		t.Errorf("boot/loader still %s", after["boot/loader"])
	}
	if got, want := readBootState(t, d.sysroot), state.swapped(); !got.equal(want) {
		t.Errorf("boot configuration\n%+v\nwant\n%+v", got, want)
	}
	if result != "" {
		var r sysroot.Result
		data, _ := os.ReadFile(filepath.Join(d.sysroot, resultPath))
		if err := json.Unmarshal(data, &r); err != nil || r.Operation != result || r.Outcome != "success" {
			t.Errorf("last result %s (%v), want a %s", data, err, result)
		}
	}
	if got, want := d.ostreeStatus(t), state.swapped().Order; !slices.Equal(got, want) {
		t.Errorf("ostree admin status: %q, want %q", got, want)
	}
}

// TestRollbackChangesOnlyTheEntries: rollback swaps the default and rollback BLS entries,
// uEnv.txt's entries, the boot links and the deployment refs, and records the last result;
// the deployments, the repository, the boot counter and everything else stay as they were.
// The real ostree agrees (status) and finds nothing to clean up.
func TestRollbackChangesOnlyTheEntries(t *testing.T) {
	d := newDevice(t, 2)
	for i := range 2 {
		before, state := fullSnapshot(t, d.sysroot), readBootState(t, d.sysroot)
		if i == 0 && (state.Order[0] != d.commits[1]+".0" || state.UEnv[1]["bootargs"] == "") {
			t.Fatalf("the device does not boot 2.0 with 1.0 as the rollback: %+v", state)
		}
		mustClient(t, "--sysroot", d.sysroot, "rollback")
		checkSwap(t, d, before, state, "rollback")
	}

	copyRoot := filepath.Join(t.TempDir(), "copy")
	must(t, "cp", "-a", d.sysroot, copyRoot)
	must(t, "ostree", "admin", "cleanup", "--sysroot="+copyRoot)
	if c := changed(fullSnapshot(t, d.sysroot), fullSnapshot(t, copyRoot)); len(c) != 0 {
		t.Errorf("ostree admin cleanup after rollback changed %q", c)
	}
}

// TestMarkChangesOnlyTheCounter: mark-good and mark-bad write the boot counter and nothing
// else; mark-good after a fallback also swaps the entries, as rollback does, and records
// it.
func TestMarkChangesOnlyTheCounter(t *testing.T) {
	d := newDevice(t, 2)
	counter := "boot/firmware/ota-state.txt"
	for _, tc := range []struct {
		cmd, count string
	}{{"mark-bad", "bootcount=ffff\n"}, {"mark-good", "bootcount=0\n"}, {"mark-good", "bootcount=0\n"}, {"mark-bad", "bootcount=ffff\n"}} {
		before := fullSnapshot(t, d.sysroot)
		mustClient(t, "--sysroot", d.sysroot, tc.cmd)
		after := fullSnapshot(t, d.sysroot)
		if c := changed(before, after); len(c) > 1 || len(c) == 1 && c[0] != counter {
			t.Errorf("%s changed %q", tc.cmd, c)
		}
		if got := readFile(t, filepath.Join(d.sysroot, counter)); got != tc.count {
			t.Errorf("after %s the counter holds %q, want %q", tc.cmd, got, tc.count)
		}
	}
	// Booted from the default: mark-good changes the counter only.
	before := fullSnapshot(t, d.sysroot)
	mustClient(t, "--sysroot", d.sysroot, "--cmdline", d.cmdlineOf(t, d.commits[1]), "mark-good")
	if c := changed(before, fullSnapshot(t, d.sysroot)); !slices.Equal(c, []string{counter}) {
		t.Errorf("mark-good on the default changed %q", c)
	}

	// The boot script fell back to 1.0: mark-good makes it the default.
	os.WriteFile(filepath.Join(d.sysroot, counter), []byte("bootcount=4\x00"), 0o644)
	before, state := fullSnapshot(t, d.sysroot), readBootState(t, d.sysroot)
	mustClient(t, "--sysroot", d.sysroot, "--cmdline", d.cmdlineOf(t, d.commits[0]), "mark-good")
	checkSwap(t, d, before, state, "fallback", counter)
	if got := readFile(t, filepath.Join(d.sysroot, counter)); got != "bootcount=0\n" {
		t.Errorf("after mark-good on the rollback the counter holds %q", got)
	}
}

// TestRefusalsChangeNothing: a refused rollback, mark-good or mark-bad leaves every file of
// the sysroot, the repository's objects included, as it was.
func TestRefusalsChangeNothing(t *testing.T) {
	one, two := newDevice(t, 1), newDevice(t, 2)
	noConfig := newDevice(t, 2)
	os.Remove(filepath.Join(noConfig.sysroot, "etc/ota/client.yaml"))
	badCounter := newDevice(t, 2)
	os.WriteFile(filepath.Join(badCounter.sysroot, "boot/firmware/ota-state.txt"), []byte("bootcount=zz\n"), 0o644)
	for _, tc := range []struct {
		name string
		d    device
		args []string
		want string
	}{
		{"rollback without a rollback deployment", one, []string{"rollback"}, "no rollback deployment"},
		{"mark-bad without a rollback deployment", one, []string{"mark-bad"}, "no rollback deployment"},
		{"rollback with an argument", two, []string{"rollback", "now"}, "unexpected argument"},
		{"mark-good without a configuration", noConfig, []string{"mark-good"}, "no configuration"},
		{"mark-bad without a configuration", noConfig, []string{"mark-bad"}, "no configuration"},
		{"mark-good after a fallback with an unreadable counter", badCounter, []string{"--cmdline", "", "mark-good"}, "invalid bootcount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] == "--cmdline" {
				args = append([]string{"--cmdline", tc.d.cmdlineOf(t, tc.d.commits[0])}, args[2:]...)
			}
			before := fullSnapshot(t, tc.d.sysroot)
			r := client(append([]string{"--sysroot", tc.d.sysroot}, args...)...)
			if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, tc.want)
			}
			if c := changed(before, fullSnapshot(t, tc.d.sysroot)); len(c) != 0 {
				t.Errorf("changed %q", c)
			}
		})
	}
}
