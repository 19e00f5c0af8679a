package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPubkey: ota-build pubkey prints, for any key reference, the public key keygen wrote as
// PREFIX.ostree.pub, one line per key, so a build system can derive the devices' trusted
// key from the signing key it was given.
func TestPubkey(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	ota(t, "keygen", "-o", a)
	ota(t, "keygen", "-o", b)
	want := func(prefix string) string {
		data, err := os.ReadFile(prefix + ".ostree.pub")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	keyText, err := os.ReadFile(b + ".key")
	if err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, []string{"OTA_TEST_KEY=" + string(keyText)}, nil, otaBuild,
		"pubkey", "--sign-key", a+".key", "--sign-key", "env://OTA_TEST_KEY")
	if r.code != 0 {
		t.Fatalf("pubkey: exit %d: %s", r.code, r.stderr)
	}
	if got, exp := r.stdout, want(a)+"\n"+want(b)+"\n"; got != exp {
		t.Errorf("pubkey printed %q, want %q", got, exp)
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"pubkey"}, 2, "--sign-key is required"},
		{[]string{"pubkey", "--sign-key", filepath.Join(dir, "missing.key")}, 1, "missing.key"},
	} {
		r := runCmd(t, nil, nil, otaBuild, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line naming %q", c.args, r.code, r.stderr, c.code, c.msg)
		}
	}
}
