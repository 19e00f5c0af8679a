package sysroot

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// BootLinkArg returns the value of the first ostree= argument of kernel command line
// cmdline (as /proc/cmdline holds it): the boot link, such as
// /ostree/boot.1/myos/<bootcsum>/0, of the deployment the boot entry starts. It reports
// false when cmdline has none.
func BootLinkArg(cmdline string) (string, bool) {
	for _, a := range strings.Fields(cmdline) {
		if link, ok := strings.CutPrefix(a, "ostree="); ok {
			return link, true
		}
	}
	return "", false
}

// ResolveBootLink follows boot link link (the value of an ostree= kernel argument) in the
// sysroot at sysroot, as ostree-prepare-root does, and returns the stateroot and the
// directory name (<commit>.<serial>) of the deployment it leads to: link must be
// /ostree/boot.N/<os>/<bootcsum>/<serial>, a symbolic link (through ostree/boot.N ->
// boot.N.M) to ../../../deploy/<os>/deploy/<commit>.<serial>. The deployment directory
// itself is not looked at. Errors are one line naming the link, without a package prefix:
// they are meant for the console of a device that cannot boot.
func ResolveBootLink(sysroot, link string) (osName, name string, err error) {
	if !ostreeArg.MatchString(link) || path.Clean(link) != link {
		return "", "", fmt.Errorf("ostree=%s is not a boot link /ostree/boot.N/<os>/<bootcsum>/<serial>", link)
	}
	p := filepath.Join(sysroot, link)
	target, err := os.Readlink(p)
	if err != nil {
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return "", "", fmt.Errorf("boot link ostree=%s: %s is not a symbolic link", link, p)
		}
		return "", "", fmt.Errorf("boot link ostree=%s does not resolve: %w", link, err)
	}
	m := deployRE.FindStringSubmatch(target)
	if m == nil {
		return "", "", fmt.Errorf("boot link ostree=%s points to %q, not to a deployment ../../../deploy/<os>/deploy/<commit>.<serial>", link, target)
	}
	return m[1], m[2] + "." + m[3], nil
}
