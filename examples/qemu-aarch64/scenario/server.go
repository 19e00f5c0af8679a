package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is `ota-build serve` on the host's loopback, with its access log.
type server struct {
	cmd  *exec.Cmd
	url  string
	repo string
	done chan struct{} // closed once the process is reaped

	mu   sync.Mutex
	log  []string // the access log's lines
	file *os.File
}

// startServer starts ota-build serve for repo on 127.0.0.1:port, its log in logFile, and
// waits (bounded) for it to listen.
func startServer(otaBuild, repo string, port int, logFile string) (*server, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(otaBuild, "serve", "--repo", repo, "--addr", "127.0.0.1:"+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, repo: repo, file: f, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, sc.Text())
			fmt.Fprintln(s.file, sc.Text())
			s.mu.Unlock()
		}
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "serving "+repo+" at "); ok {
				listening <- u
			}
		}
		io.Copy(io.Discard, stdout)
		wg.Wait()
		cmd.Wait()
		close(s.done)
	}()
	select {
	case s.url = <-listening:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("ota-build serve exited: %s", strings.Join(s.lines(0), "\n"))
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, errors.New("ota-build serve did not listen within 30 s")
	}
}

// stop ends the server by its PID: SIGTERM, then SIGKILL after 10 s.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.file.Close()
}

// mark returns the number of log lines so far.
func (s *server) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// lines returns the log lines from line from on.
func (s *server) lines(from int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log[from:]...)
}

// partRequest is a request for a delta part in the access log.
type partRequest struct {
	line   string
	path   string
	status int
	bytes  int64 // the bytes the server sent
	from   int64 // the first byte asked for (Range: bytes=N-), else 0
}

// accessLine is a line of ota-build serve's access log for a delta part (its xz file N, or
// its zstd file N.zst, which the client takes when the delta has them, as by default):
// common log format, the duration, and the Range header when there was one.
var accessLine = regexp.MustCompile(`"GET (/deltas/\S+/\d+(?:\.zst)?) HTTP/[\d.]+" (\d+) (\d+) \S+(?: range="bytes=(\d+)-\d*")?$`)

// partRequests returns the requests for delta parts logged from line from on.
func (s *server) partRequests(from int) []partRequest {
	var rs []partRequest
	for _, l := range s.lines(from) {
		m := accessLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		r := partRequest{line: l, path: m[1]}
		r.status, _ = strconv.Atoi(m[2])
		r.bytes, _ = strconv.ParseInt(m[3], 10, 64)
		if m[4] != "" {
			r.from, _ = strconv.ParseInt(m[4], 10, 64)
		}
		rs = append(rs, r)
	}
	return rs
}

// waitParts returns the requests for delta parts logged from line from on, waiting up to
// 10 s for one: the server logs a request once it ends, which for a connection QEMU's end
// cut is once the server notices.
func (s *server) waitParts(from int) []partRequest {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rs := s.partRequests(from); len(rs) > 0 || time.Now().After(deadline) {
			return rs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// size returns the size of the served file at path.
func (s *server) size(path string) (int64, error) {
	fi, err := os.Stat(filepath.Join(s.repo, filepath.FromSlash(path)))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
