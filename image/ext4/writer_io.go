package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

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
		if _, err := w.f.WriteAt(b[from:to], w.base+blk*wBlock+int64(from)); err != nil {
			return fmt.Errorf("ext4: %w", err)
		}
		return nil
	}
	if !w.zeroed {
		return write(0, len(b))
	}
	start := 0 // of the pending run of non-zero blocks
	for i := 0; i < len(b); i += wBlock {
		end := min(i+wBlock, len(b))
		if bytes.Equal(b[i:end], zeroBlock[:end-i]) {
			if err := write(start, i); err != nil {
				return err
			}
			start = end
		}
	}
	return write(start, len(b))
}

var zeroBlock [wBlock]byte

// punchHole deallocates [off, off+n) of f, which then reads as zeros.
func punchHole(f *os.File, off, n int64) error {
	if n == 0 {
		return nil
	}
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

const wBufSize = 1 << 20

// noPunch makes Write behave as if punching holes failed (for tests).
var noPunch bool

// fileWriter is the io.Writer a Data function writes a file's bytes to:
// it sends them to the file's extents in the image.
type fileWriter struct {
	w       *imgWriter
	n       *wnode
	buf     []byte // pending bytes, starting at file offset pos
	pos     int64  // file offset of buf[0]
	written int64
	ctx     context.Context
	err     error
}

var errTooMuch = errors.New("Data wrote more than Size bytes")

func (fw *fileWriter) Write(p []byte) (int, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	if int64(len(p)) > fw.n.in.Size-fw.written {
		fw.err = errTooMuch
		return 0, fw.err
	}
	n := len(p)
	for len(p) > 0 {
		room := min(cap(fw.buf)-len(fw.buf), len(p))
		fw.buf = append(fw.buf, p[:room]...)
		p = p[room:]
		if len(fw.buf) == cap(fw.buf) {
			if err := fw.flush(); err != nil {
				fw.err = err
				return n - len(p), err
			}
		}
	}
	fw.written += int64(n)
	return n, nil
}

// flush writes the pending bytes; buf holds whole blocks unless it is the
// file's tail, which is zero-padded to a whole block.
func (fw *fileWriter) flush() error {
	if err := fw.ctx.Err(); err != nil {
		return err
	}
	b := fw.buf
	if r := len(b) % wBlock; r != 0 {
		b = append(b, make([]byte, wBlock-r)...)
	}
	lblk := fw.pos / wBlock
	for len(b) > 0 {
		// find the extent holding lblk
		i, _ := slices.BinarySearchFunc(fw.n.extents, lblk, func(e wextent, t int64) int {
			switch {
			case int64(e.lblk)+int64(e.len) <= t:
				return -1
			case int64(e.lblk) > t:
				return 1
			}
			return 0
		})
		e := fw.n.extents[i]
		k := min(int64(len(b))/wBlock, int64(e.lblk)+int64(e.len)-lblk)
		if err := fw.w.writeBlocks(int64(e.pblk)+lblk-int64(e.lblk), b[:k*wBlock]); err != nil {
			return err
		}
		b = b[k*wBlock:]
		lblk += k
	}
	fw.pos += int64(len(fw.buf))
	fw.buf = fw.buf[:0]
	return nil
}

// writeData calls the Data functions of the regular files in parallel.
func (l *wlayout) writeData(ctx context.Context, w *imgWriter, opts WriterOptions) error {
	var jobs []*wnode
	for _, n := range l.nodes {
		if n != nil && n.in.Mode&sIFMT == sIFREG && n.in.Size > 0 {
			jobs = append(jobs, n)
		}
	}
	// biggest first, for balance; ties in inode order
	slices.SortStableFunc(jobs, func(a, b *wnode) int {
		switch {
		case a.in.Size > b.in.Size:
			return -1
		case a.in.Size < b.in.Size:
			return 1
		}
		return 0
	})
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next     atomic.Int64
		done     atomic.Int64
		progress sync.Mutex
		wg       sync.WaitGroup
	)
	workers := min(defaultWorkers(opts.Workers), max(len(jobs), 1))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fw := &fileWriter{w: w, ctx: ctx, buf: make([]byte, 0, wBufSize)}
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) {
					return
				}
				n := jobs[i]
				fw.n, fw.pos, fw.written, fw.err, fw.buf = n, 0, 0, nil, fw.buf[:0]
				err := n.in.Data(fw)
				if err == nil {
					err = fw.err
				}
				if err == nil && fw.written != n.in.Size {
					err = fmt.Errorf("Data wrote %d bytes, Size is %d", fw.written, n.in.Size)
				}
				if err == nil && len(fw.buf) > 0 {
					err = fw.flush()
				}
				if err != nil {
					cancel(fmt.Errorf("ext4: %s: %w", n.path, err)) // the first cause stays
					return
				}
				if opts.Progress != nil {
					progress.Lock()
					opts.Progress(done.Add(n.in.Size), l.dataBytes)
					progress.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
