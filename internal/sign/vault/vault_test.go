package vault_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/otakit/ota/internal/sign"
	_ "github.com/otakit/ota/internal/sign/vault"
	"github.com/otakit/ota/internal/sign/vault/vaulttest"
)

// checkErr checks that err is one line naming name and saying want.
func checkErr(t *testing.T, err error, name, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), want) ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v: want one line naming %s and containing %q", err, name, want)
	}
}

// TestOpenReferences: malformed hashivault:// references fail on one line naming them,
// without reaching any network.
func TestOpenReferences(t *testing.T) {
	for _, n := range []string{"VAULT_ADDR", "BAO_ADDR"} {
		t.Setenv(n, "") // restored when the test ends
		os.Unsetenv(n)
	}
	_, err := sign.Open(context.Background(), "hashivault://ota", "")
	checkErr(t, err, "hashivault://ota", "VAULT_ADDR or BAO_ADDR is not set")
	_, err = sign.Open(context.Background(), "hashivault://ota/release", "")
	checkErr(t, err, "hashivault://ota/release", "should be in the format hashivault://<key>")
}

// TestOpenVault: a hashivault:// key signs through Vault's transit engine (a local fake
// holding the key in memory), the signatures verify as pure Ed25519, and Vault's refusals
// come back on one line naming the reference.
func TestOpenVault(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	srv := vaulttest.New(t, "ota-release", key)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", vaulttest.Token)
	t.Setenv("TRANSIT_SECRET_ENGINE_PATH", "")
	os.Unsetenv("TRANSIT_SECRET_ENGINE_PATH")
	ctx := context.Background()
	for _, ref := range []string{"hashivault://ota-release", "openbao://ota-release"} {
		s, err := sign.Open(ctx, ref, "")
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("commit\x00bytes")
		before := srv.Signed.Load()
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !s.PublicKey().Equal(pub) || !ed25519.Verify(pub, msg, sig) || srv.Signed.Load() != before+1 {
			t.Errorf("%s: public key %x, signature %x (verifies: %v), %d signed by Vault",
				ref, s.PublicKey(), sig, ed25519.Verify(pub, msg, sig), srv.Signed.Load()-before)
		}
	}

	s, err := sign.Open(ctx, "hashivault://ota-release", "")
	if err != nil {
		t.Fatal(err)
	}
	srv.Deny.Store(true)
	_, err = s.Sign([]byte("summary"))
	checkErr(t, err, "hashivault://ota-release", "permission denied")
	srv.Deny.Store(false)

	_, err = sign.Open(ctx, "hashivault://no-such-key", "")
	checkErr(t, err, "hashivault://no-such-key", "transit/keys/no-such-key")

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec := vaulttest.New(t, "ota-ecdsa", ecKey)
	t.Setenv("VAULT_ADDR", ec.URL)
	_, err = sign.Open(ctx, "hashivault://ota-ecdsa", "")
	checkErr(t, err, "hashivault://ota-ecdsa", "only ed25519 keys are supported (got ECDSA)")

	t.Setenv("VAULT_TOKEN", "wrong")
	_, err = sign.Open(ctx, "hashivault://ota-ecdsa", "")
	checkErr(t, err, "hashivault://ota-ecdsa", "permission denied")
}
