package remote

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFetch: a file up to the bound comes back in memory; a larger one is downloaded into
// the file, the first response (for the whole file) kept as the download's start, so that
// with drops every byte is still sent once; a partial file left from before is continued
// at once with Range.
func TestFetch(t *testing.T) {
	content := randomBytes(300_000)
	size := int64(len(content))
	const k = 70_000
	tests := []struct {
		name    string
		max     int64
		drops   int
		partial int64 // bytes of a partial file left from before
		chunked bool  // the server declares no size
		ranges  []string
	}{
		{"in memory", size, 0, 0, false, []string{""}},
		{"in memory, chunked", size, 0, 0, true, []string{""}},
		{"large", 100_000, 0, 0, false, []string{""}},
		{"large, dropped", 100_000, 3, 0, false, []string{"", "bytes=70000-", "bytes=140000-", "bytes=210000-"}},
		{"large, partial left", 100_000, 0, 123_456, false, []string{"bytes=123456-"}},
		// Without a declared size, a file over the bound is only known as such once the
		// bound is passed: the download fetches it again.
		{"large, chunked", 100_000, 0, 0, true, []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch {
				case n < tt.drops:
					serveCut(w, r, content, k)
				case tt.chunked && r.Header.Get("Range") == "":
					w.WriteHeader(http.StatusOK)
					http.NewResponseController(w).Flush() // no Content-Length
					w.Write(content)
				default:
					serve(w, r, content)
				}
			})
			prog := &counter{}
			opts := testOptions()
			opts.Progress = prog
			c := newClient(t, s.URL, opts)
			dst := filepath.Join(t.TempDir(), "obj")
			if tt.partial > 0 {
				if err := os.WriteFile(dst+".partial", content[:tt.partial], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var accepted []int64
			data, err := c.Fetch(t.Context(), partPath, tt.max, dst, DownloadOptions{Max: 1 << 20, SHA256: digest(content),
				Accept: func(n int64) error { accepted = append(accepted, n); return nil }})
			if err != nil {
				t.Fatal(err)
			}
			var ranges []string
			for _, r := range s.requests() {
				ranges = append(ranges, r.Range)
			}
			if fmt.Sprint(ranges) != fmt.Sprint(tt.ranges) {
				t.Fatalf("Range headers %q, want %q", ranges, tt.ranges)
			}
			if tt.max >= size {
				if !bytes.Equal(data, content) {
					t.Fatalf("%d bytes returned, not the file's %d", len(data), size)
				}
				if _, err := os.Stat(dst + ".partial"); !os.IsNotExist(err) {
					t.Fatal("a file fetched into memory left a partial file")
				}
				return
			}
			if data != nil {
				t.Fatalf("%d bytes returned for a file downloaded", len(data))
			}
			checkFile(t, dst, content)
			if reqs := s.requests(); tt.partial > 0 && reqs[0].Sent != size-tt.partial {
				t.Fatalf("%d bytes sent after a partial of %d", reqs[0].Sent, tt.partial)
			}
			if !tt.chunked {
				if tt.partial == 0 {
					checkContiguous(t, s.requests(), size)
				}
				if len(accepted) != len(tt.ranges) || accepted[0] != size {
					t.Fatalf("Accept saw sizes %v, want %d per response", accepted, size)
				}
			}
			if p := prog.bytes.Load(); p != size {
				t.Fatalf("progress %d bytes, want %d", p, size)
			}
		})
	}
}

// TestFetchAcceptRefuses: an error of Accept ends a large download at once, before any of
// its bytes is written, and nothing is left.
func TestFetchAcceptRefuses(t *testing.T) {
	content := randomBytes(200_000)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, content) })
	c := newClient(t, s.URL, testOptions())
	dst := filepath.Join(t.TempDir(), "obj")
	tooBig := errors.New("200000 bytes, more than the 150000 allowed")
	_, err := c.Fetch(t.Context(), partPath, 1000, dst, DownloadOptions{Max: 1 << 20,
		Accept: func(n int64) error {
			if n > 150_000 {
				return tooBig
			}
			return nil
		}})
	checkOneLine(t, err, s.URL+"/"+partPath)
	if !errors.Is(err, tooBig) {
		t.Fatalf("error %v: want Accept's", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	if st := c.Stats(); st.Requests != 1 || st.Retries != 0 {
		t.Fatalf("stats %+v: want one request, no retry", st)
	}
}

// TestDownloadDropsBeyondRetries: a connection dropped more times than the retries allow
// does not end a download as long as each attempt brings new bytes; attempts that bring
// none still run out.
func TestDownloadDropsBeyondRetries(t *testing.T) {
	content := randomBytes(200_000)
	const k, drops = 30_000, 5
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n < drops {
			serveCut(w, r, content, k)
		}
		serve(w, r, content)
	})
	opts := testOptions()
	opts.Retries = 1
	c := newClient(t, s.URL, opts)
	dst := filepath.Join(t.TempDir(), "0")
	if err := c.Download(t.Context(), partPath, dst, DownloadOptions{Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, content)
	checkContiguous(t, s.requests(), int64(len(content)))

	// A server that drops every connection before the first byte: two attempts.
	s = newServer(t, func(w http.ResponseWriter, r *http.Request, n int) { serveCut(w, r, content, 0) })
	c = newClient(t, s.URL, opts)
	err := c.Download(t.Context(), partPath, filepath.Join(t.TempDir(), "0"), DownloadOptions{Size: int64(len(content))})
	if err == nil || !strings.Contains(err.Error(), "gave up after 2 attempts") {
		t.Fatalf("error %v: want it to give up after 2 attempts", err)
	}
}
