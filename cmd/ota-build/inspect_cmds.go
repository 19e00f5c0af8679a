package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	otacli "github.com/otakit/ota/internal/cli"
	"github.com/otakit/ota/internal/ostree"
)

// jsonFlag is the --json flag of the commands that report something.
func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print a JSON report (see docs/json.md)"}
}

// logEntry is one commit of log --json.
type logEntry struct {
	Checksum        string    `json:"checksum"`
	Parent          string    `json:"parent,omitempty"`
	ContentChecksum string    `json:"content_checksum"`
	Timestamp       time.Time `json:"timestamp"`
	Version         string    `json:"version,omitempty"`
	Subject         string    `json:"subject"`
	Body            string    `json:"body,omitempty"`
}

// logJSON is the report of log --json: the commits newest first; Truncated when the
// history goes on beyond the last one, whose parent the repository does not hold.
type logJSON struct {
	Commits   []logEntry `json:"commits"`
	Truncated bool       `json:"truncated"`
}

func logCommand() *cli.Command {
	return &cli.Command{
		Name:      "log",
		Usage:     "show a branch's history",
		ArgsUsage: "REF|CHECKSUM",
		Flags:     []cli.Flag{repoFlag, jsonFlag()},
		Action: func(c *cli.Context) error {
			repo, cs, err := openRev(c)
			if err != nil {
				return err
			}
			var rep logJSON
			for {
				cm, _, err := repo.ReadCommit(cs)
				if err != nil {
					return err
				}
				e := logEntry{Checksum: cs.String(), ContentChecksum: cm.ContentDigest().String(),
					Timestamp: time.Unix(int64(cm.Timestamp), 0).UTC(), Version: cm.Version(), Subject: cm.Subject, Body: cm.Body}
				if cm.HasParent {
					e.Parent = cm.Parent.String()
				}
				rep.Commits = append(rep.Commits, e)
				if !cm.HasParent {
					break
				}
				if !repo.HasObject(cm.Parent, ostree.ObjCommit) {
					rep.Truncated = true
					break
				}
				cs = cm.Parent
			}
			if c.Bool("json") {
				return otacli.PrintJSON(c.App.Writer, rep)
			}
			printLog(c.App.Writer, rep)
			return nil
		},
	}
}

// printLog prints a history in the format of `ostree log`.
func printLog(w io.Writer, rep logJSON) {
	for _, e := range rep.Commits {
		fmt.Fprintf(w, "commit %s\n", e.Checksum)
		if e.Parent != "" {
			fmt.Fprintf(w, "Parent:  %s\n", e.Parent)
		}
		fmt.Fprintf(w, "ContentChecksum:  %s\n", e.ContentChecksum)
		fmt.Fprintf(w, "Date:  %s\n", e.Timestamp.Format("2006-01-02 15:04:05 -0700"))
		if e.Version != "" {
			fmt.Fprintf(w, "Version: %s\n", e.Version)
		}
		subject := e.Subject
		if subject == "" {
			subject = "(no subject)"
		}
		fmt.Fprintf(w, "\n    %s\n\n", subject)
		if e.Body != "" {
			fmt.Fprintf(w, "    %s\n\n", strings.ReplaceAll(e.Body, "\n", "\n    "))
		}
	}
	if rep.Truncated {
		fmt.Fprintln(w, "<< History beyond this commit not fetched >>")
	}
}

// lsEntry is one file of ls --json.
type lsEntry struct {
	Path string `json:"path"`
	// Type is "dir", "file" or "symlink".
	Type     string    `json:"type"`
	Mode     uint32    `json:"mode"` // permission bits, setuid, setgid and sticky
	UID      uint32    `json:"uid"`
	GID      uint32    `json:"gid"`
	Size     int64     `json:"size"`
	Checksum string    `json:"checksum"`
	Target   string    `json:"target,omitempty"`
	Xattrs   []lsXattr `json:"xattrs,omitempty"`
}

