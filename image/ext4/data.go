package ext4

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// dataBufSize is the buffer each worker collects a file's bytes in.
const dataBufSize = 1 << 20

// fileWriter is the io.Writer a Data function writes a file's bytes to:
// it sends them to the file's extents in the image.
type fileWriter struct {
	w       *imgWriter
	n       *node
	buf     []byte // pending bytes, starting at file offset pos
	pos     int64  // file offset of buf[0]
	written int64
	ctx     context.Context
	err     error
}

var errTooMuch = errors.New("Data wrote more than Size bytes")

// Write implements io.Writer.
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
	if r := len(b) % blockSize; r != 0 {
		b = append(b, make([]byte, blockSize-r)...)
	}
	lblk := fw.pos / blockSize
	for len(b) > 0 {
		// find the extent holding lblk
		i, _ := slices.BinarySearchFunc(fw.n.extents, lblk, func(e extent, t int64) int {
			switch {
			case int64(e.lblk)+int64(e.len) <= t:
				return -1
			case int64(e.lblk) > t:
				return 1
			}
			return 0
		})
		e := fw.n.extents[i]
		k := min(int64(len(b))/blockSize, int64(e.lblk)+int64(e.len)-lblk)
		if err := fw.w.writeBlocks(int64(e.pblk)+lblk-int64(e.lblk), b[:k*blockSize]); err != nil {
			return err
		}
		b = b[k*blockSize:]
		lblk += k
	}
	fw.pos += int64(len(fw.buf))
	fw.buf = fw.buf[:0]
	return nil
}

// writeData calls the Data functions of the regular files in parallel.
func (l *layout) writeData(ctx context.Context, w *imgWriter, opts WriterOptions) error {
	var jobs []*node
	for _, n := range l.nodes {
		if n != nil && n.in.Mode&ModeTypeMask == ModeRegular && n.in.Size > 0 {
			jobs = append(jobs, n)
		}
	}
	// biggest first, for balance; ties in inode order
	slices.SortStableFunc(jobs, func(a, b *node) int {
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
			fw := &fileWriter{w: w, ctx: ctx, buf: make([]byte, 0, dataBufSize)}
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

// defaultWorkers is the number of goroutines writing file data when
// WriterOptions.Workers is n.
func defaultWorkers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0) * 2
}
