package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var (
	templateKeyRE = regexp.MustCompile(`\.T "([^"]+)"`)
	verbRE        = regexp.MustCompile(`%[sdv]`)
)

// goKeys are the msgKey constants of the package's Go files.
func goKeys(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "msgKey" {
				return true
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					keys = append(keys, s)
				}
			}
			return true
		})
	}
	if len(keys) < 10 {
		t.Fatalf("found only %d msgKey constants: the scan is broken", len(keys))
	}
	return keys
}

func templateKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		for _, m := range templateKeyRE.FindAllStringSubmatch(string(b), -1) {
			keys = append(keys, m[1])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys in templates: the scan is broken", len(keys))
	}
	return keys
}

func TestCatalogues_EveryKeyInEveryLanguage(t *testing.T) {
	c, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	en := c.keys["en"]
	for _, tag := range languages {
		lang := tag.String()
		msgs := c.keys[lang]
		for k, v := range en {
			other, ok := msgs[k]
			switch {
			case !ok:
				t.Errorf("%s: key %q missing", lang, k)
			case strings.TrimSpace(other) == "":
				t.Errorf("%s: key %q empty", lang, k)
			case !slices.Equal(verbRE.FindAllString(v, -1), verbRE.FindAllString(other, -1)):
				t.Errorf("%s: key %q has other placeholders than English: %q vs %q", lang, k, other, v)
			}
		}
		for k := range msgs {
			if _, ok := en[k]; !ok {
				t.Errorf("%s: key %q is not in English", lang, k)
			}
		}
	}
	for _, k := range append(goKeys(t), templateKeys(t)...) {
		if _, ok := en[k]; !ok {
			t.Errorf("key %q used but in no catalogue", k)
		}
	}
	// Each language's own name, for the switch.
	names := map[string]bool{}
	for _, l := range languages {
		names[c.keys[l.String()]["lang.name"]] = true
	}
	if len(names) != len(languages) {
		t.Errorf("languages share a name: %v", slices.Collect(maps.Keys(names)))
	}
}

var (
	actionRE   = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	rawElemRE  = regexp.MustCompile(`(?is)<(style|script)\b[^>]*>.*?</(style|script)>`)
	tagRE      = regexp.MustCompile(`(?s)<[^>]*>`)
	attrRE     = regexp.MustCompile(`^[a-z-]+="[a-z-]*"$`)
	textAttrRE = regexp.MustCompile(`(?i)\b(alt|title|aria-label|placeholder)="([^"{]*)"`)
)

// TestTemplates_NoTextOutsideCatalogue fails on words written into a template instead of taken
// from the catalogues: text between tags, and attributes people read (alt, title, aria-label,
// placeholder).
func TestTemplates_NoTextOutsideCatalogue(t *testing.T) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatal("no templates", err)
	}
	for _, f := range files {
		b, _ := fs.ReadFile(templateFS, f)
		src := string(b)
		for _, m := range textAttrRE.FindAllStringSubmatch(src, -1) {
			if strings.IndexFunc(m[2], unicode.IsLetter) >= 0 {
				t.Errorf("%s: literal text in %s=%q", f, m[1], m[2])
			}
		}
		text := tagRE.ReplaceAllString(rawElemRE.ReplaceAllString(actionRE.ReplaceAllString(src, " "), " "), " ")
		for _, word := range strings.Fields(text) {
			// An attribute a sub-template adds inside its caller's tag is markup, not text.
			if strings.IndexFunc(word, unicode.IsLetter) >= 0 && !attrRE.MatchString(word) {
				t.Errorf("%s: text %q outside the catalogue", f, word)
			}
		}
	}
	// The check itself catches a stray word.
	if s := tagRE.ReplaceAllString(actionRE.ReplaceAllString(`<p>{{.T "x"}} Hello</p>`, " "), " "); !strings.Contains(s, "Hello") {
		t.Fatal("the scan would miss literal text")
	}
	if _, err := os.Stat("templates/layout.html"); err != nil {
		t.Fatal(err)
	}
}
