// Command vulndb builds a Go vulnerability database directory in the layout govulncheck reads with
// -db file://DIR (https://go.dev/security/vuln/database#api, schema v1) from the OSV files that the
// module golang.org/x/vulndb carries in data/osv. CI gets that module from the Go module proxy, so
// govulncheck runs with no network beyond the proxy:
//
//	DIR/index/db.json      {"modified": T}
//	DIR/index/modules.json [{"path": M, "vulns": [{"id": ID, "modified": T}]}], sorted by path, then ID
//	DIR/ID/<ID>.json       the OSV entry, unchanged
//
// The OSV files in the module carry no modification time (the published database sets it from git
// history), so -modified (the module version's commit time) stands in for every entry and for the
// database: it says how fresh the data is.
//
// Each index row leaves "fixed" out on purpose. govulncheck uses it only to skip reading entries it
// believes fixed at the version in use; without it, govulncheck reads every entry of the module and
// decides from the entry's own version ranges, so a mistake here can never hide a vulnerability.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

func main() {
	src := flag.String("src", "", "directory of OSV files (<ID>.json), e.g. the data/osv folder of golang.org/x/vulndb")
	out := flag.String("out", "", "directory to create; must not exist yet")
	modified := flag.String("modified", "", "RFC 3339 time the data was published (the vulndb module version's time)")
	flag.Parse()
	if *src == "" || *out == "" || *modified == "" {
		flag.Usage()
		os.Exit(2)
	}
	t, err := time.Parse(time.RFC3339, *modified)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulndb: -modified: %v\n", err)
		os.Exit(2)
	}
	n, err := build(os.DirFS(*src), *out, t.UTC())
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulndb: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("vulndb: %d entries, modified %s, in %s\n", n, t.UTC().Format(time.RFC3339), *out)
}

// entry is the part of an OSV entry (https://ossf.github.io/osv-schema/) the index needs.
type entry struct {
	ID       string `json:"id"`
	Affected []struct {
		Package struct {
			Name      string `json:"name"`
			Ecosystem string `json:"ecosystem"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

// validID matches the Go database's IDs (GO-YYYY-NNNN); an entry is written under its ID, so
// anything else (a path separator, "..") is refused rather than joined into a file name.
var validID = regexp.MustCompile(`^GO-[0-9]{4}-[0-9]{4,}$`)

// build writes the database for every <ID>.json at the top of src into out and returns the number
// of entries. It writes into a sibling temporary directory and renames it into place, so an
// interrupted run leaves no half-built database that a later run would take as complete.
func build(src fs.FS, out string, modified time.Time) (int, error) {
	if _, err := os.Stat(out); err == nil {
		return 0, fmt.Errorf("%s already exists", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	files, err := fs.Glob(src, "*.json")
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, errors.New("no OSV files (*.json) in the source directory")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".vulndb-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for _, d := range []string{"index", "ID"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o750); err != nil {
			return 0, err
		}
	}
	modules := map[string]*moduleMeta{}
	for _, name := range files {
		b, err := fs.ReadFile(src, name)
		if err != nil {
			return 0, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if !validID.MatchString(e.ID) || name != e.ID+".json" {
			return 0, fmt.Errorf("%s: file name does not match the entry's id %q", name, e.ID)
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			p := a.Package.Name
			if p == "" || a.Package.Ecosystem != "Go" || seen[p] {
				continue
			}
			seen[p] = true
			m := modules[p]
			if m == nil {
				m = &moduleMeta{Path: p}
				modules[p] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: modified})
		}
		if err := os.WriteFile(filepath.Join(tmp, "ID", name), b, 0o600); err != nil {
			return 0, err
		}
	}
	index := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.Slice(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		index = append(index, m)
	}
	sort.Slice(index, func(i, j int) bool { return strings.Compare(index[i].Path, index[j].Path) < 0 })
	if err := writeJSON(filepath.Join(tmp, "index", "modules.json"), index); err != nil {
		return 0, err
	}
	if err := writeJSON(filepath.Join(tmp, "index", "db.json"), struct {
		Modified time.Time `json:"modified"`
	}{modified}); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, err
	}
	return len(files), nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
