package main

// Acceptance 4: ed25519 signatures of commits and of the summary, judged by libsodium
// (python3-nacl) as the independent implementation: Debian's ostree 2022.7 has no ed25519.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/ostree"
)

// sigPython is the Debian interpreter that has python3-nacl.
const sigPython = "/usr/bin/python3"

// requireNaCl skips the test unless /usr/bin/python3 can import nacl (fails it instead when
// OTA_REQUIRE_TOOLS=1).
func requireNaCl(t *testing.T) {
	t.Helper()
	requireTool(t, sigPython)
	if out, err := exec.Command(sigPython, "-c", "import nacl.signing").CombinedOutput(); err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("python3-nacl is required (OTA_REQUIRE_TOOLS=1): %v\n%s", err, out)
		}
		t.Skipf("python3-nacl not installed: %s", out)
	}
}

// sigNaClScript prints, for each hex signature line of argv[3], "good" if libsodium accepts
// it as a signature of the bytes of file argv[2] by the OSTree base64 public key in argv[1],
// else "bad".
const sigNaClScript = `
import sys, base64, binascii
from nacl.signing import VerifyKey
pub = VerifyKey(base64.b64decode(open(sys.argv[1]).read().strip()))
msg = open(sys.argv[2], "rb").read()
for line in open(sys.argv[3]).read().split():
    try:
        pub.verify(msg, binascii.unhexlify(line))
        print("good")
    except Exception:
        print("bad")
`

// naclVerify reports, for each signature, whether libsodium verifies it over the bytes of
// the file msgPath with the public key in the OSTree base64 file pubPath.
func naclVerify(t *testing.T, pubPath, msgPath string, sigs [][]byte) []bool {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "verify.py")
	sigFile := filepath.Join(dir, "sigs.hex")
	var lines []string
	for _, s := range sigs {
		lines = append(lines, hex.EncodeToString(s))
	}
	if err := os.WriteFile(script, []byte(sigNaClScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.Fields(must(t, sigPython, script, pubPath, msgPath, sigFile).stdout)
	if len(out) != len(sigs) {
		t.Fatalf("libsodium judged %d signatures, want %d: %q", len(out), len(sigs), out)
	}
	res := make([]bool, len(out))
	for i, o := range out {
		res[i] = o == "good"
	}
	return res
}

// sigCommitSigs returns the commit rev resolves to in repo and the ed25519 signatures in its
// detached metadata, read with the project's own repository code.
func sigCommitSigs(t *testing.T, repo, rev string) (ostree.Checksum, [][]byte) {
	t.Helper()
	r, err := ostree.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := r.Resolve(rev)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := commit.Signatures(r, cs)
	if err != nil {
		t.Fatalf("reading signatures of %s: %v", cs, err)
	}
	return cs, sigs
}

// sigOstreeByteArray matches one byte array of GVariant text: "[byte 0x01, 0x02]" for the
// first element of an aay, "[0x01, 0x02]" for the others, or a bytestring b'...' (b"...")
// that GLib prints for arrays ending in their only NUL byte.
var sigOstreeByteArray = regexp.MustCompile(`\[(?:byte )?(0x[^\[\]]*)\]|b'((?:[^'\\]|\\.)*)'|b"((?:[^"\\]|\\.)*)"`)

// sigOstreeShowSigs returns the signatures of commit cs as the real `ostree show` parses the
// detached metadata, an independent reading of the .commitmeta file.
func sigOstreeShowSigs(t *testing.T, repo string, cs ostree.Checksum) [][]byte {
	t.Helper()
	out := must(t, "ostree", "show", "--repo="+repo, "--print-detached-metadata-key="+ostree.SignEd25519Key, cs.String()).stdout
	var sigs [][]byte
	for _, m := range sigOstreeByteArray.FindAllStringSubmatch(out, -1) {
		if m[1] == "" {
			sigs = append(sigs, sigUnescapeBytestring(t, m[2]+m[3]))
			continue
		}
		var sig []byte
		for _, tok := range strings.Split(m[1], ",") {
			v, err := strconv.ParseUint(strings.TrimSpace(tok), 0, 8)
			if err != nil {
				t.Fatalf("ostree show output %q: %v", out, err)
			}
			sig = append(sig, byte(v))
		}
		sigs = append(sigs, sig)
	}
	return sigs
}

// sigUnescapeBytestring decodes the body of a GVariant bytestring as GLib prints it (C
// escapes and octal \ooo), adding back the terminating NUL it leaves out.
func sigUnescapeBytestring(t *testing.T, s string) []byte {
	t.Helper()
	simple := map[byte]byte{'a': 7, 'b': 8, 'f': 12, 'n': 10, 'r': 13, 't': 9, 'v': 11, '\\': '\\', '\'': '\'', '"': '"'}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		if i >= len(s) {
			t.Fatalf("bytestring %q ends in a backslash", s)
		}
		if c, ok := simple[s[i]]; ok {
			out = append(out, c)
			continue
		}
		j := i
		for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
			j++
		}
		v, err := strconv.ParseUint(s[i:j], 8, 8)
		if err != nil {
			t.Fatalf("bytestring %q: bad escape at %d", s, i)
		}
		out = append(out, byte(v))
		i = j - 1
	}
	return append(out, 0)
}

