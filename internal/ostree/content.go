package ostree

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/flate"
	"golang.org/x/sys/unix"

	"github.com/otakit/ota/internal/gvariant"
)

// ContentChecksum returns the checksum of a content object: SHA-256 of the canonical stream,
// header then content (empty for symlinks).
func ContentChecksum(h *FileHeader, content io.Reader) (Checksum, error) {
	d := sha256.New()
	d.Write(h.Stream())
	if content != nil && !h.IsSymlink() {
		if _, err := io.Copy(d, content); err != nil {
			return Checksum{}, err
		}
	}
	var c Checksum
	d.Sum(c[:0])
	return c, nil
}

// DefaultCompressionLevel is the deflate level of archive-mode content: the level ostree
// itself uses. Any level produces objects every reader accepts.
const DefaultCompressionLevel = 6

// freeList keeps up to cap(list) idle values for reuse. Unlike a sync.Pool it is not
// emptied by garbage collection, so the large buffers of deflaters are allocated once.
type freeList[T any] chan T

func (l freeList[T]) get(alloc func() T) T {
	select {
	case v := <-l:
		return v
	default:
		return alloc()
	}
}

func (l freeList[T]) put(v T) {
	select {
	case l <- v:
	default:
	}
}

var writeBuffers = make(freeList[*bufio.Writer], 64)

// deflaters holds idle flate writers by level; one costs hundreds of kilobytes.
var deflaters [10]freeList[*flate.Writer]

func init() {
	for i := range deflaters {
		deflaters[i] = make(freeList[*flate.Writer], 64)
	}
}

func deflate(dst io.Writer, src io.Reader, level int) error {
	if level < flate.BestSpeed || level > flate.BestCompression {
		level = DefaultCompressionLevel
	}
	w := deflaters[level].get(func() *flate.Writer {
		w, _ := flate.NewWriter(nil, level) // fails only for invalid levels
		return w
	})
	defer deflaters[level].put(w)
	w.Reset(dst)
	if _, err := io.Copy(w, src); err != nil {
		return err
	}
	return w.Close()
}

// bareUserMeta serialises the user.ostreemeta xattr of bare-user repositories.
func bareUserMeta(h *FileHeader) []byte {
	return gvariant.MustEncode(DirMetaType, []any{be32(h.UID), be32(h.GID), be32(h.Mode), xattrsValue(h.Xattrs)})
}

// WriteContent stores a content object whose checksum the caller has computed, taking
// content (ignored for symlinks) of the given size, and reports whether it stored it: an
// object already present is not rewritten. level is the deflate level for archive
// repositories. In bare mode the process must be allowed to chown and set xattrs (see
// WriteContentUnowned).
func (r *Repo) WriteContent(c Checksum, h *FileHeader, content io.Reader, size int64, level int) (bool, error) {
	return r.writeContent(c, h, content, size, level, true)
}

// WriteContentUnowned is WriteContent for a bare repository written without the privileges
// ownership needs: the object keeps the writer's owner, gets no extended attributes and
// gets its permission bits plus u+rw (so the writer can read it back). The caller keeps
// h's owner, mode and xattrs and applies them elsewhere: image builders do, inside the
// filesystem they write.
func (r *Repo) WriteContentUnowned(c Checksum, h *FileHeader, content io.Reader, size int64) (bool, error) {
	if r.Mode != ModeBare {
		return false, fmt.Errorf("object %s: unowned writes are for bare repositories, not %s", c, r.Mode)
	}
	return r.writeContent(c, h, content, size, 0, false)
}

// writeContent is WriteContent, or WriteContentUnowned when owned is false.
func (r *Repo) writeContent(c Checksum, h *FileHeader, content io.Reader, size int64, level int, owned bool) (bool, error) {
	if err := h.Validate(); err != nil {
		return false, fmt.Errorf("object %s: %w", c, err)
	}
	if r.HasObject(c, ObjFile) {
		return false, nil
	}
	return true, r.storeContent(c, h, content, size, level, owned)
}

