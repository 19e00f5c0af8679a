// Package cli holds ota-build's command-line conventions, apart from its commands so that
// the device client can share them, on top of urfave/cli v2:
//
//   - exit status 0 on success, 1 on failure, 2 on a usage error (an unknown command or
//     flag, a missing argument or required flag, a bad flag value: one line on standard
//     error, never the whole help), 128+N when signal N (SIGINT: 130) interrupted the
//     command; every error is one line, "NAME: message";
//   - --version from the build information or a link-time version;
//   - the global --progress=auto|plain|json|none and -q flags;
//   - --json reports that start with a "schema" version;
//   - shell completion (the completion command) and a man page (the man command)
//     generated from the command definitions.
//
// A program builds its *cli.App, calls Setup on it and runs it with Main.
package cli

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/progress"
)

// Setup applies the conventions to app: version, global flags, usage errors, the
// completion and man commands. Call it once, after app's commands are defined; app's own
// Before runs after the global flags are checked, and an app without an Action shows its
// help, or refuses an unknown command as a usage error.
func Setup(app *cli.App) {
	app.Version = VersionString()
	app.EnableBashCompletion = true
	app.HideHelpCommand = true
	// Run prints errors, on one line; cli's default handler would exit first.
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.Flags = append(app.Flags, progressFlags()...)
	app.Commands = append(app.Commands, completionCommand(app.Name), manCommand(app.Name))
	app.OnUsageError = onUsageError
	before := app.Before
	app.Before = func(c *cli.Context) error {
		if err := checkProgress(c); err != nil || before == nil {
			return err
		}
		return inCommand(c, before(c))
	}
	if app.Action == nil {
		app.Action = func(c *cli.Context) error {
			if c.Args().Present() {
				return inCommand(c, Usagef("unknown command %q", c.Args().First()))
			}
			return cli.ShowAppHelp(c)
		}
	}
	for _, cmd := range app.Commands {
		setupCommand(cmd)
	}
}

// setupCommand makes cmd and its subcommands report usage errors as *UsageError, the
// required flags included: urfave/cli would print the whole help for those.
func setupCommand(cmd *cli.Command) {
	var required []string
	for i, f := range cmd.Flags {
		if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
			required = append(required, f.Names()[0])
			cmd.Flags[i] = optional(f)
		}
	}
	cmd.OnUsageError = onUsageError
	cmd.HideHelpCommand = true // the --help flag remains
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		var missing []string
		for _, name := range required {
			if !c.IsSet(name) {
				missing = append(missing, "--"+name)
			}
		}
		switch len(missing) {
		case 0:
		case 1:
			return inCommand(c, Usagef("%s is required", missing[0]))
		default:
			return inCommand(c, Usagef("%s and %s are required", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1]))
		}
		if before == nil {
			return nil
		}
		return inCommand(c, before(c))
	}
	if action := cmd.Action; action != nil {
		cmd.Action = func(c *cli.Context) error { return inCommand(c, action(c)) }
	}
	for _, sub := range cmd.Subcommands {
		setupCommand(sub)
	}
}

// optional returns a copy of the required flag f that urfave/cli does not check (Setup
// checks it instead). The copy leaves f, which other commands may share, as it is.
func optional(f cli.Flag) cli.Flag {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return f
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	r := c.Elem().FieldByName("Required")
	if r.Kind() != reflect.Bool {
		return f
	}
	r.SetBool(false)
	return c.Interface().(cli.Flag)
}

// onUsageError turns urfave/cli's flag parsing errors (an unknown flag, a bad value) into
// usage errors.
func onUsageError(c *cli.Context, err error, _ bool) error {
	return inCommand(c, &UsageError{Err: err})
}

// inCommand names c's command in a usage error that does not name one yet.
func inCommand(c *cli.Context, err error) error {
	var u *UsageError
	if errors.As(err, &u) && u.Command == "" {
		if c.Command != nil && c.Command.HelpName != "" {
			u.Command = c.Command.HelpName
		} else {
			u.Command = c.App.HelpName
		}
	}
	return err
}

// UsageError is an error in how a command was called; it exits with status 2.
type UsageError struct {
	// Command is the command's full name, e.g. "ota-build delta apply".
	Command string
	Err     error
}

// Usagef returns a usage error of the command it is returned from.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Error is the message, the subcommand first and a pointer to its help last:
// "commit: --repo is required (see ota-build commit --help)".
func (e *UsageError) Error() string {
	msg := e.Err.Error()
	if _, sub, ok := strings.Cut(e.Command, " "); ok {
		msg = sub + ": " + msg
	}
	if e.Command != "" {
		msg += " (see " + e.Command + " --help)"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// progressFlags are the global flags that choose how progress is reported.
func progressFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "progress", Value: "auto", EnvVars: []string{"OTA_PROGRESS"},
			Usage: "progress on standard error: `MODE` auto (a bar on a terminal, else plain), plain (timestamped lines for build logs), json (JSON lines) or none"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "report no progress (--progress none)"},
	}
}

// progressKey is the key of app.Metadata under which Setup's Before keeps the progress
// mode of the global flags, for Progress: a command's own flag of the same name (serve's
// -q) cannot shadow it there.
const progressKey = "ota/progress"

// checkProgress reads the global progress flags into app.Metadata.
func checkProgress(c *cli.Context) error {
	mode := c.String("progress")
	if mode == "" { // OTA_PROGRESS= is the default
		mode = "auto"
	}
	if c.Bool("quiet") {
		mode = "none"
	}
	if !slices.Contains(progress.Modes, mode) {
		return inCommand(c, Usagef("--progress %q: want %s", mode, strings.Join(progress.Modes, ", ")))
	}
	c.App.Metadata[progressKey] = mode
	return nil
}

// Conventions describes the conventions for a program's help text and man page.
const Conventions = "Exit status: 0 on success, 1 on failure, 2 on a usage error (one line on standard error),\n" +
	"130 when interrupted by SIGINT (143: SIGTERM). Progress goes to standard error (--progress,\n" +
	"-q, $OTA_PROGRESS); --json reports go to standard output and start with \"schema\": 1."
