package commit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/otakit/ota"

// TestPublicAPINameable checks the rule that lets other modules call this one: no
// exported function, method, field, variable or constant of a public package of the module
// (any package outside internal/ that is not a command) takes or returns a type its
// callers cannot name. A type of an internal package may appear only when a public package
// re-exports it as an alias (commit.Repo, commit.Source, ...), and a caller must be able to
// obtain a value of it: from an exported function, as a literal or conversion, or, for an
// interface, by implementing it.
func TestPublicAPINameable(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("OTA_REQUIRE_TOOLS") == "1" {
			t.Fatalf("go missing and OTA_REQUIRE_TOOLS=1: %v", err)
		}
		t.Skip("go not found; set OTA_REQUIRE_TOOLS=1 to fail instead")
	}
	pkgs := loadPublic(t, goTool)
	if len(pkgs) < 4 {
		t.Fatalf("found %d public packages, want at least commit, delta, image, builder", len(pkgs))
	}
	for _, p := range apiProblems(pkgs) {
		t.Error(p)
	}
}

// loadPublic returns the type information of the module's public packages, read from the
// export data `go list -export` produces.
func loadPublic(t *testing.T, goTool string) []*types.Package {
	t.Helper()
	goList := func(args ...string) []byte {
		out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("go list: %v", err)
		}
		return out
	}
	// Packages of tests only (buildroot-ext) have no API, and no export data.
	var public []string
	for _, l := range strings.Fields(string(goList("-f", `{{if and (ne .Name "main") .GoFiles}}{{.ImportPath}}{{end}}`, module+"/..."))) {
		if !isInternal(l) {
			public = append(public, l)
		}
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(goList(append([]string{"-export", "-deps", "-json=ImportPath,Export"}, public...)...)))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})
	var out []*types.Package
	for _, path := range public {
		p, err := imp.Import(path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// isInternal reports whether path is an internal package of this module.
func isInternal(path string) bool {
	return strings.HasPrefix(path, module+"/") && strings.Contains(path+"/", "/internal/")
}

// apiProblems walks the exported API of pkgs, the public packages of the module, and
// returns one line for each type of an internal package the API reaches that is not
// re-exported by one of pkgs or that a caller cannot obtain. The walk descends into the
// fields and methods of the types of pkgs, but not into those of re-exported internal types:
// their own methods are the module's internal API, which callers need not use.
func apiProblems(pkgs []*types.Package) []string {
	w := &apiWalker{
		public:   map[*types.Package]bool{},
		aliases:  map[*types.TypeName]string{},
		reached:  map[*types.TypeName]string{},
		returned: map[*types.TypeName]bool{},
		walked:   map[*types.TypeName]bool{},
	}
	for _, p := range pkgs {
		w.public[p] = true
		for _, name := range p.Scope().Names() {
			tn, ok := p.Scope().Lookup(name).(*types.TypeName)
			if !ok || !tn.Exported() || !tn.IsAlias() {
				continue
			}
			n, ok := types.Unalias(tn.Type()).(*types.Named)
			if ok && n.Obj().Pkg() != nil && isInternal(n.Obj().Pkg().Path()) && w.aliases[n.Origin().Obj()] == "" {
				w.aliases[n.Origin().Obj()] = p.Name() + "." + name
			}
		}
	}
	for _, p := range pkgs {
		for _, name := range p.Scope().Names() {
			o := p.Scope().Lookup(name)
			if !o.Exported() {
				continue
			}
			where := p.Name() + "." + name
			switch o := o.(type) {
			case *types.Func:
				w.signature(o.Type().(*types.Signature), where)
			case *types.Var: // a variable's value is obtained by reading it
				w.walk(o.Type(), where)
				w.result(o.Type())
			default:
				w.walk(o.Type(), where)
			}
		}
	}
	var out []string
	for tn, where := range w.reached {
		name := tn.Pkg().Path() + "." + tn.Name()
		alias, ok := w.aliases[tn]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: type %s, of an internal package, is not re-exported by a public package", where, name))
		case !w.obtainable(tn):
			out = append(out, fmt.Sprintf("%s: no exported function returns a %s (%s), and callers cannot make one", where, alias, name))
		}
	}
	slices.Sort(out)
	return out
}

// apiWalker collects the internal types the public API reaches.
type apiWalker struct {
	public   map[*types.Package]bool
	aliases  map[*types.TypeName]string // internal type -> the public alias naming it
	reached  map[*types.TypeName]string // internal type -> the first API element using it
	returned map[*types.TypeName]bool   // types some exported function returns (T or *T)
	walked   map[*types.TypeName]bool   // public types already walked
}

func (w *apiWalker) signature(s *types.Signature, where string) {
	w.walk(s, where)
	for v := range s.Results().Variables() {
		w.result(v.Type())
	}
}

// result records that callers obtain values of t (or of *t) from the API.
func (w *apiWalker) result(t types.Type) {
	if p, ok := types.Unalias(t).(*types.Pointer); ok {
		t = p.Elem()
	}
	if n, ok := types.Unalias(t).(*types.Named); ok {
		w.returned[n.Origin().Obj()] = true
	}
}

// walk visits the named types t mentions.
func (w *apiWalker) walk(t types.Type, where string) {
	switch t := t.(type) {
	case *types.Alias:
		w.walk(types.Unalias(t), where)
	case *types.Named:
		for a := range t.TypeArgs().Types() {
			w.walk(a, where)
		}
		w.named(t.Origin(), where)
	case *types.Pointer:
		w.walk(t.Elem(), where)
	case *types.Slice:
		w.walk(t.Elem(), where)
	case *types.Array:
		w.walk(t.Elem(), where)
	case *types.Chan:
		w.walk(t.Elem(), where)
	case *types.Map:
		w.walk(t.Key(), where)
		w.walk(t.Elem(), where)
	case *types.Signature:
		for v := range t.Params().Variables() {
			w.walk(v.Type(), where)
		}
		for v := range t.Results().Variables() {
			w.walk(v.Type(), where)
		}
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() {
				w.walk(f.Type(), where+"."+f.Name())
			}
		}
	case *types.Interface:
		for m := range t.Methods() {
			if m.Exported() {
				w.signature(m.Type().(*types.Signature), where+"."+m.Name())
			}
		}
	}
}

