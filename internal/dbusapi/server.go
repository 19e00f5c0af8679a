// Package dbusapi puts ota-client daemon (internal/daemon) on D-Bus: the interface
// org.otakit.OtaClient1 that org.otakit.OtaClient1.xml describes (docs/dbus.md), its
// properties with PropertiesChanged, and the bus policy that lets root and one group use
// it.
package dbusapi

import (
	"cmp"
	_ "embed"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"

	"github.com/otakit/ota/internal/daemon"
)

// The names of the daemon on the bus.
const (
	BusName   = "org.otakit.OtaClient1"
	Path      = dbus.ObjectPath("/org/otakit/OtaClient1")
	Interface = "org.otakit.OtaClient1"
)

// The errors the methods return, beside org.freedesktop.DBus.Error.InvalidArgs.
const (
	ErrorBusy       = Interface + ".Error.Busy"
	ErrorNotRunning = Interface + ".Error.NotRunning"
	ErrorStopping   = Interface + ".Error.Stopping"
)

// IntrospectionXML is the interface's description, org.otakit.OtaClient1.xml, from which
// qdbusxml2cpp generates a Qt proxy.
//
//go:embed org.otakit.OtaClient1.xml
var IntrospectionXML string

// Server is the daemon's object on a bus, and the daemon's Observer: it turns state changes
// into PropertiesChanged and reports into signals.
type Server struct {
	conn *dbus.Conn

	mu    sync.Mutex
	props map[string]any // the values last published
}

// NewServer returns the server of the daemon that it will observe, on conn.
func NewServer(conn *dbus.Conn) *Server {
	return &Server{conn: conn, props: properties(daemon.State{Status: daemon.StatusIdle})}
}

// Export exports d's object on the server's connection and takes the bus name. It fails
// when another process owns the name.
func (s *Server) Export(d *daemon.Daemon) error {
	var node introspect.Node
	if err := xml.Unmarshal([]byte(IntrospectionXML), &node); err != nil {
		return fmt.Errorf("dbus: %s: %w", Interface, err)
	}
	node.Interfaces = append(node.Interfaces, prop.IntrospectData)
	exports := []struct {
		v     any
		iface string
	}{
		{methods{d}, Interface},
		{propertiesObject{s}, "org.freedesktop.DBus.Properties"},
		{introspect.NewIntrospectable(&node), "org.freedesktop.DBus.Introspectable"},
	}
	for _, e := range exports {
		if err := s.conn.Export(e.v, Path, e.iface); err != nil {
			return fmt.Errorf("dbus: exporting %s: %w", e.iface, err)
		}
	}
	reply, err := s.conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("dbus: requesting the name %s: %w", BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("dbus: the name %s is owned by another process", BusName)
	}
	return nil
}

// properties returns the value of every property in st.
func properties(st daemon.State) map[string]any {
	p := map[string]any{
		"Status": st.Status, "Error": st.Error, "UpdateAvailable": st.UpdateAvailable,
		"RollbackAvailable": st.RollbackAvailable, "RestartRequired": st.RestartRequired, "LastResult": st.LastResult,
		"Apps": cmp.Or(st.Apps, "[]"),
	}
	for name, r := range map[string]daemon.Revision{"Booted": st.Booted, "Default": st.Default, "Rollback": st.Rollback, "Remote": st.Remote} {
		p[name+"Revision"], p[name+"Version"], p[name+"Subject"] = r.Checksum, r.Version, r.Subject
		p[name+"Timestamp"], p[name+"Metadata"] = r.Timestamp, r.Metadata
	}
	return p
}

// Changed implements daemon.Observer: one PropertiesChanged with the properties whose
// value changed.
func (s *Server) Changed(st daemon.State) {
	p := properties(st)
	changed := map[string]dbus.Variant{}
	s.mu.Lock()
	for name, v := range p {
		if s.props[name] != v {
			changed[name] = dbus.MakeVariant(v)
		}
	}
	s.props = p
	s.mu.Unlock()
	if len(changed) > 0 {
		s.conn.Emit(Path, "org.freedesktop.DBus.Properties.PropertiesChanged", Interface, changed, []string{})
	}
}

// Progress implements daemon.Observer: the Progress signal.
func (s *Server) Progress(phase string, percent float64, done, total int64) {
	s.conn.Emit(Path, Interface+".Progress", phase, percent, uint64(done), uint64(total))
}

