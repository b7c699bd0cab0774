package inspect

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"tutela"
	"tutela/files"
	"tutela/files/inspect/corpus"
)

// permissive allows every supported type, so that a hostile file is refused for what it holds,
// not because its type is not allowed.
func permissive() *files.Policy {
	p := files.DefaultPolicy()
	p.AllowedTypes = files.SupportedTypes()
	return &p
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refusal is the reason of err, failing the test if err is neither nil nor a refusal.
func refusal(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *tutela.Error
	if !errors.As(err, &e) || e.Code != tutela.EFILEREFUSED || e.Reason == "" {
		t.Fatalf("error is not a refusal: %v", err)
	}
	return e.Reason
}

func inspectBytes(t testing.TB, b []byte, name string, p *files.Policy) (Result, string) {
	t.Helper()
	res, err := Inspect(bytes.NewReader(b), Input{Name: name, Policy: p})
	return res, refusal(t, err)
}

// hostile is corpus.Hostile as inspection sees it: eicar.txt is valid text, refused by the
// malware scanner, not here.
var hostile = func() map[string]string {
	m := maps.Clone(corpus.Hostile)
	m[corpus.EICAR] = ""
	return m
}()

func TestInspect_HostileCorpus(t *testing.T) {
	t.Parallel()
	dir, err := os.ReadDir("testdata/hostile")
	if err != nil {
		t.Fatal(err)
	}
	if len(dir) != len(hostile) {
		t.Errorf("testdata/hostile has %d files, the table %d", len(dir), len(hostile))
	}
	for _, f := range dir {
		want, ok := hostile[f.Name()]
		if !ok {
			t.Errorf("%s: not in the table", f.Name())
			continue
		}
		b := read(t, "testdata/hostile/"+f.Name())
		if len(b) > 200<<10 {
			t.Errorf("%s: %d bytes, keep the corpus small", f.Name(), len(b))
		}
		for _, r := range []struct {
			how string
			r   func() io.Reader
		}{
			{"whole", func() io.Reader { return bytes.NewReader(b) }},
			{"half", func() io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
			{"one-byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
		} {
			_, err := Inspect(r.r(), Input{Name: f.Name(), Policy: permissive()})
			if got := refusal(t, err); got != want {
				t.Errorf("%s (%s reads): reason %q, want %q (%v)", f.Name(), r.how, got, want, err)
			}
		}
	}
}

func TestInspect_GoodCorpusPasses(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"image.png":   files.TypePNG,
		"photo.jpg":   files.TypeJPEG,
		"anim.gif":    files.TypeGIF,
		"report.pdf":  files.TypePDF,
		"data.csv":    files.TypeCSV,
		"letter.docx": files.TypeDOCX,
		"sheet.xlsx":  files.TypeXLSX,
		"icon.svg":    files.TypeSVG,
	}
	dir, err := os.ReadDir("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	if len(dir) != len(want) {
		t.Errorf("testdata/good has %d files, the table %d", len(dir), len(want))
	}
	for _, f := range dir {
		b := read(t, "testdata/good/"+f.Name())
		for _, r := range []io.Reader{bytes.NewReader(b), iotest.OneByteReader(bytes.NewReader(b))} {
			res, err := Inspect(r, Input{Name: f.Name(), DeclaredType: want[f.Name()], Policy: permissive()})
			if err != nil {
				t.Errorf("%s: refused: %v", f.Name(), err)
				continue
			}
			if res.Type != want[f.Name()] || res.Extension != filepath.Ext(f.Name()) {
				t.Errorf("%s: %+v, want type %s", f.Name(), res, want[f.Name()])
			}
		}
	}
	res, _ := inspectBytes(t, read(t, "testdata/good/image.png"), "image.png", permissive())
	if res.Width != 4 || res.Height != 3 {
		t.Errorf("png dimensions %d×%d, want 4×3", res.Width, res.Height)
	}
	res, _ = inspectBytes(t, read(t, "testdata/good/sheet.xlsx"), "sheet.xlsx", permissive())
	if res.Entries != 5 {
		t.Errorf("xlsx entries %d, want 5", res.Entries)
	}
}

func TestInspect_DefaultPolicyStillNamesSVGThreats(t *testing.T) {
	t.Parallel()
	p := files.DefaultPolicy()
	if _, got := inspectBytes(t, read(t, "testdata/hostile/svg-script.svg"), "a.svg", &p); got != files.ReasonSVGScript {
		t.Errorf("hostile SVG under the default policy: %q, want svg_script", got)
	}
	if _, got := inspectBytes(t, read(t, "testdata/good/icon.svg"), "a.svg", &p); got != files.ReasonTypeNotAllowed {
		t.Errorf("clean SVG under the default policy: %q, want type_not_allowed", got)
	}
	if _, got := inspectBytes(t, read(t, "testdata/good/anim.gif"), "a.gif", &p); got != files.ReasonTypeNotAllowed {
		t.Errorf("GIF under the default policy: %q, want type_not_allowed", got)
	}
}

func TestInspect_MacroWorkbookRenamedIsRefusedByContent(t *testing.T) {
	t.Parallel()
	b := read(t, "testdata/hostile/xlsm-macro.xlsm")
	if _, got := inspectBytes(t, b, "sheet.xlsx", permissive()); got != files.ReasonOfficeMacro {
		t.Errorf("xlsm renamed .xlsx: %q, want office_macro", got)
	}
	_, err := Inspect(bytes.NewReader(read(t, "testdata/good/sheet.xlsx")), Input{Name: "s.xlsx",
		DeclaredType: "application/vnd.ms-excel.sheet.macroEnabled.12", Policy: permissive()})
	if got := refusal(t, err); got != files.ReasonOfficeMacro {
		t.Errorf("declared macro-enabled: %q, want office_macro", got)
	}
}

func TestInspect_DeclaredType(t *testing.T) {
	t.Parallel()
	pngb := read(t, "testdata/good/image.png")
	jpg := read(t, "testdata/good/photo.jpg")
	csv := read(t, "testdata/good/data.csv")
	for _, c := range []struct {
		body     []byte
		name     string
		declared string
		want     string
		typ      string
	}{
		{pngb, "a.png", "image/png", "", files.TypePNG},
		{pngb, "a.png", "IMAGE/PNG; foo=bar", "", files.TypePNG},
		{pngb, "a.png", "application/octet-stream", "", files.TypePNG},
		{pngb, "a.png", "", "", files.TypePNG},
		{pngb, "a.png", "image/jpeg", files.ReasonTypeMismatch, ""},
		{pngb, "a.png", "not a type", files.ReasonTypeMismatch, ""},
		{jpg, "a.jpg", "image/jpg", "", files.TypeJPEG},
		{jpg, "a.jpeg", "image/pjpeg", "", files.TypeJPEG},
		{csv, "a.csv", "text/csv; charset=utf-8", "", files.TypeCSV},
		{csv, "a.txt", "text/plain", "", files.TypeText},
		{csv, "a.csv", "application/pdf", files.ReasonTypeMismatch, ""},
		{csv, "a.csv", "text/plain", "", files.TypeCSV},
		{csv, "a.csv", "application/vnd.ms-excel", "", files.TypeCSV},
		{csv, "a.txt", "application/vnd.ms-excel", files.ReasonTypeMismatch, ""},
		{[]byte("just a note\n"), "a.csv", "", "", files.TypeCSV},
		{[]byte("a\tb\tc\n1\t2\t3\n4\t5\t6\n"), "a.csv", "", "", files.TypeCSV},
		{[]byte("a\tb\tc\n1\t2\t3\n4\t5\t6\n"), "a.txt", "", "", files.TypeText},
		{[]byte("just a note\n"), "a.csv", "text/csv", "", files.TypeCSV},
		{[]byte("just a note\n"), "a.txt", "text/csv", files.ReasonExtensionMismatch, ""},
	} {
		res, err := Inspect(bytes.NewReader(c.body), Input{Name: c.name, DeclaredType: c.declared, Policy: permissive()})
		if got := refusal(t, err); got != c.want || err == nil && res.Type != c.typ {
			t.Errorf("%s declared %q: reason %q type %q, want %q %q", c.name, c.declared, got, res.Type, c.want, c.typ)
		}
	}
}

func TestInspect_ExtensionAndName(t *testing.T) {
	t.Parallel()
	pngb := read(t, "testdata/good/image.png")
	for _, c := range []struct{ name, want string }{
		{"photo.PNG", ""},
		{"a.b.png", ""},
		{"photo.jpg", files.ReasonExtensionMismatch},
		{"photo", files.ReasonExtensionMismatch},
		{"photo.png.", files.ReasonExtensionMismatch},
		{"", files.ReasonNameInvalid},
		{"..", files.ReasonNameInvalid},
		{"../photo.png", files.ReasonNameInvalid},
		{`C:\x\photo.png`, files.ReasonNameInvalid},
		{"ph\x00oto.png", files.ReasonNameInvalid},
		{"photo\n.png", files.ReasonNameInvalid},
		{"gpj\u202e.png", files.ReasonNameInvalid},
		{"bad\xff.png", files.ReasonNameInvalid},
		{strings.Repeat("a", 252) + ".png", files.ReasonNameInvalid},
		{strings.Repeat("a", 251) + ".png", ""},
	} {
		res, got := inspectBytes(t, pngb, c.name, permissive())
		if got != c.want {
			t.Errorf("name %q: %q, want %q", c.name, got, c.want)
		}
		if got == "" && res.Extension != ".png" {
			t.Errorf("name %q: extension %q", c.name, res.Extension)
		}
	}
}

func TestInspect_EmptyAndNoPolicy(t *testing.T) {
	t.Parallel()
	if _, got := inspectBytes(t, nil, "a.txt", permissive()); got != files.ReasonEmpty {
		t.Errorf("empty: %q", got)
	}
	_, err := Inspect(strings.NewReader("x"), Input{Name: "a.txt"})
	if tutela.ErrorCode(err) != tutela.EINTERNAL {
		t.Errorf("no policy: %v, want internal", err)
	}
}

// guard fails the test when more than max bytes are read from it: Inspect must stop reading at
// the size limit, not at the end of a hostile body.
type guard struct {
	t    *testing.T
	r    io.Reader
	n    int64
	max  int64
	fail bool
}

func (g *guard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.n += int64(n)
	if g.n > g.max && !g.fail {
		g.fail = true
		g.t.Errorf("read %d bytes, more than %d", g.n, g.max)
	}
	return n, err
}

// endless is an endless CSV body.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	line := "2026-01-01,some value,42\n"
	for i := range p {
		p[i] = line[i%len(line)]
	}
	return len(p), nil
}

func TestInspect_SizeLimitStopsReading(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, typ string
		r         io.Reader
	}{
		{"a.csv", files.TypeCSV, endless{}},
		{"a.pdf", files.TypePDF, io.MultiReader(strings.NewReader("%PDF-1.7\n"), endless{})},
		{"a.png", files.TypePNG, io.MultiReader(bytes.NewReader(pngHeaderWithHugeChunk()), endless{})},
		{"a.zip", files.TypeZIP, io.MultiReader(bytes.NewReader(zipOf(t, "a.txt", []byte("x"))[:40]), endless{})},
	} {
		p := permissive()
		p.MaxSizeByType = map[string]int64{c.typ: 300 << 10}
		g := &guard{t: t, r: c.r, max: 300<<10 + 1}
		_, err := Inspect(g, Input{Name: c.name, Policy: p})
		if got := refusal(t, err); got != files.ReasonTooLarge {
			t.Errorf("%s: %q, want too_large (%v)", c.name, got, err)
		}
	}
}

