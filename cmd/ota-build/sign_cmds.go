package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/sign"
)

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:      "keygen",
		Usage:     "generate an ed25519 signing key pair",
		ArgsUsage: " ",
		Description: "Writes PREFIX.key (private, PEM PKCS#8, mode 0600), PREFIX.pub (public, PEM) and\n" +
			"PREFIX.ostree.pub (public, OSTree base64: install it in /etc/ostree/trusted.ed25519.d/).\n" +
			"With --encrypt the private key is encrypted with the passphrase in $" + sign.PassphraseEnv + ".",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "file name `PREFIX`", Required: true},
			&cli.BoolFlag{Name: "encrypt", Usage: "encrypt the private key with $" + sign.PassphraseEnv},
		},
		Action: func(c *cli.Context) error {
			var pass []byte
			if c.Bool("encrypt") {
				v, ok := os.LookupEnv(sign.PassphraseEnv)
				if !ok || v == "" {
					return fmt.Errorf("--encrypt: set %s to the passphrase", sign.PassphraseEnv)
				}
				pass = []byte(v)
			}
			pub, err := sign.GenerateKey(c.String("out"), pass)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, sign.EncodeBase64Public(pub))
			return nil
		},
	}
}

func signCommand() *cli.Command {
	return &cli.Command{
		Name:      "sign",
		Usage:     "add ed25519 signatures to an existing commit (one per key: signing again changes nothing)",
		ArgsUsage: "REF|CHECKSUM",
		Flags:     []cli.Flag{repoFlag, signKeyFlag},
		Action: func(c *cli.Context) error {
			repo, cs, err := openRev(c)
			if err != nil {
				return err
			}
			signers, err := loadSigners(c)
			if err != nil {
				return err
			}
			if len(signers) == 0 {
				return errors.New("--sign-key is required")
			}
			_, data, err := repo.ReadCommit(cs)
			if err != nil {
				return err
			}
			unlock, err := repo.Lock()
			if err != nil {
				return err
			}
			defer unlock()
			_, err = commit.AddSignatures(repo, cs, data, signers)
			return err
		},
	}
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a commit's ed25519 signatures (exit status 1 when none is valid)",
		ArgsUsage: "REF|CHECKSUM",
		Flags: []cli.Flag{repoFlag,
			&cli.StringSliceFlag{Name: "pubkey", Usage: "public key `FILE` (PEM, or OSTree base64 lines); repeatable", Required: true}},
		Action: func(c *cli.Context) error {
			repo, cs, err := openRev(c)
			if err != nil {
				return err
			}
			var pubs []ed25519.PublicKey
			for _, p := range c.StringSlice("pubkey") {
				keys, err := sign.LoadPublicKeys(p)
				if err != nil {
					return err
				}
				pubs = append(pubs, keys...)
			}
			_, data, err := repo.ReadCommit(cs)
			if err != nil {
				return err
			}
			sigs, err := commit.Signatures(repo, cs)
			if err != nil {
				return err
			}
			if err := sign.Verify(pubs, data, sigs); err != nil {
				return cli.Exit(fmt.Sprintf("commit %s: %v", cs, err), 1)
			}
			fmt.Fprintf(c.App.Writer, "commit %s: good signature\n", cs)
			return nil
		},
	}
}

// openRev opens --repo and resolves the command's single REF|CHECKSUM argument.
func openRev(c *cli.Context) (*ostree.Repo, ostree.Checksum, error) {
	for _, a := range c.Args().Tail() {
		if strings.HasPrefix(a, "-") {
			return nil, ostree.Checksum{}, fmt.Errorf("%s: option %s after REF: put options before it", c.Command.Name, a)
		}
	}
	if c.NArg() != 1 {
		return nil, ostree.Checksum{}, fmt.Errorf("%s: want exactly one REF or CHECKSUM argument", c.Command.Name)
	}
	repo, err := ostree.Open(c.String("repo"))
	if err != nil {
		return nil, ostree.Checksum{}, err
	}
	cs, err := repo.Resolve(c.Args().First())
	return repo, cs, err
}