// storeContent writes a validated content object the repository lacks.
func (r *Repo) storeContent(c Checksum, h *FileHeader, content io.Reader, size int64, level int, owned bool) error {
	if h.IsSymlink() {
		size, content = 0, nil
	}
	switch r.Mode {
	case ModeArchive:
		return r.placeObject(c, ObjFile, func(f *os.File) error {
			// The deflater emits many small writes; batch them into few system calls.
			bw := writeBuffers.get(func() *bufio.Writer { return bufio.NewWriterSize(nil, 256<<10) })
			defer writeBuffers.put(bw)
			bw.Reset(f)
			bw.Write(h.ArchiveHeader(uint64(size)))
			if content != nil {
				if err := deflate(bw, content, level); err != nil {
					return err
				}
			}
			return bw.Flush()
		})
	case ModeBareUser:
		if h.IsSymlink() {
			content = bytes.NewReader([]byte(h.LinkTarget))
		}
		return r.placeObject(c, ObjFile, func(f *os.File) error {
			if err := writeBareFile(f, content, h.Mode&0o775|0o400); err != nil {
				return err
			}
			return unix.Fsetxattr(int(f.Fd()), "user.ostreemeta", bareUserMeta(h), 0)
		})
	case ModeBare, ModeBareUserOnly:
		if h.IsSymlink() {
			return r.placeSymlink(c, h, owned)
		}
		perm := h.Mode & ModePermMask
		if r.Mode == ModeBareUserOnly && perm&0o7002 != 0 {
			return fmt.Errorf("object %s: mode %04o cannot be stored in a bare-user-only repository", c, perm)
		}
		if !owned {
			return r.placeObject(c, ObjFile, func(f *os.File) error {
				return writeBareFile(f, content, perm|0o600)
			})
		}
		return r.placeObject(c, ObjFile, func(f *os.File) error {
			if err := writeBareFile(f, content, perm); err != nil || r.Mode == ModeBareUserOnly {
				return err
			}
			if err := f.Chown(int(h.UID), int(h.GID)); err != nil {
				return err
			}
			for _, x := range h.Xattrs {
				if err := unix.Fsetxattr(int(f.Fd()), x.Name, x.Value, 0); err != nil {
					return fmt.Errorf("setting xattr %s: %w", x.Name, err)
				}
			}
			// chown clears setuid bits; restore the mode afterwards.
			return f.Chmod(unixPerm(perm))
		})
	}
	return fmt.Errorf("unsupported repository mode %s", r.Mode)
}

func unixPerm(p uint32) os.FileMode {
	m := os.FileMode(p & 0o777)
	if p&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if p&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if p&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func writeBareFile(f *os.File, content io.Reader, perm uint32) error {
	if err := copyTo(f, content); err != nil {
		return err
	}
	if err := f.Chmod(unixPerm(perm)); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFD(int(f.Fd())), []unix.Timespec{{}, {}}, 0)
}

// copyBuffers are the buffers of copyTo.
var copyBuffers = make(freeList[*[]byte], 64)

// copyTo copies content into f: as io.Copy does when the kernel can copy (content is a
// file, or a file's prefix) or content writes itself out; else through a reused buffer,
// where io.Copy would allocate one per object.
func copyTo(f *os.File, content io.Reader) error {
	switch r := content.(type) {
	case *os.File, io.WriterTo:
		_, err := io.Copy(f, content)
		return err
	case *io.LimitedReader:
		if _, ok := r.R.(*os.File); ok {
			_, err := io.Copy(f, content)
			return err
		}
	}
	buf := copyBuffers.get(func() *[]byte { b := make([]byte, 64<<10); return &b })
	defer copyBuffers.put(buf)
	_, err := io.CopyBuffer(struct{ io.Writer }{f}, content, *buf)
	return err
}

