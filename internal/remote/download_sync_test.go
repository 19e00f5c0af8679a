package remote

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestDownloadSyncsPartial: the partial file is synced each time it has grown by
// SyncEvery bytes, so that a power cut in the middle of a download loses at most that
// much; a download resumed from a partial counts from the partial's size.
func TestDownloadSyncsPartial(t *testing.T) {
	content := randomBytes(3*SyncEvery + SyncEvery/2)
	const k = SyncEvery + SyncEvery/4 // where the first client is killed
	var synced []int64                // the partial's size at each sync
	syncFile = func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		synced = append(synced, fi.Size())
		return f.Sync()
	}
	t.Cleanup(func() { syncFile = (*os.File).Sync })
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			serveHang(w, r, content, k)
		}
		serve(w, r, content)
	})
	dst := filepath.Join(t.TempDir(), "0")
	do := DownloadOptions{Size: int64(len(content)), SHA256: digest(content)}
	ctx, cancel := context.WithCancel(t.Context())
	opts := testOptions()
	opts.Progress = &counter{mark: k, at: cancel}
	if err := newClient(t, s.URL, opts).Download(ctx, partPath, dst, do); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want the cancellation", err)
	}
	if len(synced) != 1 || synced[0] < SyncEvery || synced[0] > k {
		t.Fatalf("syncs of the partial before the kill at %d bytes: at sizes %v; want one, between %d and %d", k, synced, SyncEvery, k)
	}

	synced = nil
	opts.Progress = &counter{}
	if err := newClient(t, s.URL, opts).Download(t.Context(), partPath, dst, do); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, content)
	// Growing from k to 3.5 SyncEvery: a sync after each further SyncEvery bytes.
	if len(synced) != 2 || synced[0] < k+SyncEvery || synced[1] < synced[0]+SyncEvery {
		t.Fatalf("syncs of the resumed partial at sizes %v; want two, SyncEvery apart from %d", synced, k)
	}
}
