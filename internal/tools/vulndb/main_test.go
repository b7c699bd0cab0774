package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const osvA = `{"schema_version":"1.3.1","id":"GO-2024-0001","modified":"0001-01-01T00:00:00Z",
 "affected":[{"package":{"name":"example.com/a","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.0"}]}]},
             {"package":{"name":"stdlib","ecosystem":"Go"}}]}`
const osvB = `{"schema_version":"1.3.1","id":"GO-2025-0002","modified":"0001-01-01T00:00:00Z",
 "affected":[{"package":{"name":"example.com/a","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"2.0.0"}]}]},
             {"package":{"name":"example.com/a","ecosystem":"Go"}}]}`

var when = time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)

func TestBuild_WritesGovulncheckLayout(t *testing.T) {
	t.Parallel()
	src := fstest.MapFS{
		"GO-2024-0001.json": {Data: []byte(osvA)},
		"GO-2025-0002.json": {Data: []byte(osvB)},
		"README.md":         {Data: []byte("not an entry")},
	}
	out := filepath.Join(t.TempDir(), "db")
	n, err := build(src, out, when)
	if err != nil || n != 2 {
		t.Fatalf("build = %d, %v; want 2 entries", n, err)
	}
	var db struct{ Modified time.Time }
	readJSON(t, filepath.Join(out, "index", "db.json"), &db)
	if !db.Modified.Equal(when) {
		t.Errorf("db.json modified = %v, want %v", db.Modified, when)
	}
	var mods []moduleMeta
	readJSON(t, filepath.Join(out, "index", "modules.json"), &mods)
	// Sorted by path; a module an entry names twice is listed once for it; "fixed" is left out.
	if len(mods) != 2 || mods[0].Path != "example.com/a" || mods[1].Path != "stdlib" ||
		len(mods[0].Vulns) != 2 || mods[0].Vulns[0].ID != "GO-2024-0001" || mods[0].Vulns[1].ID != "GO-2025-0002" ||
		len(mods[1].Vulns) != 1 || !mods[0].Vulns[0].Modified.Equal(when) {
		t.Errorf("modules.json = %+v", mods)
	}
	raw, err := os.ReadFile(filepath.Join(out, "index", "modules.json"))
	if err != nil || strings.Contains(string(raw), `"fixed"`) {
		t.Errorf("modules.json names a fixed version (%v): %s", err, raw)
	}
	for id, want := range map[string]string{"GO-2024-0001": osvA, "GO-2025-0002": osvB} {
		got, err := os.ReadFile(filepath.Join(out, "ID", id+".json"))
		if err != nil || string(got) != want {
			t.Errorf("ID/%s.json = %q, %v; want the entry unchanged", id, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "ID", "README.md")); err == nil {
		t.Error("a non-JSON file was copied into ID/")
	}
}

func TestBuild_RefusesBadInputAndLeavesNothing(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]fstest.MapFS{
		"empty":         {},
		"not json":      {"GO-2024-0001.json": {Data: []byte("{")}},
		"name mismatch": {"GO-2024-0009.json": {Data: []byte(osvA)}},
		"path in id":    {"x.json": {Data: []byte(`{"id":"../x"}`)}},
	} {
		out := filepath.Join(t.TempDir(), "db")
		if _, err := build(src, out, when); err == nil {
			t.Errorf("%s: build succeeded", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: a refused build left %s behind", name, out)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".vulndb-*"))
		if len(left) > 0 {
			t.Errorf("%s: temporary directories left: %v", name, left)
		}
	}
}

func TestBuild_RefusesExistingOutput(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	src := fstest.MapFS{"GO-2024-0001.json": {Data: []byte(osvA)}}
	if _, err := build(src, out, when); err == nil {
		t.Fatal("build over an existing directory succeeded")
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
