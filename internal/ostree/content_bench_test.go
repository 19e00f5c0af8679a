package ostree

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// benchObjects stores n regular files of size bytes and returns their checksums. Every
// other run of 256 bytes repeats the bytes 1 KiB back and the others carry 4 bits of
// entropy per byte, so that archive objects deflate to about half, with back-references
// and Huffman-coded literals to inflate, like binaries.
func benchObjects(b *testing.B, r *Repo, n, size int) []Checksum {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	h := FileHeader{Mode: ModeRegular | 0o644}
	out := make([]Checksum, n)
	for i := range out {
		data := make([]byte, size)
		for j := range data {
			if j >= 1<<10 && j/256%2 == 1 {
				data[j] = data[j-1<<10]
			} else {
				data[j] = 'a' + byte(rng.Uint32()%16)
			}
		}
		c, err := ContentChecksum(&h, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.WriteContent(c, &h, bytes.NewReader(data), int64(size), DefaultCompressionLevel); err != nil {
			b.Fatal(err)
		}
		out[i] = c
	}
	return out
}

// BenchmarkOpenContent reads stored objects to their end through OpenContent, as image,
// delta and deploy do: many small objects (where opening dominates) and a few large ones
// (where inflating and hashing do).
func BenchmarkOpenContent(b *testing.B) {
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		for _, c := range []struct {
			name    string
			n, size int
		}{{"small", 2000, 2 << 10}, {"large", 4, 16 << 20}} {
			b.Run(mode.String()+"/"+c.name, func(b *testing.B) {
				r, err := Init(b.TempDir(), mode)
				if err != nil {
					b.Fatal(err)
				}
				objs := benchObjects(b, r, c.n, c.size)
				b.SetBytes(int64(c.size))
				b.ReportAllocs()
				b.ResetTimer()
				start := cpuTime(b)
				for i := range b.N {
					o, err := r.OpenContent(objs[i%len(objs)])
					if err != nil {
						b.Fatal(err)
					}
					if n, err := io.Copy(io.Discard, o); err != nil || n != int64(c.size) {
						b.Fatalf("read %d bytes: %v", n, err)
					}
					o.Close()
				}
				// On a busy machine CPU time varies less than wall time.
				b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the CPU time the process has used, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
