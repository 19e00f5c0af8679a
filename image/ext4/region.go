package ext4

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// imgWriter writes filesystem blocks into the image region.
type imgWriter struct {
	f      *os.File
	base   int64 // byte offset of the region
	zeroed bool  // the region reads as zeros (a hole was punched)
}

// writeBlocks writes whole blocks from block blk on. In a region that reads as zeros it
// skips the blocks that are all zeros (much of the inode tables), keeping the image sparse.
func (w *imgWriter) writeBlocks(blk int64, b []byte) error {
	write := func(from, to int) error {
		if from == to {
			return nil
		}
		if _, err := w.f.WriteAt(b[from:to], w.base+blk*blockSize+int64(from)); err != nil {
			return fmt.Errorf("ext4: %w", err)
		}
		return nil
	}
	if !w.zeroed {
		return write(0, len(b))
	}
	start := 0 // of the pending run of non-zero blocks
	for i := 0; i < len(b); i += blockSize {
		end := min(i+blockSize, len(b))
		if bytes.Equal(b[i:end], zeroBlock[:end-i]) {
			if err := write(start, i); err != nil {
				return err
			}
			start = end
		}
	}
	return write(start, len(b))
}

// zeroBlock is a block of zeros to compare with.
var zeroBlock [blockSize]byte

// punchHole deallocates [off, off+n) of f, which then reads as zeros.
func punchHole(f *os.File, off, n int64) error {
	if n == 0 {
		return nil
	}
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// noPunch makes Write behave as if punching holes failed (for tests).
var noPunch bool

// fileSize is the size of a regular file or block device.
func fileSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	if fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		return f.Seek(0, io.SeekEnd)
	}
	return 0, fmt.Errorf("%s is not a regular file or block device", p)
}
