package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/progress"
)

// testApp is an application with the conventions: a command with a required flag and an
// argument, and one that fails.
func testApp(stdout, stderr *bytes.Buffer) *cli.App {
	app := &cli.App{
		Name: "tool", Usage: "test", Writer: stdout, ErrWriter: stderr,
		Commands: []*cli.Command{
			{Name: "get", Flags: []cli.Flag{
				&cli.StringFlag{Name: "repo", Required: true},
				&cli.StringFlag{Name: "from", Required: true},
				&cli.IntFlag{Name: "n"},
			}, Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return Usagef("want one REF")
				}
				fmt.Fprintln(c.App.Writer, "got", c.Args().First())
				return nil
			}},
			{Name: "fail", Action: func(*cli.Context) error { return errors.New("it\nbroke") }},
		},
	}
	Setup(app)
	return app
}

// TestUsageErrors: every kind of usage error exits 2 with one line naming the command and
// its help, and prints nothing on standard output (no help text).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "--foo"}, "tool: get: flag provided but not defined: -foo (see tool get --help)"},
		{[]string{"get", "--repo", "r"}, "tool: get: --from is required (see tool get --help)"},
		{[]string{"get"}, "tool: get: --repo and --from are required (see tool get --help)"},
		{[]string{"get", "--repo", "r", "--from", "f"}, "tool: get: want one REF (see tool get --help)"},
		{[]string{"get", "--repo", "r", "--from", "f", "--n", "x", "a"}, `tool: get: invalid value "x" for flag -n`},
		{[]string{"nope"}, `tool: unknown command "nope" (see tool --help)`},
		{[]string{"--progress", "bar", "get"}, `tool: --progress "bar": want auto, plain, json, none (see tool --help)`},
		{[]string{"completion", "tcsh"}, `tool: completion: shell "tcsh": want one of bash, zsh, fish (see tool completion --help)`},
	} {
		var stdout, stderr bytes.Buffer
		code := Run(testApp(&stdout, &stderr), append([]string{"tool"}, tc.args...))
		if code != ExitUsage || stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.HasPrefix(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, nothing, one line %q", tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}

// TestRunStatus: success, failure (one line), help.
func TestRunStatus(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		code         int
		stdout       string
		stderrPrefix string
	}{
		{[]string{"get", "--repo", "r", "--from", "f", "main"}, 0, "got main\n", ""},
		{[]string{"fail"}, 1, "", "tool: it broke\n"},
		{[]string{"get", "--help"}, 0, "NAME:", ""},
		{[]string{"-q", "get", "--repo", "r", "--from", "f", "x"}, 0, "got x\n", ""},
	} {
		var stdout, stderr bytes.Buffer
		code := Run(testApp(&stdout, &stderr), append([]string{"tool"}, tc.args...))
		if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) || stderr.String() != tc.stderrPrefix {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, stdout.String(), stderr.String())
		}
	}
}

// TestExitStatus: an interrupted command exits 128+signal whatever error it returned; an
// exit error of a command keeps its status, a wrapped one does not.
func TestExitStatus(t *testing.T) {
	intr := &Interrupted{Signal: syscall.SIGINT}
	if !errors.Is(intr, context.Canceled) {
		t.Errorf("an interruption is not a context.Canceled")
	}
	for _, tc := range []struct {
		err, cause error
		code       int
		msg        string
	}{
		{nil, nil, 0, ""},
		{errors.New("x"), nil, 1, "x"},
		{fmt.Errorf("writing: %w", context.Canceled), intr, 130, "interrupted by SIGINT"},
		{errors.New("x"), &Interrupted{Signal: syscall.SIGTERM}, 143, "interrupted by SIGTERM"},
		{nil, intr, 0, ""},
		{cli.Exit("fsck: 2 problems", 1), nil, 1, "fsck: 2 problems"},
		{fmt.Errorf("tool: %w", cli.Exit("xz failed", 5)), nil, 1, "tool: xz failed"},
		{Usagef("bad"), nil, 2, "bad"},
	} {
		code, msg := exitStatus(tc.err, tc.cause)
		if code != tc.code || msg != tc.msg {
			t.Errorf("exitStatus(%v, %v) = %d, %q; want %d, %q", tc.err, tc.cause, code, msg, tc.code, tc.msg)
		}
	}
}

// TestPrintJSON: the schema comes first, the value's keys follow in order; a value that is
// not an object is refused.
func TestPrintJSON(t *testing.T) {
	var b bytes.Buffer
	if err := PrintJSON(&b, struct {
		B string `json:"b"`
		A int    `json:"a"`
	}{"x", 1}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"schema\": 1,\n  \"b\": \"x\",\n  \"a\": 1\n}\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	PrintJSON(&b, struct{}{})
	var v map[string]any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil || v["schema"] != float64(ReportSchema) || len(v) != 1 {
		t.Errorf("empty report %q: %v", b.String(), err)
	}
	if err := PrintJSON(&b, []int{1}); err == nil {
		t.Errorf("a list report was accepted")
	}
}

// TestVersion: the link-time version wins over the build information.
func TestVersion(t *testing.T) {
	if VersionString() == "" {
		t.Errorf("no version from the build information")
	}
	old := Version
	defer func() { Version = old }()
	Version = "1.2.3"
	var stdout, stderr bytes.Buffer
	if code := Run(testApp(&stdout, &stderr), []string{"tool", "--version"}); code != 0 || stdout.String() != "tool version 1.2.3\n" {
		t.Errorf("--version: exit %d, %q", code, stdout.String())
	}
}

// TestProgressFlags: the global flags choose the reporter, and a command's own flag of the
// same name does not shadow them.
func TestProgressFlags(t *testing.T) {
	auto := "*progress.Plain"
	if progress.IsTerminal(os.Stderr) {
		auto = "*progress.Terminal"
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"run"}, "", auto},
		{[]string{"--progress", "json", "run"}, "", "*progress.JSON"},
		{[]string{"-q", "run"}, "", "progress.discard"},
		{[]string{"--progress", "plain", "-q", "run"}, "", "progress.discard"},
		{[]string{"run"}, "none", "progress.discard"},
		{[]string{"--progress", "json", "run"}, "none", "*progress.JSON"},
		{[]string{"run", "-q"}, "json", "*progress.JSON"},
	} {
		t.Setenv("OTA_PROGRESS", tc.env)
		var got string
		app := &cli.App{Name: "tool", Commands: []*cli.Command{{Name: "run",
			Flags:  []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}}},
			Action: func(c *cli.Context) error { got = fmt.Sprintf("%T", Progress(c)); return nil }}}}
		Setup(app)
		if code := Run(app, append([]string{"tool"}, tc.args...)); code != 0 || got != tc.want {
			t.Errorf("%v with OTA_PROGRESS=%q: exit %d, %s; want %s", tc.args, tc.env, code, got, tc.want)
		}
	}
}