// lsXattr is an extended attribute of ls --json; the value is base64 in JSON.
type lsXattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// lsJSON is the report of ls --json.
type lsJSON struct {
	Checksum string    `json:"checksum"`
	Entries  []lsEntry `json:"entries"`
}

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list a commit's files",
		ArgsUsage: "REF|CHECKSUM [PATH]",
		Flags: []cli.Flag{repoFlag,
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Usage: "list subdirectories too"},
			&cli.BoolFlag{Name: "checksum", Aliases: []string{"C"}, Usage: "show object checksums"},
			&cli.BoolFlag{Name: "xattrs", Aliases: []string{"X"}, Usage: "show extended attributes"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON report, checksums and xattrs included (see docs/json.md)"}},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return otacli.Usagef("want REF|CHECKSUM [PATH]")
			}
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			cs, err := repo.Resolve(c.Args().Get(0))
			if err != nil {
				return err
			}
			start := c.Args().Get(1)
			if start == "" {
				start = "/"
			}
			w := c.App.Writer
			rep := lsJSON{Checksum: cs.String(), Entries: []lsEntry{}}
			err = repo.Walk(cs, start, c.Bool("recursive"), func(e ostree.TreeEntry) error {
				if c.Bool("json") {
					rep.Entries = append(rep.Entries, jsonEntry(e))
				} else {
					printEntry(w, e, c.Bool("checksum"), c.Bool("xattrs"))
				}
				return nil
			})
			if err != nil || !c.Bool("json") {
				return err
			}
			return otacli.PrintJSON(w, rep)
		},
	}
}

// jsonEntry describes a tree entry for ls --json.
func jsonEntry(e ostree.TreeEntry) lsEntry {
	out := lsEntry{Path: e.Path, Size: e.Size, Checksum: e.Checksum.String()}
	var x []ostree.Xattr
	if e.Dir != nil {
		out.Type, out.Mode, out.UID, out.GID, x = "dir", e.Dir.Mode, e.Dir.UID, e.Dir.GID, e.Dir.Xattrs
	} else {
		out.Type, out.Mode, out.UID, out.GID, x = "file", e.Header.Mode, e.Header.UID, e.Header.GID, e.Header.Xattrs
		if e.Header.IsSymlink() {
			out.Type, out.Target = "symlink", e.Header.LinkTarget
		}
	}
	out.Mode &= ostree.ModePermMask
	for _, a := range x {
		out.Xattrs = append(out.Xattrs, lsXattr{a.Name, a.Value})
	}
	return out
}

// printEntry prints one line in the format of `ostree ls`.
func printEntry(w io.Writer, e ostree.TreeEntry, checksum, xattrs bool) {
	var typ byte
	var mode, uid, gid uint32
	var x []ostree.Xattr
	if e.Dir != nil {
		typ, mode, uid, gid, x = 'd', e.Dir.Mode, e.Dir.UID, e.Dir.GID, e.Dir.Xattrs
	} else {
		typ, mode, uid, gid, x = '-', e.Header.Mode, e.Header.UID, e.Header.GID, e.Header.Xattrs
		if e.Header.IsSymlink() {
			typ = 'l'
		}
	}
	fmt.Fprintf(w, "%c0%04o %d %d %6d ", typ, mode&ostree.ModePermMask, uid, gid, e.Size)
	if checksum {
		fmt.Fprintf(w, "%s ", e.Checksum)
	}
	if xattrs {
		parts := make([]string, len(x))
		for i, a := range x {
			parts[i] = fmt.Sprintf("(%q, %q)", a.Name, a.Value)
		}
		fmt.Fprintf(w, "{ %s } ", strings.Join(parts, ", "))
	}
	fmt.Fprint(w, e.Path)
	if e.Header != nil && e.Header.IsSymlink() {
		fmt.Fprintf(w, " -> %s", e.Header.LinkTarget)
	}
	fmt.Fprintln(w)
}

// fsckJSON is the report of fsck --json.
type fsckJSON struct {
	Repo     string        `json:"repo"`
	Problems []fsckProblem `json:"problems"`
}

// fsckProblem is one problem fsck found: the object file or ref, and what is wrong.
type fsckProblem struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "verify every object's checksum and every ref's tree, names, symlink targets and xattrs included (exit status 1 on any problem)",
		ArgsUsage: " ",
		Flags:     []cli.Flag{repoFlag, jsonFlag()},
		Action: func(c *cli.Context) error {
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			problems, err := repo.Fsck(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				rep := fsckJSON{Repo: repo.Path, Problems: []fsckProblem{}}
				for _, p := range problems {
					rep.Problems = append(rep.Problems, fsckProblem{p.Path, p.Err.Error()})
				}
				if err := otacli.PrintJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(c.App.ErrWriter, p)
				}
			}
			if len(problems) > 0 {
				return cli.Exit(fmt.Sprintf("fsck: %d problem(s) found", len(problems)), 1)
			}
			if !c.Bool("json") {
				fmt.Fprintln(c.App.Writer, "fsck: no problems found")
			}
			return nil
		},
	}
}
