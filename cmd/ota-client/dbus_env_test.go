package main

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/otakit/ota/internal/dbusapi"
)

// busConfig is the configuration of the tests' private bus: what Debian's system.conf says
// of the system bus (only EXTERNAL authentication, owning names and method calls denied
// but where a policy file in system.d allows them, signals and replies allowed), listening
// on a socket of the test.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=%s</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>%s</includedir>
</busconfig>
`

// privateBus is a dbus-daemon the test started, with a system bus's policy and the
// daemon's policy file as `ota-client daemon --print-dbus-policy` prints it for the
// device's configuration.
type privateBus struct {
	addr string
}

// startBus starts a private system bus for the device d; the test stops it.
func startBus(t *testing.T, d device) *privateBus {
	t.Helper()
	requireTool(t, "dbus-daemon", "gdbus")
	dir, err := os.MkdirTemp("", "ota-bus-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // for the callers of other users
	policy := mustClient(t, "--sysroot", d.sysroot, "daemon", "--print-dbus-policy").stdout
	writeFiles(t, dir, map[string]string{
		"system.d/" + dbusapi.BusName + ".conf": policy,
		"bus.conf":                              fmt.Sprintf(busConfig, filepath.Join(dir, "socket"), filepath.Join(dir, "system.d")),
	})
	cmd := exec.Command("dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon: %s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: %v: %s", err, stderr.String())
	}
	return &privateBus{addr: strings.TrimSpace(line)}
}

// env is the environment of a process that uses the bus as the system bus.
func (b *privateBus) env() []string {
	return append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+b.addr)
}

// gdbus runs gdbus with the arguments on the bus, as the system bus, and returns its
// output; it fails the test unless gdbus succeeds.
func (b *privateBus) gdbus(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("gdbus", args...)
	cmd.Env = b.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gdbus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// call calls a method of the daemon's interface with gdbus.
func (b *privateBus) call(t *testing.T, method string, args ...string) string {
	t.Helper()
	return b.gdbus(t, append([]string{"call", "--system", "--dest", dbusapi.BusName, "--object-path", string(dbusapi.Path),
		"--method", dbusapi.Interface + "." + method}, args...)...)
}

// get returns a property of the daemon as gdbus call prints it, e.g. "(<true>,)".
func (b *privateBus) get(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(b.gdbus(t, "call", "--system", "--dest", dbusapi.BusName, "--object-path", string(dbusapi.Path),
		"--method", "org.freedesktop.DBus.Properties.Get", dbusapi.Interface, name))
}

// daemonProc is ota-client daemon running on a private bus.
type daemonProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{} // closed once the process exited, with err
	err    error
}

func (p *daemonProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

// log returns what the daemon wrote to standard error.
func (p *daemonProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startDaemon runs ota-client daemon on device d with the global flags args, as the
// system bus's, and waits until it owns its name. The test stops it with SIGTERM and
// checks that it exits 0.
func startDaemon(t *testing.T, b *privateBus, d device, args ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{exited: make(chan struct{})}
	p.cmd = exec.Command(otaClient, append(append([]string{"--sysroot", d.sysroot}, args...), "daemon")...)
	p.cmd.Env = b.env()
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.err != nil {
				t.Errorf("ota-client daemon exited with %v after SIGTERM:\n%s", p.err, p.log())
			}
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			t.Errorf("ota-client daemon did not exit after SIGTERM:\n%s", p.log())
		}
		if t.Failed() {
			t.Logf("ota-client daemon:\n%s", p.log())
		}
	})
	c := dialBus(t, b)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var owned bool
		if err := c.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, dbusapi.BusName).Store(&owned); err != nil {
			t.Fatal(err)
		}
		if owned {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("ota-client daemon exited: %v\n%s", p.err, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ota-client daemon did not take its name:\n%s", p.log())
		}
	}
	return p
}

// busClient is a connection of the test to the private bus, which records the daemon's
// signals.
type busClient struct {
	conn *dbus.Conn
	obj  dbus.BusObject

	mu      sync.Mutex
	signals []*dbus.Signal
	notify  chan struct{}
}

// dialBus connects to the bus as root and records the daemon's signals.
func dialBus(t *testing.T, b *privateBus) *busClient {
	t.Helper()
	conn, err := dbus.Connect(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &busClient{conn: conn, obj: conn.Object(dbusapi.BusName, dbusapi.Path), notify: make(chan struct{}, 1)}
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(dbusapi.Path)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 1024)
	conn.Signal(ch)
	go func() {
		for s := range ch {
			c.mu.Lock()
			c.signals = append(c.signals, s)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// call calls a method of the daemon.
func (c *busClient) call(method string, args ...any) error {
	return c.obj.Call(dbusapi.Interface+"."+method, 0, args...).Err
}

// mustCall calls a method of the daemon and fails the test unless it succeeds.
func (c *busClient) mustCall(t *testing.T, method string, args ...any) {
	t.Helper()
	if err := c.call(method, args...); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// prop returns a property of the daemon.
func (c *busClient) prop(t *testing.T, name string) any {
	t.Helper()
	v, err := c.obj.GetProperty(dbusapi.Interface + "." + name)
	if err != nil {
		t.Fatalf("property %s: %v", name, err)
	}
	return v.Value()
}

// finished is a Finished signal.
type finished struct {
	op      string
	success bool
	message string
}

// waitSignal waits until a signal recorded from index from on satisfies ok, and returns
// its index.
func (c *busClient) waitSignal(t *testing.T, from int, timeout time.Duration, what string, ok func(*dbus.Signal) bool) int {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for i := from; i < len(c.signals); i++ {
			if ok(c.signals[i]) {
				c.mu.Unlock()
				return i
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("no %s within %v; signals: %s", what, timeout, c.describe(from))
		}
	}
}

// waitFinished waits for the Finished signal of op after signal index from.
func (c *busClient) waitFinished(t *testing.T, from int, op string, timeout time.Duration) (finished, int) {
	t.Helper()
	i := c.waitSignal(t, from, timeout, "Finished("+op+")", func(s *dbus.Signal) bool {
		return s.Name == dbusapi.Interface+".Finished" && s.Body[0] == op
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.signals[i].Body
	return finished{b[0].(string), b[1].(bool), b[2].(string)}, i
}

// waitProperty waits until a PropertiesChanged after index from sets name to value.
func (c *busClient) waitProperty(t *testing.T, from int, name string, value any, timeout time.Duration) int {
	t.Helper()
	return c.waitSignal(t, from, timeout, fmt.Sprintf("PropertiesChanged %s=%v", name, value), func(s *dbus.Signal) bool {
		if s.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" {
			return false
		}
		v, ok := s.Body[1].(map[string]dbus.Variant)[name]
		return ok && v.Value() == value
	})
}

// mark returns the index the next signal will have.
func (c *busClient) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.signals)
}

// progress returns the Progress signals from index from on: phase and percent.
func (c *busClient) progress(from int) (phases []string, percents []float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.signals[from:] {
		if s.Name == dbusapi.Interface+".Progress" {
			phases = append(phases, s.Body[0].(string))
			percents = append(percents, s.Body[1].(float64))
		}
	}
	return phases, percents
}

// describe lists the signals from index from on, for a failure message.
func (c *busClient) describe(from int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, s := range c.signals[from:] {
		name := s.Name[strings.LastIndex(s.Name, ".")+1:]
		body := s.Body
		if name == "PropertiesChanged" && len(body) > 1 {
			m := body[1].(map[string]dbus.Variant)
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				v := fmt.Sprint(m[k].Value())
				if len(v) > 20 {
					v = v[:20] + "…"
				}
				kv = append(kv, k+"="+v)
			}
			body = []any{strings.Join(kv, " ")}
		}
		fmt.Fprintf(&b, "\n  %s%v", name, body)
	}
	return b.String()
}
