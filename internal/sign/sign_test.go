package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// testKey returns a deterministic ed25519 private key derived from b.
func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pubOf(priv ed25519.PrivateKey) ed25519.PublicKey {
	return priv.Public().(ed25519.PublicKey)
}

func b64(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

func mustPKCS8(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func mustPKIX(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// mustEncrypted returns priv in sigstore's encrypted PEM format with the
// given PEM type.
func mustEncrypted(t *testing.T, priv ed25519.PrivateKey, pass string, typ cryptoutils.PEMType) string {
	t.Helper()
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, cryptoutils.StaticPasswordFunc([]byte(pass)))
	if err != nil {
		t.Fatal(err)
	}
	return string(cryptoutils.PEMEncode(typ, der))
}

// setPassphrase sets PassphraseEnv to pass for the test, or unsets it if
// unset is true.
func setPassphrase(t *testing.T, pass string, unset bool) {
	t.Helper()
	t.Setenv(PassphraseEnv, pass)
	if unset {
		os.Unsetenv(PassphraseEnv)
	}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkErr fails t unless err is non-nil, names path and contains want.
func checkErr(t *testing.T, err error, path, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, want) {
		t.Fatalf("error %q: want it to name %s and contain %q", msg, path, want)
	}
	if strings.Contains(msg, "\n") {
		t.Fatalf("error %q spans several lines", msg)
	}
}

type fixtures struct {
	key              ed25519.PrivateKey
	rsaKey           *rsa.PrivateKey
	ecKey            *ecdsa.PrivateKey
	x25519Key        *ecdh.PrivateKey
	pkcs8            string
	encrypted        string
	encryptedNoPass  string
	encryptedCosign  string
	ostreeSecret     string
	ostreeSecretSeed string
}

const testPass = "correct horse battery staple"

func newFixtures(t *testing.T) *fixtures {
	t.Helper()
	f := &fixtures{key: testKey(1)}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if f.x25519Key, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	f.pkcs8 = mustPKCS8(t, f.key)
	f.encrypted = mustEncrypted(t, f.key, testPass, cryptoutils.EncryptedSigstorePrivateKeyPEMType)
	f.encryptedNoPass = mustEncrypted(t, f.key, "", cryptoutils.EncryptedSigstorePrivateKeyPEMType)
	f.encryptedCosign = mustEncrypted(t, f.key, testPass, "ENCRYPTED COSIGN PRIVATE KEY")
	f.ostreeSecret = b64(f.key)
	f.ostreeSecretSeed = b64(f.key.Seed())
	return f
}

func TestLoadSigner(t *testing.T) {
	f := newFixtures(t)
	mismatched := append(testKey(1).Seed(), pubOf(testKey(2))...)
	corruptEncrypted := string(cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, []byte("{not json")))
	tests := []struct {
		name    string
		data    string
		pass    string
		noPass  bool // PassphraseEnv unset
		wantErr string
	}{
		{name: "pkcs8", data: f.pkcs8, noPass: true},
		{name: "pkcs8 with text around", data: "key for tests\n" + f.pkcs8 + "\n\n", noPass: true},
		{name: "encrypted", data: f.encrypted, pass: testPass},
		{name: "encrypted cosign", data: f.encryptedCosign, pass: testPass},
		{name: "encrypted empty passphrase", data: f.encryptedNoPass, pass: ""},
		{name: "encrypted no passphrase variable", data: f.encrypted, noPass: true,
			wantErr: "key is encrypted; set " + PassphraseEnv},
		{name: "encrypted wrong passphrase", data: f.encrypted, pass: "wrong",
			wantErr: "wrong passphrase"},
		{name: "encrypted empty wrong passphrase", data: f.encrypted, pass: "",
			wantErr: "wrong passphrase"},
		{name: "encrypted corrupt", data: corruptEncrypted, pass: testPass,
			wantErr: "cannot decrypt key: invalid character"},
		{name: "ostree secret", data: f.ostreeSecret + "\n", noPass: true},
		{name: "ostree secret with comments", data: "# release key\n\n  " + f.ostreeSecret + "  \r\n# trailer\n", noPass: true},
		{name: "ostree seed", data: f.ostreeSecretSeed, noPass: true},
		{name: "ostree secret mismatched halves", data: "#\n" + b64(mismatched), noPass: true,
			wantErr: ":2: corrupt secret key"},
		{name: "ostree wrong length", data: b64(make([]byte, 16)), noPass: true,
			wantErr: ":1: key is 16 bytes"},
		{name: "bad base64", data: "# comment\nnot base64!\n", noPass: true,
			wantErr: ":2: not a PEM or base64 key"},
		{name: "empty file", data: "", noPass: true, wantErr: "no key found"},
		{name: "comments only", data: "# nothing\n\n", noPass: true, wantErr: "no key found"},
		{name: "rsa pkcs8", data: mustPKCS8(t, f.rsaKey), noPass: true,
			wantErr: "only ed25519 keys are supported (got RSA)"},
		{name: "rsa pkcs1",
			data:   string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(f.rsaKey)})),
			noPass: true, wantErr: "only ed25519 keys are supported (got RSA)"},
		{name: "ecdsa pkcs8", data: mustPKCS8(t, f.ecKey), noPass: true,
			wantErr: "only ed25519 keys are supported (got ECDSA)"},
		{name: "x25519", data: mustPKCS8(t, f.x25519Key), noPass: true,
			wantErr: "only ed25519 keys are supported (got X25519)"},
		{name: "public key", data: mustPKIX(t, pubOf(f.key)), noPass: true,
			wantErr: "is a public key, not a private key"},
		{name: "truncated pem", data: f.pkcs8[:len(f.pkcs8)/2], noPass: true,
			wantErr: "malformed PEM"},
		{name: "two pem blocks", data: f.pkcs8 + mustPKCS8(t, testKey(2)), noPass: true,
			wantErr: "more than one PEM block"},
		{name: "corrupt pkcs8 body",
			data:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})),
			noPass: true, wantErr: "malformed key: invalid ASN.1"},
		{name: "unknown pem type",
			data:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})),
			noPass: true, wantErr: "unknown private key PEM file type: CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setPassphrase(t, tt.pass, tt.noPass)
			path := writeFile(t, t.TempDir(), "signing.key", tt.data)
			s, err := loadSigner(path)
			if tt.wantErr != "" {
				checkErr(t, err, path, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !s.PublicKey().Equal(pubOf(f.key)) {
				t.Fatalf("PublicKey() = %x, want %x", s.PublicKey(), pubOf(f.key))
			}
			sig, err := s.Sign([]byte("msg"))
			if err != nil {
				t.Fatal(err)
			}
			if want := ed25519.Sign(f.key, []byte("msg")); !bytes.Equal(sig, want) {
				t.Fatalf("Sign() = %x, want %x", sig, want)
			}
		})
	}
}

