package sign

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// unsetenv unsets the environment variables for the rest of the test.
func unsetenv(t *testing.T, names ...string) {
	for _, n := range names {
		t.Setenv(n, "") // restored when the test ends
		os.Unsetenv(n)
	}
}

// TestOpen: every form of key reference opens the key it names, or fails with one line
// naming the reference (or the file) and saying why, without reaching any network.
func TestOpen(t *testing.T) {
	key := testKey(4)
	dir := t.TempDir()
	abs := writeFile(t, dir, "release.key", mustPKCS8(t, key))
	t.Setenv("OTA_TEST_KEY", mustPKCS8(t, key))
	t.Setenv("OTA_TEST_SEED", b64(key.Seed()))
	t.Setenv("OTA_TEST_EMPTY", "")
	unsetenv(t, "OTA_TEST_UNSET", "VAULT_ADDR", "BAO_ADDR")
	tests := []struct {
		name, ref, dir string
		names, err     string // on failure, what the error names and says
	}{
		{name: "path relative to dir", ref: "release.key", dir: dir},
		{name: "absolute path", ref: abs, dir: "/nonexistent"},
		{name: "file:// relative to dir", ref: "file://release.key", dir: dir},
		{name: "file:// absolute", ref: "file://" + abs},
		{name: "env:// PEM", ref: "env://OTA_TEST_KEY"},
		{name: "env:// OSTree base64 seed", ref: "env://OTA_TEST_SEED"},
		{name: "missing file", ref: "none.key", dir: dir, names: filepath.Join(dir, "none.key"), err: "no such file"},
		{name: "not a scheme is a path", ref: "a b://c", dir: dir, names: filepath.Join(dir, "a b:/c"), err: "no such file"},
		{name: "file:// without path", ref: "file://", names: "file://", err: "no path after file://"},
		{name: "env:// unset", ref: "env://OTA_TEST_UNSET", names: "env://OTA_TEST_UNSET", err: "$OTA_TEST_UNSET is not set"},
		{name: "env:// empty", ref: "env://OTA_TEST_EMPTY", names: "env://OTA_TEST_EMPTY", err: "no key found"},
		{name: "env:// without name", ref: "env://", names: "env://", err: "no variable name after env://"},
		{name: "unknown scheme", ref: "s3://bucket/release.key", names: "s3://bucket/release.key",
			err: "unknown key reference scheme s3://; use a key file, env://NAME or hashivault://NAME"},
		{name: "awskms", ref: "awskms:///alias/ota", names: "awskms:///alias/ota",
			err: "sigstore's AWS KMS provider signs only with RSA and ECDSA keys, not ed25519"},
		{name: "gcpkms", ref: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/ota", names: "gcpkms://projects/p",
			err: "sigstore's Google Cloud KMS provider signs only with RSA and ECDSA keys, not ed25519"},
		{name: "azurekms", ref: "azurekms://ota.vault.azure.net/release", names: "azurekms://ota.vault.azure.net/release",
			err: "sigstore's Azure Key Vault provider signs only with RSA and ECDSA keys, not ed25519"},
		{name: "pkcs11", ref: "pkcs11:token=ota;object=release", names: "pkcs11:token=ota;object=release",
			err: "PKCS#11 tokens are not supported"},
		{name: "hashivault not linked in", ref: "hashivault://ota", names: "hashivault://ota",
			err: "does not link in Vault keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.ref, tt.dir)
			if tt.err != "" {
				checkErr(t, err, tt.names, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !s.PublicKey().Equal(pubOf(key)) {
				t.Errorf("public key %x, want %x", s.PublicKey(), pubOf(key))
			}
		})
	}
}