// sigKeygen runs `ota-build keygen -o dir/name` and returns the prefix.
func sigKeygen(t *testing.T, dir, name string, env ...string) string {
	t.Helper()
	prefix := filepath.Join(dir, name)
	args := []string{"keygen", "--output", prefix}
	if len(env) > 0 {
		args = append(args, "--encrypt")
	}
	r := runCmd(t, env, nil, otaBuild, args...)
	if r.code != 0 {
		t.Fatalf("keygen %s: exit %d: %s", name, r.code, r.stderr)
	}
	pub, err := os.ReadFile(prefix + ".ostree.pub")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(pub)))
	if err != nil || len(raw) != 32 {
		t.Fatalf("%s.ostree.pub is not base64 of a 32-byte key: %q (%v)", prefix, pub, err)
	}
	if got := strings.TrimSpace(r.lastLine()); got != strings.TrimSpace(string(pub)) {
		t.Errorf("keygen printed %q, %s.ostree.pub holds %q", got, prefix, pub)
	}
	return prefix
}

// sigVerify runs `ota-build verify` with the public key files.
func sigVerify(t *testing.T, repo, rev string, pubs ...string) result {
	t.Helper()
	args := []string{"verify", "--repo", repo}
	for _, p := range pubs {
		args = append(args, "--pubkey", p)
	}
	return runCmd(t, nil, nil, otaBuild, append(args, rev)...)
}

// sigVerifyFailed fails the test unless `ota-build verify` exited with status 1 and printed
// one line on stderr containing every one of wants. (Whether that line carries the
// "ota-build: " prefix is TestExitStatusErrorsHavePrefix's business.)
func sigVerifyFailed(t *testing.T, r result, wants ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("verify: exit %d, want 1; stdout %q", r.code, r.stdout)
	}
	if !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("verify: stderr is not exactly one line: %q", r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("verify: stderr %q does not mention %q", r.stderr, w)
		}
	}
	if strings.Contains(r.stdout, "good signature") {
		t.Errorf("verify: stdout claims a good signature: %q", r.stdout)
	}
}

// sigCommitFile returns the path of a commit's .commit object file.
func sigCommitFile(repo string, cs ostree.Checksum) string {
	h := cs.String()
	return filepath.Join(repo, "objects", h[:2], h[2:]+".commit")
}

// sigCommitMetaFile returns the path of a commit's .commitmeta file.
func sigCommitMetaFile(repo string, cs ostree.Checksum) string {
	h := cs.String()
	return filepath.Join(repo, "objects", h[:2], h[2:]+".commitmeta")
}

