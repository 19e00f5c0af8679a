package machines

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otakit/ota/internal/clientconfig"
	"github.com/otakit/ota/internal/dbusapi"
	"github.com/otakit/ota/internal/testsources"
	"github.com/otakit/ota/meta-ota/internal/tests/yoctotest"
)

// daemonMask keeps the recipes the daemon tests read: ota-client and the image that
// installs it.
const daemonMask = `BBMASK = "^(?!.*/(core-image-minimal|ota-client)(_[^/]*)?\.bb(append)?$).*\.bb(append)?$"`

// daemonBuild is a qemuarm64 build directory of the daemon tests with more local.conf lines.
func daemonBuild(name string, conf ...string) yoctotest.Config {
	return yoctotest.Config{Name: "build-daemon/" + name, Machine: "qemuarm64", Extra: append([]string{daemonMask}, conf...)}
}

// recipeClient builds ota-client as the recipe does, offline, for the build host: bitbake
// fetches and unpacks the recipe's sources (the commit SRCREV and the modules of
// ota-client-go-mods.inc, seeded into DL_DIR) in the build directory dir, and the host's Go
// builds cmd/ota-client from them with no module proxy. It returns the binary, in a
// directory the build user can read: do_install installs it as the cross-compiled one.
func recipeClient(t *testing.T, e *yoctotest.Env, dir string) string {
	t.Helper()
	e.SeedDownloads(t, "ota-client")
	// -b: the recipe's own tasks, without its build dependencies (a cross toolchain, masked).
	e.Bitbake(t, dir, "bitbake", "-b", "ota-client_git.bb", "-c", "unpack")
	v := getVars(t, e, dir, "ota-client", "S", "GO_IMPORT", "GOMODCACHE")
	bindir, err := os.MkdirTemp("", "ota-client-daemon-") // t.TempDir's parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bindir) })
	os.Chmod(bindir, 0o755)
	uid, gid := e.Owner()
	if err := yoctotest.ChownR(bindir, uid, gid); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(bindir, "ota-client")
	cmd := e.Command(filepath.Join(v["S"], "src", v["GO_IMPORT"]), "go", "build", "-o", bin, "./cmd/ota-client")
	cmd.Env = append(cmd.Env, "GOMODCACHE="+v["GOMODCACHE"], "GOPROXY=off", "GOFLAGS=-modcacherw -buildvcs=false",
		"CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building ota-client from the recipe's sources offline (SRCREV, ota-client-go-mods.inc): %v\n%s", err, out)
	}
	return bin
}

