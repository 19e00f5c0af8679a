package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Suffixes of the files written by [GenerateKey].
const (
	// PrivateKeySuffix names the PEM private key file.
	PrivateKeySuffix = ".key"
	// PublicKeySuffix names the PEM public key file.
	PublicKeySuffix = ".pub"
	// OSTreePublicKeySuffix names the public key file in OSTree's format, ready
	// to be installed into /etc/ostree/trusted.ed25519.d/ or concatenated into
	// a trusted.ed25519 file.
	OSTreePublicKeySuffix = ".ostree.pub"
)

// GenerateKey creates a new ed25519 key pair from crypto/rand and writes it
// to three new files:
//
//   - prefix+".key", the private key, mode 0600: PEM "PRIVATE KEY" (PKCS#8),
//     or, if passphrase is not empty, sigstore's "ENCRYPTED SIGSTORE PRIVATE
//     KEY" encrypted with passphrase ([Open] then needs it in
//     [PassphraseEnv]);
//   - prefix+".pub", the public key, mode 0644: PEM "PUBLIC KEY" (PKIX);
//   - prefix+".ostree.pub", the public key, mode 0644: one line of base64 as
//     read by OSTree's ed25519 sign engine.
//
// It fails, naming the file, if any of the three already exists. It writes
// each file under a temporary name in the same directory and renames it into
// place only once all three are written, so that an error leaves none of them
// behind. (A file created by someone else between the check and the rename is
// replaced.) It returns the public key.
func GenerateKey(prefix string, passphrase []byte) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privPEM, err := privateKeyPEM(priv, passphrase)
	if err != nil {
		return nil, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, err
	}
	err = writeNewFiles([]newFile{
		{prefix + PrivateKeySuffix, privPEM, 0o600},
		{prefix + PublicKeySuffix, pubPEM, 0o644},
		{prefix + OSTreePublicKeySuffix, []byte(EncodeBase64Public(pub) + "\n"), 0o644},
	})
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// privateKeyPEM returns priv as PEM, encrypted with passphrase unless it is
// empty.
func privateKeyPEM(priv ed25519.PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return cryptoutils.MarshalPrivateKeyToPEM(priv)
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, cryptoutils.StaticPasswordFunc(passphrase))
	if err != nil {
		return nil, err
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), nil
}

// A newFile is a file for writeNewFiles to create.
type newFile struct {
	path string
	data []byte
	mode fs.FileMode
}

// writeNewFiles creates all of files or, on error, none of them. It fails if
// any of them already exists.
func writeNewFiles(files []newFile) (err error) {
	for _, f := range files {
		_, err := os.Lstat(f.path)
		if err == nil {
			return fmt.Errorf("%s: already exists; not overwriting it", f.path)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	var tmps, done []string
	defer func() {
		if err != nil {
			for _, name := range append(tmps, done...) {
				os.Remove(name)
			}
		}
	}()
	for _, f := range files {
		tmp, err := writeTemp(f)
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], f.path); err != nil {
			return err
		}
		done = append(done, f.path)
	}
	return nil
}

// writeTemp writes f's data with f's mode to a new temporary file beside
// f.path and returns its name.
func writeTemp(f newFile) (name string, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".tmp*")
	if err != nil {
		return "", pathError(f.path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = pathError(f.path, err)
		}
	}()
	if err := tmp.Chmod(f.mode); err != nil {
		return "", err
	}
	if _, err := tmp.Write(f.data); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	return tmp.Name(), tmp.Close()
}

// pathError returns err, about a temporary file for path, as an error about
// path.
func pathError(path string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}
