package builder

import (
	"github.com/otakit/ota/commit"
	"github.com/otakit/ota/delta"
	"github.com/otakit/ota/image"
	"github.com/otakit/ota/internal/ostree"
)

// Report lists what a run produced; New marks what this run wrote (the rest was already
// there). The commit, delta, bundle and image commands report their output with the
// same types.
type Report struct {
	Manifest string        `json:"manifest"`
	Repo     string        `json:"repo"`
	Commit   CommitReport  `json:"commit"`
	Summary  SummaryReport `json:"summary"`
	Deltas   []DeltaReport `json:"deltas"`
	Bundle   *DeltaReport  `json:"bundle,omitempty"`
	Image    *ImageReport  `json:"image,omitempty"`
	// Apps are the manifest's applications, in its order.
	Apps []AppReport `json:"apps,omitempty"`
	// Seconds is the time the run took; StageSeconds the time of each stage.
	Seconds      float64            `json:"seconds"`
	StageSeconds map[string]float64 `json:"stage_seconds"`
	// Warnings are problems that did not stop the run, one line each (see
	// commit.Result.Warnings).
	Warnings []string `json:"warnings,omitempty"`
}

// CommitReport describes the commit.
type CommitReport struct {
	// Checksum is the commit; empty for a dry run, which writes none.
	Checksum string `json:"checksum"`
	// ContentChecksum identifies the tree alone, as `ostree log` shows it: equal trees have
	// equal content checksums.
	ContentChecksum string `json:"content_checksum"`
	Branch          string `json:"branch"`
	Version         string `json:"version,omitempty"`
	Parent          string `json:"parent,omitempty"`
	Signatures      int    `json:"signatures"`
	New             bool   `json:"new"`
	DryRun          bool   `json:"dry_run,omitempty"`
	// Files counts the tree's regular files and symlinks, FilesWritten the content objects
	// stored, Bytes the content bytes read (see commit.Result).
	Files        int64 `json:"files"`
	FilesWritten int64 `json:"files_written"`
	Bytes        int64 `json:"bytes"`
}

// NewCommitReport describes the commit (or dry run) res reports; New is set unless res
// is a dry run or an unchanged tree.
func NewCommitReport(res commit.Result, branch, version string) CommitReport {
	tree := ostree.Commit{RootTree: res.RootTree, RootMeta: res.RootMeta}
	r := CommitReport{ContentChecksum: tree.ContentDigest().String(), Branch: branch, Version: version,
		Files: res.Files, FilesWritten: res.FilesWritten, Bytes: res.Bytes}
	if res.Commit != (ostree.Checksum{}) {
		r.Checksum, r.New = res.Commit.String(), !res.Unchanged
	}
	if res.Parent != nil {
		r.Parent = res.Parent.String()
	}
	return r
}

// AppReport describes an application's commit and its deltas.
type AppReport struct {
	Name   string        `json:"name"`
	Commit CommitReport  `json:"commit"`
	Deltas []DeltaReport `json:"deltas"`
}

// SummaryReport describes the summary.
type SummaryReport struct {
	Path   string `json:"path"`
	Signed bool   `json:"signed"`
	New    bool   `json:"new"`
}

// DeltaReport describes a static delta or bundle.
type DeltaReport struct {
	// Name is the delta's name as ostree prints it: FROM-TO, or TO from scratch.
	Name string `json:"name"`
	// From is the base commit, empty for a delta from scratch.
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Path is the delta's directory or the bundle file.
	Path string `json:"path"`
	// Bytes is the size of the superblock and part files; Parts and Fallbacks count the
	// parts and the objects left for clients to fetch.
	Bytes     int64 `json:"bytes"`
	Parts     int   `json:"parts"`
	Fallbacks int   `json:"fallbacks"`
	New       bool  `json:"new"`
	// Encoder names the xz encoder of a delta this run wrote (delta.Result.Encoder).
	Encoder string `json:"encoder,omitempty"`
	// ZstdEncoder names the zstd command of a delta's zstd parts this run wrote
	// (delta.Result.ZstdEncoder).
	ZstdEncoder string `json:"zstd_encoder,omitempty"`
}

// NewDeltaReport describes the delta or bundle at path whose superblock is sb.
func NewDeltaReport(sb *delta.Superblock, path string, size int64) DeltaReport {
	r := DeltaReport{Name: delta.Name(sb), To: sb.To.String(), Path: path, Bytes: size,
		Parts: len(sb.Parts), Fallbacks: len(sb.Fallbacks)}
	if sb.From != nil {
		r.From = sb.From.String()
	}
	return r
}

// ImageReport describes the image.
type ImageReport struct {
	*image.Result
	New bool `json:"new"`
}