// sigSetup makes dir/repo with a signed commit (key dir/k1) on main and returns the repo,
// the key prefix and the commit.
func sigSetup(t *testing.T, dir string) (repo, key string, cs ostree.Checksum) {
	t.Helper()
	key = sigKeygen(t, dir, "k1")
	repo = filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	out := ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree, "-s", "release",
		"--version", "1.0", "--timestamp", accTimestamp, "--sign-key", key+".key").lastLine()
	cs, sigs := sigCommitSigs(t, repo, "main")
	if out != cs.String() {
		t.Fatalf("commit printed %s, main is %s", out, cs)
	}
	if len(sigs) != 1 {
		t.Fatalf("commit has %d signatures, want 1", len(sigs))
	}
	return repo, key, cs
}

// TestSignCommitVerifiedByLibsodium: a commit made with --sign-key carries one 64-byte
// signature that the real ostree reads back from the .commitmeta identically, that libsodium
// verifies over the exact .commit file bytes with the key from PREFIX.ostree.pub, and that
// `ota-build verify` accepts with the base64 or the PEM public key but not another key.
func TestSignCommitVerifiedByLibsodium(t *testing.T) {
	requireTool(t, "ostree")
	requireNaCl(t)
	dir := t.TempDir()
	repo, key, cs := sigSetup(t, dir)
	_, sigs := sigCommitSigs(t, repo, cs.String())
	if len(sigs[0]) != 64 {
		t.Fatalf("signature is %d bytes, want 64", len(sigs[0]))
	}
	if got := sigOstreeShowSigs(t, repo, cs); len(got) != 1 || !bytes.Equal(got[0], sigs[0]) {
		t.Errorf("ostree show reads signatures %x, ota-build %x", got, sigs)
	}
	if ok := naclVerify(t, key+".ostree.pub", sigCommitFile(repo, cs), sigs); !ok[0] {
		t.Errorf("libsodium rejects the signature over %s", sigCommitFile(repo, cs))
	}
	for _, pub := range []string{key + ".ostree.pub", key + ".pub"} {
		if r := sigVerify(t, repo, "main", pub); r.code != 0 || !strings.Contains(r.stdout, "good signature") {
			t.Errorf("verify --pubkey %s: exit %d, stdout %q, stderr %q", filepath.Base(pub), r.code, r.stdout, r.stderr)
		}
	}
	other := sigKeygen(t, dir, "other")
	if ok := naclVerify(t, other+".ostree.pub", sigCommitFile(repo, cs), sigs); ok[0] {
		t.Errorf("libsodium accepts the signature with an unrelated key")
	}
	r := sigVerify(t, repo, "main", other+".ostree.pub")
	sigVerifyFailed(t, r, cs.String())
	accOstreeFsck(t, repo)
}

// TestSignTamperingDetected: in a copy of a signed repository, flipping one byte of the
// .commit file or one byte of the signature inside the .commitmeta makes both libsodium and
// `ota-build verify` (exit 1) reject the commit, while the original still verifies.
func TestSignTamperingDetected(t *testing.T) {
	requireTool(t, "cp")
	requireNaCl(t)
	dir := t.TempDir()
	repo, key, cs := sigSetup(t, dir)
	_, orig := sigCommitSigs(t, repo, "main")
	cases := []struct {
		name   string
		tamper func(t *testing.T, repo string)
	}{
		{"commit byte flipped", func(t *testing.T, repo string) {
			sigFlip(t, sigCommitFile(repo, cs), -1)
		}},
		{"signature byte flipped", func(t *testing.T, repo string) {
			p := sigCommitMetaFile(repo, cs)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(data, orig[0])
			if i < 0 || bytes.Index(data[i+1:], orig[0]) >= 0 {
				t.Fatalf("the signature is not in %s exactly once", p)
			}
			sigFlip(t, p, i+17)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "repo")
			must(t, "cp", "-a", repo, cp)
			tc.tamper(t, cp)
			_, sigs := sigCommitSigs(t, cp, cs.String())
			if len(sigs) != 1 {
				t.Fatalf("%d signatures after tampering, want 1", len(sigs))
			}
			if ok := naclVerify(t, key+".ostree.pub", sigCommitFile(cp, cs), sigs); ok[0] {
				t.Errorf("libsodium still accepts the signature")
			}
			r := sigVerify(t, cp, "main", key+".ostree.pub")
			sigVerifyFailed(t, r, cs.String())
			t.Logf("verify: %s", strings.TrimSpace(r.stderr))
			if ok := naclVerify(t, key+".ostree.pub", sigCommitFile(repo, cs), orig); !ok[0] {
				t.Errorf("the untouched original no longer verifies with libsodium")
			}
			if r := sigVerify(t, repo, "main", key+".ostree.pub"); r.code != 0 {
				t.Errorf("the untouched original no longer verifies: %s", r.stderr)
			}
		})
	}
}

