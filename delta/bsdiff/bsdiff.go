// Package bsdiff creates and applies binary patches in the stream format of
// the bspatch operation of OSTree static deltas.
//
// That format is the raw output of the bsdiff() function of Matthew
// Endsley's bsdiff library (github.com/mendsley/bsdiff), which OSTree
// embeds: no header and no compression, just a sequence of records
//
//	x, y, z  three 8-byte integers
//	diff     x bytes, added bytewise (mod 256) to x bytes of the old file
//	extra    y bytes, copied verbatim
//
// Each record appends x+y bytes to the new file and then moves the read
// position in the old file forward by x+z; z may be negative. The integers
// are little-endian sign-magnitude: the low 63 bits hold the magnitude, the
// top bit of the last byte the sign. The stream ends when the new file is
// complete; its size is stored elsewhere (in a delta, by the open operation
// before the patch).
//
// Diff implements Colin Percival's bsdiff algorithm with the heuristics of
// that library, so its patches are byte for byte the ones OSTree produces,
// but builds the suffix array with induced sorting (SA-IS), in linear time,
// rather than with qsufsort.
package bsdiff

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// MaxOldSize is the largest old file Diff accepts: its suffix array, which
// has an entry for every suffix including the empty one, holds int32s.
const MaxOldSize = math.MaxInt32 - 1

// ctrlSize is the size of a record's x, y, z header.
const ctrlSize = 24

// Diff returns a patch that turns old into new, in the bspatch stream
// format described in the package documentation. Patch(old, p, len(new))
// reproduces new from it.
//
// Diff holds a suffix array of old, 4*(len(old)+1) bytes, while it runs;
// building it takes a few bucket arrays on top, usually far smaller than
// the suffix array. The patch itself is len(new) bytes plus 24 bytes a
// record. Diff fails only if old is larger than MaxOldSize.
func Diff(old, new []byte) ([]byte, error) {
	if len(old) > MaxOldSize {
		return nil, fmt.Errorf("bsdiff: old file is %d bytes, more than the %d supported", len(old), MaxOldSize)
	}
	// I is the suffix array of old including the empty suffix, which sorts
	// first: the same array as the one qsufsort builds.
	I := make([]int32, len(old)+1)
	I[0] = int32(len(old))
	suffixSort(old, I[1:])
	return diff(I, old, new), nil
}

