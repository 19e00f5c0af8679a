// Command scenario is the end-to-end test of examples/qemu-aarch64, run by e2e.sh once
// the releases and the disk image are built. It serves the repository with `ota-build
// serve`, boots the image in QEMU and drives the serial console through the scenario:
//
//  1. boot v1; `ota-client update` pulls v2 by its delta; the power is cut (QEMU killed) in
//     the middle of the download;
//  2. boot: still v1; the update resumes the download where the guest's disk left it, and
//     the power is cut in the middle of the deploy;
//  3. boot: still v1; the update completes; reboot;
//  4. boot v2, which marks itself good; v3 is published; update to v3; reboot;
//  5. v3 fails its health check and reboots, by itself, until the boot script falls back
//     to v2 after its boot limit; v2 marks itself good and `ota-client status` reports the
//     rollback as its last result.
//
// Every wait is bounded, every QEMU process and the server are ended by their PID, the
// console is printed as it comes (and kept in LOGS/console.log), and each phase's time is
// printed at the end. The exit status is 1 when any step fails.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of the waits. A boot of the Debian kernel under TCG takes some seconds; these leave
// room for a loaded machine.
const (
	bootTimeout    = 4 * time.Minute // power on to the system's health check
	commandTimeout = 4 * time.Minute // one ota-client command
	cutTimeout     = 3 * time.Minute // until the moment of a power cut
)

// cutAt is how much of the download the guest reports before the first power cut.
const cutAt = 2 << 20

func main() {
	var s scenario
	flag.StringVar(&s.image, "image", "", "the disk image `FILE` (release 1, as ota-build image wrote it)")
	flag.StringVar(&s.uboot, "uboot", "/usr/lib/u-boot/qemu_arm64/u-boot.bin", "U-Boot for QEMU's virt machine (`FILE`)")
	flag.StringVar(&s.repo, "repo", "", "the archive repository `DIR` to serve")
	flag.IntVar(&s.port, "port", 8480, "the `PORT` of ota-build serve on 127.0.0.1, as the releases' client.yaml names it")
	flag.StringVar(&s.logs, "logs", ".", "`DIR` for console.log, serve.log and publish.log")
	flag.StringVar(&s.otaBuild, "ota-build", "ota-build", "the ota-build `PROGRAM`")
	flag.StringVar(&s.manifest, "manifest", "", "the manifest `FILE` that publishes release 3 (ota-build build -f FILE --version 3)")
	flag.Parse()
	if s.image == "" || s.repo == "" || s.manifest == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: scenario -image FILE -repo DIR -manifest FILE [flags]")
		flag.PrintDefaults()
		os.Exit(2)
	}

	// Interrupted or not, nothing this program started outlives it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "scenario: %v: stopping QEMU and the server\n", sig)
		s.stop()
		os.Exit(1)
	}()
	start := time.Now()
	err := s.run()
	s.stop()
	s.endPhase()
	fmt.Println("\n==> scenario times")
	for _, p := range s.times {
		fmt.Printf("%-44s %7.1f s\n", p.name, p.d.Seconds())
	}
	fmt.Printf("%-44s %7.1f s\n", "scenario total", time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nscenario: FAILED in phase %q: %v\n", s.phaseName, err)
		os.Exit(1)
	}
	fmt.Println("\nscenario: PASSED")
}

// scenario is the state of the run.
type scenario struct {
	image, uboot, repo, logs, otaBuild, manifest string
	port                                         int

	console io.Writer // the terminal and console.log
	server  *server
	vm      *vm // the board, while it is powered
	// bootFrom is the console position from which the next boot is awaited.
	bootFrom int
	// cutAt is how much of the download the guest reported at the first power cut.
	cutAt int64

	phaseName  string
	phaseStart time.Time
	times      []phaseTime
}

type phaseTime struct {
	name string
	d    time.Duration
}

// phase starts a new phase of the timing table.
func (s *scenario) phase(name string) {
	s.endPhase()
	s.phaseName, s.phaseStart = name, time.Now()
	fmt.Printf("\n==> %s\n", name)
}

func (s *scenario) endPhase() {
	if s.phaseName != "" && !s.phaseStart.IsZero() {
		s.times = append(s.times, phaseTime{s.phaseName, time.Since(s.phaseStart)})
		s.phaseStart = time.Time{}
	}
}

// say prints a line of the scenario itself (not of the console).
func say(format string, args ...any) { fmt.Printf("--- "+format+"\n", args...) }

// stop ends QEMU and the server, if they run.
func (s *scenario) stop() {
	running.killAll()
	if s.server != nil {
		s.server.stop()
	}
}