// sigFlip inverts one byte of a file (the middle one when i < 0), making it writable first.
func sigFlip(t *testing.T, p string, i int) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		i = len(data) / 2
	}
	data[i] ^= 0xff
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSignUnsignedCommitFailsVerify: `ota-build verify` of a commit without signatures
// exits 1 with a one-line message naming the commit and the missing signatures.
func TestSignUnsignedCommitFailsVerify(t *testing.T) {
	dir := t.TempDir()
	repo, c := accRepo(t, dir)
	key := sigKeygen(t, dir, "k1")
	if _, sigs := sigCommitSigs(t, repo, c); len(sigs) != 0 {
		t.Fatalf("unsigned commit has %d signatures", len(sigs))
	}
	for _, pub := range []string{key + ".ostree.pub", key + ".pub"} {
		r := sigVerify(t, repo, "main", pub)
		sigVerifyFailed(t, r, c, "signature")
	}
}

// TestSignSecondKey: `ota-build sign` adds a second key's signature to a signed commit,
// keeping the first; libsodium verifies each with its own key (the real ostree reads both),
// `ota-build verify` accepts either public key alone and rejects a third key.
func TestSignSecondKey(t *testing.T) {
	requireTool(t, "ostree")
	requireNaCl(t)
	dir := t.TempDir()
	repo, k1, cs := sigSetup(t, dir)
	_, before := sigCommitSigs(t, repo, "main")
	k2 := sigKeygen(t, dir, "k2")
	k3 := sigKeygen(t, dir, "k3")
	refs := accRefs(t, repo)

	ota(t, "sign", "--repo", repo, "--sign-key", k2+".key", "main")
	_, sigs := sigCommitSigs(t, repo, "main")
	if len(sigs) != 2 {
		t.Fatalf("%d signatures after sign, want 2", len(sigs))
	}
	if !bytes.Equal(sigs[0], before[0]) {
		t.Errorf("the first signature changed")
	}
	if got := sigOstreeShowSigs(t, repo, cs); len(got) != 2 || !bytes.Equal(got[0], sigs[0]) || !bytes.Equal(got[1], sigs[1]) {
		t.Errorf("ostree show reads %x, ota-build %x", got, sigs)
	}
	commitFile := sigCommitFile(repo, cs)
	if ok := naclVerify(t, k1+".ostree.pub", commitFile, sigs); !ok[0] || ok[1] {
		t.Errorf("libsodium with k1: %v, want [true false]", ok)
	}
	if ok := naclVerify(t, k2+".ostree.pub", commitFile, sigs); ok[0] || !ok[1] {
		t.Errorf("libsodium with k2: %v, want [false true]", ok)
	}
	for _, pub := range []string{k1 + ".ostree.pub", k2 + ".ostree.pub", k1 + ".pub", k2 + ".pub"} {
		if r := sigVerify(t, repo, "main", pub); r.code != 0 {
			t.Errorf("verify --pubkey %s: exit %d: %s", filepath.Base(pub), r.code, r.stderr)
		}
	}
	r := sigVerify(t, repo, "main", k3+".ostree.pub")
	sigVerifyFailed(t, r, cs.String())
	accSameRefs(t, refs, accRefs(t, repo))
	accOstreeFsck(t, repo)
}

