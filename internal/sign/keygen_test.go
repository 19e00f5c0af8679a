package sign

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// dirNames returns the sorted names of the entries of dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		name    string
		pass    string
		pemType string
	}{
		{name: "plain", pemType: "PRIVATE KEY"},
		{name: "encrypted", pass: testPass, pemType: "ENCRYPTED SIGSTORE PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setPassphrase(t, tt.pass, false)
			dir := t.TempDir()
			prefix := filepath.Join(dir, "release")
			pub, err := GenerateKey(prefix, []byte(tt.pass))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"release.key", "release.ostree.pub", "release.pub"}
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Fatalf("directory holds %q, want %q", got, want)
			}
			for suffix, mode := range map[string]os.FileMode{
				PrivateKeySuffix:      0o600,
				PublicKeySuffix:       0o644,
				OSTreePublicKeySuffix: 0o644,
			} {
				fi, err := os.Stat(prefix + suffix)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != mode {
					t.Errorf("%s has mode %v, want %v", suffix, fi.Mode(), mode)
				}
			}

			data, err := os.ReadFile(prefix + PrivateKeySuffix)
			if err != nil {
				t.Fatal(err)
			}
			if block, _ := pem.Decode(data); block == nil || block.Type != tt.pemType {
				t.Fatalf("private key file is not PEM %q:\n%s", tt.pemType, data)
			}
			s, err := loadSigner(prefix + PrivateKeySuffix)
			if err != nil {
				t.Fatal(err)
			}
			if !s.PublicKey().Equal(pub) {
				t.Errorf("private key file holds public key %x, want %x", s.PublicKey(), pub)
			}
			for _, suffix := range []string{PublicKeySuffix, OSTreePublicKeySuffix} {
				pubs, err := LoadPublicKeys(prefix + suffix)
				if err != nil {
					t.Fatal(err)
				}
				if len(pubs) != 1 || !pubs[0].Equal(pub) {
					t.Errorf("%s holds %x, want [%x]", suffix, pubs, pub)
				}
			}
			ostree, err := os.ReadFile(prefix + OSTreePublicKeySuffix)
			if err != nil {
				t.Fatal(err)
			}
			if want := EncodeBase64Public(pub) + "\n"; string(ostree) != want {
				t.Errorf("%s = %q, want %q", OSTreePublicKeySuffix, ostree, want)
			}

			if tt.pass != "" {
				setPassphrase(t, "not "+tt.pass, false)
				_, err := loadSigner(prefix + PrivateKeySuffix)
				checkErr(t, err, prefix+PrivateKeySuffix, "wrong passphrase")
				setPassphrase(t, "", true)
				_, err = loadSigner(prefix + PrivateKeySuffix)
				checkErr(t, err, prefix+PrivateKeySuffix, PassphraseEnv)
			}
		})
	}
}

func TestGenerateKeyRefusesOverwrite(t *testing.T) {
	for _, suffix := range []string{PrivateKeySuffix, PublicKeySuffix, OSTreePublicKeySuffix} {
		t.Run(suffix, func(t *testing.T) {
			dir := t.TempDir()
			prefix := filepath.Join(dir, "release")
			existing := writeFile(t, dir, "release"+suffix, "precious")
			_, err := GenerateKey(prefix, nil)
			checkErr(t, err, existing, "already exists")
			if got := dirNames(t, dir); !slices.Equal(got, []string{"release" + suffix}) {
				t.Errorf("directory holds %q, want only the existing file", got)
			}
			if data, _ := os.ReadFile(existing); string(data) != "precious" {
				t.Errorf("existing file now holds %q", data)
			}
		})
	}
}

func TestGenerateKeyMissingDir(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "absent", "release")
	_, err := GenerateKey(prefix, nil)
	checkErr(t, err, prefix+PrivateKeySuffix, "no such file")
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q, want nothing", got)
	}
}
