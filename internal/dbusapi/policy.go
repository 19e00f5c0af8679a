package dbusapi

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// Policy returns the system bus policy of the daemon (a file for
// /usr/share/dbus-1/system.d/): root may own the name and call it, and so may the members of
// group (none when empty); the bus's default policy denies everyone else.
func Policy(group string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- ota-client daemon (docs/dbus.md): root owns %[1]s; root and the members
     of the group that client.yaml's daemon mapping names may call it. Printed by
     ota-client daemon with its print-dbus-policy flag. -->
<busconfig>
  <policy user="root">
    <allow own="%[1]s"/>
    <allow send_destination="%[1]s"/>
  </policy>
`, BusName)
	if group != "" {
		if strings.ContainsAny(group, " \t\n:/") {
			return "", fmt.Errorf("invalid group name %q", group)
		}
		var esc strings.Builder
		xml.EscapeText(&esc, []byte(group))
		fmt.Fprintf(&b, `  <policy group="%s">
    <allow send_destination="%s"/>
  </policy>
`, esc.String(), BusName)
	}
	b.WriteString("</busconfig>\n")
	return b.String(), nil
}