func (s *scenario) run() error {
	log, err := os.Create(filepath.Join(s.logs, "console.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	s.console = io.MultiWriter(os.Stdout, log)

	s.phase("start ota-build serve")
	if s.server, err = startServer(s.otaBuild, s.repo, s.port, filepath.Join(s.logs, "serve.log")); err != nil {
		return err
	}
	say("serving %s at %s", s.repo, s.server.url)

	// 1. v1, power cut in the middle of the download of v2.
	s.phase("boot v1")
	if err := s.boot("1", 1); err != nil {
		return err
	}
	s.phase("update to v2, power cut in the download")
	logMark := s.server.mark()
	from := s.vm.mark()
	if err := s.vm.send("ota-client --progress=json update"); err != nil {
		return err
	}
	if s.cutAt, err = s.waitDownload(from, cutAt); err != nil {
		return err
	}
	if err := s.powerCut(fmt.Sprintf("the guest reports %s of the download", mib(s.cutAt))); err != nil {
		return err
	}
	first := s.server.waitParts(logMark)
	if len(first) == 0 {
		return errors.New("the server log shows no request for a delta part before the cut")
	}
	for _, r := range first {
		say("server log: %s", r.line)
	}

	// 2. Still v1; the download resumes; power cut in the middle of the deploy. Each boot
	// after a cut is attempt 1: the boot before marked itself good, durably.
	s.phase("boot v1 after the cut")
	if err := s.boot("1", 1); err != nil {
		return err
	}
	if err := s.checkStatus("1", "1", ""); err != nil {
		return err
	}
	s.phase("resume the download, power cut in the deploy")
	logMark = s.server.mark()
	from = s.vm.mark()
	// The update runs in the background while the shell watches for the checkout of the
	// new deployment, well before the boot configuration's swap.
	if err := s.vm.send(`ota-client --progress=json update & ` +
		`until [ "$(ls -d /ostree/deploy/*/deploy/*.0 | wc -l)" -ge 2 ]; do sleep 0.1; done; echo @@deploy""ing`); err != nil {
		return err
	}
	if _, _, err := s.vm.expect(from, regexp.MustCompile(`(?m)^@@deploying$`), cutTimeout); err != nil {
		return err
	}
	if err := s.powerCut("the guest is checking out the new deployment"); err != nil {
		return err
	}
	if err := s.checkResume(first, s.server.waitParts(logMark)); err != nil {
		return err
	}

	// 3. Still v1; the update completes.
	s.phase("boot v1 after the second cut")
	if err := s.boot("1", 1); err != nil {
		return err
	}
	if err := s.checkStatus("1", "1", ""); err != nil {
		return err
	}
	out, err := s.vm.run("ls /ostree/deploy/*/deploy/", commandTimeout)
	if err != nil {
		return err
	}
	say("deployment directories after the cut (the interrupted checkout is gone or left for the next deploy to replace):\n%s", strings.TrimSpace(out))
	s.phase("update to v2")
	logMark = s.server.mark()
	out, err = s.vm.run("ota-client --progress=plain update", commandTimeout)
	if err != nil {
		return err
	}
	// The cut came in the deploy, after the pull had synced its commit: the commit is in
	// the repository, or its delta is applied again from the parts downloaded already.
	if err := checkUpdated(out, true); err != nil {
		return err
	}
	if again := s.server.partRequests(logMark); len(again) > 0 {
		return fmt.Errorf("the completed download was fetched again: %s", again[0].line)
	}
	if err := s.reboot(); err != nil {
		return err
	}

	// 4. v2; v3 is published; update to v3.
	s.phase("boot v2")
	if err := s.boot("2", 1); err != nil {
		return err
	}
	if err := s.checkStatus("2", "2", "1"); err != nil {
		return err
	}
	s.phase("publish v3 (ota-build build)")
	if err := s.publish(); err != nil {
		return err
	}
	s.phase("update to v3")
	out, err = s.vm.run("ota-client --progress=plain update", commandTimeout)
	if err != nil {
		return err
	}
	if err := checkUpdated(out, false); err != nil {
		return err
	}
	if err := s.reboot(); err != nil {
		return err
	}

	// 5. v3 fails its health check; the boot script falls back to v2, with no host
	// intervention: the console is only read from here to v2's health check.
	s.phase("v3 fails its health check; fallback to v2")
	if err := s.fallback(); err != nil {
		return err
	}
	if err := s.checkStatus("2", "2", "3"); err != nil {
		return err
	}
	out, err = s.vm.run("ota-client status --json", commandTimeout)
	if err != nil {
		return err
	}
	var st struct {
		LastResult struct{ Operation, Outcome, Message string } `json:"last_result"`
	}
	if err := parseJSON(out, &st); err != nil {
		return err
	}
	if st.LastResult.Operation != "fallback" || st.LastResult.Outcome != "success" || !strings.Contains(st.LastResult.Message, "rolled back") {
		return fmt.Errorf("the last result does not report the rollback: %+v", st.LastResult)
	}
	say("last result: %s %s: %s", st.LastResult.Operation, st.LastResult.Outcome, st.LastResult.Message)

	s.phase("power off")
	if err := s.vm.send("sync; poweroff -f"); err != nil {
		return err
	}
	if err := s.vm.waitExit(time.Minute); err != nil {
		return err
	}
	return nil
}

// boot powers the board on, unless it runs, and waits for the system's start: U-Boot's boot
// script, the kernel, the initramfs and the deployment's init, which reports the version it
// booted and its health check. want is the version that must boot, attempt the boot
// script's count of attempts; the check must pass.
func (s *scenario) boot(want string, attempt int) error {
	if s.vm == nil {
		v, err := startVM(s.image, s.uboot, s.console)
		if err != nil {
			return err
		}
		s.vm, s.bootFrom = v, 0
		say("QEMU started, pid %d", v.cmd.Process.Pid)
	}
	_, fellBack, err := s.waitBoot(s.bootFrom, want, attempt, true)
	if err == nil && fellBack {
		err = errors.New("the boot script fell back to the rollback entry")
	}
	return err
}

// waitBoot waits for the next boot from console position from on: it returns once the
// system reported its version (which must be want) and its health check (which must pass
// when healthy, else fail), and, when healthy, the console's shell answers. The boot
// script's count of boot attempts must be attempt. It reports whether the boot script fell
// back to the rollback entry on the way, and the console position after the health
// check's line.
func (s *scenario) waitBoot(from int, want string, attempt int, healthy bool) (end int, fellBack bool, err error) {
	v := s.vm
	m, at, err := v.expect(from, regexp.MustCompile(`ota: boot attempt 0x([0-9a-f]+)`), bootTimeout)
	if err != nil {
		return 0, false, err
	}
	count, start := m[1], at
	m, at, err = v.expect(at, regexp.MustCompile(`e2e: booted version (\S+) \((.*)\)`), bootTimeout)
	if err != nil {
		return 0, false, err
	}
	fellBack = fallbackLine.MatchString(v.text(start, at))
	if fellBack {
		say("U-Boot's boot script fell back to the rollback entry")
	}
	say("boot attempt 0x%s: the guest booted version %s (%s)", count, m[1], m[2])
	if m[1] != want {
		return 0, fellBack, fmt.Errorf("booted version %s, want %s", m[1], want)
	}
	if n, _ := strconv.ParseInt(count, 16, 64); n != int64(attempt) {
		return 0, fellBack, fmt.Errorf("boot attempt 0x%s, want 0x%x: the boot counter is not what the last boot left", count, attempt)
	}
	health := `e2e: health check passed`
	if !healthy {
		health = `e2e: health check failed`
	}
	if _, end, err = v.expect(at, regexp.MustCompile(health), bootTimeout); err != nil {
		return 0, fellBack, err
	}
	if healthy {
		err = v.shellReady(time.Minute)
	}
	return end, fellBack, err
}

// fallbackLine is what the boot script prints when it boots the rollback entry.
var fallbackLine = regexp.MustCompile(`ota: boot limit \d+ exceeded; booting rollback entry`)

// checkStatus checks, with ota-client status in the guest, the version of the booted,
// default and rollback deployments ("" for none).
func (s *scenario) checkStatus(booted, def, rollback string) error {
	out, err := s.vm.run("ota-client status --json", commandTimeout)
	if err != nil {
		return err
	}
	var st struct {
		Booted, Default, Rollback *struct{ Version, Commit string }
	}
	if err := parseJSON(out, &st); err != nil {
		return err
	}
	version := func(d *struct{ Version, Commit string }) string {
		if d == nil {
			return ""
		}
		return d.Version
	}
	say("ota-client status in the guest: booted %q, default %q, rollback %q", version(st.Booted), version(st.Default), version(st.Rollback))
	if version(st.Booted) != booted || version(st.Default) != def || version(st.Rollback) != rollback {
		return fmt.Errorf("want booted %q, default %q, rollback %q", booted, def, rollback)
	}
	return nil
}

// parseJSON decodes the JSON report that out, the output of an ota-client command on the
// console, ends with.
func parseJSON(out string, v any) error {
	i := strings.Index(out, "{")
	if i < 0 || json.Unmarshal([]byte(out[i:]), v) != nil {
		return fmt.Errorf("no JSON report in:\n%s", out)
	}
	return nil
}

// waitDownload waits until the guest's JSON progress reports at least n bytes downloaded,
// and returns the figure.
func (s *scenario) waitDownload(from int, n int64) (int64, error) {
	re := regexp.MustCompile(`"stage":"download"[^\n]*"bytes":(\d+)`)
	deadline := time.Now().Add(cutTimeout)
	for {
		m, at, err := s.vm.expect(from, re, time.Until(deadline))
		if err != nil {
			return 0, err
		}
		got, _ := strconv.ParseInt(m[1], 10, 64)
		if got >= n {
			return got, nil
		}
		from = at
	}
}

// powerCut kills QEMU, the moment of the cut being why.
func (s *scenario) powerCut(why string) error {
	say("power cut: QEMU (pid %d) killed when %s", s.vm.cmd.Process.Pid, why)
	err := s.vm.kill()
	s.vm = nil
	return err
}

// reboot types reboot and waits for QEMU's next boot.
func (s *scenario) reboot() error {
	say("reboot")
	s.bootFrom = s.vm.mark()
	return s.vm.send("reboot")
}

// fallback follows the boots after the update to the broken v3: each one fails its health
// check and reboots, until the boot script's limit sends the next boot to v2. Nothing is
// typed on the console meanwhile.
func (s *scenario) fallback() error {
	from := s.bootFrom
	for i := 1; i <= 3; i++ {
		end, fellBack, err := s.waitBoot(from, "3", i, false)
		if err == nil && fellBack {
			err = errors.New("the boot script fell back before the boot limit")
		}
		if err != nil {
			return fmt.Errorf("v3, boot %d: %w", i, err)
		}
		from = end
	}
	_, fellBack, err := s.waitBoot(from, "2", 4, true)
	if err == nil && !fellBack {
		err = errors.New("v2 booted without the boot script's fallback")
	}
	return err
}

// checkResume checks the server's log of the delta part: before the cut the whole part was
// asked for; after it, the request continued from where the guest's disk left it, and
// fetched only the rest.
func (s *scenario) checkResume(before, after []partRequest) error {
	if len(after) == 0 {
		return errors.New("the server log shows no request for a delta part after the cut")
	}
	for _, r := range after {
		say("server log: %s", r.line)
	}
	r := after[0]
	size, err := s.server.size(r.path)
	if err != nil {
		return err
	}
	sent := int64(0)
	for _, b := range before {
		if b.path == r.path {
			sent += b.bytes
		}
	}
	if r.status != 206 || r.from <= 0 || r.bytes != size-r.from {
		return fmt.Errorf("the request after the cut is not a resume: %s (part of %d bytes)", r.line, size)
	}
	say("resumed: %s has %s; before the cut the server wrote %s into the connection (QEMU buffers it), the guest reported %s downloaded and its disk kept %s (the client syncs the partial file every MiB); the resumed request fetched the missing %s",
		r.path, mib(size), mib(sent), mib(s.cutAt), mib(r.from), mib(r.bytes))
	return nil
}

// publish releases v3: ota-build build with the manifest, into the served repository.
func (s *scenario) publish() error {
	log, err := os.Create(filepath.Join(s.logs, "publish.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(s.otaBuild, "build", "-f", s.manifest, "--version", "3")
	cmd.Stdout, cmd.Stderr = log, log
	if err := runBounded(cmd, 5*time.Minute); err != nil {
		return fmt.Errorf("ota-build build --version 3: %w (log: %s)", err, log.Name())
	}
	say("release 3 published")
	return nil
}

// checkUpdated checks the output of ota-client update: the commit came by a static delta
// (or, when present may be set, was in the repository already) and was deployed.
func checkUpdated(out string, present bool) error {
	pulled := `\(delta, `
	if present {
		pulled = `\((delta, |already in the repository\))`
	}
	if !regexp.MustCompile(`(?m)^pulled: .*`+pulled).MatchString(out) || !strings.Contains(out, "deployed: ") {
		return fmt.Errorf("ota-client update did not pull a delta and deploy it:\n%s", out)
	}
	return nil
}

// runBounded runs cmd, killing it by its PID when it takes longer than timeout.
func runBounded(cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("killed after %v", timeout)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
