package clientconfig

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/otakit/ota/internal/sign"
)

// TrustedPublicKeys returns the keys of every file in the TrustedKeys directory, in the
// order of the file names, as ostree reads trusted.ed25519.d: each file holds base64
// ed25519 public keys, one a line (internal/sign.LoadPublicKeys, which also takes PEM).
// Subdirectories are skipped. A directory without any key is an error: nothing could be
// verified.
func (c *Config) TrustedPublicKeys() ([]ed25519.PublicKey, error) {
	ents, err := os.ReadDir(c.TrustedKeys)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	var keys []ed25519.PublicKey
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		k, err := sign.LoadPublicKeys(filepath.Join(c.TrustedKeys, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("trusted keys: %w", err)
		}
		keys = append(keys, k...)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("trusted keys: no key in %s", c.TrustedKeys)
	}
	return keys, nil
}
