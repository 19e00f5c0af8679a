package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// vm is one run of QEMU: the board powered on until it is killed (a power cut) or powers
// off. Its serial console is QEMU's standard input and output: what the guest prints is
// kept, written to the console log and echoed to the terminal line by line.
type vm struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   io.Writer // the console log and the terminal

	mu      sync.Mutex
	buf     []byte        // the console output of this run, \r removed
	printed int           // how much of buf has been echoed
	changed chan struct{} // closed and replaced when buf grows or QEMU exits
	exited  bool
	waitErr error
	cmds    int // commands sent by run, numbering their markers
}

// Patterns of a boot gone wrong, checked by every wait: waiting on is pointless then.
var fatal = regexp.MustCompile(`Kernel panic|initramfs: error:|ota: cannot load|ota: booti failed`)

// startVM powers the board on: QEMU's virt machine with U-Boot as its firmware, the disk
// image on virtio-blk and a virtio network card on QEMU's user-mode network (the host's
// loopback is 10.0.2.2 to the guest). Every line of the console goes to log.
func startVM(image, uboot string, log io.Writer) (*vm, error) {
	cmd := exec.Command("qemu-system-aarch64",
		"-M", "virt", "-cpu", "cortex-a57", "-smp", "2", "-m", "512",
		"-nodefaults", "-display", "none", "-monitor", "none",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-bios", uboot,
		"-drive", "if=none,file="+image+",format=raw,id=hd0", "-device", "virtio-blk-device,drive=hd0",
		"-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0")
	// QEMU gets its own process group: a Ctrl-C on the terminal reaches only this program,
	// which then ends QEMU itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	v := &vm{cmd: cmd, stdin: stdin, out: log, changed: make(chan struct{})}
	running.add(v)
	go v.read(stdout)
	return v, nil
}

// read keeps what QEMU prints until it exits, then reaps it.
func (v *vm) read(r io.Reader) {
	chunk := make([]byte, 4096)
	for {
		n, err := r.Read(chunk)
		v.mu.Lock()
		v.buf = append(v.buf, bytes.ReplaceAll(chunk[:n], []byte("\r"), nil)...)
		v.echo(err != nil)
		if err != nil {
			v.waitErr = v.cmd.Wait()
			v.exited = true
		}
		close(v.changed)
		v.changed = make(chan struct{})
		v.mu.Unlock()
		if err != nil {
			running.remove(v)
			return
		}
	}
}

// echo writes the complete lines not echoed yet (all of them when final); v.mu is held.
func (v *vm) echo(final bool) {
	end := bytes.LastIndexByte(v.buf[v.printed:], '\n') + 1 + v.printed
	if final {
		end = len(v.buf)
	}
	for _, line := range strings.SplitAfter(string(v.buf[v.printed:end]), "\n") {
		if line != "" {
			fmt.Fprint(v.out, "  | "+strings.TrimSuffix(line, "\n")+"\n")
		}
	}
	v.printed = end
}

// mark returns the position of the console output's end, where waits can start from.
func (v *vm) mark() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.buf)
}

// expect waits up to timeout for re to match the console output from position from on, and
// returns the submatches and the position after the match. It fails at once when QEMU has
// exited or the output shows a failed boot.
func (v *vm) expect(from int, re *regexp.Regexp, timeout time.Duration) ([]string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		out, changed, exited := v.buf[from:], v.changed, v.exited
		if loc := re.FindSubmatchIndex(out); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = string(out[loc[2*i]:loc[2*i+1]])
				}
			}
			v.mu.Unlock()
			return m, from + loc[1], nil
		}
		v.mu.Unlock()
		if f := fatal.Find(out); f != nil {
			return nil, 0, fmt.Errorf("waiting for %q: the console shows %q", re, f)
		}
		if exited {
			return nil, 0, fmt.Errorf("waiting for %q: QEMU exited (%v)", re, v.waitErr)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, 0, fmt.Errorf("waiting for %q: nothing after %v", re, timeout)
		}
	}
}

// send types line (and a newline) on the console.
func (v *vm) send(line string) error {
	_, err := io.WriteString(v.stdin, line+"\n")
	return err
}

// shellReady waits, up to timeout, until the console's shell answers.
func (v *vm) shellReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v.cmds++
		// The shell echoes what is typed: the quotes keep the echo from matching.
		from := v.mark()
		if err := v.send(fmt.Sprintf(`echo @@ready""%d`, v.cmds)); err != nil {
			return err
		}
		_, _, err := v.expect(from, regexp.MustCompile(`(?m)^@@ready`+strconv.Itoa(v.cmds)+`$`), 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), "nothing after") {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the console's shell did not answer within %v", timeout)
		}
	}
}

// run runs the shell command line on the console and returns its output (standard output
// and error). A non-zero exit status is an error, as is no end within timeout.
func (v *vm) run(command string, timeout time.Duration) (string, error) {
	v.cmds++
	n := strconv.Itoa(v.cmds)
	from := v.mark()
	if err := v.send(`echo @@begin""` + n + `; ` + command + ` 2>&1; echo @@end""` + n + `:$?`); err != nil {
		return "", err
	}
	m, _, err := v.expect(from, regexp.MustCompile(`(?s)\n@@begin`+n+`\n(.*?)@@end`+n+`:(\d+)\n`), timeout)
	if err != nil {
		return "", fmt.Errorf("%s: %w", command, err)
	}
	if m[2] != "0" {
		return m[1], fmt.Errorf("%s: exit status %s:\n%s", command, m[2], m[1])
	}
	return m[1], nil
}

// kill cuts the power: QEMU is killed by its PID, and reaped.
func (v *vm) kill() error {
	if err := v.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return v.waitExit(10 * time.Second)
}

// waitExit waits up to timeout for QEMU to exit.
func (v *vm) waitExit(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		exited, changed := v.exited, v.changed
		v.mu.Unlock()
		if exited {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("QEMU (pid %d) still runs after %v", v.cmd.Process.Pid, timeout)
		}
	}
}

// procs are the child processes still running, ended by their PID when the scenario
// stops, however it stops.
type procs struct {
	mu   sync.Mutex
	list map[*vm]bool
}

var running = procs{list: map[*vm]bool{}}

func (p *procs) add(v *vm) {
	p.mu.Lock()
	p.list[v] = true
	p.mu.Unlock()
}

func (p *procs) remove(v *vm) {
	p.mu.Lock()
	delete(p.list, v)
	p.mu.Unlock()
}

// killAll kills every QEMU still running.
func (p *procs) killAll() {
	p.mu.Lock()
	list := make([]*vm, 0, len(p.list))
	for v := range p.list {
		list = append(list, v)
	}
	p.mu.Unlock()
	for _, v := range list {
		v.kill()
	}
}

// text returns the console output between two positions.
func (v *vm) text(from, to int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return string(v.buf[from:to])
}
