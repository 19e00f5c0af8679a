package main

// Issue 9, items 5 to 7: signing is idempotent; `delta apply --pubkey` trusts the commit's
// own signature, never a bundle's envelope alone, and `bundle --sign-key` packages only
// commits its keys signed; `delta apply --branch` refuses downgrades.

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sign"
)

// isRelease commits tree, with a file naming version, to main of repo at Unix time ts,
// signed with the private key files keys, and returns the commit.
func isRelease(t *testing.T, repo, tree, version, ts string, keys ...string) string {
	t.Helper()
	accWriteFile(t, filepath.Join(tree, "etc"), "release", []byte(version+"\n"))
	args := []string{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + tree,
		"--version", version, "--timestamp", ts}
	for _, k := range keys {
		args = append(args, "--sign-key", k)
	}
	return ota(t, args...).lastLine()
}

// isBundle writes a from-scratch bundle of commit to out, signed with the keys.
func isBundle(t *testing.T, repo, to, out string, keys ...string) {
	t.Helper()
	args := []string{"bundle", "--repo", repo, "--from", "empty", "--to", to, "-o", out}
	for _, k := range keys {
		args = append(args, "--sign-key", k)
	}
	ota(t, args...)
}

// isForge writes to out the bundle in with its commit's detached metadata replaced by
// edit's result (none when nil), wrapped in an OSTSGNDT envelope signed with the private
// key file key: a bundle whose envelope a trusted key signed, whatever its commit carries.
func isForge(t *testing.T, in, out, key string, edit func([]gvariant.DictEntry) []gvariant.DictEntry) {
	t.Helper()
	d, err := delta.Load(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	var meta, commitMeta []gvariant.DictEntry
	for _, e := range d.Metadata {
		if strings.HasSuffix(e.Key.(string), "/commitmeta") {
			commitMeta = e.Value.(gvariant.Variant).Value.([]gvariant.DictEntry)
			continue
		}
		meta = append(meta, e)
	}
	if m := edit(commitMeta); m != nil {
		meta = append(meta, gvariant.DictEntry{Key: ostree.DeltaDir(d.From, d.To) + "/commitmeta",
			Value: gvariant.Variant{Type: "a{sv}", Value: m}})
	}
	d.Metadata = meta
	sb, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.Open(context.Background(), key, "")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(sb)
	if err != nil {
		t.Fatal(err)
	}
	env, err := gvariant.Encode("(taya{sv})", []any{binary.LittleEndian.Uint64([]byte("OSTSGNDT")), sb,
		[]gvariant.DictEntry{{Key: ostree.SignEd25519Key, Value: gvariant.Variant{Type: "aay", Value: []any{sig}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, env, 0o644); err != nil {
		t.Fatal(err)
	}
}

// isApply runs `delta apply --branch main` of bundle into repo with the trusted public key
// files pubs and extra flags.
func isApply(t *testing.T, repo, bundle string, pubs []string, extra ...string) result {
	t.Helper()
	args := []string{"delta", "apply", "--repo", repo, "--branch", "main"}
	for _, p := range pubs {
		args = append(args, "--pubkey", p)
	}
	return runCmd(t, nil, nil, otaBuild, append(append(args, extra...), bundle)...)
}

// isRefused fails the test unless r is a one-line refusal mentioning wants and the
// repository kept its refs and objects (count) and has no commit object of target.
func isRefused(t *testing.T, r result, repo, target string, refs map[string]string, objects int, wants ...string) {
	t.Helper()
	accOneLineError(t, r, wants...)
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	accSameRefs(t, refs, accRefs(t, repo))
	if n := crashObjects(repo); n != objects {
		t.Errorf("the refused apply wrote %d object file(s)", n-objects)
	}
	if _, err := os.Stat(crashCommitFile(repo, target)); err == nil {
		t.Errorf("the refused commit %s was written", target)
	}
}

// TestSignIdempotent: re-committing the same tree with the same key, `ota-build sign` with
// that key (once, and twice in one run), a summary signed twice with one key and `build`
// reruns (one of them after a kill between commit and ref) leave the .commitmeta byte for
// byte as it was, and the real ostree reads one signature, which libsodium verifies.
func TestSignIdempotent(t *testing.T) {
	requireTool(t, "ostree")
	requireNaCl(t)
	dir := t.TempDir()
	key := sigKeygen(t, dir, "k")
	repo, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	commitArgs := []string{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + tree, "--parent", "none",
		"--timestamp", accTimestamp, "--sign-key", key + ".key"}
	cs := ota(t, commitArgs...).lastLine()
	c, err := ostree.ParseChecksum(cs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(sigCommitMetaFile(repo, c))
	if err != nil {
		t.Fatal(err)
	}
	same := func(t *testing.T, repo string, c ostree.Checksum, want []byte) {
		t.Helper()
		got, err := os.ReadFile(sigCommitMetaFile(repo, c))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf(".commitmeta is %d bytes, was %d", len(got), len(want))
		}
		if sigs := sigOstreeShowSigs(t, repo, c); len(sigs) != 1 {
			t.Errorf("ostree show reads %d signatures, want 1", len(sigs))
		}
	}
	for _, step := range []struct {
		name string
		args []string
	}{
		{"commit again", commitArgs},
		{"sign", []string{"sign", "--repo", repo, "--sign-key", key + ".key", "main"}},
		{"sign twice in one run", []string{"sign", "--repo", repo, "--sign-key", key + ".key", "--sign-key", key + ".key", "main"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if out := ota(t, step.args...).stdout; step.name == "commit again" && strings.TrimSpace(out) != cs {
				t.Fatalf("commit again made %q, want the same commit %s", out, cs)
			}
			same(t, repo, c, want)
		})
	}
	t.Run("summary with one key twice", func(t *testing.T) {
		ota(t, "summary", "--repo", repo, "--sign-key", key+".key", "--sign-key", key+".key")
		raw, err := os.ReadFile(filepath.Join(repo, "summary.sig"))
		if err != nil {
			t.Fatal(err)
		}
		meta, err := ostree.ParseMetadata(raw)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := ostree.Lookup(meta, ostree.SignEd25519Key); len(v.Value.([]any)) != 1 {
			t.Errorf("summary.sig holds %d signatures, want 1", len(v.Value.([]any)))
		}
	})
	_, sigs := sigCommitSigs(t, repo, cs)
	if ok := naclVerify(t, key+".ostree.pub", sigCommitFile(repo, c), sigs); len(ok) != 1 || !ok[0] {
		t.Errorf("libsodium: %v", ok)
	}

	t.Run("build rerun", func(t *testing.T) {
		dir := t.TempDir()
		build := isBuild(t, dir, true)
		build()
		repo := filepath.Join(dir, "repo")
		c, _ := sigCommitSigs(t, repo, "t/stable")
		want, err := os.ReadFile(sigCommitMetaFile(repo, c))
		if err != nil {
			t.Fatal(err)
		}
		bundle, err := os.ReadFile(filepath.Join(dir, "t.bundle"))
		if err != nil {
			t.Fatal(err)
		}
		build()
		same(t, repo, c, want)
		// A run killed after writing (and signing) the commit but before moving the branch:
		// the rerun writes the same commit again.
		if err := os.Remove(filepath.Join(repo, "refs", "heads", "t", "stable")); err != nil {
			t.Fatal(err)
		}
		build()
		if again, _ := sigCommitSigs(t, repo, "t/stable"); again != c {
			t.Fatalf("the rerun made commit %s, want %s", again, c)
		}
		same(t, repo, c, want)
		if now, _ := os.ReadFile(filepath.Join(dir, "t.bundle")); !bytes.Equal(now, bundle) {
			t.Errorf("the rerun changed the bundle")
		}
	})
}

// isBuild writes dir/ota.yaml, a manifest building a bootable rootfs (dir/rootfs) of
// version 1.0 into dir/repo with the bundle dir/t.bundle, its commit and summary signed
// with dir/key.key when signed, and returns a function running `build` on it.
func isBuild(t *testing.T, dir string, signed bool) func() {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	if _, err := os.Stat(rootfs); err != nil {
		accWriteTree(t, rootfs)
		if err := os.MkdirAll(filepath.Join(rootfs, "boot"), 0o755); err != nil {
			t.Fatal(err)
		}
		accWriteFile(t, filepath.Join(rootfs, "boot"), "vmlinuz-6.1.0-t", []byte("kernel"))
	}
	if _, err := os.Stat(filepath.Join(dir, "key.key")); err != nil {
		sigKeygen(t, dir, "key")
	}
	manifest := "repo:\n  path: repo\ncommit:\n  rootfs: rootfs\n  branch: t/stable\n  version: \"1.0\"\n" +
		"  owner: {uid: 0, gid: 0}\ndeltas:\n  bundle:\n    output: t.bundle\n"
	if signed {
		manifest = strings.Replace(manifest, "deltas:", "  sign-keys: [key.key]\ndeltas:", 1) + "summary:\n  sign: true\n"
	}
	path := accWriteFile(t, dir, "ota.yaml", []byte(manifest))
	return func() {
		t.Helper()
		if r := runCmd(t, []string{"SOURCE_DATE_EPOCH=" + accTimestamp}, nil, otaBuild, "build", "-f", path); r.code != 0 {
			t.Fatalf("build: exit %d: %s", r.code, r.stderr)
		}
	}
}

// TestBuildBundleCarriesCommitSignature: signing keys added to a manifest after a release
// was built sign the commit on the next run, and the bundle is rebuilt around the signed
// commit, in an envelope by the keys, instead of kept: `delta apply --pubkey` accepts it.
func TestBuildBundleCarriesCommitSignature(t *testing.T) {
	dir := t.TempDir()
	isBuild(t, dir, false)()
	bundle := filepath.Join(dir, "t.bundle")
	if d, err := delta.Load(bundle, nil); err != nil || d.Signed || d.CommitMeta() != nil {
		t.Fatalf("the unsigned build's bundle: %v", err)
	}
	isBuild(t, dir, true)()
	c, sigs := sigCommitSigs(t, filepath.Join(dir, "repo"), "t/stable")
	if len(sigs) != 1 {
		t.Fatalf("the signed rerun left %d signatures on the commit, want 1", len(sigs))
	}
	device := filepath.Join(dir, "device")
	ota(t, "init", "--repo", device, "--mode", "bare-user")
	if r := isApply(t, device, bundle, []string{filepath.Join(dir, "key.pub")}); r.code != 0 || r.lastLine() != c.String() {
		t.Fatalf("the bundle of the signed rerun: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}
	if d, err := delta.Load(bundle, nil); err != nil || !d.Signed {
		t.Errorf("the bundle of the signed rerun has no envelope (%v)", err)
	}
}

// TestBundleTrustsOnlyTheCommitSignature: `delta apply --pubkey` refuses a bundle whose
// envelope a trusted key signed while the commit inside is unsigned, signed by an untrusted
// key, or carries another commit's signature: exit 1, one line, no ref moved, no object
// written. The same envelope around a commit the trusted key signed is accepted, and so is
// a bundle without envelope whose commit is signed.
func TestBundleTrustsOnlyTheCommitSignature(t *testing.T) {
	requireTool(t, "cp")
	dir := t.TempDir()
	k, other := sigKeygen(t, dir, "k"), sigKeygen(t, dir, "other")
	repo, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	signed := isRelease(t, repo, tree, "1.0", "1700000000", k+".key")
	unsigned := isRelease(t, repo, tree, "2.0", "1700000100")
	untrusted := isRelease(t, repo, tree, "3.0", "1700000200", other+".key")
	newer := isRelease(t, repo, tree, "4.0", "1700000300", k+".key")
	r, err := ostree.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	signedCommit, _ := ostree.ParseChecksum(signed)
	signedMeta, err := r.ReadDetachedMetadata(signedCommit)
	if err != nil || signedMeta == nil {
		t.Fatalf("detached metadata of %s: %v", signed, err)
	}

	// The device: at the signed release.
	device := filepath.Join(dir, "device")
	ota(t, "init", "--repo", device, "--mode", "bare-user")
	good := filepath.Join(dir, "signed.bundle")
	isBundle(t, repo, signed, good, k+".key")
	if r := isApply(t, device, good, []string{k + ".pub"}); r.code != 0 || r.lastLine() != signed {
		t.Fatalf("the signed bundle: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}

	keep := func(m []gvariant.DictEntry) []gvariant.DictEntry { return m }
	for _, tc := range []struct {
		name, to string
		edit     func([]gvariant.DictEntry) []gvariant.DictEntry
		accept   bool
	}{
		{"unsigned commit", unsigned, keep, false},
		{"commit signed by an untrusted key", untrusted, keep, false},
		{"another commit's signature", unsigned, func([]gvariant.DictEntry) []gvariant.DictEntry { return signedMeta }, false},
		{"commit signature stripped", newer, func([]gvariant.DictEntry) []gvariant.DictEntry { return nil }, false},
		{"commit signed by the trusted key", newer, keep, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, forged := filepath.Join(t.TempDir(), "plain.bundle"), filepath.Join(t.TempDir(), "forged.bundle")
			isBundle(t, repo, tc.to, plain)
			isForge(t, plain, forged, k+".key", tc.edit)
			dev := filepath.Join(t.TempDir(), "device")
			must(t, "cp", "-a", device, dev)
			refs, objects := accRefs(t, dev), crashObjects(dev)
			r := isApply(t, dev, forged, []string{k + ".pub"})
			if tc.accept {
				if r.code != 0 || r.lastLine() != tc.to {
					t.Fatalf("exit %d, stdout %q, stderr %q; want %s applied", r.code, r.stdout, r.stderr, tc.to)
				}
				return
			}
			isRefused(t, r, dev, tc.to, refs, objects, tc.to, "signature", "trusted key")
			t.Logf("%s", strings.TrimSpace(r.stderr))
		})
	}

	t.Run("no envelope, signed commit", func(t *testing.T) {
		plain := filepath.Join(t.TempDir(), "plain.bundle")
		isBundle(t, repo, newer, plain)
		dev := filepath.Join(t.TempDir(), "device")
		ota(t, "init", "--repo", dev, "--mode", "bare-user")
		if r := isApply(t, dev, plain, []string{k + ".pub"}); r.code != 0 || r.lastLine() != newer {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

// TestBundleRefusesCommitsNotSignedByItsKeys: `bundle --sign-key K` (and `delta --sign-key
// K`) refuses, in one line naming the commit, a commit that is unsigned or signed by
// another key only, and writes no bundle or delta; a commit K signed is packaged.
func TestBundleRefusesCommitsNotSignedByItsKeys(t *testing.T) {
	dir := t.TempDir()
	k, other := sigKeygen(t, dir, "k"), sigKeygen(t, dir, "other")
	repo, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	unsigned := isRelease(t, repo, tree, "1.0", "1700000000")
	byOther := isRelease(t, repo, tree, "2.0", "1700000100", other+".key")
	for _, to := range []string{unsigned, byOther} {
		out := filepath.Join(dir, to+".bundle")
		r := runCmd(t, nil, nil, otaBuild, "bundle", "--repo", repo, "--from", "empty", "--to", to, "-o", out, "--sign-key", k+".key")
		accOneLineError(t, r, to, "not signed by any of the signing keys")
		if _, err := os.Stat(out); err == nil {
			t.Errorf("bundle of %s written", to)
		}
		before := repoState(t, repo)
		r = runCmd(t, nil, nil, otaBuild, "delta", "--repo", repo, "--from", "empty", "--to", to, "--sign-key", k+".key")
		accOneLineError(t, r, to, "not signed by any of the signing keys")
		if after := repoState(t, repo); after != before {
			t.Errorf("the refused delta changed the repository:\n%s", after)
		}
	}
	ota(t, "sign", "--repo", repo, "--sign-key", k+".key", byOther)
	isBundle(t, repo, byOther, filepath.Join(dir, "ok.bundle"), k+".key", other+".key")
}

// TestBundleDowngradeRefused: a validly signed from-scratch bundle of release 1.0 applied
// with --branch to a repository at 2.0 is refused (the ref stays at 2.0, nothing is written);
// with --allow-downgrade it is applied, and applying it again needs no flag.
func TestBundleDowngradeRefused(t *testing.T) {
	dir := t.TempDir()
	k := sigKeygen(t, dir, "k")
	repo, tree := filepath.Join(dir, "repo"), filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	v1 := isRelease(t, repo, tree, "1.0", "1700000000", k+".key")
	v2 := isRelease(t, repo, tree, "2.0", "1700000100", k+".key")
	b1, b2 := filepath.Join(dir, "v1.bundle"), filepath.Join(dir, "v2.bundle")
	isBundle(t, repo, v1, b1, k+".key")
	isBundle(t, repo, v2, b2, k+".key")

	device := filepath.Join(dir, "device")
	ota(t, "init", "--repo", device, "--mode", "bare-user")
	pubs := []string{k + ".pub"}
	if r := isApply(t, device, b2, pubs); r.code != 0 {
		t.Fatalf("apply 2.0: %s", r.stderr)
	}
	refs, objects := accRefs(t, device), crashObjects(device)
	r := isApply(t, device, b1, pubs)
	isRefused(t, r, device, v1, refs, objects, v1, v2, "older", "downgrade", "--allow-downgrade")
	t.Logf("%s", strings.TrimSpace(r.stderr))

	if r := isApply(t, device, b1, pubs, "--allow-downgrade"); r.code != 0 || r.lastLine() != v1 {
		t.Fatalf("--allow-downgrade: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}
	if got := crashRef(t, device); got != v1 {
		t.Fatalf("main is %s after --allow-downgrade, want %s", got, v1)
	}
	if r := isApply(t, device, b1, pubs); r.code != 0 {
		t.Errorf("applying the commit main points to again: %s", r.stderr)
	}
	ota(t, "fsck", "--repo", device)
}

// TestSigningRulesInREADME: the README states the signing, trust and downgrade rules in the
// words of the help text (line breaks aside).
func TestSigningRulesInREADME(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(data)), " ")
	for _, rule := range []string{bundleRule, trustRule, downgradeRule} {
		if r := strings.Join(strings.Fields(rule), " "); !strings.Contains(readme, r) {
			t.Errorf("README.md does not say %q", r)
		}
	}
}
