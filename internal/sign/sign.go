// Package sign loads, generates and uses the ed25519 keys that sign OSTree
// commits, summary files and static deltas.
//
// Signatures follow OSTree's "ed25519" sign engine (OSTree 2022.7): pure
// Ed25519 (RFC 8032, libsodium crypto_sign_detached) over the exact bytes of a
// .commit object or of a summary file, 64 bytes each. This package deals only
// with keys and raw signatures over byte slices; storing signatures in detached
// metadata (key "ostree.sign.ed25519") is left to the caller.
//
// # Signers and key references
//
// One type, [Signer], signs everything; it signs through any [crypto.Signer]
// holding an ed25519 key ([FromCryptoSigner]). [Open] parses the one key
// reference syntax of the command line and the manifest: a path, file://PATH,
// env://NAME or a KMS URI (hashivault://NAME).
//
// # Key files
//
// Private key files, named by a path or file://PATH, or held in an environment
// variable (env://NAME), are any of:
//
//   - a PEM "PRIVATE KEY" block (PKCS#8), as written by [GenerateKey] without
//     a passphrase or by "openssl genpkey -algorithm ed25519";
//   - an encrypted PEM block in sigstore's format ("ENCRYPTED SIGSTORE PRIVATE
//     KEY", also cosign's older "ENCRYPTED COSIGN PRIVATE KEY") or an
//     encrypted PKCS#8 "ENCRYPTED PRIVATE KEY" block; the passphrase is the
//     value of the environment variable named by [PassphraseEnv];
//   - an OSTree secret key file: base64 (standard alphabet, padded) of the
//     64-byte libsodium secret key seed||public, or of the 32-byte seed alone,
//     on the first line that is neither blank nor a '#' comment.
//
// Public keys are read by [LoadPublicKeys] from a PEM "PUBLIC KEY" (PKIX)
// block, from an OSTree trusted-keys file (one base64 32-byte key per line,
// blank lines and '#' comments ignored), or from any private key file above.
//
// A PEM file holds exactly one key.
package sign

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// PassphraseEnv is the name of the environment variable that holds the
// passphrase of an encrypted private key file. A variable that is set but
// empty means the empty passphrase; the value is used as is, without
// trimming.
const PassphraseEnv = "OTA_SIGN_PASSPHRASE"

// Errors returned by [Verify]; test for them with [errors.Is].
var (
	// ErrNoSignatures means there was no signature to check.
	ErrNoSignatures = errors.New("sign: no signatures")
	// ErrBadSignature means no signature verified with any of the keys.
	ErrBadSignature = errors.New("sign: no valid signature")
)

// A Signer signs messages with one ed25519 key, held in memory or behind any
// [crypto.Signer]: a hardware token or a KMS (see [Open]) plugs in through
// [FromCryptoSigner]. It is safe for concurrent use if its crypto.Signer is.
type Signer struct {
	cs   crypto.Signer
	pub  ed25519.PublicKey
	name string // the key's reference or public key, for errors
}

// FromCryptoSigner returns a Signer that signs through cs, whose public key must
// be ed25519 and which must sign as [ed25519.PrivateKey] does: pure Ed25519 of
// the whole message with crypto.Hash(0) as options. An [ed25519.PrivateKey] is
// one.
func FromCryptoSigner(cs crypto.Signer) (*Signer, error) {
	return fromCryptoSigner("", cs)
}

// fromCryptoSigner is FromCryptoSigner for the key named name in errors
// (empty: the base64 public key).
func fromCryptoSigner(name string, cs crypto.Signer) (*Signer, error) {
	if priv, ok := cs.(ed25519.PrivateKey); ok && len(priv) != ed25519.PrivateKeySize {
		// Its Public method would panic.
		return nil, fmt.Errorf("%s: ed25519 private key is %d bytes, want %d", cmp.Or(name, "sign"), len(priv), ed25519.PrivateKeySize)
	}
	pub, ok := cs.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, unsupported(cmp.Or(name, "sign"), cs.Public())
	}
	return &Signer{cs: cs, pub: pub, name: cmp.Or(name, "ed25519 key "+EncodeBase64Public(pub))}, nil
}

// PublicKey returns the public key that verifies the signer's signatures.
func (s *Signer) PublicKey() ed25519.PublicKey {
	return s.pub
}

