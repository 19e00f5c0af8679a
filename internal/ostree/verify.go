package ostree

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/flate"
)

// CorruptError reports a stored object whose bytes do not match its checksum.
type CorruptError struct {
	Type     ObjectType
	Checksum Checksum
	// Reason says what is wrong, e.g. "checksum mismatch".
	Reason string
}

// Error names the object and what is wrong with it.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s object %s is corrupt (%s)", e.Type, e.Checksum, e.Reason)
}

// verifier is the Reader of a content object opened by OpenContent: it passes on exactly
// the object's Size bytes of content, hashing them after the header as ContentChecksum
// does, and checks the sum in the read that completes the content, which for a corrupt
// object yields no bytes and the error: a caller that reads exactly Size bytes learns of
// the corruption as well as one that reads to EOF.
type verifier struct {
	c     Checksum
	src   io.Reader
	left  int64 // content bytes not yet read
	exact bool  // src cannot hold more than Size bytes
	d     hash.Hash
	sum   Checksum // where d sums, kept here so that summing allocates nothing
	err   error    // once set, returned by every Read: io.EOF after a sound object
}

// verify makes o's Reader verify the content it yields against c. An object without
// content is verified at once.
func (o *ContentObject) verify(c Checksum) error {
	v := &verifier{c: c, src: o.Reader, left: o.Size, exact: o.exact, d: sha256.New()}
	v.d.Write(o.Header.Stream())
	o.Reader = v
	if o.Size == 0 {
		if v.err = v.finish(); v.err != io.EOF {
			return v.err
		}
	}
	return nil
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.src.Read(p)
	v.d.Write(p[:n])
	v.left -= int64(n)
	switch {
	case v.left == 0:
		if v.err = v.finish(); v.err == io.EOF {
			return n, nil
		}
		// Nothing of the last read counts: callers such as io.ReadFull drop an error that
		// comes with the bytes they asked for.
		return 0, v.err
	case err == io.EOF:
		v.err = v.corrupt(fmt.Sprintf("truncated: %d bytes of content missing", v.left))
	case err != nil:
		v.err = v.readError(err)
	}
	return n, v.err
}

// finish checks the sum of a completely read object and that its stored form holds no
// more content; it returns io.EOF when the object is sound.
func (v *verifier) finish() error {
	if v.d.Sum(v.sum[:0]); v.sum != v.c {
		return v.corrupt("checksum mismatch")
	}
	if !v.exact {
		var b [1]byte
		if n, err := io.ReadFull(v.src, b[:]); n > 0 {
			return v.corrupt("content longer than its header says")
		} else if err != io.EOF {
			return v.readError(err)
		}
	}
	return io.EOF
}

func (v *verifier) corrupt(reason string) error {
	return &CorruptError{Type: ObjFile, Checksum: v.c, Reason: reason}
}

// readError describes an error reading the content: a truncated or invalid compressed
// stream means a corrupt object; anything else (EIO) is passed on.
func (v *verifier) readError(err error) error {
	var ce flate.CorruptInputError
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ce) {
		return v.corrupt(err.Error())
	}
	return fmt.Errorf("reading %s object %s: %w", ObjFile, v.c, err)
}
