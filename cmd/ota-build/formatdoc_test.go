package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFormatDocCitations: the repository's comments and documents cite only documents the
// repository holds. The OSTree formats are described in docs/format.md, cited by section
// name (`docs/format.md, "Commit objects"`); every section so cited, in any file, and every
// section docs/format.md refers to itself ("see "GVariant""), must be one of its headings.
// Paragraph signs and the names of notes kept outside the repository are errors.
func TestFormatDocCitations(t *testing.T) {
	const root = "../.."
	doc, err := os.ReadFile(filepath.Join(root, "docs/format.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, l := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " "); ok && strings.HasPrefix(l, "#") {
			headings[strings.TrimSpace(h)] = true
		}
	}
	checkSections := func(file, text string, refs *regexp.Regexp) {
		for _, m := range refs.FindAllStringSubmatch(text, -1) {
			for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
				if !headings[q[1]] {
					t.Errorf("%s cites docs/format.md section %q, which docs/format.md does not have", file, q[1])
				}
			}
		}
	}
	checkSections("docs/format.md", string(doc), selfRef)

	outside := []string{"§", "format notes", "format reference", "ostree-format", "/work/shared"}
	self, _ := filepath.Abs("formatdoc_test.go")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if abs, _ := filepath.Abs(p); abs == self || !textFile.MatchString(d.Name()) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		text := commentBreak.ReplaceAllString(string(data), " ")
		for _, o := range outside {
			if strings.Contains(strings.ToLower(text), o) {
				t.Errorf("%s cites %q, a document outside the repository: cite docs/format.md by section instead", rel, o)
			}
		}
		checkSections(rel, text, citation)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	textFile = regexp.MustCompile(`\.(go|md|yaml|sh|txt)$`)
	// commentBreak joins the lines of a comment or a paragraph, so a citation may wrap.
	commentBreak = regexp.MustCompile(`\n[ \t]*(//|#)?[ \t]*`)
	// citation is a mention of docs/format.md and the rest of its clause (up to a ". ", ": "
	// or ";"), which names the sections cited, if any.
	citation = regexp.MustCompile(`docs/format\.md((?:[^.;:]|[.:]\S)*)`)
	// selfRef is a reference of docs/format.md to one of its own sections.
	selfRef = regexp.MustCompile(`[Ss]ee ("[^"]+"(?: and "[^"]+")*)`)
	quoted  = regexp.MustCompile(`"([^"]+)"`)
)
