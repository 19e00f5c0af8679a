package sign

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
	"github.com/sigstore/sigstore/pkg/signature/options"
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
	case "hashivault", "openbao":
		return openVault(ctx, ref)
	}
	return nil, fmt.Errorf("%s: unknown key reference scheme %s://; %s", ref, scheme, refHint)
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

// openVault returns a Signer for an ed25519 key of Vault's transit engine, which
// signs each message on the server: sigstore's signer, with crypto.Hash(0),
// sends the whole message unhashed ("prehashed": false), which is pure Ed25519.
func openVault(ctx context.Context, ref string) (*Signer, error) {
	sv, err := hashivault.LoadSignerVerifier(ref, crypto.Hash(0), options.WithContext(ctx))
	if err != nil {
		return nil, &signerError{ref, err}
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, &signerError{ref, err}
	}
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, unsupported(ref, pub)
	}
	cs, _, err := sv.CryptoSigner(ctx, nil)
	if err != nil {
		return nil, &signerError{ref, err}
	}
	return fromCryptoSigner(ref, cs)
}
