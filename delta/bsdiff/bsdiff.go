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
// Diff implements Colin Percival's bsdiff algorithm with the scan loop of
// that library, but finds matches with a hash index of the old file's 8-byte
// seeds rather than a suffix array (see search): about as small patches,
// though not byte for byte OSTree's, for a fraction of the time.
package bsdiff

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// MaxOldSize is the largest old file Diff accepts: its index holds int32
// positions.
const MaxOldSize = math.MaxInt32 - 1

// ctrlSize is the size of a record's x, y, z header.
const ctrlSize = 24

// Diff returns a patch that turns old into new, in the bspatch stream
// format described in the package documentation. Patch(old, p, len(new))
// reproduces new from it.
//
// Diff holds an index of old, 5 to 6 bytes a byte of old, while it runs,
// and building it takes 2 more. The patch itself is len(new) bytes plus 24
// bytes a record. Diff fails only if old is larger than MaxOldSize.
func Diff(old, new []byte) ([]byte, error) {
	if len(old) > MaxOldSize {
		return nil, fmt.Errorf("bsdiff: old file is %d bytes, more than the %d supported", len(old), MaxOldSize)
	}
	return diff(old, new), nil
}

// diff is the scan loop of bsdiff_internal in mendsley/bsdiff's bsdiff.c,
// with the same variable names.
func diff(old, new []byte) []byte {
	oldsize, newsize := len(old), len(new)
	mt := newMatcher(old, new)
	out := make([]byte, 0, newsize+newsize/64+4*ctrlSize)
	var scan, pos, length, lastscan, lastpos, lastoffset int
	for scan < newsize {
		oldscore := 0
		scan += length
		for scsc := scan; scan < newsize; scan++ {
			pos, length = mt.search(scan, scan+lastoffset)
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
			// Eight equal bytes at once: the score rises at each, so only the
			// last can be the best.
			if lastscan+i+8 <= scan && lastpos+i+8 <= oldsize &&
				binary.LittleEndian.Uint64(old[lastpos+i:]) == binary.LittleEndian.Uint64(new[lastscan+i:]) {
				s, i = s+8, i+8
			} else {
				if old[lastpos+i] == new[lastscan+i] {
					s++
				}
				i++
			}
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

// matcher finds the matches of diff's scan: oldRuns and newRuns list the long
// runs of one repeated byte in old and new, index the positions of old by
// their seeds (see search).
type matcher struct {
	old, new         []byte
	oldRuns, newRuns runs
	index            seedIndex
	// prefetched sums the bucket starts candidates loads ahead of their use, so
	// that the loads are not optimized away; its value means nothing.
	prefetched int32
	// longestRun holds the start of the longest run of each byte in oldRuns,
	// or -1.
	longestRun [256]int
}

// maxCandidates bounds how many positions of old search tries for one seed: a
// seed of a run of zeros may start at a good part of a binary's positions.
const maxCandidates = 64

func newMatcher(old, new []byte) *matcher {
	mt := &matcher{old: old, new: new, oldRuns: findRuns(old), newRuns: findRuns(new), index: newSeedIndex(old)}
	var longest [256]int
	for b := range mt.longestRun {
		mt.longestRun[b] = -1
	}
	for j, s := range mt.oldRuns.start {
		if b, l := old[s], mt.oldRuns.end[j]-s; l > longest[b] {
			longest[b], mt.longestRun[b] = l, s
		}
	}
	return mt
}

// seedLen is the length of the seeds that index old: every match of more than
// seedLen bytes starts with one.
const seedLen = 8

// seedIndex lists the positions of a text by the hash of the seedLen bytes there
// (their seed): those whose seed hashes to h are pos[start[h]:start[h+1]], in
// increasing order. Positions whose seed is one byte repeated are not listed.
type seedIndex struct {
	start, pos []int32
	shift      uint
}

// runSeed reports whether the seed at the start of b is one byte repeated.
func runSeed(b []byte) bool {
	return binary.LittleEndian.Uint64(b) == uint64(b[0])*0x0101010101010101
}

func (x *seedIndex) hash(b []byte) uint64 {
	return (binary.LittleEndian.Uint64(b) * 0x9E3779B97F4A7C15) >> x.shift
}

// topBits is how many of a hash's bits newSeedIndex sorts by in its first pass.
const topBits = 8

// newSeedIndex indexes text with a two-pass radix sort by hash, top bits first:
// each pass writes to few places at once or within a table that fits in a
// cache, where a hash table filled position by position misses the cache at
// every position (that took as long as the diff itself). It leaves 4 bytes a
// position and a table of 1 to 2, and holds 2 more while it runs. Texts over 64 MiB
// get more than four positions a hash: the second pass sorts by 16 bits at most.
// Seeds of one repeated byte are left out: search anchors runs at their end.
func newSeedIndex(text []byte) seedIndex {
	n := len(text) - seedLen + 1
	if n <= 0 {
		return seedIndex{}
	}
	hb := max(topBits, min(topBits+16, bits.Len(uint(n))-2)) // two to four positions a hash
	low := hb - topBits                                      // the second pass sorts by the low bits
	x := seedIndex{shift: uint(64 - hb), start: make([]int32, 1<<hb+1)}
	// First pass: partition by the top bits, keeping the order; lows holds
	// each position's low bits, so that the second pass no longer reads text.
	var part [1<<topBits + 1]int32
	for p := range n {
		if !runSeed(text[p:]) {
			part[x.hash(text[p:])>>low+1]++
		}
	}
	for k := 1; k < len(part); k++ {
		part[k] += part[k-1]
	}
	x.pos = make([]int32, part[len(part)-1])
	next := part
	mask := uint64(1)<<low - 1
	lows := make([]uint16, len(x.pos))
	for p := range n {
		if runSeed(text[p:]) {
			continue
		}
		h := x.hash(text[p:])
		i := next[h>>low]
		x.pos[i], lows[i] = int32(p), uint16(h&mask)
		next[h>>low]++
	}
	// Second pass: sort each partition by the low bits, from a copy.
	var buf []int32
	for k := range 1 << topBits {
		seg, segLows := x.pos[part[k]:part[k+1]], lows[part[k]:part[k+1]]
		buf = append(buf[:0], seg...)
		st := x.start[k<<low : (k+1)<<low+1] // st[len(st)-1] is the next partition's
		for _, l := range segLows {
			st[l+1]++
		}
		st[0] = part[k]
		for j := 1; j < len(st); j++ {
			st[j] += st[j-1]
		}
		for i, p := range buf {
			l := segLows[i]
			x.pos[st[l]] = p
			st[l]++
		}
		// Placing the positions moved each start to the next one: move back.
		copy(st[1:], st[:len(st)-1])
		st[0] = part[k]
	}
	return x
}

// search finds a long match of a prefix of new[q:] in old: the longer of the
// match at hint, where the previous match of diff's scan continues, and the
// longest one at the last maxCandidates positions of old whose seed hashes
// like new[q:q+seedLen]. So it finds every match longer than seedLen (up to
// its limit in repetitive text) that bsdiff's search of the suffix array of
// old finds, at a position that may differ when several are as long, and
// matches at hint of any length. Shorter matches elsewhere, which bsdiff's
// scan skips anyway (a new record needs a match 8 bytes longer than the one
// at the current offset), it leaves out. That costs far less than sorting the
// suffixes of old, and the patches compress alike.
//
// lcp compares long runs of one byte by their lengths: the scan searches at
// every position of the long run of zeros that pads many binaries, which made
// diffs of some binaries quadratic in the run's length.
func (mt *matcher) search(q, hint int) (pos, n int) {
	old, new := mt.old, mt.new
	rest := len(new) - q
	if hint >= 0 && hint < len(old) {
		pos, n = hint, mt.lcp(hint, q, 0, min(len(old)-hint, rest))
	}
	if rest < seedLen || mt.index.pos == nil {
		return pos, n
	}
	// A seed of one repeated byte (zeros, mostly) starts at too many places:
	// look for the bytes after the run instead, preceded by as long a run.
	if runSeed(new[q:]) {
		r := mt.runLen(q)
		if q+r+seedLen <= len(new) {
			pos, n = mt.candidates(q, r, pos, n)
		}
		if n >= r {
			return pos, n
		}
		// Or the longest run of that byte in old, if it is long.
		if p := mt.longestRun[new[q]]; p >= 0 {
			if l := mt.lcp(p, q, 0, min(len(old)-p, rest)); l > n {
				pos, n = p, l
			}
		}
		if n >= r {
			return pos, n
		}
	}
	return mt.candidates(q, 0, pos, n)
}

// candidates returns the longer of the match (pos, n) of new[q:] and the
// longest match at the last maxCandidates positions of old whose seed hashes
// like new[q+back:], each moved back bytes back.
func (mt *matcher) candidates(q, back, pos, n int) (int, int) {
	old, new, x := mt.old, mt.new, &mt.index
	rest := len(new) - q
	h := x.hash(new[q+back:])
	cands := x.pos[x.start[h]:x.start[h+1]]
	// The scan searches at the next position next, mostly: start loading its
	// bucket while this one's candidates are compared.
	if q+back+1+seedLen <= len(new) {
		mt.prefetched += x.start[x.hash(new[q+back+1:])]
	}
	for _, c := range cands[max(0, len(cands)-maxCandidates):] {
		p := int(c) - back
		m := min(len(old)-p, rest)
		// A longer match must go on past n bytes.
		if p < 0 || m <= n || old[p+n] != new[q+n] {
			continue
		}
		if l := mt.lcp(p, q, 0, m); l > n {
			pos, n = p, l
			if n == rest {
				break
			}
		}
	}
	return pos, n
}

// runLen returns the length of the run of one byte at new[q:].
func (mt *matcher) runLen(q int) int {
	if r := mt.newRuns.left(q); r > 0 {
		return r
	}
	b := mt.new[q:]
	i := 1
	for i < len(b) && b[i] == b[0] {
		i++
	}
	return i
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
		// Eight bytes at a time, then one.
		s, e, w := j, j+1, uint64(b[j])*0x0101010101010101
		for s >= 8 && binary.LittleEndian.Uint64(b[s-8:]) == w {
			s -= 8
		}
		for s > 0 && b[s-1] == b[j] {
			s--
		}
		for e+8 <= len(b) && binary.LittleEndian.Uint64(b[e:]) == w {
			e += 8
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
