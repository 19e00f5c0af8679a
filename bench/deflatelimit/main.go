// Command deflatelimit measures the raw-deflate throughput ceiling of this machine's cores
// for a tree: it reads every regular file under -root into memory, then compresses each
// file independently (as an OSTree archive repo stores one compressed object per file) with
// github.com/klauspost/compress/flate at -level on -j goroutines, and prints the compression
// wall time, CPU time and throughput. Reading is excluded from the timing; nothing is written.
//
// Output is one line of key=value pairs, e.g.
//
//	files=11105 in_bytes=440693263 out_bytes=159739432 level=6 threads=2 seconds=1.764 user_seconds=3.490 sys_seconds=0.020 mibps=238.2
//
// With -rounds N the compression is repeated N times and the best round (by wall time) is
// reported.
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/flate"
)

func main() {
	root := flag.String("root", "", "tree whose regular files are compressed (required)")
	level := flag.Int("level", 6, "deflate level, 1-9 (use the level ota-build uses; OSTree's archive mode uses zlib level 6)")
	threads := flag.Int("j", runtime.NumCPU(), "compressing goroutines")
	rounds := flag.Int("rounds", 1, "repeat the compression this many times and report the best")
	flag.Parse()
	if *root == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: deflatelimit -root DIR [-level N] [-j N] [-rounds N]")
		os.Exit(2)
	}
	if *level < flate.HuffmanOnly || *level > flate.BestCompression {
		fatalf("invalid -level %d", *level)
	}
	if *threads < 1 {
		*threads = 1
	}
	if *rounds < 1 {
		*rounds = 1
	}

	files, inBytes, err := loadFiles(*root)
	if err != nil {
		fatalf("%v", err)
	}
	// Largest files first so the goroutines finish together.
	sort.Slice(files, func(i, j int) bool { return len(files[i]) > len(files[j]) })

	best := time.Duration(0)
	var bestUser, bestSys time.Duration
	var outBytes int64
	for r := 0; r < *rounds; r++ {
		user0, sys0 := cpuTimes()
		d, out, err := compressAll(files, *level, *threads)
		if err != nil {
			fatalf("%v", err)
		}
		user1, sys1 := cpuTimes()
		if best == 0 || d < best {
			best, bestUser, bestSys = d, user1-user0, sys1-sys0
		}
		outBytes = out
	}
	secs := best.Seconds()
	fmt.Printf("files=%d in_bytes=%d out_bytes=%d level=%d threads=%d seconds=%.3f user_seconds=%.3f sys_seconds=%.3f mibps=%.1f\n",
		len(files), inBytes, outBytes, *level, *threads, secs, bestUser.Seconds(), bestSys.Seconds(),
		float64(inBytes)/(1<<20)/secs)
}

// cpuTimes returns the user and system CPU time the process has used so far.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// loadFiles reads every regular file under root (symlinks are not followed).
func loadFiles(root string) ([][]byte, int64, error) {
	var files [][]byte
	var total int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, b)
		total += int64(len(b))
		return nil
	})
	return files, total, err
}

// countingDiscard counts the compressed bytes and drops them.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func compressAll(files [][]byte, level, threads int) (time.Duration, int64, error) {
	var next atomic.Int64
	var outBytes atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := &countingDiscard{}
			w, err := flate.NewWriter(io.Discard, level)
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					break
				}
				w.Reset(sink)
				if _, err := w.Write(files[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if err := w.Close(); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
			outBytes.Add(sink.n)
		}()
	}
	wg.Wait()
	return time.Since(start), outBytes.Load(), firstErr
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "deflatelimit: "+format+"\n", args...)
	os.Exit(1)
}
