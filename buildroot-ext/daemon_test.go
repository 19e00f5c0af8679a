package buildrootext

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/dbusapi"
)

// daemonSteps are ota-client's install steps that the update daemon adds to or changes, and
// its users table; a step of a disabled option is not defined.
var daemonSteps = []string{"OTA_CLIENT_INSTALL_CONFIG", "OTA_CLIENT_INSTALL_DAEMON",
	"OTA_CLIENT_INSTALL_INIT_SYSV", "OTA_CLIENT_INSTALL_INIT_SYSTEMD"}

// daemonInstall runs ota-client's install steps as Buildroot computes them for
// ota_qemu_aarch64_virt_defconfig (which enables the daemon) with the option overrides
// (make command-line assignments), into a new target directory; it returns the directory,
// OTA_CLIENT_USERS, and the error and output of the first step that failed.
func daemonInstall(t *testing.T, overrides ...string) (target, users string, out string, err error) {
	t.Helper()
	dir := loadDefconfigs(t)
	br := buildroot(t)
	vars := append([]string{"OTA_CLIENT_USERS"}, daemonSteps...)
	args := append([]string{"O=" + filepath.Join(dir, "ota_qemu_aarch64_virt"), "printvars",
		"VARS=" + strings.Join(vars, " "), "QUOTED_VARS=YES", "TARGET_DIR=$${OTA_TEST_TARGET}"}, overrides...)
	printed := brMake(t, br, args...)
	v, _, perr := parsePrintvars(printed)
	if perr != nil {
		t.Fatalf("make printvars: %v\n%s", perr, printed)
	}
	target = filepath.Join(t.TempDir(), "target")
	for _, step := range daemonSteps {
		if out, err = runErr([]string{"OTA_TEST_TARGET=" + target}, "sh", "-e", "-c", v[step]); err != nil {
			return target, v["OTA_CLIENT_USERS"], out, err
		}
	}
	return target, v["OTA_CLIENT_USERS"], "", nil
}

// The update daemon's options, as Buildroot computes the install steps from them: the
// daemon mapping of client.yaml as the client's own loader reads it, the bus policy (what
// `ota-client daemon --print-dbus-policy` prints for the configured group), the group in
// the users table, the start scripts; with the daemon off, none of it.
func TestDaemonInstall(t *testing.T) {
	def := clientconfig.DefaultDaemon()
	for _, c := range []struct {
		name      string
		overrides []string
		daemon    bool
		want      clientconfig.Daemon
	}{
		{name: "defconfig", daemon: true, want: def},
		{name: "auto, reboot in a window, group", daemon: true, overrides: []string{
			`BR2_PACKAGE_OTA_CLIENT_DAEMON_INTERVAL="15m"`, "BR2_PACKAGE_OTA_CLIENT_DAEMON_DOWNLOAD=y",
			"BR2_PACKAGE_OTA_CLIENT_DAEMON_INSTALL=y", "BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_NEVER=",
			"BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_WINDOW=y",
			`BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW="23:30-01:00"`,
			`BR2_PACKAGE_OTA_CLIENT_DAEMON_GROUP="updaters"`},
			want: clientconfig.Daemon{Interval: 15 * time.Minute, Jitter: 90 * time.Second, Download: "auto",
				Install: "auto", Reboot: "window", Window: clientconfig.Window{Start: 23*time.Hour + 30*time.Minute, End: time.Hour},
				StallTimeout: def.StallTimeout, Group: "updaters"}},
		{name: "reboot immediately, root only, no periodic check", daemon: true, overrides: []string{
			`BR2_PACKAGE_OTA_CLIENT_DAEMON_INTERVAL="0s"`, "BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_NEVER=",
			"BR2_PACKAGE_OTA_CLIENT_DAEMON_REBOOT_IMMEDIATELY=y", `BR2_PACKAGE_OTA_CLIENT_DAEMON_GROUP=""`},
			want: clientconfig.Daemon{Download: "manual", Install: "manual", Reboot: "immediately",
				StallTimeout: def.StallTimeout}},
		{name: "no daemon", overrides: []string{"BR2_PACKAGE_OTA_CLIENT_DAEMON="}, want: def},
	} {
		t.Run(c.name, func(t *testing.T) {
			target, users, out, err := daemonInstall(t, c.overrides...)
			if err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			cfg, err := clientconfig.Load(target, "")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Daemon != c.want {
				t.Errorf("client.yaml's daemon policy:\n%+v, want\n%+v", cfg.Daemon, c.want)
			}
			yaml, _ := os.ReadFile(cfg.Source)
			if strings.Contains(string(yaml), "daemon:") != c.daemon {
				t.Errorf("client.yaml, daemon %v:\n%s", c.daemon, yaml)
			}

			policy, err := os.ReadFile(filepath.Join(target, "usr/share/dbus-1/system.d", dbusapi.BusName+".conf"))
			if !c.daemon {
				if err == nil {
					t.Error("a bus policy without the daemon")
				}
			} else if want, _ := dbusapi.Policy(c.want.Group); string(policy) != want {
				t.Errorf("bus policy (%v):\n%s\nwant what ota-client daemon --print-dbus-policy prints:\n%s", err, policy, want)
			}
			if wantUsers := "- - " + c.want.Group + " -1 * -"; c.daemon && c.want.Group != "" {
				if !strings.HasPrefix(strings.TrimSpace(users), wantUsers) {
					t.Errorf("OTA_CLIENT_USERS = %q, want the group: %s …", users, wantUsers)
				}
			} else if strings.TrimSpace(users) != "" {
				t.Errorf("OTA_CLIENT_USERS = %q, want none", users)
			}

			script := filepath.Join(target, "etc/init.d/S99ota-client-daemon")
			unit := filepath.Join(target, "usr/lib/systemd/system/ota-client-daemon.service")
			preset, _ := os.ReadFile(filepath.Join(target, "usr/lib/systemd/system-preset/80-ota-client.preset"))
			for _, f := range []string{script, unit} {
				if _, err := os.Stat(f); (err == nil) != c.daemon {
					t.Errorf("%s: %v, want installed %v", f, err, c.daemon)
				}
			}
			if strings.Contains(string(preset), "enable ota-client-daemon.service") != c.daemon {
				t.Errorf("80-ota-client.preset, daemon %v:\n%s", c.daemon, preset)
			}
			if !c.daemon {
				return
			}
			if st, err := os.Stat(script); err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("%s: %v", script, err)
			}
			if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", script, err, out)
			}
			checkDaemonScripts(t, script, unit)
		})
	}
}

