package bsdiff

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDiffPairs diffs every pair of files NAME.old and NAME.new in the directory
// $BSDIFF_PAIRS (skipped without it), e.g. the changed files of a bench/ delta, and
// reports the patches' total size and their zero bytes.
func BenchmarkDiffPairs(b *testing.B) {
	dir := os.Getenv("BSDIFF_PAIRS")
	if dir == "" {
		b.Skip("BSDIFF_PAIRS is not set")
	}
	olds, err := filepath.Glob(filepath.Join(dir, "*.old"))
	if err != nil || len(olds) == 0 {
		b.Fatalf("no pairs in %s: %v", dir, err)
	}
	type pair struct{ old, new []byte }
	var pairs []pair
	var size int64
	for _, o := range olds {
		old, err1 := os.ReadFile(o)
		new, err2 := os.ReadFile(strings.TrimSuffix(o, ".old") + ".new")
		if err1 != nil || err2 != nil {
			b.Fatal(err1, err2)
		}
		pairs = append(pairs, pair{old, new})
		size += int64(len(new))
	}
	b.SetBytes(size)
	var patchBytes, zeros int
	c0 := cpuTime()
	for b.Loop() {
		patchBytes, zeros = 0, 0
		for _, p := range pairs {
			d, err := Diff(p.old, p.new)
			if err != nil {
				b.Fatal(err)
			}
			patchBytes += len(d)
			for _, c := range d {
				if c == 0 {
					zeros++
				}
			}
		}
	}
	b.ReportMetric((cpuTime()-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(patchBytes), "patch-bytes")
	b.ReportMetric(float64(len(pairs)), "pairs")
	b.ReportMetric(float64(zeros), "zero-bytes")
}

// cpuTime returns the CPU time the process has used, which a busy machine
// disturbs less than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
