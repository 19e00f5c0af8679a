// Package vault lets [sign.Open] sign with ed25519 keys of HashiCorp Vault's (and
// OpenBao's) transit engine: importing it registers the hashivault:// and openbao://
// key references. The key never leaves the server, which is $VAULT_ADDR (or $BAO_ADDR)
// with the token $VAULT_TOKEN (or $BAO_TOKEN, or ~/.vault-token) and the engine mounted
// at $TRANSIT_SECRET_ENGINE_PATH (default "transit").
//
// It is a package of its own because Vault's client and its dependencies are most of
// the signing code's size: the build-host tools import it, the device client does not.
package vault

import (
	"context"
	"crypto"

	"github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/otakit/ota/internal/sign"
)

func init() { sign.RegisterKeyStore(open, "hashivault", "openbao") }

// open returns the signer of an ed25519 key of Vault's transit engine, which signs
// each message on the server: sigstore's signer, with crypto.Hash(0), sends the whole
// message unhashed ("prehashed": false), which is pure Ed25519.
func open(ctx context.Context, ref string) (crypto.Signer, error) {
	sv, err := hashivault.LoadSignerVerifier(ref, crypto.Hash(0), options.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	// Reading the public key first reports an unreachable server, a bad token or a
	// missing key here, as an error, rather than from the signer's Public method.
	if _, err := sv.PublicKey(); err != nil {
		return nil, err
	}
	cs, _, err := sv.CryptoSigner(ctx, nil)
	return cs, err
}
