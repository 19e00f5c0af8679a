package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/commit"
	otacli "github.com/otakit/ota/internal/cli"
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
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file name `PREFIX` of the key files", Required: true},
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
			pub, err := sign.GenerateKey(c.String("output"), pass)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, sign.EncodeBase64Public(pub))
			return nil
		},
	}
}

func pubkeyCommand() *cli.Command {
	return &cli.Command{
		Name:      "pubkey",
		Usage:     "print the public half of signing keys, in OSTree's base64 form",
		ArgsUsage: " ",
		Description: "Prints one line per --sign-key, as ota-build keygen writes PREFIX.ostree.pub: install\n" +
			"the output on devices as /etc/ostree/trusted.ed25519.d/NAME. Takes any key reference\n" +
			"--sign-key takes, so build systems derive the trusted key from the signing key.",
		Flags: []cli.Flag{signKeyFlag},
		Action: func(c *cli.Context) error {
			signers, err := loadSigners(c)
			if err != nil {
				return err
			}
			if len(signers) == 0 {
				return otacli.Usagef("--sign-key is required")
			}
			for _, s := range signers {
				fmt.Fprintln(c.App.Writer, sign.EncodeBase64Public(s.PublicKey()))
			}
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
				return otacli.Usagef("--sign-key is required")
			}
			return addSignatures(repo, cs, signers)
		},
	}
}

// addSignatures signs the commit cs with those of signers that have not signed it yet,
// holding the repository lock.
func addSignatures(repo *ostree.Repo, cs ostree.Checksum, signers []*sign.Signer) error {
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
}

// Reasons a verification failed, in the verify --json report.
const (
	reasonUnsigned = "unsigned"           // the commit carries no signature
	reasonNoValid  = "no-valid-signature" // none of its signatures verifies with the keys
)

// verifyJSON is the report of verify --json.
type verifyJSON struct {
	Checksum string `json:"checksum"`
	Valid    bool   `json:"valid"`
	// Reason says why the check failed: reasonUnsigned or reasonNoValid.
	Reason     string `json:"reason,omitempty"`
	Signatures int    `json:"signatures"`
	Keys       int    `json:"keys"`
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a commit's ed25519 signatures (exit status 1 when none is valid)",
		ArgsUsage: "REF|CHECKSUM",
		Description: "Exit status 0 when a signature verifies with one of the keys. A commit without a valid\n" +
			"signature and an error that stopped the check (an unreadable repository or key, a missing\n" +
			"commit) both exit 1; the message tells them apart (\"commit C: no valid signature...\"), and\n" +
			"--json prints a report, {\"valid\": false, \"reason\": \"unsigned\" or \"no-valid-signature\"},\n" +
			"only when the check ran.",
		Flags: []cli.Flag{repoFlag,
			&cli.StringSliceFlag{Name: "pubkey", Usage: "public key `FILE` (PEM, or OSTree base64 lines); repeatable", Required: true},
			jsonFlag()},
		Action: func(c *cli.Context) error {
			repo, cs, err := openRev(c)
			if err != nil {
				return err
			}
			pubs, err := loadPubkeys(c.StringSlice("pubkey"))
			if err != nil {
				return err
			}
			_, data, err := repo.ReadCommit(cs)
			if err != nil {
				return err
			}
			sigs, err := commit.Signatures(repo, cs)
			if err != nil {
				return err
			}
			rep := verifyJSON{Checksum: cs.String(), Valid: true, Signatures: len(sigs), Keys: len(pubs)}
			verr := sign.Verify(pubs, data, sigs)
			switch {
			case errors.Is(verr, sign.ErrNoSignatures):
				rep.Valid, rep.Reason = false, reasonUnsigned
			case verr != nil:
				rep.Valid, rep.Reason = false, reasonNoValid
			}
			if c.Bool("json") {
				if err := otacli.PrintJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else if rep.Valid {
				fmt.Fprintf(c.App.Writer, "commit %s: good signature\n", cs)
			}
			if !rep.Valid {
				return cli.Exit(fmt.Sprintf("commit %s: no valid signature: %v", cs, verr), 1)
			}
			return nil
		},
	}
}

// openRev opens --repo and resolves the command's single REF|CHECKSUM argument.
func openRev(c *cli.Context) (*ostree.Repo, ostree.Checksum, error) {
	for _, a := range c.Args().Tail() {
		if strings.HasPrefix(a, "-") {
			return nil, ostree.Checksum{}, otacli.Usagef("option %s after REF: put options before it", a)
		}
	}
	if c.NArg() != 1 {
		return nil, ostree.Checksum{}, otacli.Usagef("want exactly one REF or CHECKSUM argument")
	}
	repo, err := ostree.Open(c.String("repo"))
	if err != nil {
		return nil, ostree.Checksum{}, err
	}
	cs, err := repo.Resolve(c.Args().First())
	return repo, cs, err
}