// clientInstall runs ota-client's do_install as bitbake expands it in the build directory
// dir, outside bitbake as the build user: the compiled client is the file bin, the files
// of SRC_URI (file://) come from the layer. It returns the values of vars, D, and the
// task's output and error.
func clientInstall(t *testing.T, e *yoctotest.Env, dir, bin string, vars ...string) (map[string]string, string, string, error) {
	t.Helper()
	v := getVars(t, e, dir, "ota-client", append([]string{"do_install", "D", "B", "GO_BUILD_BINDIR", "UNPACKDIR", "SRC_URI"}, vars...)...)
	var files []string
	for _, u := range strings.Fields(v["SRC_URI"]) {
		if f, ok := strings.CutPrefix(u, "file://"); ok {
			files = append(files, filepath.Join(e.Layer, "recipes-ota", "ota-client", "files", f))
		}
	}
	compiled := filepath.Join(v["B"], v["GO_BUILD_BINDIR"], "ota-client")
	prepare := `set -e
rm -rf "$D" "$UNPACKDIR"
mkdir -p "$UNPACKDIR" "$(dirname "$COMPILED")"
cp "$BIN" "$COMPILED"
cp $FILES "$UNPACKDIR/"
`
	cmd := e.Command(dir, "bash", "-c", prepare)
	cmd.Env = append(cmd.Env, "D="+v["D"], "UNPACKDIR="+v["UNPACKDIR"], "COMPILED="+compiled, "BIN="+bin,
		"FILES="+strings.Join(files, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("preparing do_install: %v\n%s", err, out)
	}
	out, err := e.Command(dir, "bash", "-c", "bbfatal() { echo \"ERROR: $*\" >&2; exit 1; }\nset -e\n"+v["do_install"]).CombinedOutput()
	return v, v["D"], string(out), err
}

// TestClientDaemon: the update daemon of the ota-client recipe, per setting: OTA_DAEMON =
// "1" puts the package ota-client-daemon in the image; its systemd unit (SYSTEMD_SERVICE),
// SysV script (update-rc.d), bus policy and group (useradd) are in that package, which
// needs dbus; do_install as bitbake expands it, with the client built offline from the
// recipe's SRCREV and module list, writes the OTA_DAEMON_* settings into client.yaml, read
// back by this checkout's loader and by that client's `ota-client daemon
// --print-dbus-policy`, whose policy for OTA_DAEMON_GROUP is the one installed. Neither
// script runs mark-good, which ota-mark-good does.
func TestClientDaemon(t *testing.T) {
	e := yoctotest.Yocto(t)
	testsources.RequireTools(t, "shellcheck")
	bin := recipeClient(t, e, e.Build(t, daemonBuild("client")))
	def := clientconfig.DefaultDaemon()
	for _, c := range []struct {
		name   string
		conf   []string
		url    string
		daemon bool // OTA_DAEMON = "1"
		sysv   bool
		want   clientconfig.Daemon
	}{
		{name: "settings", daemon: true, sysv: true, url: "https://updates.example.com/repo",
			conf: []string{`OTA_SERVER_URL = "https://updates.example.com/repo"`, `OTA_DAEMON = "1"`,
				`OTA_DAEMON_INTERVAL = "15m"`, `OTA_DAEMON_DOWNLOAD = "auto"`, `OTA_DAEMON_INSTALL = "auto"`,
				`OTA_DAEMON_REBOOT = "window"`, `OTA_DAEMON_MAINTENANCE_WINDOW = "23:30-01:00"`,
				`OTA_DAEMON_GROUP = "updaters"`, `DISTRO_FEATURES:append = " sysvinit"`},
			want: clientconfig.Daemon{Interval: 15 * time.Minute, Jitter: 90 * time.Second, Download: "auto",
				Install: "auto", Reboot: "window", Window: clientconfig.Window{Start: 23*time.Hour + 30*time.Minute, End: time.Hour},
				StallTimeout: def.StallTimeout, Group: "updaters"}},
		{name: "defaults-root-only", daemon: true,
			conf: []string{`OTA_DAEMON = "1"`, `OTA_DAEMON_REBOOT = "immediately"`, `OTA_DAEMON_GROUP = ""`},
			want: clientconfig.Daemon{Interval: def.Interval, Jitter: def.Jitter, Download: "manual", Install: "manual",
				Reboot: "immediately", StallTimeout: def.StallTimeout}},
		{name: "off", url: "https://updates.example.com/repo",
			conf: []string{`OTA_SERVER_URL = "https://updates.example.com/repo"`}, want: def},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := e.Build(t, daemonBuild(c.name, c.conf...))
			v, d, out, err := clientInstall(t, e, dir, bin, "OTA_BRANCH", "PACKAGES", "FILES:ota-client-daemon",
				"RDEPENDS:ota-client-daemon", "SYSTEMD_PACKAGES", "SYSTEMD_SERVICE:ota-client-daemon", "INITSCRIPT_PACKAGES",
				"INITSCRIPT_NAME:ota-client-daemon", "INITSCRIPT_PARAMS:ota-client-daemon", "PACKAGE_WRITE_DEPS",
				"GROUPADD_PARAM:ota-client-daemon",
				"systemd_system_unitdir", "sysconfdir", "datadir")
			if err != nil {
				t.Fatalf("do_install: %v\n%s", err, yoctotest.Tail(out, 30))
			}
			install := strings.Fields(getVars(t, e, dir, "core-image-minimal", "IMAGE_INSTALL")["IMAGE_INSTALL"])
			if slices.Contains(install, "ota-client-daemon") != c.daemon {
				t.Errorf("IMAGE_INSTALL of core-image-minimal, OTA_DAEMON %v: %v", c.daemon, install)
			}

			cfg, err := clientconfig.Load(d, "")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.URL != c.url || (c.url != "" && cfg.Ref != v["OTA_BRANCH"]) {
				t.Errorf("client.yaml: url %q ref %q, want %q and OTA_BRANCH", cfg.URL, cfg.Ref, c.url)
			}
			if cfg.Daemon != c.want {
				t.Errorf("client.yaml's daemon policy:\n%+v, want\n%+v", cfg.Daemon, c.want)
			}

			// The package, its files and what installs and starts it.
			pkgs := strings.Fields(v["PACKAGES"])
			if i := slices.Index(pkgs, "ota-client-daemon"); i < 0 || i > slices.Index(pkgs, "ota-client") {
				t.Errorf("PACKAGES lacks ota-client-daemon before ota-client (which would take its files): %v", pkgs)
			}
			unit := v["systemd_system_unitdir"] + "/ota-client-daemon.service"
			script := v["sysconfdir"] + "/init.d/ota-client-daemon"
			policyFile := v["datadir"] + "/dbus-1/system.d/" + dbusapi.BusName + ".conf"
			files := strings.Fields(v["FILES:ota-client-daemon"])
			for _, f := range []string{unit, script, policyFile} {
				if !slices.Contains(files, f) {
					t.Errorf("FILES:ota-client-daemon lacks %s: %v", f, files)
				}
			}
			for name, want := range map[string]string{"SYSTEMD_SERVICE:ota-client-daemon": "ota-client-daemon.service",
				"INITSCRIPT_NAME:ota-client-daemon": "ota-client-daemon"} {
				if v[name] != want {
					t.Errorf("%s = %q, want %q", name, v[name], want)
				}
			}
			for name, want := range map[string][]string{"SYSTEMD_PACKAGES": {"ota-client", "ota-client-daemon"},
				"INITSCRIPT_PACKAGES": {"ota-client", "ota-client-daemon"}, "RDEPENDS:ota-client-daemon": {"ota-client", "dbus"}} {
				for _, w := range want {
					if !slices.Contains(strings.Fields(v[name]), w) {
						t.Errorf("%s = %q lacks %s", name, v[name], w)
					}
				}
			}
			if !strings.HasPrefix(v["INITSCRIPT_PARAMS:ota-client-daemon"], "start 99 ") {
				t.Errorf("INITSCRIPT_PARAMS:ota-client-daemon = %q, want it started last (99), as ota-mark-good", v["INITSCRIPT_PARAMS:ota-client-daemon"])
			}
			// useradd creates the group when the package is installed, only when there is one.
			useradd := slices.Contains(strings.Fields(v["PACKAGE_WRITE_DEPS"]), "shadow-native")
			if useradd != (c.want.Group != "") || (useradd && v["GROUPADD_PARAM:ota-client-daemon"] != "--system "+c.want.Group) {
				t.Errorf("group %q: useradd inherited %v (PACKAGE_WRITE_DEPS %q), GROUPADD_PARAM:ota-client-daemon = %q",
					c.want.Group, useradd, v["PACKAGE_WRITE_DEPS"], v["GROUPADD_PARAM:ota-client-daemon"])
			}

			// The recipe's client reads the client.yaml written (strictly: a setting it does not
			// know fails) and prints the bus policy for its group: the one installed.
			printed, err := e.Command(dir, bin, "--sysroot", d, "daemon", "--print-dbus-policy").CombinedOutput()
			if err != nil {
				t.Fatalf("the recipe's ota-client daemon --print-dbus-policy on the client.yaml written: %v\n%s", err, printed)
			}
			policy, err := os.ReadFile(filepath.Join(d, policyFile))
			if string(policy) != string(printed) {
				t.Errorf("bus policy (%v):\n%s\nwant what the recipe's ota-client daemon --print-dbus-policy prints:\n%s", err, policy, printed)
			}
			if want, _ := dbusapi.Policy(c.want.Group); string(policy) != want {
				t.Errorf("bus policy:\n%s\nwant this checkout's for group %q:\n%s", policy, c.want.Group, want)
			}
			u, err := os.ReadFile(filepath.Join(d, unit))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"ExecStart=/usr/bin/ota-client daemon\n", "Type=dbus\n", "BusName=" + dbusapi.BusName + "\n",
				"ExecStartPre=/usr/libexec/ota/ota-mount-boot\n", "After=dbus.service", "ota-mark-good.service", "WantedBy=multi-user.target\n"} {
				if !strings.Contains(string(u), w) {
					t.Errorf("%s lacks %q", unit, w)
				}
			}
			s, err := os.ReadFile(filepath.Join(d, script))
			if (err == nil) != c.sysv {
				t.Fatalf("%s: %v, want installed %v (sysvinit)", script, err, c.sysv)
			}
			if c.sysv {
				if !strings.Contains(string(s), "-x /usr/bin/ota-client -- daemon") || !strings.Contains(string(s), "/usr/libexec/ota/ota-mount-boot") {
					t.Errorf("%s does not mount the boot partition and start the daemon:\n%s", script, s)
				}
				for _, check := range [][]string{{"sh", "-n"}, {"shellcheck", "-s", "sh"}} {
					if out, err := exec.Command(check[0], append(check[1:], filepath.Join(d, script))...).CombinedOutput(); err != nil {
						t.Errorf("%s %s: %v\n%s", strings.Join(check, " "), script, err, out)
					}
				}
			}
			for f, text := range map[string][]byte{unit: u, script: s} {
				if strings.Contains(string(text), "mark-good\n") {
					t.Errorf("%s runs mark-good (ota-mark-good does)", f)
				}
			}
		})
	}
}

