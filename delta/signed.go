package delta

import (
	"crypto/ed25519"
	"fmt"

	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sign"
)

// signedMagic starts a signed superblock: "OSTSGNDT" read as a big-endian uint64.
const signedMagic = 0x4F535453474E4454

// signSuperblock wraps a superblock in the (taya{sv}) envelope of signed deltas, with one
// signature per key.
func signSuperblock(sb []byte, signers []*Signer) ([]byte, error) {
	sigs, _, err := sign.Merge(sb, nil, signers)
	if err != nil {
		return nil, err
	}
	list := make([]any, len(sigs))
	for i, s := range sigs {
		list[i] = s
	}
	return gvariant.Encode("(taya{sv})", []any{swap64(signedMagic, true), sb,
		[]gvariant.DictEntry{{Key: ostree.SignEd25519Key, Value: gvariant.Variant{Type: "aay", Value: list}}}})
}

// checkSigned returns an error unless commit c (its object's bytes and detached metadata)
// carries a valid signature by one of signers' keys; a delta whose superblock is signed
// carries only such commits, for the commit's own signature is what a device trusts (see
// [ApplyOptions]). It returns nil when there are no signers.
func checkSigned(c ostree.Checksum, commitBytes []byte, meta []gvariant.DictEntry, signers []*Signer) error {
	if len(signers) == 0 {
		return nil
	}
	pubs := make([]ed25519.PublicKey, len(signers))
	for i, s := range signers {
		pubs[i] = s.PublicKey()
	}
	sigs, err := ostree.Signatures(meta)
	if err == nil {
		err = sign.Verify(pubs, commitBytes, sigs)
	}
	if err != nil {
		return fmt.Errorf("commit %s is not signed by any of the signing keys (%w); a signed delta or bundle packages only commits signed by one of its keys: sign the commit first (ota-build sign)", c, err)
	}
	return nil
}
