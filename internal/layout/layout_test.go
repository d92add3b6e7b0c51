package layout

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const (
	module  = "github.com/anytime-edge/edge"
	root    = "../.."
	docPath = "docs/architecture.md"
)

// row is one line of the package table: a package and what it may import.
type row struct {
	line       int
	ours, them []string
}

var (
	backticked   = regexp.MustCompile("`([^`]+)`")
	majorVersion = regexp.MustCompile(`^v[0-9]+$`)
)

// packageTable reads the rows of the table under "## Packages" in the doc.
func packageTable(t *testing.T) map[string]row {
	t.Helper()
	f, err := os.Open(filepath.Join(root, docPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]row{}
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Packages"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) != 6 {
			t.Fatalf("%s:%d: want | package | owns | imports | third-party |, got %q", docPath, n, line)
		}
		names := func(cell string) []string {
			var out []string
			for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
				out = append(out, m[1])
			}
			sort.Strings(out)
			return out
		}
		pkg := names(cells[1])
		if len(pkg) != 1 {
			t.Fatalf("%s:%d: want one package per row, got %v", docPath, n, pkg)
		}
		if _, dup := rows[pkg[0]]; dup {
			t.Fatalf("%s:%d: %s has two rows", docPath, n, pkg[0])
		}
		rows[pkg[0]] = row{line: n, ours: names(cells[3]), them: names(cells[4])}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no package table under ## Packages", docPath)
	}
	return rows
}

// imports returns, for every directory of the module holding non-test Go
// files, the module's packages and the third-party modules they import
// (all build tags: the cgo and no-cgo twins alike).
func imports(t *testing.T) map[string]row {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string]row{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "out" || name == "models") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		r := pkgs[pkg]
		for _, is := range f.Imports {
			p, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return err
			}
			switch {
			case strings.HasPrefix(p, module+"/"):
				r.ours = appendNew(r.ours, strings.TrimPrefix(p, module+"/"))
			case strings.Contains(strings.Split(p, "/")[0], "."):
				r.them = appendNew(r.them, thirdPartyModule(p))
			}
		}
		pkgs[pkg] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range pkgs {
		sort.Strings(r.ours)
		sort.Strings(r.them)
		pkgs[p] = r
	}
	return pkgs
}

// thirdPartyModule names the module an import path comes from: its first
// three elements (github.com/owner/repo), with a major-version suffix.
func thirdPartyModule(p string) string {
	parts := strings.Split(p, "/")
	n := min(3, len(parts))
	if len(parts) > 3 && majorVersion.MatchString(parts[3]) {
		n = 4
	}
	return strings.Join(parts[:n], "/")
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// TestArchitectureMatchesTheTree: the package table of docs/architecture.md
// names every package of the module, and for each exactly what it imports.
// When this fails after a change, update the table: it is the map the next
// reader uses.
func TestArchitectureMatchesTheTree(t *testing.T) {
	doc, tree := packageTable(t), imports(t)
	for pkg, got := range tree {
		want, ok := doc[pkg]
		if !ok {
			t.Errorf("%s: package %s has no row (imports %v, third-party %v)", docPath, pkg, got.ours, got.them)
			continue
		}
		if !slices.Equal(got.ours, want.ours) {
			t.Errorf("%s:%d: %s imports %v of ours, the table says %v", docPath, want.line, pkg, got.ours, want.ours)
		}
		if !slices.Equal(got.them, want.them) {
			t.Errorf("%s:%d: %s imports third-party %v, the table says %v", docPath, want.line, pkg, got.them, want.them)
		}
	}
	for pkg, r := range doc {
		if _, ok := tree[pkg]; !ok {
			t.Errorf("%s:%d: %s is not a package of the tree", docPath, r.line, pkg)
		}
	}
}
