package bootscript

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireTool returns the path of an external tool, skipping the test if it
// is missing unless OTA_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not found (install u-boot-tools): %v", name, err)
		}
		t.Skipf("%s not found (install u-boot-tools); set OTA_REQUIRE_TOOLS=1 to fail instead", name)
	}
	return path
}

var encodeCases = []struct {
	name   string
	opts   Options
	script []byte
}{
	{"arm64", Options{Name: "boot script", Arch: "arm64", Timestamp: time.Unix(1700000000, 0)}, []byte("echo hello\n")},
	{"arm", Options{Name: "x", Arch: "arm", Timestamp: time.Unix(1, 0)}, []byte("echo h")},
	{"empty name", Options{Arch: "arm64", Timestamp: time.Unix(0, 0)}, []byte("\n")},
	{"31-char name", Options{Name: strings.Repeat("n", 31), Arch: "riscv", Timestamp: time.Unix(1<<31, 0)}, []byte("a")},
	{"long script", Options{Name: "long", Arch: "x86_64", Timestamp: time.Unix(1234567890, 0)}, bytes.Repeat([]byte("echo 0123456789abcdef\n"), 5000)},
	{"boot script", Options{Name: "ota", Arch: "arm64", Timestamp: time.Unix(1700000000, 0)}, Script(ScriptOptions{RootPart: "mmc 0:2", BootPart: "mmc 0:1"})},
}

func TestEncodeMatchesMkimage(t *testing.T) {
	mkimage := requireTool(t, "mkimage")
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "script.txt")
			want := filepath.Join(dir, "want.scr")
			if err := os.WriteFile(src, tc.script, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(mkimage, "-A", tc.opts.Arch, "-O", "linux", "-T", "script", "-C", "none", "-n", tc.opts.Name, "-d", src, want)
			cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(tc.opts.Timestamp.Unix(), 10))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mkimage: %v\n%s", err, out)
			}
			wantBytes, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := Encode(&got, tc.script, tc.opts); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), wantBytes) {
				t.Fatalf("Encode differs from mkimage:\n got %x\nwant %x", head(got.Bytes()), head(wantBytes))
			}
		})
	}
}

// head returns the header and the start of the data of an image.
func head(b []byte) []byte {
	return b[:min(len(b), headerSize+16)]
}

func TestEncodeReadByTools(t *testing.T) {
	mkimage := requireTool(t, "mkimage")
	dumpimage := requireTool(t, "dumpimage")
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "boot.scr")
			var b bytes.Buffer
			if err := Encode(&b, tc.script, tc.opts); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(img, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(mkimage, "-l", img).CombinedOutput()
			if err != nil {
				t.Fatalf("mkimage -l: %v\n%s", err, out)
			}
			for _, want := range []string{"Image Name:   " + tc.opts.Name + "\n", "Linux Script (uncompressed)"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("mkimage -l output lacks %q:\n%s", want, out)
				}
			}
			extracted := filepath.Join(dir, "out")
			if out, err := exec.Command(dumpimage, "-T", "script", "-p", "0", "-o", extracted, img).CombinedOutput(); err != nil {
				t.Fatalf("dumpimage: %v\n%s", err, out)
			}
			got, err := os.ReadFile(extracted)
			if err != nil {
				t.Fatal(err)
			}
			// dumpimage 2023.01 extracts a script image's whole payload,
			// including the component size list.
			if !bytes.Equal(got, b.Bytes()[headerSize:]) {
				t.Errorf("dumpimage extracted %d bytes, want %d", len(got), len(b.Bytes())-headerSize)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := Options{Name: "ok", Arch: "arm64"}
	for _, tc := range []struct {
		name   string
		opts   Options
		script []byte
	}{
		{"empty script", ok, nil},
		{"32-char name", Options{Name: strings.Repeat("n", 32), Arch: "arm64"}, []byte("x")},
		{"unknown arch", Options{Arch: "pdp11"}, []byte("x")},
		{"negative time", Options{Arch: "arm", Timestamp: time.Unix(-1, 0)}, []byte("x")},
		{"time after 2106", Options{Arch: "arm", Timestamp: time.Unix(1<<32, 0)}, []byte("x")},
	} {
		if err := Encode(&bytes.Buffer{}, tc.script, tc.opts); err == nil {
			t.Errorf("%s: Encode succeeded", tc.name)
		}
	}
}