// TestSignEncryptedKey: keygen --encrypt writes an encrypted private key; commit and sign
// with the right OTA_SIGN_PASSPHRASE produce signatures libsodium verifies; with a wrong,
// empty or missing passphrase they fail with one line mentioning the passphrase and leave
// the refs and the commit's signatures as they were.
func TestSignEncryptedKey(t *testing.T) {
	requireTool(t, "ostree")
	requireNaCl(t)
	dir := t.TempDir()
	const right = "OTA_SIGN_PASSPHRASE=correct horse battery staple"
	key := sigKeygen(t, dir, "enc", right)
	pem, err := os.ReadFile(key + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pem, []byte("ENCRYPTED")) {
		t.Errorf("keygen --encrypt wrote an unencrypted key:\n%s", pem)
	}
	if st, err := os.Stat(key + ".key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode: %v %v, want 0600", st.Mode(), err)
	}

	repo := filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	accWriteTree(t, tree)
	ota(t, "init", "--repo", repo)
	r := runCmd(t, []string{right}, nil, otaBuild, "commit", "--repo", repo, "-b", "main",
		"--tree", "dir="+tree, "--timestamp", accTimestamp, "--sign-key", key+".key")
	if r.code != 0 {
		t.Fatalf("commit with the right passphrase: exit %d: %s", r.code, r.stderr)
	}
	cs, sigs := sigCommitSigs(t, repo, "main")
	if r.lastLine() != cs.String() || len(sigs) != 1 {
		t.Fatalf("commit printed %s, main is %s with %d signatures", r.lastLine(), cs, len(sigs))
	}
	if ok := naclVerify(t, key+".ostree.pub", sigCommitFile(repo, cs), sigs); !ok[0] {
		t.Errorf("libsodium rejects the signature made with the encrypted key")
	}
	if r := sigVerify(t, repo, "main", key+".pub"); r.code != 0 {
		t.Errorf("verify: exit %d: %s", r.code, r.stderr)
	}

	bad := [][]string{{"OTA_SIGN_PASSPHRASE=correct horse battery stapler"}, {"OTA_SIGN_PASSPHRASE="}}
	if _, set := os.LookupEnv("OTA_SIGN_PASSPHRASE"); !set {
		bad = append(bad, nil)
	}
	tree2 := filepath.Join(dir, "tree2")
	accWriteTree(t, tree2)
	accWriteFile(t, filepath.Join(tree2, "etc"), "new", []byte("new file\n"))
	for _, env := range bad {
		for _, args := range [][]string{
			{"commit", "--repo", repo, "-b", "main", "--tree", "dir=" + tree2, "--sign-key", key + ".key"},
			{"sign", "--repo", repo, "--sign-key", key + ".key", "main"},
			{"summary", "--repo", repo, "--sign-key", key + ".key"},
		} {
			name := strings.Join(append(env, args[0]), " ")
			if env == nil {
				name = "unset " + args[0]
			}
			t.Run(name, func(t *testing.T) {
				refs := accRefs(t, repo)
				meta, _ := os.ReadFile(sigCommitMetaFile(repo, cs))
				summary, _ := os.ReadFile(filepath.Join(repo, "summary"))
				summarySig, _ := os.ReadFile(filepath.Join(repo, "summary.sig"))
				r := runCmd(t, env, nil, otaBuild, args...)
				accOneLineError(t, r, "passphrase", key+".key")
				t.Logf("%s", strings.TrimSpace(r.stderr))
				accSameRefs(t, refs, accRefs(t, repo))
				if now, _ := os.ReadFile(sigCommitMetaFile(repo, cs)); !bytes.Equal(now, meta) {
					t.Errorf("the commit's detached metadata changed")
				}
				if now, _ := os.ReadFile(filepath.Join(repo, "summary")); !bytes.Equal(now, summary) {
					t.Errorf("the summary changed")
				}
				if now, _ := os.ReadFile(filepath.Join(repo, "summary.sig")); !bytes.Equal(now, summarySig) {
					t.Errorf("summary.sig changed")
				}
				accOstreeFsck(t, repo)
			})
		}
	}
}

