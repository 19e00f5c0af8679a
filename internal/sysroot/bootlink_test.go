package sysroot

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBootLinkArg: the first ostree= argument is the boot link, as ostree-prepare-root
// takes it.
func TestBootLinkArg(t *testing.T) {
	for _, tc := range []struct {
		cmdline, link string
		ok            bool
	}{
		{"root=/dev/mmcblk0p2 rw ostree=/ostree/boot.1/myos/abc/0\n", "/ostree/boot.1/myos/abc/0", true},
		{"ostree=/ostree/boot.0/a/b/1 ostree=/ostree/boot.1/a/b/0", "/ostree/boot.0/a/b/1", true},
		{"root=/dev/sda1 myostree=/x ostree", "", false},
		{"", "", false},
	} {
		if link, ok := BootLinkArg(tc.cmdline); link != tc.link || ok != tc.ok {
			t.Errorf("BootLinkArg(%q) = %q, %v; want %q, %v", tc.cmdline, link, ok, tc.link, tc.ok)
		}
	}
}

// TestResolveBootLinkOstree: the boot links `ostree admin deploy` writes lead to its
// deployments; other arguments and links are refused in one line naming the link.
func TestResolveBootLinkOstree(t *testing.T) {
	f := newFixture(t)
	path := realSysroot(t, f, true, f.c1, f.c2)
	entries, _ := filepath.Glob(filepath.Join(path, "boot/loader/entries/*.conf"))
	var got []string
	var link string
	for _, e := range entries {
		link, _ = BootLinkArg(parseEntry(readFile(t, e))["options"])
		osName, name, err := ResolveBootLink(path, link)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, osName+"/"+name)
	}
	want := []string{"myos/" + f.c1.String() + ".0", "myos/" + f.c2.String() + ".0"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("boot links lead to %q, want %q", got, want)
	}

	gone := strings.TrimSuffix(link, "/0") + "/7"
	for _, tc := range []struct{ link, want string }{
		{"/ostree/deploy/myos", "ostree=/ostree/deploy/myos is not a boot link /ostree/boot.N/<os>/<bootcsum>/<serial>"},
		{"/ostree/boot.1/../../0", "ostree=/ostree/boot.1/../../0 is not a boot link /ostree/boot.N/<os>/<bootcsum>/<serial>"},
		{gone, fmt.Sprintf("boot link ostree=%s does not resolve: readlink %s%s: no such file or directory", gone, path, gone)},
		{"/ostree/boot.1/myos/./0", "ostree=/ostree/boot.1/myos/./0 is not a boot link /ostree/boot.N/<os>/<bootcsum>/<serial>"},
	} {
		if _, _, err := ResolveBootLink(path, tc.link); err == nil || err.Error() != tc.want {
			t.Errorf("ResolveBootLink(%s): %v\nwant %s", tc.link, err, tc.want)
		}
	}
}