// TestMkimageRejectsEmpty documents why Encode rejects empty scripts.
func TestMkimageRejectsEmpty(t *testing.T) {
	mkimage := requireTool(t, "mkimage")
	dir := t.TempDir()
	src := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(mkimage, "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-d", src, filepath.Join(dir, "b.scr")).Run(); err == nil {
		t.Error("mkimage accepted an empty script")
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, tc := range encodeCases {
		var b bytes.Buffer
		if err := Encode(&b, tc.script, tc.opts); err != nil {
			t.Fatal(err)
		}
		script, hdr, err := Decode(&b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(script, tc.script) {
			t.Errorf("%s: script differs", tc.name)
		}
		want := Header{Name: tc.opts.Name, Arch: tc.opts.Arch, Timestamp: tc.opts.Timestamp.UTC()}
		if hdr != want {
			t.Errorf("%s: header %+v, want %+v", tc.name, hdr, want)
		}
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	var b bytes.Buffer
	if err := Encode(&b, []byte("echo hi\n"), Options{Name: "n", Arch: "arm64"}); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	for _, tc := range []struct {
		name string
		off  int
	}{
		{"magic", 0}, {"header crc", 5}, {"timestamp", 9}, {"type", 30}, {"name", 33},
		{"size list", headerSize + 3}, {"script", headerSize + 9},
	} {
		bad := bytes.Clone(good)
		bad[tc.off] ^= 1
		if _, _, err := Decode(bytes.NewReader(bad)); err == nil {
			t.Errorf("corrupted %s: Decode succeeded", tc.name)
		}
	}
	if _, _, err := Decode(bytes.NewReader(good[:len(good)-1])); err == nil {
		t.Error("truncated image: Decode succeeded")
	}
}

func TestScript(t *testing.T) {
	s := string(Script(ScriptOptions{RootPart: "mmc 0:2", BootPart: "mmc 0:1"}))
	for _, want := range []string{
		"load mmc 0:1 ${loadaddr} ota-state.txt",
		"env import -t ${loadaddr} ${filesize} bootcount",
		"setexpr bootcount ${bootcount} + 1",
		"env export -t ${loadaddr} bootcount",
		"fatwrite mmc 0:1 ${loadaddr} ota-state.txt ${filesize}",
		"load mmc 0:2 ${loadaddr} /boot/loader/uEnv.txt",
		"test 0x${bootcount} -gt 3 && test -n \"${kernel_image2}\"",
		"setenv kernel_image \"${kernel_image2}\"",
		"setenv ramdisk_image \"${ramdisk_image2}\"",
		"setenv bootargs \"${bootargs2}\"",
		"setenv fdt_file \"${fdt_file2}\"",
		"setenv fdtdir \"${fdtdir2}\"",
		"load mmc 0:2 ${kernel_addr_r} ${kernel_image}",
		"load mmc 0:2 ${ramdisk_addr_r} ${ramdisk_image}",
		"setenv ota_initrd ${ramdisk_addr_r}:${filesize}",
		"load mmc 0:2 ${fdt_addr_r} ${fdt_file}",
		"load mmc 0:2 ${fdt_addr_r} ${fdtdir}/${fdtfile}",
		"\nbooti ${kernel_addr_r} ${ota_initrd} ${ota_fdt}\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}

	s = string(Script(ScriptOptions{RootPart: "virtio 0:2", BootPart: "virtio 0:1", BootLimit: 5,
		KernelAddr: "kaddr", FDTAddr: "faddr", RamdiskAddr: "raddr", Command: "bootz"}))
	for _, want := range []string{
		"-gt 5 &&", "boot limit 5 exceeded",
		"load virtio 0:2 ${kaddr} ${kernel_image}",
		"load virtio 0:2 ${raddr} ${ramdisk_image}",
		"load virtio 0:2 ${faddr} ${fdt_file}",
		"fatwrite virtio 0:1 ",
		"\nbootz ${kaddr} ${ota_initrd} ${ota_fdt}\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("custom script lacks %q", want)
		}
	}
	for _, bad := range []string{"{{", "}}", "<no value>", "mmc", "booti ", "kernel_addr_r", "-gt 3 "} {
		if strings.Contains(s, bad) {
			t.Errorf("custom script contains %q", bad)
		}
	}
	var ifs, fis int
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "if "):
			ifs++
		case line == "fi":
			fis++
		}
	}
	if ifs != fis || ifs == 0 {
		t.Errorf("%d if lines, %d fi lines", ifs, fis)
	}
}

func TestScriptImageRoundTrip(t *testing.T) {
	script := Script(ScriptOptions{RootPart: "mmc 0:2", BootPart: "mmc 0:1", Command: "bootz"})
	var b bytes.Buffer
	opts := Options{Name: "ota boot script", Arch: "arm", Timestamp: time.Unix(1700000000, 0)}
	if err := Encode(&b, script, opts); err != nil {
		t.Fatal(err)
	}
	got, hdr, err := Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, script) || hdr.Name != opts.Name || hdr.Arch != "arm" {
		t.Errorf("round trip: header %+v, script equal %v", hdr, bytes.Equal(got, script))
	}
}
