package ostree

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// WriteCheckedContent is WriteContent for content not yet verified, such as the objects a
// static delta builds: header and content are hashed as they are written, and the object
// is stored only when they hash to c and content holds exactly size bytes, else the write
// fails with a *CorruptError and nothing is stored. Verifying while writing reads the
// content once, where computing ContentChecksum first reads it twice. An object already
// present is kept without reading content.
func (r *Repo) WriteCheckedContent(c Checksum, h *FileHeader, content io.Reader, size int64, level int) (bool, error) {
	if h.IsSymlink() {
		// The target, in the header, is all there is to verify.
		if sum, _ := ContentChecksum(h, nil); sum != c {
			return false, &CorruptError{Type: ObjFile, Checksum: c, Reason: "checksum mismatch"}
		}
		return r.WriteContent(c, h, nil, 0, level)
	}
	v := &verifier{c: c, src: content, left: size, d: sha256.New()}
	v.d.Write(h.Stream())
	if size == 0 {
		if v.err = v.finish(); v.err != io.EOF {
			return false, v.err
		}
	}
	stored, err := r.WriteContent(c, h, v, size, level)
	if err != nil {
		return false, err // WriteContent reports an object it failed to store as stored
	}
	return stored, nil
}

// WriteContentFrom is WriteCheckedContent for content that produce writes rather than a
// reader yields: a bsdiff patch, which writes the new file as it applies. The content
// flows through a pipe into the object's file, so that however large, it is never held
// in memory. produce is not called for an object already present (nor for a symlink);
// an error of produce fails the write and nothing is stored.
func (r *Repo) WriteContentFrom(c Checksum, h *FileHeader, size int64, level int, produce func(io.Writer) error) (bool, error) {
	if h.IsSymlink() {
		return r.WriteCheckedContent(c, h, nil, 0, level)
	}
	if err := h.Validate(); err != nil {
		return false, fmt.Errorf("object %s: %w", c, err)
	}
	if r.HasObject(c, ObjFile) {
		return false, nil
	}
	pr, pw := io.Pipe()
	produced := make(chan error, 1)
	go func() {
		err := produce(pw)
		pw.CloseWithError(err) // nil: the reader sees EOF
		produced <- err
	}()
	stored, err := r.WriteCheckedContent(c, h, pr, size, level)
	// A write that stopped early leaves produce blocked in a Write: end it.
	pr.CloseWithError(errAbandoned)
	if perr := <-produced; perr != nil && !errors.Is(perr, errAbandoned) {
		// The producer's own error says more than the truncation the verifier saw.
		return false, perr
	}
	return stored, err
}

// errAbandoned ends a producer whose content is no longer read.
var errAbandoned = errors.New("content no longer read")

// OpenContentUnchecked is OpenContent without the verification, for a caller whose every
// product is checked on its own: a static delta's read sources, as each object built from
// one is stored by WriteCheckedContent, which a corrupt source fails. Verifying the source
// too would repeat that check at the cost of hashing it.
func (r *Repo) OpenContentUnchecked(c Checksum) (*ContentObject, error) {
	return r.openContent(c, false)
}