// checkDaemonScripts checks what the daemon's start script and unit run: the daemon, after
// mounting the boot partition, and never mark-good (S99ota-client and
// ota-client-mark-good.service do that).
func checkDaemonScripts(t *testing.T, script, unit string) {
	t.Helper()
	s, _ := os.ReadFile(script)
	u, _ := os.ReadFile(unit)
	for _, w := range []string{"--exec /usr/bin/ota-client -- daemon", "/usr/libexec/ota-client/ota-mount-boot"} {
		if !strings.Contains(string(s), w) {
			t.Errorf("%s lacks %q", script, w)
		}
	}
	for _, w := range []string{"ExecStart=/usr/bin/ota-client daemon\n", "Type=dbus\n", "BusName=" + dbusapi.BusName + "\n",
		"ExecStartPre=/usr/libexec/ota-client/ota-mount-boot\n", "After=dbus.service", "WantedBy=multi-user.target\n"} {
		if !strings.Contains(string(u), w) {
			t.Errorf("%s lacks %q", unit, w)
		}
	}
	for f, text := range map[string][]byte{script: s, unit: u} {
		if strings.Contains(string(text), "mark-good\n") || strings.Contains(string(text), "mark-good >") {
			t.Errorf("%s runs mark-good", f)
		}
	}
}

// Each option that would make client.yaml unreadable fails the install, naming the option,
// before client.yaml is written: the client reads it strictly, and mark-good would fail at
// every boot.
func TestDaemonInstallRefusesBadValues(t *testing.T) {
	for _, c := range []struct{ override, want string }{
		{`BR2_PACKAGE_OTA_CLIENT_DAEMON_INTERVAL="6 hours"`, `BR2_PACKAGE_OTA_CLIENT_DAEMON_INTERVAL="6 hours": want a duration`},
		{`BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW="2:00-4:00"`, `BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW="2:00-4:00": want HH:MM-HH:MM`},
		{`BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW="02:00-02:00"`, `BR2_PACKAGE_OTA_CLIENT_DAEMON_MAINTENANCE_WINDOW="02:00-02:00": want HH:MM-HH:MM, not empty`},
		{`BR2_PACKAGE_OTA_CLIENT_DAEMON_GROUP="ota users"`, `BR2_PACKAGE_OTA_CLIENT_DAEMON_GROUP="ota users": want a group name`},
	} {
		target, _, out, err := daemonInstall(t, c.override)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: %v, want the error %q:\n%s", c.override, err, c.want, out)
		}
		if _, err := os.Stat(filepath.Join(target, "etc/ota/client.yaml")); err == nil {
			t.Errorf("%s: client.yaml was written", c.override)
		}
	}
}
