package sign

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeyRefSyntax describes the key references [Open] takes, for help texts.
const KeyRefSyntax = "a key file (PEM PKCS#8, encrypted PEM with the passphrase in $" + PassphraseEnv +
	", or OSTree base64), file://PATH, env://NAME (a key file's text in a variable), " +
	"or hashivault://NAME (a key of Vault's transit engine)"

// refHint ends the errors about references that cannot sign.
const refHint = "use a key file, env://NAME or hashivault://NAME"

// noEd25519 lists the references to key stores that cannot sign with ed25519 keys
// through sigstore (v1.10.11), and why. The AWS, Google Cloud and Azure providers are
// separate modules with large SDKs behind them, so they are not linked in at all.
var noEd25519 = []struct{ prefix, why string }{
	{"awskms://", "sigstore's AWS KMS provider signs only with RSA and ECDSA keys, not ed25519"},
	{"gcpkms://", "sigstore's Google Cloud KMS provider signs only with RSA and ECDSA keys, not ed25519"},
	{"azurekms://", "sigstore's Azure Key Vault provider signs only with RSA and ECDSA keys, not ed25519"},
	{"pkcs11:", "PKCS#11 tokens are not supported: sigstore's (cosign's) pkcs11key needs cgo and signs only with RSA and ECDSA keys"},
}

// Open returns the Signer for the key reference ref, the one syntax of every
// --sign-key flag and of the manifest's sign-keys:
//
//   - PATH or file://PATH: a private key file (see the package documentation);
//     a relative path is relative to dir (the manifest's directory; "" for the
//     working directory);
//   - env://NAME: the text of a private key file in the environment variable
//     NAME, for CI secrets;
//   - hashivault://NAME (or openbao://NAME): the ed25519 key NAME of HashiCorp
//     Vault's (OpenBao's) transit engine, through sigstore's provider: the key
//     never leaves the server, which is $VAULT_ADDR (or $BAO_ADDR) with the token
//     $VAULT_TOKEN (or $BAO_TOKEN, or ~/.vault-token) and the engine mounted at
//     $TRANSIT_SECRET_ENGINE_PATH (default "transit").
//
// awskms://, gcpkms://, azurekms:// and pkcs11: references fail with an error
// saying why: sigstore's providers for them cannot sign with ed25519 keys, the
// only kind OSTree verifies. Other hardware or cloud keys plug in through
// [FromCryptoSigner]. Errors are one line and name ref or the file. ctx is
// handed to the KMS provider.
func Open(ctx context.Context, ref, dir string) (*Signer, error) {
	for _, u := range noEd25519 {
		if strings.HasPrefix(ref, u.prefix) {
			return nil, fmt.Errorf("%s: %s; %s", ref, u.why, refHint)
		}
	}
	scheme, rest, ok := strings.Cut(ref, "://")
	if !ok || !isScheme(scheme) {
		return loadSigner(resolve(dir, ref))
	}
	switch scheme {
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("%s: no path after file://", ref)
		}
		return loadSigner(resolve(dir, rest))
	case "env":
		if rest == "" {
			return nil, fmt.Errorf("%s: no variable name after env://", ref)
		}
		v, ok := os.LookupEnv(rest)
		if !ok {
			return nil, fmt.Errorf("%s: $%s is not set", ref, rest)
		}
		return parseSigner(ref, []byte(v))
	}
	if open, ok := keyStores[scheme]; ok {
		cs, err := open(ctx, ref)
		if err != nil {
			return nil, &signerError{ref, err}
		}
		return fromCryptoSigner(ref, cs)
	}
	if scheme == "hashivault" || scheme == "openbao" {
		return nil, fmt.Errorf("%s: this program does not link in Vault keys (package internal/sign/vault)", ref)
	}
	return nil, fmt.Errorf("%s: unknown key reference scheme %s://; %s", ref, scheme, refHint)
}

// A KeyStore returns the signer that the reference ref (SCHEME://...) names in a key
// store, such as a KMS, for [Open]. The signer's public key must be ed25519.
type KeyStore func(ctx context.Context, ref string) (crypto.Signer, error)

// keyStores are the registered key stores by scheme.
var keyStores = map[string]KeyStore{}

// RegisterKeyStore makes [Open] take references of the schemes to open. Key store
// packages call it from init, so that only the programs importing them link their
// clients in (package internal/sign/vault: hashivault:// and openbao://; ota-build
// imports it, the device client, which only verifies, does not). Not safe to call
// concurrently with Open.
func RegisterKeyStore(open KeyStore, schemes ...string) {
	for _, s := range schemes {
		keyStores[s] = open
	}
}

// isScheme reports whether s is a URI scheme (RFC 3986): a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// resolve returns path relative to dir unless it is absolute or dir is empty.
func resolve(dir, path string) string {
	if dir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