// pngHeaderWithHugeChunk is a PNG signature and IHDR followed by an IDAT chunk that claims 2 GiB.
func pngHeaderWithHugeChunk() []byte {
	b := encodePNG(image.NewGray(image.Rect(0, 0, 2, 2)))
	i := bytes.Index(b, []byte("IDAT")) - 4
	return append(b[:i:i], 0x7f, 0xff, 0xff, 0xff, 'I', 'D', 'A', 'T')
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// straddle puts token so that it crosses the head (64 KiB) boundary and a 32 KiB buffer's.
func straddle(prefix, token, suffix string, at int) []byte {
	var b bytes.Buffer
	b.WriteString(prefix)
	const pad = "% padding padding padding padding padding padding padding\n"
	for b.Len() < at-len(token)/2 {
		b.WriteString(pad[:min(len(pad), at-len(token)/2-b.Len())])
	}
	b.WriteString(token)
	b.WriteString(suffix)
	return b.Bytes()
}

func TestInspect_TokensSplitAcrossReads(t *testing.T) {
	t.Parallel()
	for _, at := range []int{headSize, headSize + 32<<10, 3 * 32 << 10} {
		for _, c := range []struct {
			name string
			body []byte
			want string
		}{
			{"a.pdf", straddle("%PDF-1.7\n", "/J#61vaScript", " (x)\n%%EOF\n", at), files.ReasonPDFJavaScript},
			{"a.pdf", straddle("%PDF-1.7\n", "/Launch", " (x)\n%%EOF\n", at), files.ReasonPDFLaunch},
			{"a.pdf", straddle("%PDF-1.7\n", "<ScRiPt", ">\n%%EOF\n", at), files.ReasonPDFHTML},
			{"a.csv", []byte(strings.ReplaceAll(string(straddle("a,b\n", "<IFRAME", "\n", at)), "%", "1")), files.ReasonHTML},
			{"a.txt", []byte(strings.ReplaceAll(string(straddle("note\n", "é\x00", "\n", at)), "%", "1")), files.ReasonTextInvalid},
		} {
			for _, r := range []io.Reader{bytes.NewReader(c.body), iotest.HalfReader(bytes.NewReader(c.body)), iotest.OneByteReader(bytes.NewReader(c.body))} {
				_, err := Inspect(r, Input{Name: c.name, Policy: permissive()})
				if got := refusal(t, err); got != c.want {
					t.Errorf("%s at %d: %q, want %q", c.name, at, got, c.want)
				}
			}
		}
	}
	// A multi-byte rune split by every read must not look invalid.
	text := []byte(strings.Repeat("Zoë, naïve café ✓\n", 10000))
	if _, err := Inspect(iotest.OneByteReader(bytes.NewReader(text)), Input{Name: "a.txt", Policy: permissive()}); err != nil {
		t.Errorf("valid UTF-8 read byte by byte: %v", err)
	}
}