// Sign returns the 64-byte Ed25519 signature of msg, as OSTree stores it
// under "ostree.sign.ed25519". It checks the signature with the public key, so
// that a device signing with another key or another scheme (Ed25519ph) fails
// here, naming the key, rather than on the devices.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	sig, err := s.cs.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, &signerError{s.name, err}
	}
	if !ed25519.Verify(s.pub, msg, sig) {
		return nil, fmt.Errorf("%s: its signature does not verify with its public key (not pure Ed25519?)", s.name)
	}
	return sig, nil
}

// A signerError is an error from a crypto.Signer or a KMS, on one line and
// naming the key.
type signerError struct {
	name string
	err  error
}

func (e *signerError) Error() string {
	// KMS clients (Vault's among them) report HTTP errors on several lines.
	return e.name + ": " + strings.Join(strings.Fields(e.err.Error()), " ")
}

func (e *signerError) Unwrap() error { return e.err }

// Verify reports whether any of sigs is a valid signature of msg by any of
// pubs. It returns nil on the first match, an error wrapping [ErrNoSignatures]
// if sigs is empty, and otherwise an error wrapping [ErrBadSignature]. Keys
// and signatures of the wrong length never verify.
func Verify(pubs []ed25519.PublicKey, msg []byte, sigs [][]byte) error {
	if len(sigs) == 0 {
		return ErrNoSignatures
	}
	for _, pub := range pubs {
		if len(pub) != ed25519.PublicKeySize {
			continue
		}
		for _, sig := range sigs {
			if ed25519.Verify(pub, msg, sig) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w (signatures: %d, public keys: %d)", ErrBadSignature, len(sigs), len(pubs))
}

// EncodeBase64Public returns pub in OSTree's key file form: standard padded
// base64, without a trailing newline.
func EncodeBase64Public(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// loadSigner reads the private key file at path (see the package
// documentation for the formats) and returns a Signer for it. An encrypted
// key is decrypted with the passphrase in the environment variable
// [PassphraseEnv]. Errors name path.
func loadSigner(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSigner(path, data)
}

// parseSigner returns a Signer for the private key file data; name
// identifies the key in errors (e.g. "env://OTA_SIGNING_KEY").
func parseSigner(name string, data []byte) (*Signer, error) {
	priv, err := parsePrivate(name, data)
	if err != nil {
		return nil, err
	}
	return fromCryptoSigner(name, priv)
}

// LoadPublicKeys reads the public keys in the file at path: a PEM public key,
// an OSTree trusted-keys file or a private key file, whose public key is
// returned (see the package documentation). It returns at least one key or an
// error naming path.
func LoadPublicKeys(path string) ([]ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if isPEM(data) {
		block, err := pemBlock(path, data)
		if err != nil {
			return nil, err
		}
		if isPublicPEM(block) {
			key, err := cryptoutils.UnmarshalPEMToPublicKey(data)
			if err != nil {
				return nil, keyError(path, err)
			}
			pub, ok := key.(ed25519.PublicKey)
			if !ok {
				return nil, unsupported(path, key)
			}
			return []ed25519.PublicKey{pub}, nil
		}
		priv, err := parsePrivatePEM(path, data, block)
		if err != nil {
			return nil, err
		}
		return []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}, nil
	}
	var pubs []ed25519.PublicKey
	err = base64Lines(path, data, func(line int, raw []byte) error {
		switch len(raw) {
		case ed25519.PublicKeySize:
			pubs = append(pubs, ed25519.PublicKey(raw))
		case ed25519.PrivateKeySize:
			priv, err := secretKey(raw)
			if err != nil {
				return fmt.Errorf("%s:%d: %w", path, line, err)
			}
			pubs = append(pubs, priv.Public().(ed25519.PublicKey))
		default:
			return fmt.Errorf("%s:%d: key is %d bytes, want %d (public key) or %d (secret key)",
				path, line, len(raw), ed25519.PublicKeySize, ed25519.PrivateKeySize)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(pubs) == 0 {
		return nil, fmt.Errorf("%s: no keys found", path)
	}
	return pubs, nil
}

// parsePrivate parses the private key file data read from path.
func parsePrivate(path string, data []byte) (ed25519.PrivateKey, error) {
	if !isPEM(data) {
		return parseOSTreeSecret(path, data)
	}
	block, err := pemBlock(path, data)
	if err != nil {
		return nil, err
	}
	return parsePrivatePEM(path, data, block)
}

// parsePrivatePEM parses the PEM private key file data read from path, whose
// only block is block.
func parsePrivatePEM(path string, data []byte, block *pem.Block) (ed25519.PrivateKey, error) {
	if isPublicPEM(block) {
		return nil, fmt.Errorf("%s: is a public key, not a private key", path)
	}
	var pf cryptoutils.PassFunc
	switch block.Type {
	case string(cryptoutils.EncryptedSigstorePrivateKeyPEMType),
		"ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		pass, ok := os.LookupEnv(PassphraseEnv)
		if !ok {
			return nil, fmt.Errorf("%s: key is encrypted; set %s to its passphrase", path, PassphraseEnv)
		}
		pf = cryptoutils.StaticPasswordFunc([]byte(pass))
	}
	key, err := cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	switch {
	case err == nil:
	case pf == nil:
		return nil, keyError(path, err)
	case isWrongPassphrase(err):
		return nil, fmt.Errorf("%s: wrong passphrase (from %s)", path, PassphraseEnv)
	default:
		return nil, keyError(path, fmt.Errorf("cannot decrypt key: %w", err))
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, unsupported(path, key)
	}
	return priv, nil
}

// keyError returns err, from parsing the key file at path, naming path. It
// replaces the verbose errors of encoding/asn1 with a short message.
func keyError(path string, err error) error {
	_, structural := errors.AsType[asn1.StructuralError](err)
	_, syntax := errors.AsType[asn1.SyntaxError](err)
	if structural || syntax {
		return fmt.Errorf("%s: malformed key: invalid ASN.1 in PEM block", path)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// isWrongPassphrase reports whether err, from decrypting a key, means the
// passphrase did not match.
func isWrongPassphrase(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "decryption failed") || strings.Contains(msg, "incorrect password")
}

// parseOSTreeSecret parses an OSTree base64 secret key file: its first
// non-blank, non-comment line holds a 64-byte secret key or a 32-byte seed.
func parseOSTreeSecret(path string, data []byte) (ed25519.PrivateKey, error) {
	var priv ed25519.PrivateKey
	errDone := errors.New("done")
	err := base64Lines(path, data, func(line int, raw []byte) error {
		var err error
		switch len(raw) {
		case ed25519.SeedSize:
			priv = ed25519.NewKeyFromSeed(raw)
		case ed25519.PrivateKeySize:
			priv, err = secretKey(raw)
		default:
			err = fmt.Errorf("key is %d bytes, want %d (secret key) or %d (seed)",
				len(raw), ed25519.PrivateKeySize, ed25519.SeedSize)
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		return errDone
	})
	switch {
	case err == errDone:
		return priv, nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%s: no key found", path)
}

// secretKey checks that raw, a 64-byte libsodium secret key, is seed||public
// and returns it as a private key.
func secretKey(raw []byte) (ed25519.PrivateKey, error) {
	priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if !bytes.Equal(priv, raw) {
		return nil, errors.New("corrupt secret key: public half does not match seed")
	}
	return priv, nil
}

// base64Lines calls fn with the 1-based number and decoded bytes of each
// line of data that is neither blank nor a '#' comment, until fn returns an
// error, which base64Lines returns.
func base64Lines(path string, data []byte, fn func(line int, raw []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return fmt.Errorf("%s:%d: not a PEM or base64 key: %w", path, n, err)
		}
		if err := fn(n, raw); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// isPEM reports whether data looks like PEM, well-formed or not.
func isPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN "))
}

// pemBlock returns the PEM block in data, an error naming path unless it
// holds exactly one.
func pemBlock(path string, data []byte) (*pem.Block, error) {
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("%s: malformed PEM", path)
	case isPEM(rest):
		return nil, fmt.Errorf("%s: more than one PEM block; use one file per key", path)
	}
	return block, nil
}

// isPublicPEM reports whether block holds a public key: PKIX "PUBLIC KEY" or
// PKCS#1 "RSA PUBLIC KEY".
func isPublicPEM(block *pem.Block) bool {
	return block.Type == string(cryptoutils.PublicKeyPEMType) ||
		block.Type == string(cryptoutils.PKCS1PublicKeyPEMType)
}

// unsupported returns the error for a key of a type other than ed25519.
func unsupported(path string, key any) error {
	var name string
	switch k := key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		name = "RSA"
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		name = "ECDSA"
	case *ecdh.PrivateKey:
		name = fmt.Sprint(k.Curve())
	case *ecdh.PublicKey:
		name = fmt.Sprint(k.Curve())
	default:
		name = fmt.Sprintf("%T", key)
	}
	return fmt.Errorf("%s: only ed25519 keys are supported (got %s)", path, name)
}
