package commit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/delta"
)

// Example is what another module can do with the exported packages alone: create a
// repository, commit a directory tree signed by a key it holds, and ship the commit to a
// second repository as a static delta that is applied only if that key signed the commit.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ota-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A small root filesystem.
	tree := filepath.Join(dir, "rootfs")
	for name, body := range map[string]string{
		"usr/bin/hello":        "#!/bin/sh\necho hello\n",
		"usr/lib/os-release":   "ID=myos\n",
		"usr/share/doc/README": "",
	} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			log.Fatal(err)
		}
	}

	// Commit it, signed, to the branch myos/stable of a new archive repository.
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := commit.NewSigner(key) // any crypto.Signer holding an ed25519 key
	if err != nil {
		log.Fatal(err)
	}
	repo, err := commit.InitRepo(filepath.Join(dir, "repo"), "archive")
	if err != nil {
		log.Fatal(err)
	}
	src, err := commit.OpenTree(tree)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	root := uint32(0)
	res, err := commit.Commit(ctx, repo, src, commit.Options{
		Branch:    "myos/stable",
		Subject:   "First release",
		Version:   "1.0",
		Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		OwnerUID:  &root,
		OwnerGID:  &root,
		Signers:   []*commit.Signer{signer},
	})
	if err != nil {
		log.Fatal(err)
	}
	head, err := repo.Resolve("myos/stable")
	if err != nil {
		log.Fatal(err)
	}
	sigs, err := commit.Signatures(repo, res.Commit)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("files: %d, branch at the commit: %v, signatures: %d\n", res.Files, head == res.Commit, len(sigs))

	// Ship it: a delta from scratch, applied to a second repository that trusts the key.
	d, err := delta.Generate(ctx, repo, delta.Options{To: res.Commit})
	if err != nil {
		log.Fatal(err)
	}
	loaded, err := delta.Load(filepath.Join(dir, "repo", d.Dir), nil)
	if err != nil {
		log.Fatal(err)
	}
	device, err := commit.InitRepo(filepath.Join(dir, "device"), "bare-user-only")
	if err != nil {
		log.Fatal(err)
	}
	stranger, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	err = delta.Apply(ctx, device, loaded, delta.ApplyOptions{Keys: []ed25519.PublicKey{stranger}, Ref: "myos/stable"})
	fmt.Printf("refused when another key is trusted: %v\n", err != nil)
	if err := delta.Apply(ctx, device, loaded, delta.ApplyOptions{Keys: []ed25519.PublicKey{pub}, Ref: "myos/stable"}); err != nil {
		log.Fatal(err)
	}
	got, err := device.Resolve("myos/stable")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("device branch at the commit: %v\n", got == res.Commit)
	// Output:
	// files: 3, branch at the commit: true, signatures: 1
	// refused when another key is trusted: true
	// device branch at the commit: true
}
