package main

// Issue 10, "one signer, one way to name keys": commits, summaries and bundles are signed
// through any crypto.Signer, and every --sign-key and the manifest's sign-keys take the
// same key references (sign.Open): paths, file://, env:// and hashivault://.

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otakit/ota/builder"
	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sign"
	"github.com/otakit/ota/internal/sign/vault/vaulttest"
)

// memSigner is a crypto.Signer keeping its ed25519 key to itself, as a hardware token
// does: the signer can only ask it for its public key and for signatures.
type memSigner struct {
	priv  ed25519.PrivateKey
	calls atomic.Int64
}

func (m *memSigner) Public() crypto.PublicKey { return m.priv.Public() }

func (m *memSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != 0 {
		return nil, errors.New("memSigner: asked to sign a digest, not the message")
	}
	m.calls.Add(1)
	return ed25519.Sign(m.priv, msg), nil
}

// krKey returns a new ed25519 key and its public key, written in OSTree's format to
// dir/name.ostree.pub (the private key is never written).
func krKey(t *testing.T, dir, name string) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, accWriteFile(t, dir, name+".ostree.pub", []byte(sign.EncodeBase64Public(pub)+"\n"))
}

// krVerified fails the test unless libsodium verifies sigs[i] over the file msg with the
// public key file pubs[i], and no signature with another's key.
func krVerified(t *testing.T, what, msg string, sigs [][]byte, pubs ...string) {
	t.Helper()
	if len(sigs) != len(pubs) {
		t.Fatalf("%s has %d signatures, want %d", what, len(sigs), len(pubs))
	}
	for i, pub := range pubs {
		for j, ok := range naclVerify(t, pub, msg, sigs) {
			if ok != (i == j) {
				t.Errorf("%s: libsodium with %s on signature %d: %v, want %v", what, filepath.Base(pub), j, ok, i == j)
			}
		}
	}
}

