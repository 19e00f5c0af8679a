// Command ota-client is the device half of the OTA system: it pulls verified updates,
// deploys them atomically, rolls back, manages the boot counter and prepares the root
// filesystem at boot (docs/client.md).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/memlimit"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/sysroot"
)

// ota-client's memory budget (GOMEMLIMIT replaces it with a fixed soft limit): the garbage
// collector works harder instead of letting the heap double, which keeps an update within
// what a small device can spare (docs/client.md, "Memory"; bench/RESULTS.md, "client").
const (
	// clientMemory is the Go soft memory limit. The zstd decoder of delta parts lives in
	// the Go heap (an 8 MiB window, one part at a time), and the limit keeps the heap from
	// doubling around it (32 MiB let an update by zstd parts peak at 38-44 MiB of RSS; 24
	// MiB, with one decoder at a time, at 31-34, in no more time).
	clientMemory = 24 << 20
	// updateMemory bounds the Go soft limit plus the dictionaries of the xz processes that
	// decode delta parts (internal/memlimit): the limit is lowered while they run, so that
	// the update stays within 64 MiB with the pages of the programs (about 10 MiB of
	// ota-client's binary, 1-2 MiB of each xz's). The parts ota-build makes (dictionaries
	// of 4 and 8 MiB, two decoded at a time) leave the limit at clientMemory; a part
	// ostree makes (32 MiB) lowers it to 20 MiB while it is decoded.
	updateMemory = 52 << 20
	// minMemory is the lowest the limit goes, several times the live heap of an update
	// (4-6 MiB).
	minMemory = 16 << 20
)

func main() {
	limitMemory()
	os.Args = ostreePrepareRootArgs(os.Args, os.Getpid() == 1)
	otacli.Main(newApp())
}

// limitMemory sets the memory budget unless GOMEMLIMIT sets a soft limit.
func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		memlimit.Set(memlimit.Budget{Limit: clientMemory, Total: updateMemory, Min: minMemory})
	}
}

// newApp returns the ota-client application, with the conventions of internal/cli applied.
func newApp() *cli.App {
	app := &cli.App{
		Name:  "ota-client",
		Usage: "update an embedded Linux device from OSTree commits that ota-build publishes, and roll it back",
		Description: "ota-client manages the deployments of the device's OSTree sysroot: `status` shows them,\n" +
			"`check` asks the remote whether a verified update is available, `pull`, `deploy` and\n" +
			"`update` fetch and deploy it (`apply-bundle` from a file), `rollback` makes the previous\n" +
			"deployment the default, `mark-good` and `mark-bad` tell the boot script\n" +
			"(image/bootscript) whether the running system is healthy, `cleanup` frees what is no\n" +
			"longer used, `prepare-root` mounts the booted deployment at boot, and `app` manages\n" +
			"applications that update on their own (docs/apps.md). It reads\n" +
			clientconfig.DefaultFile + " or, without it, the ostree remote in " + clientconfig.RemotesDir + "/*.conf\n" +
			"(docs/client.md); with --sysroot DIR, every path of the device is taken under DIR.\n" +
			otacli.Conventions,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "sysroot", Value: "/", Usage: "the device's root `DIR`: the physical sysroot, whose ostree/ and boot/ are managed"},
			&cli.StringFlag{Name: "config", Value: clientconfig.DefaultFile, Usage: "configuration `FILE`, on the device (under --sysroot)"},
			&cli.StringFlag{Name: "cmdline", Usage: "kernel command line `FILE` whose ostree= argument names the booted deployment (default: with --sysroot /, the deployment mounted as /; else none is booted)"},
		},
		Commands: []*cli.Command{statusCommand(), checkCommand(), pullCommand(), deployCommand(), updateCommand(), applyBundleCommand(),
			rollbackCommand(), markCommand(true), markCommand(false), prepareRootCommand(), cleanupCommand(), daemonCommand(), appCommand()},
	}
	otacli.Setup(app)
	return app
}

// jsonFlag is the --json flag every command takes.
func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print a JSON report (see docs/client.md)"}
}

// loadConfig reads the configuration the global flags name.
func loadConfig(c *cli.Context) (*clientconfig.Config, error) {
	return clientconfig.Load(c.String("sysroot"), c.String("config"))
}

// openSysroot opens the sysroot of the global --sysroot flag.
func openSysroot(c *cli.Context) (*sysroot.Sysroot, error) {
	return sysroot.Open(c.String("sysroot"), sysroot.OpenOptions{Waiting: waiting(c)})
}

// waiting returns what says, before a command waits for the sysroot's lock, that it does.
func waiting(c *cli.Context) func() {
	return func() {
		fmt.Fprintf(c.App.ErrWriter, "%s: waiting for the lock of %s: another ota-client, its daemon or ostree is changing it\n", c.App.Name, c.String("sysroot"))
	}
}

// bootedBy returns what tells the booted deployment: with --cmdline, that command line,
// whose ostree= argument names it; else, when the sysroot is / (the running system), the
// root "/", the deployment mounted there being found as ostree finds it
// (sysroot.RootDeployment), because the ostree= boot link in /proc/cmdline no longer leads
// to it once an update, a rollback or a kept fallback has rewritten the boot
// configuration; else nothing (none is booted).
func bootedBy(c *cli.Context) (cmdline, root string, err error) {
	if file := c.String("cmdline"); file != "" {
		data, err := os.ReadFile(file)
		return string(data), "", err
	}
	if filepath.Clean(c.String("sysroot")) == "/" {
		return "", "/", nil
	}
	return "", "", nil
}

// booted returns the deployment the system booted, nil for none (see bootedBy).
func booted(c *cli.Context, s *sysroot.Sysroot) (*sysroot.Deployment, error) {
	line, root, err := bootedBy(c)
	if err != nil {
		return nil, err
	}
	return session.Options{Cmdline: line, Root: root}.BootedDeployment(s), nil
}
