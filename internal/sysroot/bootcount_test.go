package sysroot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBootCounter: Count reads what U-Boot's env export writes; MarkGood and MarkBad
// replace the file with the line the boot script imports, leaving no temporary file.
func TestBootCounter(t *testing.T) {
	for _, tc := range []struct {
		name, data string // "" data: no file
		count      int64
		err        string
	}{
		{"missing", "", 0, ""},
		{"u-boot", "bootcount=3\x00", 3, ""},
		{"hex", "foo=1\nbootcount=1a\n", 26, ""},
		{"no bootcount", "foo=1\n", 0, ""},
		{"invalid", "bootcount=0x3\n", 0, `invalid bootcount "0x3"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := BootCounter{Path: filepath.Join(t.TempDir(), "ota-state.txt")}
			if tc.data != "" {
				os.WriteFile(b.Path, []byte(tc.data), 0o644)
			}
			n, err := b.Count()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Count: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.count {
				t.Errorf("Count = %d, %v; want %d", n, err, tc.count)
			}
			for _, step := range []struct {
				mark func() error
				want string
			}{{b.MarkBad, "bootcount=ffff\n"}, {b.MarkGood, "bootcount=0\n"}} {
				if err := step.mark(); err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(b.Path); string(got) != step.want {
					t.Errorf("file holds %q, want %q", got, step.want)
				}
				if names, _ := filepath.Glob(filepath.Join(filepath.Dir(b.Path), "*")); len(names) != 1 {
					t.Errorf("directory holds %q, want only the state file", names)
				}
			}
		})
	}
	if err := (BootCounter{Path: filepath.Join(t.TempDir(), "none/ota-state.txt")}).MarkGood(); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("MarkGood in a missing directory: %v", err)
	}
}

// TestResultAndBooted: the last result round-trips through the stateroot's var, and
// Booted finds each deployment from the ostree= argument of its boot entry.
func TestResultAndBooted(t *testing.T) {
	f := newFixture(t)
	path := ourSysroot(t, f, "uboot", f.c1, f.c2)
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.LastResult("myos"); r != nil || err != nil {
		t.Errorf("LastResult before any: %v, %v", r, err)
	}
	want := Result{Operation: "rollback", From: f.c2.String(), To: f.c1.String(), Outcome: "success", Time: time.Unix(1700000000, 0).UTC()}
	if err := s.WriteResult("myos", want); err != nil {
		t.Fatal(err)
	}
	if r, err := s.LastResult("myos"); err != nil || *r != want {
		t.Errorf("LastResult: %+v, %v; want %+v", r, err, want)
	}
	if err := s.WriteResult("other", want); err == nil {
		t.Errorf("WriteResult into a missing stateroot succeeded")
	}

	entries, _ := filepath.Glob(filepath.Join(path, fmt.Sprintf("boot/loader.%d/entries/*.conf", s.Bootversion())))
	var booted []string
	for _, e := range entries {
		options := parseEntry(readFile(t, e))["options"]
		if d := s.Booted("console=ttyS0 " + options); d != nil {
			booted = append(booted, d.Name())
		}
	}
	slices.Sort(booted)
	names := []string{f.c1.String() + ".0", f.c2.String() + ".0"}
	slices.Sort(names)
	if !slices.Equal(booted, names) {
		t.Errorf("Booted found %q, want %q", booted, names)
	}
	if d := s.Booted("root=/dev/sda1"); d != nil {
		t.Errorf("Booted without ostree=: %v", d.Name())
	}
}