// sigSummarySigs returns the ed25519 signatures in a repository's summary.sig.
func sigSummarySigs(t *testing.T, repo string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repo, "summary.sig"))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := ostree.ParseMetadata(raw)
	if err != nil {
		t.Fatalf("summary.sig is not an a{sv}: %v", err)
	}
	v, ok := ostree.Lookup(meta, ostree.SignEd25519Key)
	if !ok || v.Type != "aay" {
		t.Fatalf("summary.sig has no aay %s: %+v", ostree.SignEd25519Key, meta)
	}
	var sigs [][]byte
	for _, s := range v.Value.([]any) {
		sigs = append(sigs, s.([]byte))
	}
	return sigs
}

// TestSignSummary: `ota-build summary --sign-key` (and a commit with --sign-key, which
// regenerates the summary) writes summary.sig, an a{sv} whose ostree.sign.ed25519 entry holds
// one signature per key that libsodium verifies over the exact summary file bytes, and that
// libsodium rejects once a summary byte is flipped; the real ostree reads the summary.
func TestSignSummary(t *testing.T) {
	requireTool(t, "ostree")
	requireNaCl(t)
	cases := []struct {
		name string
		keys []string
		run  func(t *testing.T, repo, tree string, keys []string)
	}{
		{"summary command", []string{"k1"}, func(t *testing.T, repo, tree string, keys []string) {
			ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree, "--timestamp", accTimestamp)
			ota(t, "summary", "--repo", repo, "--sign-key", keys[0]+".key")
		}},
		{"summary command two keys", []string{"k1", "k2"}, func(t *testing.T, repo, tree string, keys []string) {
			ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree, "--timestamp", accTimestamp)
			ota(t, "summary", "--repo", repo, "--sign-key", keys[0]+".key", "--sign-key", keys[1]+".key")
		}},
		{"commit --sign-key", []string{"k1"}, func(t *testing.T, repo, tree string, keys []string) {
			ota(t, "commit", "--repo", repo, "-b", "main", "--tree", "dir="+tree, "--timestamp", accTimestamp,
				"--sign-key", keys[0]+".key")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var keys []string
			for _, k := range tc.keys {
				keys = append(keys, sigKeygen(t, dir, k))
			}
			repo := filepath.Join(dir, "repo")
			tree := filepath.Join(dir, "tree")
			accWriteTree(t, tree)
			ota(t, "init", "--repo", repo)
			tc.run(t, repo, tree, keys)

			summaryPath := filepath.Join(repo, "summary")
			sigs := sigSummarySigs(t, repo)
			if len(sigs) != len(keys) {
				t.Fatalf("summary.sig holds %d signatures, want %d", len(sigs), len(keys))
			}
			for i, k := range keys {
				ok := naclVerify(t, k+".ostree.pub", summaryPath, sigs)
				for j := range ok {
					if ok[j] != (i == j) {
						t.Errorf("libsodium with key %s on signature %d: %v, want %v", tc.keys[i], j, ok[j], i == j)
					}
				}
			}
			flipped := filepath.Join(dir, "summary.flipped")
			data, err := os.ReadFile(summaryPath)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 1
			accWriteFile(t, dir, "summary.flipped", data)
			if ok := naclVerify(t, keys[0]+".ostree.pub", flipped, sigs); ok[0] {
				t.Errorf("libsodium accepts the summary signature over a modified summary")
			}
			view := must(t, "ostree", "summary", "--repo="+repo, "--view").stdout
			head := strings.TrimSpace(must(t, "ostree", "rev-parse", "--repo="+repo, "main").stdout)
			if !strings.Contains(view, "* main") || !strings.Contains(view, head) {
				t.Errorf("ostree summary --view does not list main at %s:\n%s", head, view)
			}
		})
	}
}