func TestLoadSignerWrongPassphraseMessage(t *testing.T) {
	setPassphrase(t, "wrong", false)
	path := writeFile(t, t.TempDir(), "release.key", newFixtures(t).encrypted)
	_, err := loadSigner(path)
	want := path + ": wrong passphrase (from " + PassphraseEnv + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("loadSigner() error = %v, want %q", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.key")
	_, err := loadSigner(path)
	checkErr(t, err, path, "no such file")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("loadSigner() error %v is not fs.ErrNotExist", err)
	}
	_, err = LoadPublicKeys(path)
	checkErr(t, err, path, "no such file")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPublicKeys() error %v is not fs.ErrNotExist", err)
	}
}

func TestLoadPublicKeys(t *testing.T) {
	f := newFixtures(t)
	pub1, pub2 := pubOf(f.key), pubOf(testKey(2))
	tests := []struct {
		name    string
		data    string
		pass    string
		noPass  bool // PassphraseEnv unset
		want    []ed25519.PublicKey
		wantErr string
	}{
		{name: "pem", data: mustPKIX(t, pub1), want: []ed25519.PublicKey{pub1}},
		{name: "ostree one key", data: b64(pub1) + "\n", want: []ed25519.PublicKey{pub1}},
		{name: "ostree trusted file",
			data: "# release\n" + b64(pub1) + "\n\n# development\r\n  " + b64(pub2) + "  \r\n",
			want: []ed25519.PublicKey{pub1, pub2}},
		{name: "ostree secret key", data: f.ostreeSecret, want: []ed25519.PublicKey{pub1}},
		{name: "pkcs8 private key", data: f.pkcs8, noPass: true, want: []ed25519.PublicKey{pub1}},
		{name: "encrypted private key", data: f.encrypted, pass: testPass, want: []ed25519.PublicKey{pub1}},
		{name: "encrypted private key no passphrase variable", data: f.encrypted, noPass: true,
			wantErr: "key is encrypted; set " + PassphraseEnv},
		{name: "rsa pem", data: mustPKIX(t, &f.rsaKey.PublicKey),
			wantErr: "only ed25519 keys are supported (got RSA)"},
		{name: "rsa pkcs1 pem",
			data:    string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&f.rsaKey.PublicKey)})),
			wantErr: "only ed25519 keys are supported (got RSA)"},
		{name: "ecdsa pem", data: mustPKIX(t, &f.ecKey.PublicKey),
			wantErr: "only ed25519 keys are supported (got ECDSA)"},
		{name: "x25519 pem", data: mustPKIX(t, f.x25519Key.PublicKey()),
			wantErr: "only ed25519 keys are supported (got X25519)"},
		{name: "corrupt pem body",
			data:    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})),
			wantErr: "malformed key: invalid ASN.1"},
		{name: "two pem blocks", data: mustPKIX(t, pub1) + mustPKIX(t, pub2),
			wantErr: "more than one PEM block"},
		{name: "bad line", data: b64(pub1) + "\n\n" + "@@@\n", wantErr: ":3: not a PEM or base64 key"},
		{name: "wrong length line", data: b64(pub1[:31]), wantErr: ":1: key is 31 bytes"},
		{name: "corrupt secret key line", data: b64(append(f.key.Seed(), pub2...)),
			wantErr: ":1: corrupt secret key"},
		{name: "comments only", data: "# no keys yet\n", wantErr: "no keys found"},
		{name: "empty", data: "", wantErr: "no keys found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setPassphrase(t, tt.pass, tt.noPass)
			path := writeFile(t, t.TempDir(), "trusted.ed25519", tt.data)
			got, err := LoadPublicKeys(path)
			if tt.wantErr != "" {
				checkErr(t, err, path, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Errorf("key %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s, err := FromCryptoSigner(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{nil, []byte("commit"), bytes.Repeat([]byte{0xa5}, 1<<20)} {
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != ed25519.SignatureSize {
			t.Fatalf("signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
		}
		pubs := []ed25519.PublicKey{s.PublicKey()}
		if err := Verify(pubs, msg, [][]byte{sig}); err != nil {
			t.Fatalf("Verify() = %v", err)
		}
		if len(msg) > 0 {
			bad := bytes.Clone(msg)
			bad[len(bad)/2] ^= 1
			if err := Verify(pubs, bad, [][]byte{sig}); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify(flipped message) = %v, want ErrBadSignature", err)
			}
		}
		for _, i := range []int{0, 31, 32, 63} {
			bad := bytes.Clone(sig)
			bad[i] ^= 0x80
			if err := Verify(pubs, msg, [][]byte{bad}); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify(signature byte %d flipped) = %v, want ErrBadSignature", i, err)
			}
		}
	}
}

// TestFromCryptoSigner: a crypto.Signer is accepted only with an ed25519 public key, and
// Sign refuses a signature that does not verify with it: one by another key, or Ed25519ph
// (a device that hashes first), naming the key on one line.
func TestFromCryptoSigner(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	name := "ed25519 key " + EncodeBase64Public(pubOf(k1))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cs   crypto.Signer
		want string
	}{
		{"ECDSA key", ecKey, "sign: only ed25519 keys are supported (got ECDSA)"},
		{"10-byte ed25519 key", make(ed25519.PrivateKey, 10), "sign: ed25519 private key is 10 bytes, want 64"},
	} {
		if _, err := FromCryptoSigner(tt.cs); err == nil || err.Error() != tt.want {
			t.Errorf("%s: FromCryptoSigner() error = %v, want %q", tt.name, err, tt.want)
		}
	}
	msg := []byte("commit bytes")
	for _, tt := range []struct {
		name string
		sign func([]byte) ([]byte, error)
		want string
	}{
		{"another key", func(m []byte) ([]byte, error) { return ed25519.Sign(k2, m), nil }, "does not verify"},
		{"Ed25519ph", func(m []byte) ([]byte, error) {
			h := sha512.Sum512(m)
			return k1.Sign(nil, h[:], &ed25519.Options{Hash: crypto.SHA512})
		}, "does not verify"},
		{"short signature", func(m []byte) ([]byte, error) { return ed25519.Sign(k1, m)[:63], nil }, "does not verify"},
		{"failing device", func([]byte) ([]byte, error) { return nil, errors.New("token\nremoved") }, "token removed"},
	} {
		_, err := mustSigner(t, fixedSigner{pubOf(k1), tt.sign}).Sign(msg)
		checkErr(t, err, name, tt.want)
	}
	good, err := mustSigner(t, fixedSigner{pubOf(k1), func(m []byte) ([]byte, error) { return ed25519.Sign(k1, m), nil }}).Sign(msg)
	if err != nil || !ed25519.Verify(pubOf(k1), msg, good) {
		t.Errorf("Sign() through a crypto.Signer = %x, %v", good, err)
	}
}

