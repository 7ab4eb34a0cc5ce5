// Package archtest holds the rules of the code's layout that a compiler
// does not check: which package may import what, and how long a file grows.
package archtest

import (
	"bytes"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/healmydocker/healmydocker/"

// rule: only the owner packages may import what starts with prefix.
type rule struct {
	prefix string
	owners []string
	why    string
}

var rules = []rule{
	{"github.com/moby/moby/", []string{"internal/docker"}, "only internal/docker talks to the Docker Engine"},
	{"github.com/nats-io/nats-server/", []string{"internal/bus"}, "only internal/bus runs the NATS server"},
}

// forbidden: what a package must not import, even indirectly by name.
var forbidden = map[string][]string{
	// The healer decides and restarts; notification routing is the
	// notifier's, and the bus is reached through narrow interfaces.
	"internal/heal": {module + "internal/notify", module + "internal/bus", "github.com/nats-io/", "github.com/moby/moby/"},
	// Events are the shared language: they depend on nobody's code.
	"internal/events": {module + "internal/"},
}

// TestImportRules reads every non-test Go file's imports under cmd,
// internal and bench, and checks them against the rules.
func TestImportRules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string][]string{}
	for _, top := range []string{"cmd", "internal", "bench"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			p, err := build.Default.ImportDir(path, 0)
			if err != nil {
				if _, ok := err.(*build.NoGoError); ok {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root, path)
			imports[filepath.ToSlash(rel)] = p.Imports
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, pkg := range []string{"internal/docker", "internal/bus", "internal/heal", "internal/events", "internal/notify"} {
		if _, ok := imports[pkg]; !ok {
			t.Fatalf("package %s not found: the rules would check nothing", pkg)
		}
	}
	for pkg, imps := range imports {
		for _, imp := range imps {
			for _, r := range rules {
				if strings.HasPrefix(imp, r.prefix) && !slices.Contains(r.owners, pkg) && !strings.HasPrefix(pkg, "bench/") {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
			for _, f := range forbidden[pkg] {
				if strings.HasPrefix(imp, f) {
					t.Errorf("%s imports %s, which it must not", pkg, imp)
				}
			}
		}
	}
}

// maxLines bounds a non-test Go file: past it, a file holds more than one
// concern and is split by them.
const maxLines = 500

// TestFilesStaySmall checks every non-test Go file in the module.
func TestFilesStaySmall(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if lines := bytes.Count(b, []byte("\n")); lines > maxLines {
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s has %d lines, over %d: split it by concern", filepath.ToSlash(rel), lines, maxLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("read %d Go files: the walk missed the tree", n)
	}
}
