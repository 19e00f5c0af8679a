package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ulikunitz/xz"
)

// Values of Options.XZ besides the path of an xz command.
const (
	// XZAuto uses the xz command found in $PATH, else the built-in encoder.
	XZAuto = "auto"
	// XZBuiltin uses the built-in encoder (github.com/ulikunitz/xz).
	XZBuiltin = "builtin"
)

// LookXZ returns the xz command an Options.XZ value names: "" for the built-in encoder
// (XZBuiltin, or XZAuto without xz in $PATH), else the command's path. A value that is
// neither XZAuto nor XZBuiltin names a command: a path, or a name looked up in $PATH; an
// error names it when it is missing or not executable.
func LookXZ(choice string) (string, error) {
	switch choice {
	case "", XZAuto:
		p, _ := exec.LookPath("xz")
		return p, nil
	case XZBuiltin:
		return "", nil
	}
	p, err := lookCommand(choice)
	if err != nil {
		return "", fmt.Errorf("xz encoder %q: %w", choice, err)
	}
	return p, nil
}

// lookCommand returns the path of command name (a path, or a name looked up in $PATH), or
// why it cannot run without naming it, for an error that names it once.
func lookCommand(name string) (string, error) {
	p, err := exec.LookPath(name)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		err = pe.Err
	} else if ee := (*exec.Error)(nil); errors.As(err, &ee) {
		err = ee.Err
	}
	return p, err
}

// versionLine runs the encoder command cmd's --version (killed when ctx ends) and returns
// the first line it prints, or an error naming the command and what it wrote to stderr.
func versionLine(ctx context.Context, cmd string) (string, error) {
	var out, stderr bytes.Buffer
	c := exec.CommandContext(ctx, cmd, "--version")
	c.Stdout, c.Stderr = &out, &stderr
	if err := runTied(c); err != nil {
		return "", fmt.Errorf("%s --version: %v: %s", cmd, err, bytes.TrimSpace(stderr.Bytes()))
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	return first, nil
}

// xzEncoder compresses part payloads into .xz streams.
type xzEncoder struct {
	cmd  string // the xz command, or "" for the built-in encoder
	name string // what Result.Encoder says
}

// newXZEncoder returns the encoder Options.XZ chooses. It runs an xz command's --version,
// which names its version and checks that it is xz.
func newXZEncoder(ctx context.Context, choice string) (*xzEncoder, error) {
	cmd, err := LookXZ(choice)
	if err != nil || cmd == "" {
		return &xzEncoder{name: builtinXZName()}, err
	}
	// "xz (XZ Utils) 5.4.1" then "liblzma 5.4.1".
	first, err := versionLine(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("xz encoder %w", err)
	}
	f := strings.Fields(first)
	if len(f) < 2 || f[0] != "xz" {
		return nil, fmt.Errorf("xz encoder %s is not xz: --version printed %q", cmd, first)
	}
	return &xzEncoder{cmd: cmd, name: fmt.Sprintf("xz %s (%s)", f[len(f)-1], cmd)}, nil
}

// DecoderXZ returns the xz command in $PATH when it is XZ Utils' (its --version starts with
// "xz (XZ Utils)") and /bin/sh is there to run it under a file size limit, for
// ApplyOptions.XZ; else "". It asks once per process.
func DecoderXZ() string { return decoderXZ() }

var decoderXZ = sync.OnceValue(lookDecoderXZ)

func lookDecoderXZ() string {
	p, err := exec.LookPath("xz")
	if err != nil {
		return ""
	}
	if _, err := os.Stat(shell); err != nil {
		return ""
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil || !bytes.HasPrefix(out, []byte("xz (XZ Utils) ")) {
		return ""
	}
	return p
}

// builtinXZName names the built-in encoder with its module version, when the binary
// records it (test binaries do not).
var builtinXZName = sync.OnceValue(func() string {
	const mod = "github.com/ulikunitz/xz"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == mod {
				if d.Replace != nil {
					d = d.Replace
				}
				return fmt.Sprintf("builtin (%s %s)", mod, d.Version)
			}
		}
	}
	return "builtin (" + mod + ")"
})

// preset chooses how the xz command compresses a part.
type preset int

// Presets of parts. Preset 6 compresses new files as well as ostree's preset 8 with half
// its memory. bsdiff patches, mostly runs of small differences, compress almost as well at
// preset 3 in a fraction of the time: on a Debian point release (bench/) the delta stayed
// smaller than ostree's while generation became twice as fast.
const (
	presetWhole   preset = iota // whole objects, or everything in one part: -6
	presetPatches               // bsdiff patches only: -3
	// One of the two halves of a delta of one part's size (see packer.split), compressed
	// at once: preset 6 with a 2 MiB dictionary, which takes 26 MiB where -6 takes 94
	// and compresses patches as well (a tenth of a percent larger, 10% less CPU), and
	// lp=2,lc=2, which suits 4-byte instructions (arm64, most of what changes in an
	// update): half a percent smaller on bench/'s tiny tree. Its match finder looks for
	// longer matches (nice=96) less deep (depth=16 rather than 48): on that tree's patches,
	// 0.1% smaller and 4% faster.
	presetHalf
)

// xzArgs are the xz command's options of each preset.
var xzArgs = [...]string{presetWhole: "-6", presetPatches: "-3", presetHalf: "--lzma2=preset=6,lp=2,lc=2,dict=2MiB,nice=96,depth=16"}

// compress writes 'x' followed by an .xz stream of what r holds to w. The xz command
// (liblzma compresses about a fifth smaller than the built-in encoder) is killed when ctx
// ends.
func (e *xzEncoder) compress(ctx context.Context, w io.Writer, r io.Reader, pr preset) error {
	if _, err := w.Write([]byte{CompressionXZ}); err != nil {
		return err
	}
	if e.cmd == "" {
		xw, err := xz.WriterConfig{DictCap: 8 << 20, CheckSum: xz.CRC64}.NewWriter(w)
		if err != nil {
			return err
		}
		if _, err := io.Copy(xw, r); err != nil {
			return err
		}
		return xw.Close()
	}
	cmd := exec.CommandContext(ctx, e.cmd, xzArgs[pr], "--check=crc64", "--threads=1", "--stdout", "--quiet")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, w, &stderr
	// A wrapper script's children may hold the pipes after it is killed.
	cmd.WaitDelay = time.Second
	if err := runTied(cmd); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %v: %s", e.cmd, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// runTied runs cmd as a child that the kernel kills when this process dies, however it
// dies (SIGKILL included): a killed ota-build leaves no compressor running. The parent
// death signal fires when the thread that started the child exits, so the goroutine keeps
// its thread for the child's lifetime (see https://go.dev/issue/27505).
func runTied(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}
