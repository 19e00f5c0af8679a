package sysroot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Result is the outcome of the last operation of the device client on a stateroot, kept in
// the stateroot's /var/lib/ota/last-result.json so that it survives the reboot into a new
// deployment.
type Result struct {
	// Operation is the client's command (update, deploy, rollback), or fallback when
	// mark-good keeps the deployment the boot script fell back to.
	Operation string `json:"operation"`
	// From and To are the default deployment's commit before and after.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Outcome is "success" or "failure".
	Outcome string `json:"outcome"`
	// Error is the failure's message.
	Error string `json:"error,omitempty"`
	// Message tells why a successful operation happened, e.g. that the boot script fell
	// back to the rollback deployment.
	Message string `json:"message,omitempty"`
	// Time is when the operation ended.
	Time time.Time `json:"time"`
}

// ResultPath is where the last result of stateroot osName is kept, relative to the sysroot.
func ResultPath(osName string) string {
	return filepath.Join("ostree/deploy", osName, "var/lib/ota/last-result.json")
}

// LastResult returns the last result recorded for stateroot osName, or nil when none is.
func (s *Sysroot) LastResult(osName string) (*Result, error) {
	p := filepath.Join(s.path, ResultPath(osName))
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("sysroot: %s: %w", p, err)
	}
	return &r, nil
}

// WriteResult records r as the last result of stateroot osName, atomically.
func (s *Sysroot) WriteResult(osName string, r Result) error {
	if err := s.writable(); err != nil {
		return err
	}
	if err := s.requireStateroot(osName); err != nil {
		return err
	}
	p := filepath.Join(s.path, ResultPath(osName))
	data, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(p), 0o755)
	}
	if err == nil {
		err = writeFileSynced(p, append(data, '\n'))
	}
	if err != nil {
		return fmt.Errorf("sysroot: recording the result: %w", err)
	}
	return nil
}

// Booted returns the deployment that kernel command line cmdline (/proc/cmdline) booted,
// found from its ostree= argument as ostree-prepare-root does, or nil when cmdline has
// none or it names no deployment of the current list. The boot link is only valid until the
// boot configuration is rewritten (a rollback, a fallback made permanent): on the running
// system, RootDeployment finds the booted deployment however the links changed since.
func (s *Sysroot) Booted(cmdline string) *Deployment {
	link, _ := BootLinkArg(cmdline)
	osName, name, err := ResolveBootLink(s.path, link)
	if err != nil {
		return nil
	}
	for _, d := range s.deployments {
		if d.OSName == osName && d.Name() == name {
			return d
		}
	}
	return nil
}

// RootDeployment returns the deployment whose directory is the file system root mounted on
// root (/ on the running system), as ostree finds the booted deployment: the directory of
// the same device and inode, which prepare-root's bind mounts keep. It returns nil when
// root is no deployment of the current list.
func (s *Sysroot) RootDeployment(root string) (*Deployment, error) {
	var want unix.Stat_t
	if err := unix.Stat(root, &want); err != nil {
		return nil, fmt.Errorf("sysroot: %s: %w", root, err)
	}
	for _, d := range s.deployments {
		var st unix.Stat_t
		if unix.Stat(s.DeploymentDir(d), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			return d, nil
		}
	}
	return nil, nil
}
