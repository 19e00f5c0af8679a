package sign

import (
	"bytes"
	"crypto/ed25519"
	"slices"
)

// Merge returns the signature list sigs, signatures of msg, with one signature by each of
// signers whose key has none in it yet, and how many signatures it added. It is how every
// signature list (a commit's detached metadata, summary.sig, a signed superblock) gets
// its signatures, so that signing again is a no-op.
//
// A signature belongs to a signer's key when it verifies with it; a list holds at most one
// per key. A signature by a signer's key that verifies is kept as it is, even when a new one
// would differ in its bytes (a signer that is not deterministic); one that does not verify
// belongs to no key Merge can tell, so it is kept, as are those of other keys. Repeated
// signatures (the same bytes twice, or a second one by the same signer's key) are dropped.
// The order of sigs is kept and new signatures follow, in the order of signers: the
// result equals sigs exactly when added is 0 and it has len(sigs) elements.
func Merge(msg []byte, sigs [][]byte, signers []*Signer) (out [][]byte, added int, err error) {
	var have []ed25519.PublicKey // keys with a signature in out
	covered := func(pub ed25519.PublicKey) bool {
		return slices.ContainsFunc(have, func(h ed25519.PublicKey) bool { return h.Equal(pub) })
	}
	for _, sig := range sigs {
		if slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, sig) }) {
			continue
		}
		var owner ed25519.PublicKey
		for _, s := range signers {
			if pub := s.PublicKey(); len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, msg, sig) {
				owner = pub
				break
			}
		}
		if owner != nil {
			if covered(owner) {
				continue
			}
			have = append(have, owner)
		}
		out = append(out, sig)
	}
	for _, s := range signers {
		if covered(s.PublicKey()) {
			continue
		}
		sig, err := s.Sign(msg)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, sig)
		have = append(have, s.PublicKey())
		added++
	}
	return out, added, nil
}
