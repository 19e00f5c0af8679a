package session

import (
	"fmt"
	"time"

	"github.com/otakit/ota/internal/sysroot"
)

// DeploymentInfo is a deployment as the reports show it.
type DeploymentInfo struct {
	Stateroot string    `json:"stateroot"`
	Commit    string    `json:"commit"`
	Serial    int       `json:"serial"`
	Version   string    `json:"version,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	Subject   string    `json:"subject,omitempty"`
}

// Describe reads deployment d's commit.
func Describe(s *sysroot.Sysroot, d *sysroot.Deployment) (*DeploymentInfo, error) {
	cm, _, err := s.Repo().ReadCommit(d.Commit)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	return &DeploymentInfo{
		Stateroot: d.OSName, Commit: d.Commit.String(), Serial: d.Serial, Version: cm.Version(),
		Timestamp: time.Unix(int64(cm.Timestamp), 0).UTC(), Subject: cm.Subject,
	}, nil
}
