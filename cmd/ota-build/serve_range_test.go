package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestServeUnsatisfiableRanges (issue 9, item 12): ranges that select no byte get 416 with
// "Content-Range: bytes */SIZE" (RFC 9110), not 206 with an invalid Content-Range; the
// satisfiable ranges of a set are still served, If-Range still turns the range off, and
// an empty file is served whole (200) whatever the range.
func TestServeUnsatisfiableRanges(t *testing.T) {
	repo, cs := serveRepo(t, t.TempDir())
	if err := os.WriteFile(filepath.Join(repo, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, repo)
	obj := fmt.Sprintf("objects/%s/%s.commit", cs[:2], cs[2:])
	data, err := os.ReadFile(filepath.Join(repo, obj))
	if err != nil {
		t.Fatal(err)
	}
	size := len(data)
	resp, _ := do(t, "HEAD", srv.url+obj, nil)
	lastModified := resp.Header.Get("Last-Modified")
	for _, tc := range []struct {
		name, file         string
		header             map[string]string
		status             int
		contentRange, body string
	}{
		{"empty suffix", obj, map[string]string{"Range": "bytes=-0"}, 416, fmt.Sprintf("bytes */%d", size), ""},
		{"empty suffix, spaces and zeros", obj, map[string]string{"Range": "bytes= -00 "}, 416, fmt.Sprintf("bytes */%d", size), ""},
		{"empty suffix in a set", obj, map[string]string{"Range": "bytes=-0, 2-5"}, 206, fmt.Sprintf("bytes 2-5/%d", size), string(data[2:6])},
		{"suffix", obj, map[string]string{"Range": "bytes=-3"}, 206, fmt.Sprintf("bytes %d-%d/%d", size-3, size-1, size), string(data[size-3:])},
		{"past the end", obj, map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)}, 416, fmt.Sprintf("bytes */%d", size), ""},
		{"If-Range mismatch", obj, map[string]string{"Range": "bytes=-0", "If-Range": "Mon, 02 Jan 2006 15:04:05 GMT"}, 200, "", string(data)},
		{"If-Range match", obj, map[string]string{"Range": "bytes=-0", "If-Range": lastModified}, 416, fmt.Sprintf("bytes */%d", size), ""},
		// net/http ignores ranges of an empty file (RFC 9110 lets a server ignore Range).
		{"suffix of an empty file", "empty", map[string]string{"Range": "bytes=-5"}, 200, "", ""},
		{"start of an empty file", "empty", map[string]string{"Range": "bytes=0-"}, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "GET", srv.url+tc.file, tc.header)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Range") != tc.contentRange {
				t.Errorf("%v: %s, Content-Range %q; want %d, %q", tc.header, resp.Status, resp.Header.Get("Content-Range"), tc.status, tc.contentRange)
			}
			if tc.status != http.StatusRequestedRangeNotSatisfiable && string(body) != tc.body {
				t.Errorf("%v: body %q, want %q", tc.header, body, tc.body)
			}
		})
	}
}
