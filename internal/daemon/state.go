package daemon

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/otakit/ota/internal/apps"
	"github.com/otakit/ota/internal/gvariant"
	"github.com/otakit/ota/internal/ostree"
	"github.com/otakit/ota/internal/session"
	"github.com/otakit/ota/internal/sysroot"
	"github.com/otakit/ota/internal/update"
)

// State is what the daemon knows of the device, as the D-Bus properties show it.
type State struct {
	// Status is what the daemon does: one of the Status constants.
	Status string
	// Error is the message of the last operation that failed, empty once one succeeds.
	Error string
	// UpdateAvailable is true when the last check found a remote commit that is not the
	// default deployment's.
	UpdateAvailable bool
	// RollbackAvailable is true when there is a rollback deployment.
	RollbackAvailable bool
	// RestartRequired is true when the booted deployment is known and is not the default
	// one: an update or a rollback takes effect at the next boot.
	RestartRequired bool
	// The booted, default and rollback deployments' commits, and the remote's as the last
	// check found it; a zero Revision is none.
	Booted, Default, Rollback, Remote Revision
	// LastResult is the last result of the default deployment's stateroot as JSON
	// (sysroot.Result), empty when there is none.
	LastResult string
	// Apps lists the applications installed in the default deployment's stateroot as a
	// JSON array of apps.Info objects ("[]" when none).
	Apps string
}

// Revision is a commit as the properties show it.
type Revision struct {
	Checksum string
	Version  string
	Subject  string
	// Timestamp is in seconds since the Unix epoch.
	Timestamp int64
	// Metadata is the commit's metadata as a JSON object: strings and numbers as they are,
	// byte strings in hexadecimal.
	Metadata string
}

// Status values.
const (
	StatusIdle        = "idle"
	StatusChecking    = "checking"
	StatusDownloading = "downloading"
	StatusInstalling  = "installing"
	StatusRollingBack = "rolling-back"
	StatusApplying    = "applying-bundle"
	StatusMarkingGood = "marking-good"
	StatusRebooting   = "rebooting"
	// The status of the application operations.
	StatusInstallingApp  = "installing-app"
	StatusUpdatingApp    = "updating-app"
	StatusRollingBackApp = "rolling-back-app"
	StatusRemovingApp    = "removing-app"
)

// commitRevision describes commit c of repo.
func commitRevision(repo *ostree.Repo, c ostree.Checksum) (Revision, error) {
	cm, _, err := repo.ReadCommit(c)
	if err != nil {
		return Revision{}, fmt.Errorf("commit %s: %w", c, err)
	}
	return Revision{Checksum: c.String(), Version: cm.Version(), Subject: cm.Subject, Timestamp: int64(cm.Timestamp),
		Metadata: metadataJSON(cm.Metadata)}, nil
}

// remoteRevision describes the remote commit a check found.
func remoteRevision(c update.Commit) Revision {
	return Revision{Checksum: c.Checksum, Version: c.Version, Subject: c.Subject, Timestamp: c.Timestamp.Unix(),
		Metadata: metadataJSON(c.Metadata)}
}

// readDevice sets the deployments' part of st from the sysroot, which s has locked, with
// opts telling the booted deployment.
func readDevice(s *sysroot.Sysroot, opts session.Options, st *State) error {
	deps := s.Deployments()
	st.Booted, st.Default, st.Rollback, st.LastResult, st.Apps = Revision{}, Revision{}, Revision{}, "", "[]"
	st.RollbackAvailable, st.RestartRequired = len(deps) > 1, false
	var err error
	for i, r := range []*Revision{&st.Default, &st.Rollback} {
		if i < len(deps) {
			if *r, err = commitRevision(s.Repo(), deps[i].Commit); err != nil {
				return err
			}
		}
	}
	if b := opts.BootedDeployment(s); b != nil {
		if st.Booted, err = commitRevision(s.Repo(), b.Commit); err != nil {
			return err
		}
		st.RestartRequired = len(deps) > 0 && b != deps[0]
	}
	if len(deps) == 0 {
		return nil
	}
	list, err := apps.List(s.Repo(), apps.Dir(opts.Sysroot, deps[0].OSName))
	if err != nil {
		return err
	}
	if list != nil {
		data, err := json.Marshal(list)
		if err != nil {
			return err
		}
		st.Apps = string(data)
	}
	res, err := s.LastResult(deps[0].OSName)
	if err != nil || res == nil {
		return err
	}
	data, err := json.Marshal(res)
	st.LastResult = string(data)
	return err
}

// metadataJSON renders commit metadata as a JSON object.
func metadataJSON(m []gvariant.DictEntry) string {
	data, err := json.Marshal(jsonValue(m))
	if err != nil { // a float that JSON cannot hold
		return "{}"
	}
	return string(data)
}

// jsonValue converts a GVariant value to one encoding/json renders.
func jsonValue(v any) any {
	switch v := v.(type) {
	case gvariant.Variant:
		return jsonValue(v.Value)
	case []byte:
		return hex.EncodeToString(v)
	case []gvariant.DictEntry:
		obj := map[string]any{}
		var pairs [][2]any
		for _, e := range v {
			if k, ok := e.Key.(string); ok {
				obj[k] = jsonValue(e.Value)
			} else {
				pairs = append(pairs, [2]any{jsonValue(e.Key), jsonValue(e.Value)})
			}
		}
		if pairs != nil {
			return pairs
		}
		return obj
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonValue(x)
		}
		return out
	}
	return v
}

// since is how long ago t was, for log lines.
func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