// placeSymlink stores a symlink object of a bare or bare-user-only repository, with h's
// owner and xattrs in bare mode when owned.
func (r *Repo) placeSymlink(c Checksum, h *FileHeader, owned bool) error {
	rel := r.objectRel(c, ObjFile)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(r.Path, rel)), 0o755); err != nil {
		return err
	}
	f, err := r.CreateTemp(0o644)
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	os.Remove(tmp)
	err = os.Symlink(h.LinkTarget, tmp)
	if err == nil && r.Mode == ModeBare && owned {
		err = os.Lchown(tmp, int(h.UID), int(h.GID))
		for _, x := range h.Xattrs {
			if err == nil {
				err = unix.Lsetxattr(tmp, x.Name, x.Value, 0)
			}
		}
	}
	if err == nil {
		err = unix.UtimesNanoAt(unix.AT_FDCWD, tmp, []unix.Timespec{{}, {}}, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err == nil {
		err = rename(tmp, filepath.Join(r.Path, rel))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	return nil
}

// ContentObject is an opened content object.
type ContentObject struct {
	Header FileHeader
	// Size is the content length (0 for symlinks).
	Size int64
	// Reader streams the content; empty for symlinks. For objects opened by OpenContent
	// it verifies the object as it goes (see OpenContent).
	io.Reader
	closer io.Closer
	// exact is set when the source cannot hold more than Size bytes (a file whose size
	// is Size), so the verifier need not look for more.
	exact bool
	// file is the object's file when it holds the content as is (bare modes).
	file *os.File
}

// ContentAt returns the object's content for random access when the repository stores it
// in a plain file (the bare modes), else nil. Reads through it are not verified: a caller
// reads the object to its end through Reader first, which verifies it, or verifies what it
// makes of them (OpenContentUnchecked).
func (o *ContentObject) ContentAt() io.ReaderAt {
	if o.file == nil {
		return nil
	}
	return o.file
}

// Close releases the object's file.
func (o *ContentObject) Close() error {
	if o.closer == nil {
		return nil
	}
	return o.closer.Close()
}

// OpenContent opens a stored content object in any repository mode, for reading its
// content, which it verifies: the Read that completes the content (Size bytes) yields
// nothing but a *CorruptError when the SHA-256 of header and content, as ContentChecksum
// defines it, is not c, or when the object holds less or more content than its header
// says. Objects without content (symlinks, empty files) are verified here. Callers that
// produce anything from an object must read all of its content, so that what they
// produce has been verified: reading stopped short verifies nothing.
//
// Every mode is verified, bare ones too although their objects are plain files, as
// `ostree pull-local --untrusted` and every HTTP pull do: a flipped bit on disk would
// otherwise go into every image, delta and deployment made from the repository, signed.
// Hashing (SHA-256 at 1.5 GB/s on one core with SHA-NI) costs a fraction of inflating an
// archive object, though several times the copy of a bare one.
func (r *Repo) OpenContent(c Checksum) (*ContentObject, error) {
	o, err := r.openContent(c, false)
	if err != nil {
		return nil, err
	}
	if err := o.verify(c); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// openContent opens a content object without verifying it; advise asks the kernel to read
// the object ahead, for callers that read the content soon after.
func (r *Repo) openContent(c Checksum, advise bool) (*ContentObject, error) {
	p := r.ObjectPath(c, ObjFile)
	if r.Mode == ModeBare || r.Mode == ModeBareUserOnly {
		return openBare(p, r.Mode == ModeBareUserOnly)
	}
	f, err := openRead(p)
	if err != nil {
		return nil, err
	}
	if advise {
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED) // only advice: errors do not matter
	}
	o, err := r.openFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return o, nil
}

func (r *Repo) openFile(f *os.File) (*ContentObject, error) {
	if r.Mode == ModeBareUser {
		buf := make([]byte, 4096)
		n, err := unix.Fgetxattr(int(f.Fd()), "user.ostreemeta", buf)
		if err != nil {
			return nil, fmt.Errorf("reading user.ostreemeta: %w", err)
		}
		m, err := ParseDirMetaLike(buf[:n])
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		o := &ContentObject{Header: m, Size: st.Size(), Reader: f, closer: f, exact: true, file: f}
		if m.IsSymlink() {
			target, err := io.ReadAll(io.LimitReader(f, 1<<16))
			if err != nil {
				return nil, err
			}
			o.Header.LinkTarget, o.Size, o.Reader, o.file = string(target), 0, bytes.NewReader(nil), nil
		}
		return o, o.Header.Validate()
	}
	return openArchive(f, f)
}

// OpenArchive reads a content object in the archive form (.filez: header, then deflated
// content) from r, as a server sends it, and returns it with a Reader that verifies it
// against c as OpenContent's does. The object is verified only once its content is read
// to the end; its header is bounded (MaxHeaderSize) and validated.
func OpenArchive(r io.Reader, c Checksum) (*ContentObject, error) {
	o, err := openArchive(r, nil)
	if err != nil {
		return nil, fmt.Errorf("%s object %s: %w", ObjFile, c, err)
	}
	if err := o.Header.Validate(); err != nil {
		o.Close()
		return nil, fmt.Errorf("%s object %s: %w", ObjFile, c, err)
	}
	if err := o.verify(c); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// openArchive reads an archive-mode object from r; closer (nil: none) is closed with it.
func openArchive(r io.Reader, closer io.Closer) (*ContentObject, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("truncated file header: %w", err)
	}
	n := int(pre[0])<<24 | int(pre[1])<<16 | int(pre[2])<<8 | int(pre[3])
	if n > MaxHeaderSize {
		return nil, errors.New("file header too large")
	}
	hb := make([]byte, 8+n)
	copy(hb, pre[:])
	if _, err := io.ReadFull(r, hb[8:]); err != nil {
		return nil, fmt.Errorf("truncated file header: %w", err)
	}
	h, size, _, err := ParseArchiveHeader(hb)
	if err != nil {
		return nil, err
	}
	if size > math.MaxInt64 { // as an int64 Size, negative: the verifier would panic
		return nil, fmt.Errorf("content size %d out of range", size)
	}
	if closer == nil {
		closer = closeFunc(func() error { return nil })
	}
	o := &ContentObject{Header: h, closer: closer, Reader: bytes.NewReader(nil), exact: true}
	if !h.IsSymlink() {
		in := inflaters.get(func() *inflater { return &inflater{br: bufio.NewReaderSize(nil, 64<<10)} })
		in.br.Reset(r)
		if in.fr == nil {
			in.fr = flate.NewReader(in.br)
		} else if err := in.fr.(flate.Resetter).Reset(in.br, nil); err != nil {
			return nil, err
		}
		// The stream may inflate to more than size: only the verifier's reads stop at it.
		o.Size, o.Reader, o.exact = int64(size), in.fr, false
		o.closer = closeFunc(func() error {
			inflaters.put(in)
			return closer.Close()
		})
	}
	return o, nil
}

// inflater is a reusable decompressor reading through a large buffer: objects are opened
// by the thousand, and a fresh decompressor per object costs more than a small object's
// decompression.
type inflater struct {
	br *bufio.Reader
	fr io.ReadCloser // a flate.Resetter
}

var inflaters = make(freeList[*inflater], 64)

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// ReadHeader returns a content object's header and content size without reading the
// content. It asks the kernel to read the object ahead, for callers that read the content
// soon after. An object without content (a symlink or an empty file) is verified, as its
// header is all there is of it; the content of others is verified by OpenContent.
func (r *Repo) ReadHeader(c Checksum) (FileHeader, int64, error) {
	return r.header(c, true)
}

// header is ReadHeader, with the read-ahead advice optional.
func (r *Repo) header(c Checksum, advise bool) (FileHeader, int64, error) {
	o, err := r.openContent(c, advise)
	if err != nil {
		return FileHeader{}, 0, err
	}
	defer o.Close()
	if o.Size == 0 {
		if err := o.verify(c); err != nil {
			return FileHeader{}, 0, err
		}
	}
	return o.Header, o.Size, nil
}

// ReadContent returns a content object's header and its whole content, which is empty for
// symlinks (the target is in the header), verified as OpenContent does.
func (r *Repo) ReadContent(c Checksum) (FileHeader, []byte, error) {
	obj, err := r.OpenContent(c)
	if err != nil {
		return FileHeader{}, nil, err
	}
	defer obj.Close()
	buf := make([]byte, obj.Size)
	if _, err := io.ReadFull(obj, buf); err != nil {
		return obj.Header, nil, err
	}
	return obj.Header, buf, nil
}

// ParseDirMetaLike parses the (uuua(ayay)) user.ostreemeta xattr of a bare-user object into
// a header (without the symlink target, which is the object's content).
func ParseDirMetaLike(data []byte) (FileHeader, error) {
	v, err := gvariant.Decode(DirMetaType, data)
	if err != nil {
		return FileHeader{}, fmt.Errorf("user.ostreemeta: %w", err)
	}
	f := v.([]any)
	h := FileHeader{UID: be32(f[0].(uint32)), GID: be32(f[1].(uint32)), Mode: be32(f[2].(uint32))}
	h.Xattrs, err = parseXattrs(f[3])
	return h, err
}

// openBare opens an object of a bare or bare-user-only repository, whose metadata is the
// file's own. In bare-user-only repositories, as in ostree, owners are 0 and xattrs are
// none (what commits to them record), whoever owns the files and whatever labels the
// filesystem gives them.
func openBare(p string, userOnly bool) (*ContentObject, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	h := FileHeader{Mode: st.Mode}
	if !userOnly {
		xattrs, err := ReadXattrs(p)
		if err != nil {
			return nil, err
		}
		h.UID, h.GID, h.Xattrs = st.Uid, st.Gid, xattrs
	}
	var err error
	if h.IsSymlink() {
		if h.LinkTarget, err = os.Readlink(p); err != nil {
			return nil, err
		}
		return &ContentObject{Header: h, Reader: bytes.NewReader(nil), exact: true}, h.Validate()
	}
	f, err := openRead(p)
	if err != nil {
		return nil, err
	}
	return &ContentObject{Header: h, Size: st.Size, Reader: f, closer: f, exact: true, file: f}, h.Validate()
}

// ReadXattrs returns the extended attributes of a path (not following symlinks), sorted by
// name, skipping empty values; filesystems without xattr support yield none.
func ReadXattrs(p string) ([]Xattr, error) {
	list, err := xattrCall(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	} else if err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	var out []Xattr
	for _, name := range strings.Split(string(list), "\x00") {
		if name == "" {
			continue
		}
		val, err := xattrCall(func(b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		} else if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		if len(val) > 0 {
			out = append(out, Xattr{Name: name, Value: val})
		}
	}
	SortXattrs(out)
	return out, nil
}

// xattrCall runs a size-probing xattr system call: first with no buffer to learn the size,
// then with a buffer that large, again if the value grew in between.
func xattrCall(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		b := make([]byte, n)
		n, err = call(b)
		if errors.Is(err, unix.ERANGE) {
			continue
		} else if err != nil {
			return nil, err
		}
		return b[:n], nil
	}
}