// Finished implements daemon.Observer: the Finished signal.
func (s *Server) Finished(op string, success bool, message string) {
	s.conn.Emit(Path, Interface+".Finished", op, success, message)
}

// methods are the interface's methods: each starts an operation of the daemon.
type methods struct{ d *daemon.Daemon }

// Check asks the remote whether an update is available.
func (m methods) Check() *dbus.Error { return m.start(daemon.OpCheck, "") }

// Download downloads the update without deploying it.
func (m methods) Download() *dbus.Error { return m.start(daemon.OpDownload, "") }

// Install deploys the downloaded update.
func (m methods) Install() *dbus.Error { return m.start(daemon.OpInstall, "") }

// Update downloads and deploys the update.
func (m methods) Update() *dbus.Error { return m.start(daemon.OpUpdate, "") }

// Rollback makes the rollback deployment the default.
func (m methods) Rollback() *dbus.Error { return m.start(daemon.OpRollback, "") }

// ApplyBundle updates from the bundle file at path.
func (m methods) ApplyBundle(path string) *dbus.Error { return m.start(daemon.OpApplyBundle, path) }

// MarkGood tells the boot script the running system is healthy.
func (m methods) MarkGood() *dbus.Error { return m.start(daemon.OpMarkGood, "") }

// Reboot reboots the device.
func (m methods) Reboot() *dbus.Error { return m.start(daemon.OpReboot, "") }

// InstallApp installs application name from ref ("": apps/NAME/MACHINE/stable), or updates
// it from ref when it is installed.
func (m methods) InstallApp(name, ref string) *dbus.Error {
	return dbusError(m.d.StartApp(daemon.OpInstallApp, name, ref))
}

// UpdateApp updates application name from the ref it was installed from.
func (m methods) UpdateApp(name string) *dbus.Error {
	return dbusError(m.d.StartApp(daemon.OpUpdateApp, name, ""))
}

// RollbackApp makes the previous version of application name current again.
func (m methods) RollbackApp(name string) *dbus.Error {
	return dbusError(m.d.StartApp(daemon.OpRollbackApp, name, ""))
}

// RemoveApp removes application name.
func (m methods) RemoveApp(name string) *dbus.Error {
	return dbusError(m.d.StartApp(daemon.OpRemoveApp, name, ""))
}

// Cancel cancels the running operation.
func (m methods) Cancel() *dbus.Error { return dbusError(m.d.Cancel()) }

func (m methods) start(op, arg string) *dbus.Error { return dbusError(m.d.Start(op, arg)) }

// dbusError is err as a D-Bus error.
func dbusError(err error) *dbus.Error {
	var busy *daemon.BusyError
	name := "org.freedesktop.DBus.Error.InvalidArgs"
	switch {
	case err == nil:
		return nil
	case errors.As(err, &busy):
		name = ErrorBusy
	case errors.Is(err, daemon.ErrNotRunning):
		name = ErrorNotRunning
	case errors.Is(err, daemon.ErrStopped):
		name = ErrorStopping
	}
	return dbus.NewError(name, []any{err.Error()})
}

// propertiesObject is org.freedesktop.DBus.Properties of the object: read-only.
type propertiesObject struct{ s *Server }

// Get returns a property.
func (p propertiesObject) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != Interface {
		return dbus.Variant{}, prop.ErrIfaceNotFound
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	v, ok := p.s.props[name]
	if !ok {
		return dbus.Variant{}, prop.ErrPropNotFound
	}
	return dbus.MakeVariant(v), nil
}

// GetAll returns every property.
func (p propertiesObject) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != Interface {
		return nil, prop.ErrIfaceNotFound
	}
	p.s.mu.Lock()
	props := maps.Clone(p.s.props)
	p.s.mu.Unlock()
	out := make(map[string]dbus.Variant, len(props))
	for name, v := range props {
		out[name] = dbus.MakeVariant(v)
	}
	return out, nil
}

// Set refuses: every property is read-only.
func (p propertiesObject) Set(iface, name string, _ dbus.Variant) *dbus.Error {
	if iface != Interface {
		return prop.ErrIfaceNotFound
	}
	return prop.ErrReadOnly
}
