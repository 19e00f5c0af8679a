// Command prepareroot-probe is the init that TestPrepareRootUnshare has ota-client
// prepare-root start: it prints, one "key value" line each, what a program sees of the
// root that prepare-root set up. It is built statically, since the deployment it runs in
// has no C library.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	report("args", strings.Join(os.Args[1:], " "))
	wd, err := os.Getwd()
	report("cwd", wd+errString(err))
	version, err := os.ReadFile("/usr/share/app/version")
	report("version", string(version)+errString(err))
	report("usr-write", outcome(os.WriteFile("/usr/prepareroot-probe", nil, 0o644)))
	report("var-write", outcome(os.WriteFile("/var/prepareroot-probe", []byte("written to /var\n"), 0o644)))
	_, err = os.Stat("/sysroot/ostree/repo/config")
	report("sysroot-repo", outcome(err))
	loader, err := os.Readlink("/boot/loader")
	report("boot-loader", loader+errString(err))
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		report("proc", err.Error())
		os.Exit(1)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		report("mountinfo", err.Error())
		os.Exit(1)
	}
	// mountinfo(5): ID, parent ID, major:minor, root, mount point, options, ...
	for _, line := range strings.Split(strings.TrimSpace(string(mountinfo)), "\n") {
		f := strings.Fields(line)
		report("mount", f[4]+" "+f[3]+" "+f[5])
	}
}

// report prints one line of the report.
func report(key, value string) { fmt.Printf("%s %s\n", key, value) }

// outcome is "ok", or err's message.
func outcome(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// errString is err's message after a space, or nothing.
func errString(err error) string {
	if err != nil {
		return " " + err.Error()
	}
	return ""
}