// diff is the scan loop of bsdiff_internal in mendsley/bsdiff's bsdiff.c,
// with the same variable names; I is the suffix array of old.
func diff(I []int32, old, new []byte) []byte {
	oldsize, newsize := len(old), len(new)
	mt := newMatcher(I, old, new)
	out := make([]byte, 0, newsize+newsize/64+4*ctrlSize)
	var scan, pos, length, lastscan, lastpos, lastoffset int
	for scan < newsize {
		oldscore := 0
		scan += length
		for scsc := scan; scan < newsize; scan++ {
			pos, length = mt.search(scan)
			for ; scsc < scan+length; scsc++ {
				if scsc+lastoffset < oldsize && old[scsc+lastoffset] == new[scsc] {
					oldscore++
				}
			}
			if (length == oldscore && length != 0) || length > oldscore+8 {
				break
			}
			if scan+lastoffset < oldsize && old[scan+lastoffset] == new[scan] {
				oldscore--
			}
		}
		if length == oldscore && scan != newsize {
			continue
		}

		// Extend the previous match forwards (lenf) and this one
		// backwards (lenb) while at least half the bytes agree.
		s, Sf, lenf := 0, 0, 0
		for i := 0; lastscan+i < scan && lastpos+i < oldsize; {
			if old[lastpos+i] == new[lastscan+i] {
				s++
			}
			i++
			if s*2-i > Sf*2-lenf {
				Sf, lenf = s, i
			}
		}
		lenb := 0
		if scan < newsize {
			s, Sb := 0, 0
			for i := 1; scan >= lastscan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if s*2-i > Sb*2-lenb {
					Sb, lenb = s, i
				}
			}
		}
		// If the extensions overlap, split the overlap where it
		// matches best.
		if lastscan+lenf > scan-lenb {
			overlap := (lastscan + lenf) - (scan - lenb)
			s, Ss, lens := 0, 0, 0
			for i := range overlap {
				if new[lastscan+lenf-overlap+i] == old[lastpos+lenf-overlap+i] {
					s++
				}
				if new[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > Ss {
					Ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}

		out = appendRecord(out, old[lastpos:lastpos+lenf], new[lastscan:lastscan+lenf],
			new[lastscan+lenf:scan-lenb], (pos-lenb)-(lastpos+lenf), math.MaxInt32)

		lastscan = scan - lenb
		lastpos = pos - lenb
		lastoffset = pos - scan
	}
	return out
}

// appendRecord appends the records that add diffNew-diffOld (bytewise),
// copy extra and then skip z bytes of the old file. Extra runs longer than
// maxExtra are split over several records: bspatch rejects x and y above
// math.MaxInt32 (x never exceeds it since len(old) <= MaxOldSize).
func appendRecord(out, diffOld, diffNew, extra []byte, z, maxExtra int) []byte {
	for {
		y := min(len(extra), maxExtra)
		rz := z
		if y < len(extra) {
			rz = 0
		}
		out = appendOff(out, int64(len(diffNew)))
		out = appendOff(out, int64(y))
		out = appendOff(out, int64(rz))
		start := len(out)
		out = slices.Grow(out, len(diffNew)+y)[:start+len(diffNew)]
		d := out[start:]
		for i := range d {
			d[i] = diffNew[i] - diffOld[i]
		}
		out = append(out, extra[:y]...)
		if extra = extra[y:]; len(extra) == 0 {
			return out
		}
		diffOld, diffNew = nil, nil
	}
}

// appendOff appends x in bsdiff's 8-byte sign-magnitude encoding (offtout).
func appendOff(b []byte, x int64) []byte {
	u := uint64(x)
	if x < 0 {
		u = uint64(-x) | 1<<63
	}
	return binary.LittleEndian.AppendUint64(b, u)
}

// readOff decodes an 8-byte sign-magnitude integer (offtin). The negative
// zero decodes as 0.
func readOff(b []byte) int64 {
	u := binary.LittleEndian.Uint64(b)
	x := int64(u &^ (1 << 63))
	if u>>63 != 0 {
		return -x
	}
	return x
}

// matcher finds the matches of diff's scan: I is the suffix array of old,
// oldRuns and newRuns list the long runs of one repeated byte in old and new,
// and top holds the first probes of every search (see probeTree).
type matcher struct {
	I                []int32
	old, new         []byte
	oldRuns, newRuns runs
	top              []probe
}

func newMatcher(I []int32, old, new []byte) *matcher {
	return &matcher{I: I, old: old, new: new, oldRuns: findRuns(old), newRuns: findRuns(new), top: probeTree(I, old)}
}

// probe is a suffix search may probe: x indexes I, pos is I[x] and prefix
// holds the suffix's first 8 bytes, big-endian (so that comparing prefixes
// compares the suffixes' starts), zero-padded when it is shorter.
type probe struct {
	prefix uint64
	x, pos int32
}

// topLevels is how many levels of the binary search probeTree holds at most:
// 65,535 probes, 1 MiB, for an old file of 4 MiB or more.
const topLevels = 16

// probeTree returns the suffixes the first topLevels steps of search probe,
// as a binary tree in an array (the children of node i are 2i+1 and 2i+2).
// Every search starts with the same probes, whose suffixes lie all over old
// and I: compared through this small array, they no longer wait for memory
// at every step.
func probeTree(I []int32, old []byte) []probe {
	// At most 16 bytes of tree for 64 bytes of suffix array.
	levels := max(0, min(topLevels, bits.Len(uint(len(I)))-4))
	t := make([]probe, 1<<levels-1)
	var fill func(node, st, en int)
	fill = func(node, st, en int) {
		if node >= len(t) || en-st < 2 {
			return
		}
		x := st + (en-st)/2
		var b [8]byte
		copy(b[:], old[I[x]:])
		t[node] = probe{prefix: binary.BigEndian.Uint64(b[:]), x: int32(x), pos: I[x]}
		fill(2*node+1, st, x)
		fill(2*node+2, x, en)
	}
	fill(0, 0, len(I)-1)
	return t
}

// search finds a longest match of a prefix of new[q:] among the suffixes of
// old, by binary search over the suffix array I, exactly as bsdiff's
// search(I, old, oldsize, new+q, newsize-q, 0, oldsize, &pos) does: it
// probes the same suffixes, each comparison has the same outcome, and on
// ties it picks the same position.
//
// bsdiff compares each probed suffix with new[q:] from its first byte.
// search skips the bytes new[q:] shares with the suffixes at both ends of
// the interval, which the suffixes in between share too (they sort between
// them), and compares long runs of one byte by their lengths (see lcp). So
// a match costs about its length once instead of at every step, and a
// match inside the long run of zeros that pads many binaries is cheap: the
// scan searches at every position of such a run, which made diffs of some
// binaries quadratic in the run's length. The first probes compare prefixes
// held in mt.top when those differ.
func (mt *matcher) search(q int) (pos, n int) {
	I, old, new := mt.I, mt.old, mt.new[q:]
	st, en := 0, len(I)-1
	// lcpSt and lcpEn are the common prefix lengths of new with the suffixes
	// at st and en.
	lcpSt := mt.lcp(int(I[st]), q, 0, min(len(old)-int(I[st]), len(new)))
	lcpEn := mt.lcp(int(I[en]), q, 0, min(len(old)-int(I[en]), len(new)))
	var newPrefix uint64
	if len(new) >= 8 {
		newPrefix = binary.BigEndian.Uint64(new)
	}
	node := 0
	for en-st >= 2 {
		var x, p int
		if node < len(mt.top) {
			t := &mt.top[node]
			x, p = int(t.x), int(t.pos)
			// With 8 bytes on both sides, prefixes that differ decide.
			if d := t.prefix ^ newPrefix; d != 0 && len(new) >= 8 && len(old)-p >= 8 {
				if l := bits.LeadingZeros64(d) / 8; t.prefix < newPrefix {
					st, lcpSt, node = x, l, 2*node+2
				} else {
					en, lcpEn, node = x, l, 2*node+1
				}
				continue
			}
		} else {
			x = st + (en-st)/2
			p = int(I[x])
		}
		o := old[p:]
		m := min(len(o), len(new))
		l := min(lcpSt, lcpEn)
		// Most comparisons end within a word: compare one before calling lcp.
		if l+8 <= m {
			if d := binary.LittleEndian.Uint64(o[l:]) ^ binary.LittleEndian.Uint64(new[l:]); d != 0 {
				l += bits.TrailingZeros64(d) / 8
			} else {
				l = mt.lcp(p, q, l+8, m)
			}
		} else {
			l = mt.lcp(p, q, l, m)
		}
		// As bsdiff's memcmp(old+I[x], new, m) < 0.
		if l < m && o[l] < new[l] {
			st, lcpSt, node = x, l, 2*node+2
		} else {
			en, lcpEn, node = x, l, 2*node+1
		}
	}
	if lcpSt > lcpEn {
		return int(I[st]), lcpSt
	}
	return int(I[en]), lcpEn
}

// runCheck is how many equal bytes lcp compares before it looks for runs it
// can skip; it is also the shortest run findRuns lists.
const runCheck = 256

// lcp returns the length of the common prefix of old[p:p+m] and new[q:q+m],
// whose first k bytes are known to be equal.
func (mt *matcher) lcp(p, q, k, m int) int {
	a, b := mt.old[p:p+m], mt.new[q:q+m]
	i := k
	for {
		n := matchlen(a[i:min(m, i+runCheck)], b[i:])
		if i += n; i == m || n < runCheck {
			return i
		}
		// runCheck equal bytes so far: where both continue in a listed run
		// (of the same byte, since a[i] == b[i] here), the shorter run ends
		// where the strings first differ, and equal runs can be skipped.
		ra, rb := mt.oldRuns.left(p+i), mt.newRuns.left(q+i)
		if ra == 0 || rb == 0 || a[i] != b[i] {
			continue
		}
		if ra != rb {
			return min(m, i+min(ra, rb))
		}
		if i += ra; i >= m {
			return m
		}
	}
}

// runs lists the maximal runs of one repeated byte of at least runCheck
// bytes, in order: run j is [start[j], end[j]).
type runs struct{ start, end []int }

// findRuns returns the runs of b.
func findRuns(b []byte) runs {
	// A run of 2h bytes holds two positions h apart of any sequence of
	// positions h apart that starts before it: test those, and measure the
	// run around a hit.
	const h = runCheck / 2
	var r runs
	for j := 0; j+h < len(b); j += h {
		if b[j] != b[j+h] {
			continue
		}
		s, e := j, j+1
		for s > 0 && b[s-1] == b[j] {
			s--
		}
		for e < len(b) && b[e] == b[j] {
			e++
		}
		if e-s >= runCheck {
			r.start, r.end = append(r.start, s), append(r.end, e)
			j = (e - 1) / h * h // the next position tested is at or after e
		}
	}
	return r
}

// left returns how many bytes of the run that holds position p are at p and
// after it, or 0 if no listed run holds p.
func (r runs) left(p int) int {
	j, _ := slices.BinarySearch(r.start, p+1) // the first run starting after p
	if j == 0 || r.end[j-1] <= p {
		return 0
	}
	return r.end[j-1] - p
}

// matchlen returns the length of the common prefix of a and b.
func matchlen(a, b []byte) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}
