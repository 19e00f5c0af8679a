package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// systemPython is Debian's interpreter, the one python3-nacl is installed for.
const systemPython = "/usr/bin/python3"

// missingTool skips t, or fails it if OTA_REQUIRE_TOOLS=1, because a tool the
// test needs is missing.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// runNaCl runs the Python script with PyNaCl, feeding it stdin, and returns
// its standard output.
func runNaCl(t *testing.T, script, stdin string) string {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		missingTool(t, "libsodium cross-check needs %s: %v", systemPython, err)
	}
	if out, err := exec.Command(systemPython, "-c", "import nacl.signing").CombinedOutput(); err != nil {
		missingTool(t, "libsodium cross-check needs PyNaCl (Debian python3-nacl): %v\n%s", err, out)
	}
	cmd := exec.Command(systemPython, "-c", script)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.Bytes())
	}
	return string(out)
}

// naclVerify reads lines "PUB MSG SIG" in hex and prints "ok" or "bad" for
// each as libsodium's crypto_sign_verify_detached judges it.
const naclVerify = `
import sys
from nacl.signing import VerifyKey
from nacl.exceptions import BadSignatureError
for line in sys.stdin:
    pub, msg, sig = (bytes.fromhex(f) for f in line.split(" "))
    try:
        VerifyKey(pub).verify(msg, sig)
        print("ok")
    except BadSignatureError:
        print("bad")
`

func TestLibsodiumVerifiesSignatures(t *testing.T) {
	s, err := FromCryptoSigner(testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	other := pubOf(testKey(8))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	tests := []struct {
		name   string
		pub    ed25519.PublicKey
		msg    []byte
		tamper func(msg, sig []byte) // applied after signing
		want   string
	}{
		{name: "empty message", pub: s.PublicKey(), msg: []byte{}, want: "ok"},
		{name: "commit-like", pub: s.PublicKey(), msg: []byte("\x00\x01commit\xff"), want: "ok"},
		{name: "1 MiB", pub: s.PublicKey(), msg: big, want: "ok"},
		{name: "flipped message byte", pub: s.PublicKey(), msg: []byte("summary"),
			tamper: func(msg, _ []byte) { msg[0] ^= 1 }, want: "bad"},
		{name: "flipped signature byte", pub: s.PublicKey(), msg: []byte("summary"),
			tamper: func(_, sig []byte) { sig[40] ^= 1 }, want: "bad"},
		{name: "other key", pub: other, msg: []byte("summary"), want: "bad"},
	}
	var in strings.Builder
	for _, tt := range tests {
		msg := bytes.Clone(tt.msg)
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if tt.tamper != nil {
			tt.tamper(msg, sig)
		}
		in.WriteString(hex.EncodeToString(tt.pub) + " " + hex.EncodeToString(msg) + " " + hex.EncodeToString(sig) + "\n")
	}
	got := strings.Fields(runNaCl(t, naclVerify, in.String()))
	if len(got) != len(tests) {
		t.Fatalf("python printed %q for %d cases", got, len(tests))
	}
	for i, tt := range tests {
		if got[i] != tt.want {
			t.Errorf("%s: libsodium says %s, want %s", tt.name, got[i], tt.want)
		}
	}
}

// naclSign makes a libsodium key pair from a random seed and prints its
// 64-byte secret key, public key and signature of stdin, in base64, one per line.
const naclSign = `
import base64, os, sys
from nacl.bindings import crypto_sign_seed_keypair
from nacl.signing import SigningKey
msg = sys.stdin.buffer.read()
pk, sk = crypto_sign_seed_keypair(os.urandom(32))
sig = SigningKey(sk[:32]).sign(msg).signature
for b in (sk, pk, sig):
    print(base64.b64encode(b).decode())
`

func TestLibsodiumKeyFile(t *testing.T) {
	msg := "ostree summary\x00bytes"
	lines := strings.Fields(runNaCl(t, naclSign, msg))
	if len(lines) != 3 {
		t.Fatalf("python printed %q", lines)
	}
	pk, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	naclSig, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := loadSigner(writeFile(t, dir, "secret.ed25519", lines[0]+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.PublicKey(), pk) {
		t.Fatalf("public key %x, libsodium says %x", s.PublicKey(), pk)
	}
	sig, err := s.Sign([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sig, naclSig) {
		t.Errorf("signature %x, libsodium signed %x", sig, naclSig)
	}
	pubs, err := LoadPublicKeys(writeFile(t, dir, "trusted.ed25519", lines[1]+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pubs, []byte(msg), [][]byte{naclSig}); err != nil {
		t.Errorf("Verify(libsodium signature) = %v", err)
	}
}

func openssl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestOpenSSLKeys(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		missingTool(t, "OpenSSL cross-check needs openssl: %v", err)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.pem")
	encrypted := filepath.Join(dir, "encrypted.pem")
	pubFile := filepath.Join(dir, "pub.pem")
	msgFile := writeFile(t, dir, "msg", "commit bytes")
	sigFile := filepath.Join(dir, "sig")
	openssl(t, "genpkey", "-algorithm", "ed25519", "-out", plain)
	openssl(t, "pkey", "-in", plain, "-pubout", "-out", pubFile)
	openssl(t, "pkey", "-in", plain, "-aes-256-cbc", "-passout", "pass:"+testPass, "-out", encrypted)

	setPassphrase(t, "", true)
	s, err := loadSigner(plain)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := LoadPublicKeys(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 1 || !pubs[0].Equal(s.PublicKey()) {
		t.Fatalf("%s holds %x, want [%x]", pubFile, pubs, s.PublicKey())
	}

	_, err = loadSigner(encrypted)
	checkErr(t, err, encrypted, "set "+PassphraseEnv)
	setPassphrase(t, "wrong", false)
	_, err = loadSigner(encrypted)
	checkErr(t, err, encrypted, "wrong passphrase")
	setPassphrase(t, testPass, false)
	es, err := loadSigner(encrypted)
	if err != nil {
		t.Fatal(err)
	}
	if !es.PublicKey().Equal(s.PublicKey()) {
		t.Fatalf("encrypted key has public key %x, want %x", es.PublicKey(), s.PublicKey())
	}

	sig, err := s.Sign([]byte("commit bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
		t.Fatal(err)
	}
	openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin", "-in", msgFile, "-sigfile", sigFile)
}