func TestVerify(t *testing.T) {
	k1, k2, k3 := testKey(1), testKey(2), testKey(3)
	msg := []byte("summary bytes")
	sig1, sig2 := ed25519.Sign(k1, msg), ed25519.Sign(k2, msg)
	flipped := bytes.Clone(sig1)
	flipped[10] ^= 1
	tests := []struct {
		name    string
		pubs    []ed25519.PublicKey
		sigs    [][]byte
		wantErr error
	}{
		{name: "one key one signature", pubs: []ed25519.PublicKey{pubOf(k1)}, sigs: [][]byte{sig1}},
		{name: "second signature valid", pubs: []ed25519.PublicKey{pubOf(k2)}, sigs: [][]byte{sig1, sig2}},
		{name: "second key valid", pubs: []ed25519.PublicKey{pubOf(k3), pubOf(k1)}, sigs: [][]byte{sig1}},
		{name: "bad signature then good", pubs: []ed25519.PublicKey{pubOf(k1)}, sigs: [][]byte{flipped, []byte("short"), sig1}},
		{name: "malformed key skipped", pubs: []ed25519.PublicKey{{1, 2, 3}, pubOf(k1)}, sigs: [][]byte{sig1}},
		{name: "no signatures", pubs: []ed25519.PublicKey{pubOf(k1)}, wantErr: ErrNoSignatures},
		{name: "empty signature list", pubs: []ed25519.PublicKey{pubOf(k1)}, sigs: [][]byte{}, wantErr: ErrNoSignatures},
		{name: "no signatures no keys", wantErr: ErrNoSignatures},
		{name: "wrong key", pubs: []ed25519.PublicKey{pubOf(k3)}, sigs: [][]byte{sig1, sig2}, wantErr: ErrBadSignature},
		{name: "flipped signature", pubs: []ed25519.PublicKey{pubOf(k1)}, sigs: [][]byte{flipped}, wantErr: ErrBadSignature},
		{name: "short signature", pubs: []ed25519.PublicKey{pubOf(k1)}, sigs: [][]byte{sig1[:63]}, wantErr: ErrBadSignature},
		{name: "no keys", sigs: [][]byte{sig1}, wantErr: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.pubs, msg, tt.sigs)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEncodeBase64Public(t *testing.T) {
	pub := pubOf(testKey(1))
	got := EncodeBase64Public(pub)
	if want := base64.StdEncoding.EncodeToString(pub); got != want || len(got) != 44 {
		t.Fatalf("EncodeBase64Public() = %q, want %q", got, want)
	}
}
