package bsdiff

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveSuffixArray sorts the suffixes of text by comparing them directly.
func naiveSuffixArray(text []byte) []int32 {
	sa := make([]int32, len(text))
	for i := range sa {
		sa[i] = int32(i)
	}
	slices.SortFunc(sa, func(a, b int32) int { return bytes.Compare(text[a:], text[b:]) })
	return sa
}

func TestSuffixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fixed := []string{"", "a", "aa", "ab", "ba", "banana", "mississippi", "abracadabra",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"abababababababababababababababababababababababababababababababababababababababababa",
		"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcab",
		"\x00\x00\x00\xff\xff\xff\x00\xff\x00\xff"}
	var inputs [][]byte
	for _, s := range fixed {
		inputs = append(inputs, []byte(s))
	}
	for range 600 {
		n := r.IntN(3000)
		if r.IntN(4) == 0 {
			n = r.IntN(20)
		}
		text := make([]byte, n)
		switch r.IntN(6) {
		case 0: // full byte alphabet
			for i := range text {
				text[i] = byte(r.UintN(256))
			}
		case 1: // binary alphabet: deep recursion
			for i := range text {
				text[i] = byte(r.UintN(2))
			}
		case 2: // small alphabet
			for i := range text {
				text[i] = 'a' + byte(r.UintN(4))
			}
		case 3: // a repeated random unit with rare mutations
			unit := make([]byte, 1+r.IntN(7))
			for i := range unit {
				unit[i] = byte(r.UintN(3))
			}
			for i := range text {
				text[i] = unit[i%len(unit)]
				if r.IntN(200) == 0 {
					text[i] = byte(r.UintN(256))
				}
			}
		case 4: // runs
			for i := 0; i < n; {
				c, l := byte(r.UintN(3)), 1+r.IntN(50)
				for ; l > 0 && i < n; l-- {
					text[i] = c
					i++
				}
			}
		case 5: // copies of earlier pieces, like binaries
			for i := 0; i < n; {
				if i > 16 && r.IntN(2) == 0 {
					src := r.IntN(i - 8)
					l := min(1+r.IntN(64), n-i, i-src)
					copy(text[i:i+l], text[src:src+l])
					i += l
				} else {
					text[i] = byte(r.UintN(256))
					i++
				}
			}
		}
		inputs = append(inputs, text)
	}
	for _, text := range inputs {
		got := make([]int32, len(text))
		suffixSort(text, got)
		if want := naiveSuffixArray(text); !slices.Equal(got, want) {
			t.Fatalf("suffixSort(%q) = %v, want %v", text, got, want)
		}
	}
}
