package main

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileWatch reports on fired the first file to appear at a path (see crashTrigger).
type fileWatch struct {
	fd    int
	f     *os.File // fd, read through the runtime's poller (os.File.Fd would make it blocking)
	fired chan struct{}
	names []string
	dirs  map[int32]watchedDir // by watch descriptor
}

// watchedDir is a directory watched for names[level] of a fileWatch.
type watchedDir struct {
	path  string
	level int
}

// watchFiles watches dir, which must exist, for a file at the path of names under it
// (inotify).
func watchFiles(t *testing.T, dir string, names []string) *fileWatch {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	w := &fileWatch{fd: fd, f: os.NewFile(uintptr(fd), "inotify"), fired: make(chan struct{}), names: names, dirs: map[int32]watchedDir{}}
	if w.watch(dir, 0) {
		close(w.fired)
		return w
	}
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := w.f.Read(buf) // the poller's: Close ends it
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				off += unix.SizeofInotifyEvent + int(ev.Len)
				if w.appeared(ev.Wd, name) {
					close(w.fired)
					return
				}
			}
		}
	}()
	return w
}

// watch watches dir for names[level] and looks at what it holds already: it reports
// whether the whole path is there.
func (w *fileWatch) watch(dir string, level int) bool {
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO)
	if err != nil {
		return false // gone already
	}
	w.dirs[int32(wd)] = watchedDir{dir, level}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if w.appeared(int32(wd), e.Name()) {
			return true
		}
	}
	return false
}

// appeared notes name appearing in the directory of watch wd: it reports whether the
// whole path is there, and watches a directory on the path.
func (w *fileWatch) appeared(wd int32, name string) bool {
	d, ok := w.dirs[wd]
	if !ok {
		return false
	}
	if m, _ := path.Match(w.names[d.level], name); !m {
		return false
	}
	if d.level == len(w.names)-1 {
		return true
	}
	return w.watch(filepath.Join(d.path, name), d.level+1)
}

// Close stops the watch.
func (w *fileWatch) Close() error { return w.f.Close() }
