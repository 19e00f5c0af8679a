package sign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"
)

// fixedSigner is a crypto.Signer that claims a key but signs with whatever sign returns,
// standing in for a signer that is not deterministic, or one that fails.
type fixedSigner struct {
	pub  ed25519.PublicKey
	sign func([]byte) ([]byte, error)
}

func (f fixedSigner) Public() crypto.PublicKey { return f.pub }

func (f fixedSigner) Sign(_ io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	return f.sign(msg)
}

// mustSigner returns the Signer for cs.
func mustSigner(t *testing.T, cs crypto.Signer) *Signer {
	t.Helper()
	s, err := FromCryptoSigner(cs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMerge(t *testing.T) {
	k1, k2, k3 := testKey(1), testKey(2), testKey(3)
	msg := []byte("commit bytes")
	sig1, sig2, sig3 := ed25519.Sign(k1, msg), ed25519.Sign(k2, msg), ed25519.Sign(k3, msg)
	other := ed25519.Sign(k1, []byte("another commit"))
	s1, s2 := mustSigner(t, k1), mustSigner(t, k2)
	// Signs with k1's key but would give other bytes: an existing valid signature must win.
	differing := mustSigner(t, fixedSigner{pubOf(k1), func([]byte) ([]byte, error) { return bytes.Repeat([]byte{7}, 64), nil }})
	tests := []struct {
		name    string
		sigs    [][]byte
		signers []*Signer
		want    [][]byte
		added   int
	}{
		{"first signature", nil, []*Signer{s1}, [][]byte{sig1}, 1},
		{"same key again", [][]byte{sig1}, []*Signer{s1}, [][]byte{sig1}, 0},
		{"same key twice in one run", nil, []*Signer{s1, s1}, [][]byte{sig1}, 1},
		{"second key appended", [][]byte{sig1}, []*Signer{s1, s2}, [][]byte{sig1, sig2}, 1},
		{"other keys' signatures kept in order", [][]byte{sig3, sig1}, []*Signer{s2}, [][]byte{sig3, sig1, sig2}, 1},
		{"duplicates from an earlier run collapse", [][]byte{sig1, sig1, sig1}, []*Signer{s1}, [][]byte{sig1}, 0},
		{"duplicates of an unknown key collapse", [][]byte{sig3, sig3}, nil, [][]byte{sig3}, 0},
		{"valid signature kept over differing new bytes", [][]byte{sig1}, []*Signer{differing}, [][]byte{sig1}, 0},
		{"another message's signature is kept and ours added", [][]byte{other}, []*Signer{s1}, [][]byte{other, sig1}, 1},
		{"no signers", [][]byte{sig2}, nil, [][]byte{sig2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, added, err := Merge(msg, tt.sigs, tt.signers)
			if err != nil {
				t.Fatal(err)
			}
			if added != tt.added || len(got) != len(tt.want) {
				t.Fatalf("Merge() = %d signatures, %d added; want %d, %d added", len(got), added, len(tt.want), tt.added)
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("signature %d = %x, want %x", i, got[i][:8], tt.want[i][:8])
				}
			}
		})
	}
	failing := mustSigner(t, fixedSigner{pubOf(k3), func([]byte) ([]byte, error) { return nil, errors.New("hsm offline") }})
	if _, _, err := Merge(msg, nil, []*Signer{s1, failing}); err == nil {
		t.Error("Merge with a failing signer succeeded")
	}
}
