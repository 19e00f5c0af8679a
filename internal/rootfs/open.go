package rootfs

import (
	"fmt"
	"io"
	"os"
)

// Open opens a root filesystem given by path: a directory (see WalkDir) or a tarball (see
// OpenTarFile).
func Open(path string) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return WalkDir(path)
	}
	return OpenTarFile(path)
}

// OpenTarFile opens the tarball at path (see OpenTar). Its errors name path, and closing
// the source closes the file.
func OpenTarFile(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	src, err := OpenTar(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tarFile{src, f}, nil
}

// tarFile is a tar source read from a named file.
type tarFile struct {
	Source
	f *os.File
}

func (c tarFile) Next() (*Entry, error) {
	e, err := c.Source.Next()
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", c.f.Name(), err)
	}
	return e, err
}

func (c tarFile) Close() error {
	err := c.Source.Close()
	if ferr := c.f.Close(); err == nil {
		err = ferr
	}
	return err
}
