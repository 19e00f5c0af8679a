package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/ostree"
)

func logCommand() *cli.Command {
	return &cli.Command{
		Name:      "log",
		Usage:     "show a branch's history",
		ArgsUsage: "REF|CHECKSUM",
		Flags:     []cli.Flag{repoFlag},
		Action: func(c *cli.Context) error {
			repo, cs, err := openRev(c)
			if err != nil {
				return err
			}
			w := c.App.Writer
			for {
				cm, _, err := repo.ReadCommit(cs)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "commit %s\n", cs)
				if cm.HasParent {
					fmt.Fprintf(w, "Parent:  %s\n", cm.Parent)
				}
				fmt.Fprintf(w, "ContentChecksum:  %s\n", cm.ContentDigest())
				fmt.Fprintf(w, "Date:  %s\n", time.Unix(int64(cm.Timestamp), 0).UTC().Format("2006-01-02 15:04:05 -0700"))
				if v := cm.Version(); v != "" {
					fmt.Fprintf(w, "Version: %s\n", v)
				}
				subject := cm.Subject
				if subject == "" {
					subject = "(no subject)"
				}
				fmt.Fprintf(w, "\n    %s\n\n", subject)
				if cm.Body != "" {
					fmt.Fprintf(w, "    %s\n\n", strings.ReplaceAll(cm.Body, "\n", "\n    "))
				}
				if !cm.HasParent {
					return nil
				}
				if !repo.HasObject(cm.Parent, ostree.ObjCommit) {
					fmt.Fprintln(w, "<< History beyond this commit not fetched >>")
					return nil
				}
				cs = cm.Parent
			}
		},
	}
}

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list a commit's files",
		ArgsUsage: "REF|CHECKSUM [PATH]",
		Flags: []cli.Flag{repoFlag,
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Usage: "list subdirectories too"},
			&cli.BoolFlag{Name: "checksum", Aliases: []string{"C"}, Usage: "show object checksums"},
			&cli.BoolFlag{Name: "xattrs", Aliases: []string{"X"}, Usage: "show extended attributes"}},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return fmt.Errorf("ls: want REF|CHECKSUM [PATH]")
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
			return repo.Walk(cs, start, c.Bool("recursive"), func(e ostree.TreeEntry) error {
				printEntry(w, e, c.Bool("checksum"), c.Bool("xattrs"))
				return nil
			})
		},
	}
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

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "verify every object's checksum and every ref's tree, names, symlink targets and xattrs included (exit status 1 on any problem)",
		ArgsUsage: " ",
		Flags:     []cli.Flag{repoFlag},
		Action: func(c *cli.Context) error {
			repo, err := ostree.Open(c.String("repo"))
			if err != nil {
				return err
			}
			problems, err := repo.Fsck(c.Context)
			if err != nil {
				return err
			}
			for _, p := range problems {
				fmt.Fprintln(c.App.ErrWriter, p)
			}
			if len(problems) > 0 {
				return cli.Exit(fmt.Sprintf("fsck: %d problem(s) found", len(problems)), 1)
			}
			fmt.Fprintln(c.App.Writer, "fsck: no problems found")
			return nil
		},
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
