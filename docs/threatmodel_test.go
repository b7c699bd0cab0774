// Package docs holds Tutela's documentation; its tests check what the documents claim about
// the code.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every test THREAT_MODEL.md names as a mitigation's evidence exists: a `TestX`/`FuzzX` is a
// function in some _test.go file, and a name marked "(storetest)" is a conformance case in
// sqlstore/storetest. A renamed or deleted test must take its row with it ("How to update").
func TestThreatModel_EveryNamedTestExists(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("THREAT_MODEL.md")
	if err != nil {
		t.Fatal(err)
	}
	funcs, cases := map[string]bool{}, map[string]bool{}
	funcRe := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]+)\(`)
	caseRe := regexp.MustCompile(`\{"([A-Z][A-Za-z0-9]+)", test[A-Za-z0-9]+\}`)
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != ".." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, "_test.go") {
			for _, m := range funcRe.FindAllSubmatch(b, -1) {
				funcs[string(m[1])] = true
			}
		}
		if filepath.Base(filepath.Dir(p)) == "storetest" {
			for _, m := range caseRe.FindAllSubmatch(b, -1) {
				cases[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !funcs["TestThreatModel_EveryNamedTestExists"] || !cases["IncidentsTenantViewAndIsolation"] {
		t.Fatalf("the walk found %d test functions and %d conformance cases, not this file's or the incidents'", len(funcs), len(cases))
	}
	named := 0
	for _, m := range regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		named++
		if !funcs[m[1]] {
			t.Errorf("THREAT_MODEL.md names %s, which no _test.go file defines", m[1])
		}
	}
	for _, m := range regexp.MustCompile("`([A-Z][A-Za-z0-9]+)` \\(storetest\\)").FindAllStringSubmatch(string(doc), -1) {
		named++
		if !cases[m[1]] {
			t.Errorf("THREAT_MODEL.md names the conformance case %s, which sqlstore/storetest does not define", m[1])
		}
	}
	if named < 100 {
		t.Errorf("only %d test names found in THREAT_MODEL.md", named)
	}
}
