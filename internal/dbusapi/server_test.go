package dbusapi

import (
	"encoding/xml"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/otakit/ota/internal/daemon"
)

// TestIntrospection: the checked-in XML, which Qt's proxy is generated from, describes the
// methods the object exports, with their arguments, and the properties it serves, with
// their types.
func TestIntrospection(t *testing.T) {
	var node introspect.Node
	if err := xml.Unmarshal([]byte(IntrospectionXML), &node); err != nil {
		t.Fatal(err)
	}
	if len(node.Interfaces) != 1 || node.Interfaces[0].Name != Interface {
		t.Fatalf("interfaces %+v, want %s alone", node.Interfaces, Interface)
	}
	iface := node.Interfaces[0]
	type method struct{ name, in string }
	var inXML, exported []method
	for _, m := range iface.Methods {
		sig := ""
		for _, a := range m.Args {
			if a.Direction == "in" || a.Direction == "" {
				sig += a.Type
			} else {
				t.Errorf("method %s returns %s: every method returns at once, with nothing", m.Name, a.Type)
			}
		}
		inXML = append(inXML, method{m.Name, sig})
	}
	for _, m := range introspect.Methods(methods{}) {
		sig := ""
		for _, a := range m.Args {
			if a.Direction == "in" {
				sig += a.Type
			}
		}
		exported = append(exported, method{m.Name, sig})
	}
	cmp := func(a, b method) int {
		if a.name < b.name {
			return -1
		} else if a.name > b.name {
			return 1
		}
		return 0
	}
	slices.SortFunc(inXML, cmp)
	slices.SortFunc(exported, cmp)
	if !slices.Equal(inXML, exported) {
		t.Errorf("methods in the XML %v, exported %v", inXML, exported)
	}

	props := properties(daemon.State{})
	for _, p := range iface.Properties {
		v, ok := props[p.Name]
		if !ok {
			t.Errorf("property %s is not served", p.Name)
			continue
		}
		if sig := dbus.SignatureOf(v).String(); sig != p.Type || p.Access != "read" {
			t.Errorf("property %s: %s %s in the XML, served as %s read-only", p.Name, p.Type, p.Access, sig)
		}
		delete(props, p.Name)
	}
	for name := range props {
		t.Errorf("property %s is not in the XML", name)
	}
	var signals []string
	for _, s := range iface.Signals {
		var sig string
		for _, a := range s.Args {
			sig += a.Type
		}
		signals = append(signals, s.Name+"("+sig+")")
	}
	// What Server.Progress and Server.Finished emit.
	if want := []string{"Progress(sdtt)", "Finished(sbs)"}; !slices.Equal(signals, want) {
		t.Errorf("signals %v, want %v", signals, want)
	}
}

// TestPolicy: examples/ota-client-daemon, and the Buildroot and Yocto packages (which
// change the group when configured to), hold the policy for the default group, as Policy
// makes it; a group name that would break the file is refused.
func TestPolicy(t *testing.T) {
	got, err := Policy("ota")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"examples/ota-client-daemon", "buildroot-ext/package/ota-client",
		"meta-ota/recipes-ota/ota-client/files"} {
		want, err := os.ReadFile("../../" + dir + "/" + BusName + ".conf")
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("Policy(\"ota\"):\n%s\n%s has:\n%s", got, dir, want)
		}
	}
	if _, err := Policy("a b"); err == nil {
		t.Error("Policy accepted the group \"a b\"")
	}
	if p, err := Policy(""); err != nil || strings.Contains(p, "group=") || !strings.Contains(p, `<policy user="root">`) {
		t.Errorf("Policy without a group: %v\n%s", err, p)
	}
}