// named visits a named type: an internal one is recorded, a public one walked once.
func (w *apiWalker) named(n *types.Named, where string) {
	tn := n.Obj()
	switch {
	case tn.Pkg() == nil:
	case isInternal(tn.Pkg().Path()):
		if _, ok := w.reached[tn]; !ok {
			w.reached[tn] = where
		}
	case w.public[tn.Pkg()] && !w.walked[tn]:
		w.walked[tn] = true
		w.walk(n.Underlying(), tn.Name())
		ms := types.NewMethodSet(types.NewPointer(n))
		for i := range ms.Len() {
			if m := ms.At(i).Obj(); m.Exported() {
				w.signature(m.Type().(*types.Signature), tn.Name()+"."+m.Name())
			}
		}
	}
}

// obtainable reports whether a caller can get a value of the internal type tn: some
// exported function returns one, or it is written as a literal or a conversion, or it is
// an interface the caller can implement.
func (w *apiWalker) obtainable(tn *types.TypeName) bool {
	if w.returned[tn] {
		return true
	}
	switch u := tn.Type().Underlying().(type) {
	case *types.Basic, *types.Array, *types.Slice, *types.Map, *types.Signature:
		return true
	case *types.Struct:
		for f := range u.Fields() {
			if !f.Exported() {
				return false
			}
		}
		return true
	case *types.Interface:
		// Implementable when every method is exported and mentions only types callers
		// can name.
		sub := &apiWalker{public: w.public, aliases: w.aliases, reached: map[*types.TypeName]string{},
			returned: map[*types.TypeName]bool{}, walked: map[*types.TypeName]bool{}}
		for m := range u.Methods() {
			if !m.Exported() {
				return false
			}
			sub.walk(m.Type(), "")
		}
		for r := range sub.reached {
			if _, ok := w.aliases[r]; !ok {
				return false
			}
		}
		return true
	}
	return false
}

// TestAPIProblems checks apiProblems on small made-up modules, so that the rule above is
// known to catch what it should.
func TestAPIProblems(t *testing.T) {
	const internal = `package in
type Repo struct{ path string }
type Sum [32]byte
type Pair struct{ A, B string }
type Entry struct{ Name string }
type Source interface{ Next() (*Entry, error) }
type Reporter interface{ Add(n int64) }
func Open(p string) *Repo { return &Repo{p} }`
	for _, c := range []struct {
		name, pub string
		want      []string
	}{
		{"unnamed", `package pub
import "github.com/otakit/ota/internal/in"
func Commit(r *in.Repo) {}`,
			[]string{"pub.Commit: type github.com/otakit/ota/internal/in.Repo, of an internal package, is not re-exported by a public package"}},
		{"field", `package pub
import "github.com/otakit/ota/internal/in"
type Repo = in.Repo
type Options struct{ P in.Reporter }
func Commit(r *Repo, o Options) {}
func Open(p string) *Repo { return in.Open(p) }`,
			[]string{"Options.P: type github.com/otakit/ota/internal/in.Reporter, of an internal package, is not re-exported by a public package"}},
		{"no constructor", `package pub
import "github.com/otakit/ota/internal/in"
type Repo = in.Repo
func Commit(r *Repo) {}`,
			[]string{"pub.Commit: no exported function returns a pub.Repo (github.com/otakit/ota/internal/in.Repo), and callers cannot make one"}},
		{"interface not implementable", `package pub
import "github.com/otakit/ota/internal/in"
type Source = in.Source
func Commit(s Source) {}`,
			[]string{"pub.Commit: no exported function returns a pub.Source (github.com/otakit/ota/internal/in.Source), and callers cannot make one"}},
		{"consistent", `package pub
import "github.com/otakit/ota/internal/in"
type (
	Repo = in.Repo
	Sum = in.Sum
	Pair = in.Pair
	Source = in.Source
	Reporter = in.Reporter
)
func Open(p string) (*Repo, error) { return in.Open(p), nil }
func OpenTree(p string) (Source, error) { return nil, nil }
func Commit(r *Repo, s Source, p Reporter, x Pair) (Sum, error) { return Sum{}, nil }`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fset := token.NewFileSet()
			check := func(path, src string, imp types.Importer) *types.Package {
				f, err := parser.ParseFile(fset, path+".go", src, 0)
				if err != nil {
					t.Fatal(err)
				}
				p, err := (&types.Config{Importer: imp}).Check(path, fset, []*ast.File{f}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			in := check(module+"/internal/in", internal, nil)
			pub := check(module+"/pub", c.pub, importerFunc(func(string) (*types.Package, error) { return in, nil }))
			if got := apiProblems([]*types.Package{pub}); !slices.Equal(got, c.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }
