// Package bootscript writes and reads U-Boot script images (boot.scr) and
// renders the boot script used by OSTree-based images.
//
// A script image is a U-Boot "legacy uImage": a 64-byte big-endian header
// followed by a multi-file payload holding the script text. [Encode] writes
// exactly the bytes that
//
//	mkimage -A <arch> -O linux -T script -C none -n <name> -d script.txt boot.scr
//
// writes when run with SOURCE_DATE_EPOCH set to the same timestamp, so the
// mkimage tool is not needed at build time.
package bootscript

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"time"
)

// Header field values from U-Boot's include/image.h.
const (
	headerSize  = 64
	nameSize    = 32 // IH_NMLEN
	magic       = 0x27051956
	osLinux     = 5 // IH_OS_LINUX
	typeScript  = 6 // IH_TYPE_SCRIPT
	compNone    = 0 // IH_COMP_NONE
	maxNameLen  = nameSize - 1
	maxDataSize = math.MaxUint32
)

// archCodes maps mkimage's -A names to U-Boot's IH_ARCH_* values.
var archCodes = map[string]uint8{
	"arm":    2,  // IH_ARCH_ARM
	"x86":    3,  // IH_ARCH_I386
	"arm64":  22, // IH_ARCH_ARM64
	"x86_64": 24, // IH_ARCH_X86_64
	"riscv":  26, // IH_ARCH_RISCV
}

// Options describes the header of a script image.
type Options struct {
	// Name is the image name (mkimage -n). It may be at most 31 bytes
	// long so that the header's name field stays NUL-terminated; Encode
	// rejects longer names rather than truncating them as mkimage does.
	Name string
	// Arch is the mkimage architecture name (mkimage -A): "arm", "arm64",
	// "x86", "x86_64" or "riscv".
	Arch string
	// Timestamp is the creation time stored in the header, in whole
	// seconds since the Unix epoch. The zero Time is stored as 0.
	Timestamp time.Time
}

// Header is the decoded header of a script image.
type Header struct {
	// Name is the image name with trailing NULs removed.
	Name string
	// Arch is the mkimage architecture name, as in [Options].
	Arch string
	// Timestamp is the creation time stored in the header.
	Timestamp time.Time
}

// Encode writes a U-Boot script image (boot.scr) holding script to w.
// The script must not be empty, matching mkimage, which refuses empty input.
func Encode(w io.Writer, script []byte, opts Options) error {
	arch, ok := archCodes[opts.Arch]
	if !ok {
		return fmt.Errorf("bootscript: unknown architecture %q", opts.Arch)
	}
	if len(opts.Name) > maxNameLen {
		return fmt.Errorf("bootscript: image name %q is longer than %d bytes", opts.Name, maxNameLen)
	}
	if len(script) == 0 {
		return errors.New("bootscript: empty script")
	}
	var stamp int64
	if !opts.Timestamp.IsZero() {
		stamp = opts.Timestamp.Unix()
	}
	if stamp < 0 || stamp > math.MaxUint32 {
		return fmt.Errorf("bootscript: timestamp %v does not fit in 32 bits", opts.Timestamp)
	}
	// The payload is a multi-file list with one entry: the component
	// sizes, a zero terminator, then the component itself (unpadded,
	// since it is the last one).
	if uint64(len(script)) > maxDataSize-8 {
		return errors.New("bootscript: script too large")
	}
	data := make([]byte, 8, 8+len(script))
	binary.BigEndian.PutUint32(data, uint32(len(script)))
	data = append(data, script...)

	hdr := make([]byte, headerSize)
	be := binary.BigEndian
	be.PutUint32(hdr[0:], magic)
	be.PutUint32(hdr[8:], uint32(stamp))
	be.PutUint32(hdr[12:], uint32(len(data)))
	// Load address (16) and entry point (20) stay 0.
	be.PutUint32(hdr[24:], crc32.ChecksumIEEE(data))
	hdr[28] = osLinux
	hdr[29] = arch
	hdr[30] = typeScript
	hdr[31] = compNone
	copy(hdr[32:], opts.Name)
	be.PutUint32(hdr[4:], crc32.ChecksumIEEE(hdr))

	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// Decode reads a script image from r, checks its magic number, header and
// data checksums and image type, and returns the script it holds and its
// header. Like U-Boot's source command, it returns the first component of
// the payload.
func Decode(r io.Reader) (script []byte, hdr Header, err error) {
	raw := make([]byte, headerSize)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, Header{}, fmt.Errorf("bootscript: reading header: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(raw[0:]) != magic {
		return nil, Header{}, errors.New("bootscript: bad magic number")
	}
	hcrc := be.Uint32(raw[4:])
	be.PutUint32(raw[4:], 0)
	if crc32.ChecksumIEEE(raw) != hcrc {
		return nil, Header{}, errors.New("bootscript: header checksum mismatch")
	}
	if raw[28] != osLinux || raw[30] != typeScript || raw[31] != compNone {
		return nil, Header{}, fmt.Errorf("bootscript: not an uncompressed Linux script image (os %d, type %d, compression %d)", raw[28], raw[30], raw[31])
	}
	for name, code := range archCodes {
		if code == raw[29] {
			hdr.Arch = name
		}
	}
	if hdr.Arch == "" {
		return nil, Header{}, fmt.Errorf("bootscript: unknown architecture code %d", raw[29])
	}
	hdr.Name = string(bytes.TrimRight(raw[32:], "\x00"))
	hdr.Timestamp = time.Unix(int64(be.Uint32(raw[8:])), 0).UTC()

	size := int64(be.Uint32(raw[12:]))
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return nil, Header{}, fmt.Errorf("bootscript: reading data: %w", err)
	}
	if int64(len(data)) != size {
		return nil, Header{}, fmt.Errorf("bootscript: data truncated: %d of %d bytes", len(data), size)
	}
	if crc32.ChecksumIEEE(data) != be.Uint32(raw[24:]) {
		return nil, Header{}, errors.New("bootscript: data checksum mismatch")
	}
	// Skip the size list up to its zero terminator.
	off := 0
	for {
		if off+4 > len(data) {
			return nil, Header{}, errors.New("bootscript: unterminated component list")
		}
		n := be.Uint32(data[off:])
		off += 4
		if n == 0 {
			break
		}
	}
	n := uint64(be.Uint32(data))
	if n == 0 {
		return nil, Header{}, errors.New("bootscript: image holds no script")
	}
	if uint64(off)+n > uint64(len(data)) {
		return nil, Header{}, errors.New("bootscript: script extends past end of image")
	}
	return data[off : uint64(off)+n], hdr, nil
}