// TestClientDaemonBadSettings: an OTA_DAEMON_* value the client would not read stops the
// parse of ota-client with a one-line error naming the variable (client.yaml is read
// strictly: it would stop every ota-client command on the device, mark-good included).
func TestClientDaemonBadSettings(t *testing.T) {
	e := yoctotest.Yocto(t)
	for _, c := range []struct{ name, conf, want string }{
		{"interval", `OTA_DAEMON_INTERVAL = "6 hours"`, `OTA_DAEMON_INTERVAL = "6 hours": want a duration such as 30m or 6h`},
		{"download", `OTA_DAEMON_DOWNLOAD = "yes"`, `OTA_DAEMON_DOWNLOAD = "yes": want auto or manual`},
		{"install", `OTA_DAEMON_INSTALL = "always"`, `OTA_DAEMON_INSTALL = "always": want auto or manual`},
		{"reboot", `OTA_DAEMON_REBOOT = "later"`, `OTA_DAEMON_REBOOT = "later": want never, immediately or window`},
		{"no-window", `OTA_DAEMON_REBOOT = "window"`, `OTA_DAEMON_REBOOT = "window" needs OTA_DAEMON_MAINTENANCE_WINDOW`},
		{"window", `OTA_DAEMON_MAINTENANCE_WINDOW = "2:00-4:00"`, `OTA_DAEMON_MAINTENANCE_WINDOW = "2:00-4:00": want HH:MM-HH:MM`},
		{"empty-window", `OTA_DAEMON_MAINTENANCE_WINDOW = "02:00-02:00"`, `OTA_DAEMON_MAINTENANCE_WINDOW = "02:00-02:00" is empty`},
		{"group", `OTA_DAEMON_GROUP = "ota users"`, `OTA_DAEMON_GROUP = "ota users": want a group name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := e.Build(t, daemonBuild("bad", c.conf))
			out, err := e.Command(dir, "bitbake-getvar", "-r", "ota-client", "--value", "OTA_DAEMON").CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("parsing ota-client with %s: %v, want the error %q:\n%s", c.conf, err, c.want, yoctotest.Tail(string(out), 10))
			}
		})
	}
}
