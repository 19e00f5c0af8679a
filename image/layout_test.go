package image

import (
	"strings"
	"testing"

	"github.com/otakit/ota/internal/ostree"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		str  string
	}{
		{"512", 512, "512"},
		{"33KiB", 33 << 10, "33KiB"},
		{"4M", 4 << 20, "4MiB"},
		{"4GiB", 4 << 30, "4GiB"},
		{"1536MiB", 1536 << 20, "1536MiB"},
		{"0x200", 512, "512"},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseSize(%q) = %d (%s), %v; want %d (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "4XB", "-1", "1.5GiB", "99999999999T"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestPresetsValid(t *testing.T) {
	for _, b := range Boards() {
		l, err := Preset(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	if _, err := Preset("beaglebone"); err == nil || !strings.Contains(err.Error(), "raspberrypi4-64") {
		t.Errorf("unknown board: %v, want an error listing the boards", err)
	}
}

func TestParseLayout(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		err        string // substring of the error; empty: valid
		check      func(Layout) bool
	}{
		{name: "preset override", yaml: "board: imx8mm\nkargs: [\"console=ttymxc0,115200\"]\n",
			check: func(l Layout) bool {
				return l.Table == "mbr" && l.Raw[0].Offset == 33<<10 && l.Kargs[0] == "console=ttymxc0,115200"
			}},
		{name: "explicit", yaml: "table: gpt\nalign: 1MiB\npartitions:\n  - {name: boot, fs: fat16, size: 32MiB, boot-script: true}\n  - {name: root, fs: sysroot, size: 1GiB}\n",
			check: func(l Layout) bool { return l.Align == 1<<20 && l.Partitions[1].Size == 1<<30 }},
		{name: "unknown key", yaml: "board: imx8mm\npartitons: []\n", err: "line 2: field partitons not found"},
		{name: "wrong type", yaml: "table: gpt\nalign: [1]\n", err: "line 2"},
		{name: "bad size", yaml: "table: gpt\nalign: 4XB\n", err: `line 2: invalid size "4XB"`},
		{name: "unknown board", yaml: "board: nope\n", err: `unknown board "nope"`},
		{name: "no sysroot", yaml: "table: mbr\npartitions:\n  - {name: boot, fs: fat, size: 64MiB}\n", err: "0 sysroot partitions"},
		{name: "bad fs", yaml: "table: mbr\npartitions:\n  - {name: root, fs: btrfs}\n", err: `partitions[0] (root): fs "btrfs"`},
		{name: "fat without size", yaml: "table: mbr\npartitions:\n  - {name: boot, fs: fat}\n  - {name: root, fs: sysroot}\n", err: "partitions[0] (boot): size is required"},
		{name: "bad mbr type", yaml: "table: mbr\npartitions:\n  - {name: root, fs: sysroot, type: linux}\n", err: "not an MBR type byte"},
		{name: "escaping source", yaml: "board: imx6\nraw: [{source: ../u-boot.img, offset: 69KiB}]\n", err: "raw[0]: source"},
		{name: "five mbr partitions", yaml: "table: mbr\npartitions: [{fs: sysroot},{fs: none, size: 1M},{fs: none, size: 1M},{fs: none, size: 1M},{fs: none, size: 1M}]\n", err: "at most 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseLayout([]byte(tc.yaml))
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case tc.check != nil && !tc.check(l):
				t.Errorf("parsed %+v", l)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	l, _ := Preset("imx8mp")
	ext, size, err := place(l, 1, 100<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ext[0].Start != 8<<20 || ext[1].Start != 72<<20 || ext[1].Size != 264<<20 || size != 336<<20 {
		t.Errorf("imx8mp placement %+v, image %d", ext, size)
	}
	// A given image size: the sysroot fills it, minus the backup GPT.
	q, _ := Preset("qemu-aarch64")
	ext, size, err = place(q, 1, 100<<20, 1<<30)
	if err != nil || size != 1<<30 || ext[1].Start+ext[1].Size > 1<<30-33*512 {
		t.Errorf("qemu placement %+v, image %d, %v", ext, size, err)
	}
	if _, _, err := place(q, 1, 900<<20, 512<<20); err == nil || !strings.Contains(err.Error(), "too small for the sysroot") {
		t.Errorf("too small: %v", err)
	}
	r := &Result{Size: 1 << 30, Partitions: ext[:1], Raw: []Extent{{Name: "flash.bin", Start: 33 << 10, Size: 8 << 20}}}
	r.Partitions[0].Start = 4 << 20
	if err := checkOverlaps("mbr", r); err == nil || !strings.Contains(err.Error(), "overlaps raw blob flash.bin") {
		t.Errorf("overlap: %v", err)
	}
	r.Raw[0] = Extent{Name: "SPL", Start: 1 << 10, Size: 1 << 10}
	if err := checkOverlaps("gpt", r); err == nil || !strings.Contains(err.Error(), "primary GPT") {
		t.Errorf("SPL over a GPT: %v", err)
	}
}

func TestMergeKargs(t *testing.T) {
	got := strings.Join(mergeKargs([]string{"root=PARTUUID=x", "rw", "console=ttyAMA0"}, []string{"root=/dev/vda2", "quiet"}), " ")
	if want := "rw console=ttyAMA0 root=/dev/vda2 quiet"; got != want {
		t.Errorf("mergeKargs = %q, want %q", got, want)
	}
}

// Identifiers derive from the layout's content, not from where its pointers point.
func TestIdentityStable(t *testing.T) {
	var c ostree.Checksum
	a, _ := Preset("raspberrypi4-64")
	b, _ := Preset("raspberrypi4-64")
	if newIdentity(c, a).diskID() != newIdentity(c, b).diskID() {
		t.Error("two copies of a preset give different disk IDs")
	}
	b.Kargs = append(b.Kargs, "quiet")
	if newIdentity(c, a).diskID() == newIdentity(c, b).diskID() {
		t.Error("different layouts give the same disk ID")
	}
}
