package main

// Issue 17 through the daemon: the D-Bus methods on applications and the Apps property.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/otakit/ota/internal/apps"
	"github.com/otakit/ota/internal/dbusapi"
)

// appsProp returns the daemon's Apps property, decoded.
func appsProp(t *testing.T, c *busClient) []apps.Info {
	t.Helper()
	s, _ := c.prop(t, "Apps").(string)
	var list []apps.Info
	if err := json.Unmarshal([]byte(s), &list); err != nil || list == nil {
		t.Fatalf("Apps %q: want a JSON array: %v", s, err)
	}
	return list
}

// TestDaemonApps: gdbus call InstallApp installs app v1 (Finished('install-app', true, …),
// the Apps property lists it, the other state-changing methods are refused as Busy while it
// runs); UpdateApp installs v2 once published, RollbackApp returns to v1, and the OS
// deployments stay as they were; status lists the app; a change by the command line shows
// in Apps; RemoveApp empties it.
func TestDaemonApps(t *testing.T) {
	d := newDevice(t, 1)
	key := d.publish(t)
	srv := d.serveRecorded(t)
	// A file of the app's own at 1 MiB/s: the install lasts long enough to be refused
	// another operation while it runs.
	writeFiles(t, d.sysroot, map[string]string{"etc/ota/client.yaml": "url: " + srv.URL + "\nref: myos/stable\nmax-rate: 1MiB\n"})
	v1 := d.commitApp(t, "1.0", "1.*", map[string]string{"share/big": blob(2<<20, 7)})
	d.signApp(t, key, v1)
	osBefore := d.osState(t)

	b := startBus(t, d)
	startDaemon(t, b, d, "--cmdline", d.cmdlineOf(t, d.commits[0]))
	c := dialBus(t, b)
	if list := appsProp(t, c); len(list) != 0 {
		t.Errorf("Apps before any install: %+v", list)
	}
	intro := b.gdbus(t, "introspect", "--system", "--dest", dbusapi.BusName, "--object-path", string(dbusapi.Path))
	for _, want := range []string{"InstallApp(in  s name,", "UpdateApp(in  s name);", "RollbackApp(in  s name);", "RemoveApp(in  s name);", "readonly s Apps"} {
		if !strings.Contains(intro, want) {
			t.Errorf("gdbus introspect lacks %q:\n%s", want, intro)
		}
	}

	from := c.mark()
	if out := b.call(t, "InstallApp", "'hello'", "'"+appRef+"'"); strings.TrimSpace(out) != "()" {
		t.Errorf("InstallApp returned %q", out)
	}
	c.waitProperty(t, from, "Status", "installing-app", 20*time.Second)
	for _, m := range []struct {
		name string
		args []any
	}{{"UpdateApp", []any{"hello"}}, {"InstallApp", []any{"other", ""}}, {"RollbackApp", []any{"hello"}}, {"RemoveApp", []any{"hello"}}, {"Update", nil}} {
		err := c.call(m.name, m.args...)
		if de, ok := err.(dbus.Error); !ok || de.Name != dbusapi.ErrorBusy || !strings.Contains(fmt.Sprint(de.Body...), "install-app is running (installing-app)") {
			t.Errorf("%s during install-app: %v, want %s", m.name, err, dbusapi.ErrorBusy)
		}
	}
	f, _ := c.waitFinished(t, from, "install-app", 60*time.Second)
	if want := "installed application hello 1.0 (" + v1 + "), the current version"; !f.success || f.message != want {
		t.Fatalf("install-app: %+v, want success and %q", f, want)
	}
	if list := appsProp(t, c); len(list) != 1 || list[0].Name != "hello" || list[0].Current != v1 || list[0].Version != "1.0" || list[0].Ref != appRef {
		t.Errorf("Apps after InstallApp: %+v", list)
	}
	if got := d.runApp(t); got != "hello 1.0" {
		t.Errorf("app v1 prints %q", got)
	}

	v2 := d.commitApp(t, "2.0", "1.*", map[string]string{"share/big": blob(2<<20, 7)})
	d.signApp(t, key, v2)
	from = c.mark()
	b.call(t, "UpdateApp", "'hello'")
	f, _ = c.waitFinished(t, from, "update-app", 60*time.Second)
	if want := "installed application hello 2.0 (" + v2 + "), the current version"; !f.success || f.message != want {
		t.Fatalf("update-app: %+v, want success and %q", f, want)
	}
	if list := appsProp(t, c); len(list) != 1 || list[0].Current != v2 || list[0].Previous != v1 || list[0].PreviousVersion != "1.0" {
		t.Errorf("Apps after UpdateApp: %+v", list)
	}
	if got := d.runApp(t); got != "hello 2.0" {
		t.Errorf("app v2 prints %q", got)
	}
	from = c.mark()
	b.call(t, "UpdateApp", "'hello'")
	if f, _ := c.waitFinished(t, from, "update-app", 60*time.Second); !f.success || !strings.HasSuffix(f.message, "is up to date") {
		t.Errorf("second update-app: %+v", f)
	}

	from = c.mark()
	b.call(t, "RollbackApp", "'hello'")
	if f, _ := c.waitFinished(t, from, "rollback-app", 20*time.Second); !f.success || !strings.Contains(f.message, "hello 1.0 ("+v1+")") {
		t.Errorf("rollback-app: %+v", f)
	}
	if list := appsProp(t, c); len(list) != 1 || list[0].Current != v1 || list[0].Previous != v2 || d.runApp(t) != "hello 1.0" {
		t.Errorf("Apps after RollbackApp: %+v", list)
	}
	if after := d.osState(t); strings.Join(after, "\n") != strings.Join(osBefore, "\n") {
		t.Errorf("the app operations changed the OS:\n%s", diffLines(osBefore, after))
	}

	// status, without the daemon, lists the app.
	var st statusJSON
	if err := json.Unmarshal([]byte(mustClient(t, "--sysroot", d.sysroot, "status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Apps) != 1 || st.Apps[0].Name != "hello" || st.Apps[0].Current != v1 || st.Apps[0].Previous != v2 {
		t.Errorf("status --json apps: %+v", st.Apps)
	}
	if text, want := mustClient(t, "--sysroot", d.sysroot, "status").stdout, "app:         hello 1.0 "+v1+" "+appRef+"\n"; !strings.Contains(text, want) {
		t.Errorf("status lacks %q:\n%s", want, text)
	}

	// A rollback by the command line shows in Apps.
	mustClient(t, "--sysroot", d.sysroot, "app", "rollback", "hello")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if list := appsProp(t, c); len(list) == 1 && list[0].Current == v2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Apps after ota-client app rollback: %+v, want current %s", appsProp(t, c), v2)
		}
	}

	from = c.mark()
	b.call(t, "RemoveApp", "'hello'")
	if f, _ := c.waitFinished(t, from, "remove-app", 20*time.Second); !f.success || f.message != "removed application hello" {
		t.Errorf("remove-app: %+v", f)
	}
	if list := appsProp(t, c); len(list) != 0 || fileExists(d.appDir()) {
		t.Errorf("Apps after RemoveApp: %+v", list)
	}
	if text := mustClient(t, "--sysroot", d.sysroot, "status").stdout; !strings.Contains(text, "apps:        none\n") {
		t.Errorf("status after the removal:\n%s", text)
	}
	// Invalid names are refused at once.
	if err := c.call("InstallApp", "../x", ""); err == nil || err.(dbus.Error).Name != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Errorf("InstallApp('../x'): %v", err)
	}
	if err := c.call("InstallApp", "hello", "apps/other/testarch/stable"); err == nil || !strings.Contains(err.Error(), "application ref") {
		t.Errorf("InstallApp with another app's ref: %v", err)
	}
}
