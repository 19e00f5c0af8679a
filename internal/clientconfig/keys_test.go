package clientconfig

import (
	"crypto/ed25519"
	"encoding/base64"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTrustedPublicKeys: every key of every file, by file name; a bad file or an empty
// directory is a one-line error naming it.
func TestTrustedPublicKeys(t *testing.T) {
	var keys []ed25519.PublicKey
	var b64 []string
	for range 3 {
		pub, _, _ := ed25519.GenerateKey(nil)
		keys = append(keys, pub)
		b64 = append(b64, base64.StdEncoding.EncodeToString(pub))
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []ed25519.PublicKey
		err   string
	}{
		{"two files", map[string]string{"b.pub": b64[2] + "\n", "a.pub": b64[0] + "\n" + b64[1] + "\n", "sub/c.pub": "x"}, keys, ""},
		{"bad key", map[string]string{"a.pub": b64[0] + "\n", "b.pub": "\n" + base64.StdEncoding.EncodeToString([]byte("short")) + "\n"}, nil, "b.pub:2: key is 5 bytes"},
		{"no key", map[string]string{"sub/a.pub": b64[0]}, nil, "trusted keys: no key in "},
		{"no directory", nil, nil, "trusted keys: open "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "trusted.ed25519.d")
			if tc.files != nil {
				writeFiles(t, dir, tc.files)
			}
			got, err := (&Config{TrustedKeys: dir}).TrustedPublicKeys()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %v, want one line with %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.EqualFunc(got, tc.want, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
				t.Errorf("got %d keys (%v), want %d", len(got), err, len(tc.want))
			}
		})
	}
}
