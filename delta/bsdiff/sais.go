// See NOTICE for the copyright and license of the work this file ports.

package bsdiff

// Suffix array construction by induced sorting (SA-IS: Nong, Zhang and Chan,
// "Two Efficient Algorithms for Linear Time Suffix Array Construction", 2011),
// ported from Yuta Mori's sais-lite 2.4.1. The port keeps sais-lite's memory
// layout: the reduced problem, its text and, where they fit, the bucket
// arrays all live in the free space of the suffix array being built. The
// LMSsort2/LMSpostproc2 variant, which only speeds up some inputs, is left
// out; LMSsort1/LMSpostproc1 sort every input.
//
// Suffix array entries are stored as int32, so a text may hold at most
// math.MaxInt32 symbols. A negative entry ^j marks position j during the
// induction passes, as in sais-lite.

// minBucketSize is the alphabet size up to which bucket arrays are always
// allocated rather than carved out of the suffix array's free space.
const minBucketSize = 256

// symbol is the type of a text's characters: bytes at the top level, int32
// names in the reduced problems.
type symbol interface{ ~byte | ~int32 }

// suffixSort fills sa, which must have len(text) entries, with the suffix
// array of text: sa[i] is the start of the i-th smallest non-empty suffix.
func suffixSort(text []byte, sa []int32) {
	switch len(text) {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	saisMain(text, sa, 0, len(text), 256)
}

// getCounts sets c[ch] to the number of occurrences of ch in text[:n].
func getCounts[T symbol](text []T, c []int32, n, k int) {
	clear(c[:k])
	for _, ch := range text[:n] {
		c[ch]++
	}
}

// getBuckets sets b[ch] to the start (end false) or the end (end true) of
// the bucket of ch, from the counts in c. b and c may be the same slice.
func getBuckets(c, b []int32, k int, end bool) {
	var sum int32
	if end {
		for i := range k {
			sum += c[i]
			b[i] = sum
		}
		return
	}
	for i := range k {
		sum += c[i]
		b[i] = sum - c[i]
	}
}

// sameSlice reports whether c and b share their first element, that is
// whether the bucket array overwrote the counts.
func sameSlice(c, b []int32) bool { return &c[0] == &b[0] }

// lmsSort sorts the LMS substrings placed in their buckets by saisMain's
// first stage (sais-lite's LMSsort1).
func lmsSort[T symbol](text []T, sa, c, b []int32, n, k int) {
	shared := sameSlice(c, b)

	// Induce the L-type positions, scanning left to right.
	if shared {
		getCounts(text, c, n, k)
	}
	getBuckets(c, b, k, false)
	j := n - 1
	c1 := int(text[j])
	bb := int(b[c1])
	j--
	if int(text[j]) < c1 {
		sa[bb] = int32(^j)
	} else {
		sa[bb] = int32(j)
	}
	bb++
	for i := range n {
		j := int(sa[i])
		if j > 0 {
			if c0 := int(text[j]); c0 != c1 {
				b[c1] = int32(bb)
				c1 = c0
				bb = int(b[c1])
			}
			j--
			if int(text[j]) < c1 {
				sa[bb] = int32(^j)
			} else {
				sa[bb] = int32(j)
			}
			bb++
			sa[i] = 0
		} else if j < 0 {
			sa[i] = int32(^j)
		}
	}

	// Induce the S-type positions, scanning right to left.
	if shared {
		getCounts(text, c, n, k)
	}
	getBuckets(c, b, k, true)
	c1 = 0
	bb = int(b[c1])
	for i := n - 1; i >= 0; i-- {
		j := int(sa[i])
		if j > 0 {
			if c0 := int(text[j]); c0 != c1 {
				b[c1] = int32(bb)
				c1 = c0
				bb = int(b[c1])
			}
			j--
			bb--
			if int(text[j]) > c1 {
				sa[bb] = int32(^(j + 1))
			} else {
				sa[bb] = int32(j)
			}
			sa[i] = 0
		}
	}
}

// lmsPostproc compacts the m sorted LMS substrings into sa[:m], names them
// (equal substrings get equal names) and stores the name of the substring
// at p in sa[m+p/2]. It returns the number of distinct names (sais-lite's
// LMSpostproc1).
func lmsPostproc[T symbol](text []T, sa []int32, n, m int) int {
	i := 0
	for ; sa[i] < 0; i++ {
		sa[i] = ^sa[i]
	}
	if i < m {
		j := i
		for i++; ; i++ {
			if p := sa[i]; p < 0 {
				sa[j] = ^p
				j++
				sa[i] = 0
				if j == m {
					break
				}
			}
		}
	}

	// Store the length of every LMS substring.
	i = n - 1
	j := n - 1
	c0 := int(text[n-1])
	var c1 int
	for c1 = c0; ; c1 = c0 {
		if i--; i < 0 {
			break
		}
		if c0 = int(text[i]); c0 < c1 {
			break
		}
	}
	for i >= 0 {
		for c1 = c0; ; c1 = c0 {
			if i--; i < 0 {
				break
			}
			if c0 = int(text[i]); c0 > c1 {
				break
			}
		}
		if i >= 0 {
			sa[m+((i+1)>>1)] = int32(j - i)
			j = i + 1
			for c1 = c0; ; c1 = c0 {
				if i--; i < 0 {
					break
				}
				if c0 = int(text[i]); c0 < c1 {
					break
				}
			}
		}
	}

	// Name the substrings in sorted order.
	name, q, qlen := 0, n, 0
	for i := range m {
		p := int(sa[i])
		plen := int(sa[m+(p>>1)])
		diff := true
		if plen == qlen && q+plen < n {
			j := 0
			for j < plen && text[p+j] == text[q+j] {
				j++
			}
			diff = j != plen
		}
		if diff {
			name++
			q, qlen = p, plen
		}
		sa[m+(p>>1)] = int32(name)
	}
	return name
}

// induceSA induces the order of all suffixes from the sorted LMS suffixes
// placed at the ends of their buckets.
func induceSA[T symbol](text []T, sa, c, b []int32, n, k int) {
	shared := sameSlice(c, b)

	// Induce the L-type suffixes, scanning left to right.
	if shared {
		getCounts(text, c, n, k)
	}
	getBuckets(c, b, k, false)
	j := n - 1
	c1 := int(text[j])
	bb := int(b[c1])
	if j > 0 && int(text[j-1]) < c1 {
		sa[bb] = int32(^j)
	} else {
		sa[bb] = int32(j)
	}
	bb++
	for i := range n {
		j := int(sa[i])
		sa[i] = int32(^j)
		if j > 0 {
			j--
			if c0 := int(text[j]); c0 != c1 {
				b[c1] = int32(bb)
				c1 = c0
				bb = int(b[c1])
			}
			if j > 0 && int(text[j-1]) < c1 {
				sa[bb] = int32(^j)
			} else {
				sa[bb] = int32(j)
			}
			bb++
		}
	}

	// Induce the S-type suffixes, scanning right to left.
	if shared {
		getCounts(text, c, n, k)
	}
	getBuckets(c, b, k, true)
	c1 = 0
	bb = int(b[c1])
	for i := n - 1; i >= 0; i-- {
		j := int(sa[i])
		if j > 0 {
			j--
			if c0 := int(text[j]); c0 != c1 {
				b[c1] = int32(bb)
				c1 = c0
				bb = int(b[c1])
			}
			bb--
			if j == 0 || int(text[j-1]) > c1 {
				sa[bb] = int32(^j)
			} else {
				sa[bb] = int32(j)
			}
		} else {
			sa[i] = int32(^j)
		}
	}
}

// saisMain computes the suffix array of text[:n], over the alphabet
// [0, k), into sa[:n]. sa must have n+fs entries; the fs entries past n are
// free working space.
func saisMain[T symbol](text []T, sa []int32, fs, n, k int) {
	// Bucket arrays: c holds the symbol counts, b the bucket starts or
	// ends. They are taken from sa's free space when it is large enough.
	// Flags, as in sais-lite: 1 c allocated, b in sa; 2 b allocated;
	// 4 c and b are one allocated array; 8 the counts must be recomputed
	// before the final induction.
	var c, b []int32
	var flags int
	switch {
	case k <= minBucketSize:
		c = make([]int32, k)
		if k <= fs {
			b = sa[n+fs-k : n+fs]
			flags = 1
		} else {
			b = make([]int32, k)
			flags = 3
		}
	case k <= fs:
		c = sa[n+fs-k : n+fs]
		switch {
		case k <= fs-k:
			b = sa[n+fs-2*k : n+fs-k]
		case k <= minBucketSize*4:
			b = make([]int32, k)
			flags = 2
		default:
			b = c
			flags = 8
		}
	default:
		c = make([]int32, k)
		b = c
		flags = 4 | 8
	}

	// Stage 1: place the LMS substrings at the ends of their buckets, sort
	// and name them. The problem shrinks at least by half.
	getCounts(text, c, n, k)
	getBuckets(c, b, k, true)
	clear(sa[:n])
	slot := -1 // where the previous LMS position goes; -1 before the first
	i, j, m := n-1, n, 0
	c0 := int(text[n-1])
	var c1 int
	for c1 = c0; ; c1 = c0 {
		if i--; i < 0 {
			break
		}
		if c0 = int(text[i]); c0 < c1 {
			break
		}
	}
	for i >= 0 {
		for c1 = c0; ; c1 = c0 {
			if i--; i < 0 {
				break
			}
			if c0 = int(text[i]); c0 > c1 {
				break
			}
		}
		if i >= 0 {
			if slot >= 0 {
				sa[slot] = int32(j)
			}
			b[c1]--
			slot = int(b[c1])
			j = i
			m++
			for c1 = c0; ; c1 = c0 {
				if i--; i < 0 {
					break
				}
				if c0 = int(text[i]); c0 < c1 {
					break
				}
			}
		}
	}
	var name int
	switch {
	case m > 1:
		lmsSort(text, sa, c, b, n, k)
		name = lmsPostproc(text, sa, n, m)
	case m == 1:
		sa[slot] = int32(j + 1)
		name = 1
	}

	// Stage 2: if the names are not unique, sort the reduced problem
	// recursively, in sa's free space.
	if name < m {
		cInSA := flags&(1|4|8) == 0 // c lives in sa and still holds the counts
		if flags&4 != 0 {
			c, b = nil, nil // let the recursion reuse the memory
		}
		if flags&2 != 0 {
			b = nil
		}
		newfs := n + fs - 2*m
		if cInSA {
			if k+name <= newfs {
				newfs -= k // keep c out of the recursion's reach
			} else {
				flags |= 8
			}
		}
		ra := sa[m+newfs : 2*m+newfs]
		j := m - 1
		for i := m + (n >> 1) - 1; i >= m; i-- {
			if sa[i] != 0 {
				ra[j] = sa[i] - 1
				j--
			}
		}
		saisMain(ra, sa[:m+newfs], newfs, m, name)

		// Map the sorted reduced suffixes back to LMS positions.
		i, j := n-1, m-1
		c0 := int(text[n-1])
		var c1 int
		for c1 = c0; ; c1 = c0 {
			if i--; i < 0 {
				break
			}
			if c0 = int(text[i]); c0 < c1 {
				break
			}
		}
		for i >= 0 {
			for c1 = c0; ; c1 = c0 {
				if i--; i < 0 {
					break
				}
				if c0 = int(text[i]); c0 > c1 {
					break
				}
			}
			if i >= 0 {
				ra[j] = int32(i + 1)
				j--
				for c1 = c0; ; c1 = c0 {
					if i--; i < 0 {
						break
					}
					if c0 = int(text[i]); c0 < c1 {
						break
					}
				}
			}
		}
		for i := range m {
			sa[i] = ra[sa[i]]
		}
		if flags&4 != 0 {
			c = make([]int32, k)
			b = c
		}
		if flags&2 != 0 {
			b = make([]int32, k)
		}
	}

	// Stage 3: put the sorted LMS suffixes at the ends of their buckets and
	// induce the order of all suffixes.
	if flags&8 != 0 {
		getCounts(text, c, n, k)
	}
	if m > 1 {
		getBuckets(c, b, k, true)
		i, j := m-1, n
		p := int(sa[m-1])
		c1 := int(text[p])
		for i >= 0 {
			c0 := c1
			for q := int(b[c0]); q < j; {
				j--
				sa[j] = 0
			}
			for {
				j--
				sa[j] = int32(p)
				if i--; i < 0 {
					break
				}
				p = int(sa[i])
				if c1 = int(text[p]); c1 != c0 {
					break
				}
			}
		}
		for j > 0 {
			j--
			sa[j] = 0
		}
	}
	induceSA(text, sa, c, b, n, k)
}