// TestSignThroughCryptoSigner: a commit and the summary signed through a crypto.Signer
// that is not an ed25519.PrivateKey, with no private key on disk, carry signatures that
// libsodium verifies over the exact .commit and summary bytes, that the real ostree reads
// back and accepts in fsck, and that `ota-build verify` accepts.
func TestSignThroughCryptoSigner(t *testing.T) {
	requireTool(t, "ostree")
	requireNaCl(t)
	dir := t.TempDir()
	priv, pub := krKey(t, dir, "hsm")
	device := &memSigner{priv: priv}
	s, err := sign.FromCryptoSigner(device)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	repoPath := filepath.Join(dir, "repo")
	repo, err := ostree.Init(repoPath, ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	src, err := openTree("dir=" + tree)
	if err != nil {
		t.Fatal(err)
	}
	res, err := commit.Commit(context.Background(), repo, src, commit.Options{Branch: "main",
		Timestamp: time.Unix(1700000000, 0), Signers: []*commit.Signer{s}})
	if err != nil {
		t.Fatal(err)
	}
	if err := builder.UpdateSummary(repo, []*sign.Signer{s}); err != nil {
		t.Fatal(err)
	}
	if n := device.calls.Load(); n != 2 {
		t.Errorf("the crypto.Signer signed %d times, want 2 (commit, summary)", n)
	}

	cs, sigs := sigCommitSigs(t, repoPath, "main")
	if cs != res.Commit {
		t.Fatalf("main is %s, the commit %s", cs, res.Commit)
	}
	krVerified(t, "the commit", sigCommitFile(repoPath, cs), sigs, pub)
	if got := sigOstreeShowSigs(t, repoPath, cs); len(got) != 1 || string(got[0]) != string(sigs[0]) {
		t.Errorf("ostree show reads signatures %x, ota-build wrote %x", got, sigs)
	}
	krVerified(t, "the summary", filepath.Join(repoPath, "summary"), sigSummarySigs(t, repoPath), pub)
	if r := sigVerify(t, repoPath, "main", pub); r.code != 0 || !strings.Contains(r.stdout, "good signature") {
		t.Errorf("verify: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	accOstreeFsck(t, repoPath)
}

// TestSignKeyReferences: --sign-key takes env:// and hashivault:// references as it takes
// paths (commit, summary, sign, bundle), so does the manifest's sign-keys, and a reference
// that cannot sign fails with one line naming it, before anything is written.
func TestSignKeyReferences(t *testing.T) {
	requireNaCl(t)
	dir := t.TempDir()
	fileKey := sigKeygen(t, dir, "k1")
	pem, err := os.ReadFile(fileKey + ".key")
	if err != nil {
		t.Fatal(err)
	}
	vaultKey, vaultPub := krKey(t, dir, "vault")
	srv := vaulttest.New(t, "ota-release", vaultKey)
	env := []string{"OTA_TEST_SIGNING_KEY=" + string(pem), "VAULT_ADDR=" + srv.URL,
		"VAULT_TOKEN=" + vaulttest.Token, "TRANSIT_SECRET_ENGINE_PATH="}
	run := func(args ...string) result {
		t.Helper()
		r := runCmd(t, env, nil, otaBuild, args...)
		if r.code != 0 {
			t.Fatalf("ota-build %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	repo, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	run("commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree, "--timestamp", accTimestamp, "--version", "1",
		"--sign-key", "env://OTA_TEST_SIGNING_KEY", "--sign-key", "hashivault://ota-release")
	cs, sigs := sigCommitSigs(t, repo, "main")
	krVerified(t, "the commit", sigCommitFile(repo, cs), sigs, fileKey+".ostree.pub", vaultPub)
	krVerified(t, "the summary", filepath.Join(repo, "summary"), sigSummarySigs(t, repo), fileKey+".ostree.pub", vaultPub)

	bundle := filepath.Join(dir, "u.bundle")
	before := srv.Signed.Load()
	run("bundle", "--repo", repo, "--from", "empty", "--to", "main", "-o", bundle, "--sign-key", "hashivault://ota-release")
	if d, err := delta.Load(bundle, nil); err != nil || !d.Signed || srv.Signed.Load() != before+1 {
		t.Errorf("bundle --sign-key hashivault://: envelope %v (%v), %d signatures by Vault, want 1",
			d != nil && d.Signed, err, srv.Signed.Load()-before)
	}
	device := filepath.Join(dir, "device")
	ota(t, "init", "--repo", device, "--mode", "bare-user")
	if r := isApply(t, device, bundle, []string{vaultPub}); r.code != 0 || r.lastLine() != cs.String() {
		t.Errorf("delta apply --pubkey of the Vault key: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}

	refs := accRefs(t, repo)
	for _, tc := range []struct{ ref, want string }{
		{"env://OTA_TEST_UNSET", "env://OTA_TEST_UNSET: $OTA_TEST_UNSET is not set"},
		{"awskms:///alias/ota", "awskms:///alias/ota: sigstore's AWS KMS provider signs only with RSA and ECDSA keys"},
		{"hashivault://no-such-key", "hashivault://no-such-key: could not read data from transit key path"},
	} {
		for _, args := range [][]string{
			{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + tree, "--timestamp", "1700000001", "--sign-key", tc.ref},
			{"sign", "--repo", repo, "--sign-key", tc.ref, "main"},
			{"summary", "--repo", repo, "--sign-key", tc.ref},
		} {
			r := runCmd(t, env, nil, otaBuild, args...)
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s --sign-key %s: exit %d, stderr %q; want exit 1 and one line with %q", args[0], tc.ref, r.code, r.stderr, tc.want)
			}
		}
	}
	if got := accRefs(t, repo); !maps.Equal(got, refs) {
		t.Errorf("refused key references changed the refs: %v, was %v", got, refs)
	}
	if _, after := sigCommitSigs(t, repo, "main"); len(after) != 2 {
		t.Errorf("refused key references left %d signatures on the commit, want 2", len(after))
	}

	// The manifest: references relative to it, env:// and hashivault://; errors at file:line.
	bdir := filepath.Join(dir, "build")
	if err := os.Mkdir(bdir, 0o755); err != nil {
		t.Fatal(err)
	}
	build := isBuild(t, bdir, true)
	manifest := filepath.Join(bdir, "ota.yaml")
	orig, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ keys, want string }{
		{"[env://OTA_TEST_UNSET]", "ota.yaml:8: env://OTA_TEST_UNSET: $OTA_TEST_UNSET is not set"},
		{"[key.key, hashivault://ota-release]", ""},
	} {
		accWriteFile(t, bdir, "ota.yaml", []byte(strings.Replace(string(orig), "[key.key]", tc.keys, 1)))
		if tc.want != "" {
			r := runCmd(t, env, nil, otaBuild, "build", "-f", manifest)
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("build with sign-keys %s: exit %d, stderr %q; want one line with %q", tc.keys, r.code, r.stderr, tc.want)
			}
			continue
		}
		t.Setenv("VAULT_ADDR", srv.URL) // build runs with the test's environment
		t.Setenv("VAULT_TOKEN", vaulttest.Token)
		build()
	}
	brepo := filepath.Join(bdir, "repo")
	cs, sigs = sigCommitSigs(t, brepo, "t/stable")
	krVerified(t, "the built commit", sigCommitFile(brepo, cs), sigs, filepath.Join(bdir, "key.ostree.pub"), vaultPub)
	krVerified(t, "the built summary", filepath.Join(brepo, "summary"), sigSummarySigs(t, brepo),
		filepath.Join(bdir, "key.ostree.pub"), vaultPub)
}
