package bmap

import (
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/otakit/ota/internal/scratch"
)

// CompressZstd writes src, zstd-compressed at the default level with a
// multi-threaded encoder, to dst, with mode 0666 less the umask. It streams with
// bounded memory and writes to a temporary file in dst's directory that is
// renamed into place only on success, so no partial dst is left behind on error;
// a temporary file left by a killed process is removed by the next call for the
// same dst (see package scratch).
func CompressZstd(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := scratch.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".ota-tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	enc, err := zstd.NewWriter(tmp)
	if err != nil {
		return err
	}
	if _, err = io.Copy(enc, in); err != nil {
		enc.Close()
		return err
	}
	if err = enc.Close(); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return tmp.Close()
}
