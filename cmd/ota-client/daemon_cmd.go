package main

import (
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/daemon"
	"github.com/otakit/ota/internal/dbusapi"
)

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:      "daemon",
		Usage:     "update in the background, and serve the D-Bus interface " + dbusapi.Interface,
		ArgsUsage: " ",
		Description: "Runs until SIGTERM, one per sysroot (ostree/ota-daemon.lock). On the system bus (or\n" +
			"DBUS_SYSTEM_BUS_ADDRESS's) as " + dbusapi.BusName + ", it offers check, download, install,\n" +
			"update, rollback, apply-bundle, mark-good, cancel and reboot, reporting through the Progress\n" +
			"and Finished signals and properties (docs/dbus.md). client.yaml's daemon mapping sets its\n" +
			"policy: the interval of its checks, whether it downloads, installs and reboots by itself,\n" +
			"the maintenance window, the stall timeout. It downloads and deploys at nice 10 in the\n" +
			"idle I/O class, and takes the sysroot's lock only while an operation runs: the other\n" +
			"commands wait for it then. --print-dbus-policy prints the bus policy for the\n" +
			"configured group instead.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "print-dbus-policy", Usage: "print the D-Bus policy file (for /usr/share/dbus-1/system.d/) that lets root and the configured group use the daemon, and exit"}},
		Action: func(c *cli.Context) error {
			opts, err := noArgSession(c)
			if err != nil {
				return err
			}
			cfg, err := opts.LoadConfig()
			if err != nil {
				return err
			}
			if c.Bool("print-dbus-policy") {
				policy, err := dbusapi.Policy(cfg.Daemon.Group)
				if err != nil {
					return fmt.Errorf("%s: daemon: group: %w", cfg.Source, err)
				}
				_, err = fmt.Fprint(c.App.Writer, policy)
				return err
			}
			lock, err := daemon.Lock(opts.Sysroot)
			if err != nil {
				return err
			}
			defer lock.Close()
			conn, err := dbus.ConnectSystemBus()
			if err != nil {
				return fmt.Errorf("dbus: connecting to the system bus: %w", err)
			}
			defer conn.Close()
			opts.Progress, opts.Waiting = nil, nil
			policy := cfg.Daemon
			if cfg.URL == "" || cfg.Ref == "" {
				policy.Interval = 0 // a device updated from bundles only: nothing to check
			}
			srv := dbusapi.NewServer(conn)
			d := daemon.New(c.Context, daemon.Options{Session: opts, Policy: policy, Observer: srv,
				Log: func(line string) { fmt.Fprintln(c.App.ErrWriter, "ota-client daemon: "+line) }})
			if err := srv.Export(d); err != nil {
				return err
			}
			d.Run()
			return nil
		},
	}
}
