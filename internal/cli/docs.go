package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shells are the shells the completion command writes scripts for.
var Shells = []string{"bash", "zsh", "fish"}

func completionCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: strings.ReplaceAll("The bash and zsh scripts ask the program itself for the commands and flags that fit\n"+
			"(urfave/cli's --generate-bash-completion); the fish script lists them. Install with e.g.\n"+
			"  NAME completion bash > /usr/share/bash-completion/completions/NAME\n"+
			"  NAME completion zsh > \"${fpath[1]}/_NAME\"\n"+
			"  NAME completion fish > ~/.config/fish/completions/NAME.fish\n"+
			"or load it into the running shell: source <(NAME completion bash).", "NAME", name),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return Usagef("want one of %s", strings.Join(Shells, ", "))
			}
			script, err := Completion(c.App, c.Args().First())
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

// Completion returns app's completion script for shell: bash, zsh or fish.
func Completion(app *cli.App, shell string) (string, error) {
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(app.Name)
	switch shell {
	case "bash":
		return fmt.Sprintf(bashCompletion, app.Name, fn), nil
	case "zsh":
		return fmt.Sprintf(zshCompletion, app.Name, fn), nil
	case "fish":
		app.Setup()
		return app.ToFishCompletion()
	}
	return "", Usagef("shell %q: want one of %s", shell, strings.Join(Shells, ", "))
}

// bashCompletion is urfave/cli's autocomplete/bash_autocomplete without its dependency on
// the bash-completion package. %[1]s is the program, %[2]s the function name.
const bashCompletion = `# bash completion for %[1]s
%[2]s() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F %[2]s %[1]s
`

// zshCompletion is urfave/cli's autocomplete/zsh_autocomplete.
const zshCompletion = `#compdef %[1]s
%[2]s() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef %[2]s %[1]s
`

func manCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      "man",
		Usage:     "print the man page (section 1, roff) generated from the command definitions",
		ArgsUsage: " ",
		Description: fmt.Sprintf("Install it with e.g. %[1]s man > /usr/share/man/man1/%[1]s.1; the source tree keeps\n"+
			"a copy in docs/%[1]s.1.", name),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return Usagef("unexpected argument %q", c.Args().First())
			}
			page, err := Man(c.App)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, page)
			return err
		},
	}
}

// Man returns app's man page, section 1, in roff. --help is among the global options
// only: urfave/cli adds it to the command that runs, and the page must not depend on
// which one that is.
func Man(app *cli.App) (string, error) {
	app.Setup() // the help and version flags, as a run shows them
	defer withoutHelpFlag(app.Commands)()
	return app.ToManWithSection(1)
}

// withoutHelpFlag takes the help flag out of the commands' flags, and returns the function
// that puts their flags back.
func withoutHelpFlag(cmds []*cli.Command) (restore func()) {
	var undo []func()
	for _, c := range cmds {
		flags := c.Flags
		c.Flags = slices.DeleteFunc(slices.Clone(flags), func(f cli.Flag) bool { return f == cli.HelpFlag })
		undo = append(undo, func() { c.Flags = flags }, withoutHelpFlag(c.Subcommands))
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}
