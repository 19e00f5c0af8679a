package main

import (
	"path/filepath"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/prepareroot"
)

func prepareRootCommand() *cli.Command {
	return &cli.Command{
		Name:      "prepare-root",
		Usage:     "at boot: mount the deployment the ostree= kernel argument names as / and start its init",
		ArgsUsage: "[-- INIT-ARG...]",
		Description: "Runs before the real init, as ostree-prepare-root does: from an initramfs, or as PID 1\n" +
			"(init=, no initramfs). It reads the kernel command line (--cmdline, default /proc/cmdline,\n" +
			"whatever --sysroot; /proc is mounted for the read when it is not), follows the boot link\n" +
			"of its ostree= argument in the physical root --sysroot to the deployment\n" +
			"ostree/deploy/<os>/deploy/<commit>.<serial>, and bind-mounts it on itself, its /usr\n" +
			"read-only, the physical root on its /sysroot, ostree/deploy/<os>/var on its /var and, when\n" +
			"/boot is not a partition of its own (boot/loader is a symlink in the physical root), the\n" +
			"physical /boot on its /boot. It then moves the deployment onto /, changes the root to it and\n" +
			"executes --init with the INIT-ARGs.\n" +
			"As PID 1 the physical root is / (the default --sysroot); in an initramfs, name its mount\n" +
			"point: ota-client --sysroot /sysroot prepare-root. With --no-exec the assembled deployment\n" +
			"is moved onto --sysroot instead and the command exits, for an initramfs that switches root\n" +
			"itself (switch_root /sysroot /sbin/init).\n" +
			"Started as ostree-prepare-root (a link or copy of ota-client by that name, such as the\n" +
			"/usr/lib/ostree/ostree-prepare-root that the init= argument of boot entries without an\n" +
			"initramfs names), it takes ostree-prepare-root's arguments: SYSROOT, meaning --sysroot\n" +
			"SYSROOT --no-exec; as PID 1, any words the kernel passes, which go to init.\n" +
			"What is missing (the ostree= argument, the boot link, the deployment, its usr, sysroot or\n" +
			"var directory, the stateroot's var) is one line on stderr, the console, and nothing is\n" +
			"mounted. There is no --json: on success the command becomes init.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "init", Value: prepareroot.DefaultInit, Usage: "the `PROGRAM` to execute, an absolute path in the deployment"},
			&cli.BoolFlag{Name: "no-exec", Usage: "move the assembled deployment onto --sysroot and exit, leaving the switch of root to the initramfs"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("no-exec") && c.Args().Present() {
				return otacli.Usagef("--no-exec starts no init: unexpected argument %q", c.Args().First())
			}
			return prepareroot.Run(prepareroot.Options{
				Sysroot:  c.String("sysroot"),
				Cmdline:  c.String("cmdline"),
				Init:     c.String("init"),
				InitArgs: c.Args().Slice(),
				NoExec:   c.Bool("no-exec"),
				Log:      c.App.ErrWriter,
			})
		},
	}
}

// ostreePrepareRootArgs returns the arguments of ota-client for its command line args when
// it was started as ostree-prepare-root, which ostree-prepare-root's are: in an initramfs,
// `ostree-prepare-root SYSROOT` sets up the deployment on SYSROOT and leaves the switch of
// root to the initramfs; as PID 1 (pid1), the words the kernel passes are for init. Other
// command lines are returned unchanged.
func ostreePrepareRootArgs(args []string, pid1 bool) []string {
	if len(args) == 0 || filepath.Base(args[0]) != "ostree-prepare-root" {
		return args
	}
	if pid1 {
		return append([]string{args[0], "prepare-root", "--"}, args[1:]...)
	}
	if len(args) == 1 {
		// ostree-prepare-root needs SYSROOT outside PID 1: the refusal of --no-exec with
		// the physical root at / says so.
		return []string{args[0], "prepare-root", "--no-exec"}
	}
	return append([]string{args[0], "--sysroot", args[1], "prepare-root", "--no-exec", "--"}, args[2:]...)
}
