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

// OpenTarFile opens the tarball at path (see OpenTarNamed). Closing the source closes the
// file.
func OpenTarFile(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	src, err := openNamed(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	src.file = f
	return src, nil
}

// OpenTarNamed is OpenTar for a stream called name, such as a tarball's path or "standard
// input": every error, from opening, from Next or from reading an entry's Content, starts
// with name, and so do the errors a consumer reports about entries when it prefixes them
// with the source's Name.
func OpenTarNamed(r io.Reader, name string) (Source, error) {
	src, err := openNamed(r, name)
	if err != nil {
		return nil, err
	}
	return src, nil
}

func openNamed(r io.Reader, name string) (*namedTar, error) {
	src, err := OpenTar(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &namedTar{Source: src, name: name}, nil
}

// namedTar is a tar source with a name.
type namedTar struct {
	Source
	name string
	file *os.File // closed with the source, if set
}

func (s *namedTar) Name() string { return s.name }

func (s *namedTar) Next() (*Entry, error) {
	e, err := s.Source.Next()
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", s.name, err)
	}
	if e != nil && e.Content != nil {
		e.Content = namedReader{e.Content, s.name}
	}
	return e, err
}

func (s *namedTar) Close() error {
	err := s.Source.Close()
	if s.file != nil {
		if ferr := s.file.Close(); err == nil {
			err = ferr
		}
	}
	return err
}
