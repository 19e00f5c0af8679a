package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Exit statuses of the conventions; a command interrupted by signal N exits with 128+N.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Main runs app with the process's arguments and exits with the status of the
// conventions.
func Main(app *cli.App) {
	os.Exit(Run(app, os.Args))
}

// Run runs app with args (args[0] being the program), prints an error as one line on
// app.ErrWriter (standard error by default) and returns the exit status. SIGINT and
// SIGTERM cancel the command's context, so an interrupted command returns through its
// cleanup (temporary files, staging trees) instead of dying on the spot; its context's
// cause is then an *Interrupted.
func Run(app *cli.App, args []string) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			cancel(&Interrupted{Signal: s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	err := app.RunContext(ctx, args)
	code, msg := exitStatus(err, context.Cause(ctx))
	if msg != "" {
		w := app.ErrWriter
		if w == nil {
			w = os.Stderr
		}
		fmt.Fprintln(w, app.Name+": "+OneLine(msg))
	}
	return code
}

// exitStatus returns the exit status and the message of err, the error a command
// returned; cause is its context's cause.
func exitStatus(err, cause error) (int, string) {
	if err == nil {
		return ExitOK, ""
	}
	var intr *Interrupted
	var usage *UsageError
	exit, isExit := err.(cli.ExitCoder)
	switch {
	case errors.As(cause, &intr):
		// Whatever the command failed with, it failed because it was told to stop.
		return 128 + int(intr.Signal), intr.Error()
	case errors.As(err, &usage):
		return ExitUsage, usage.Error()
	case isExit:
		// Only an exit error of the command itself carries a status: a wrapped
		// *exec.ExitError of a tool it ran would otherwise pass on that tool's status.
		return exit.ExitCode(), exit.Error()
	}
	return ExitFailure, err.Error()
}

// Interrupted is the cause of a command's context cancelled by a signal.
type Interrupted struct{ Signal syscall.Signal }

// Error names the signal: "interrupted by SIGINT".
func (e *Interrupted) Error() string {
	name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[e.Signal]
	if name == "" {
		name = e.Signal.String()
	}
	return "interrupted by " + name
}

// Is makes an interruption a context.Canceled.
func (e *Interrupted) Is(target error) bool { return target == context.Canceled }

// OneLine keeps a message on a single line, as scripts and build logs expect.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Warn prints warnings, problems that did not stop a command, on c's error writer, one
// line each: "NAME: warning: ...".
func Warn(c *cli.Context, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(c.App.ErrWriter, c.App.Name+": warning: "+OneLine(w))
	}
}
