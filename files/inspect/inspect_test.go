package inspect

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"tutela"
	"tutela/files"
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

// hostile is every file of testdata/hostile and the reason it must be refused for ("" for
// eicar.txt, which is valid text: the malware scanner refuses it, not inspection).
var hostile = map[string]string{
	"eicar.txt":                 "",
	"pe-renamed.png":            files.ReasonExecutable,
	"elf-named.pdf":             files.ReasonExecutable,
	"mach-o.jpg":                files.ReasonExecutable,
	"shebang.txt":               files.ReasonScript,
	"html-as.csv":               files.ReasonHTML,
	"png-zip-polyglot.png":      files.ReasonPolyglot,
	"jpeg-trailer.jpg":          files.ReasonPolyglot,
	"bomb.png":                  files.ReasonImageTooLarge,
	"pdf-html-polyglot.pdf":     files.ReasonPDFHTML,
	"pdf-javascript.pdf":        files.ReasonPDFJavaScript,
	"pdf-javascript-hex.pdf":    files.ReasonPDFJavaScript,
	"pdf-objstm-javascript.pdf": files.ReasonPDFJavaScript,
	"pdf-launch.pdf":            files.ReasonPDFLaunch,
	"pdf-embedded-file.pdf":     files.ReasonPDFEmbeddedFile,
	"svg-script.svg":            files.ReasonSVGScript,
	"svg-onload.svg":            files.ReasonSVGScript,
	"svg-external-entity.svg":   files.ReasonXMLEntity,
	"svg-external-href.svg":     files.ReasonSVGExternal,
	"docx-macro.docx":           files.ReasonOfficeMacro,
	"xlsm-macro.xlsm":           files.ReasonOfficeMacro,
	"zip-bomb.zip":              files.ReasonArchiveBomb,
	"nested-zip-bomb.zip":       files.ReasonArchiveNested,
	"zip-traversal.zip":         files.ReasonArchiveInvalid,
	"zip-exe.zip":               files.ReasonExecutable,
}

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

func TestInspect_ImageLimits(t *testing.T) {
	t.Parallel()
	img := image.NewGray(image.Rect(0, 0, 50, 10))
	var jb, gb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gb, img, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
	}{{"a.png", encodePNG(img)}, {"a.jpg", jb.Bytes()}, {"a.gif", gb.Bytes()}, {"a.webp", webp(50, 10)}} {
		p := permissive()
		res, got := inspectBytes(t, c.body, c.name, p)
		if got != "" || res.Width != 50 || res.Height != 10 {
			t.Errorf("%s: %q %+v, want 50×10 accepted", c.name, got, res)
		}
		p.MaxImageSide = 49
		if _, got := inspectBytes(t, c.body, c.name, p); got != files.ReasonImageTooLarge {
			t.Errorf("%s over the side limit: %q", c.name, got)
		}
		p = permissive()
		p.MaxImagePixels = 499
		if _, got := inspectBytes(t, c.body, c.name, p); got != files.ReasonImageTooLarge {
			t.Errorf("%s over the pixel limit: %q", c.name, got)
		}
		if _, got := inspectBytes(t, append(c.body[:len(c.body):len(c.body)], 'x'), c.name, permissive()); got != files.ReasonPolyglot {
			t.Errorf("%s with a trailing byte: %q", c.name, got)
		}
		if _, got := inspectBytes(t, c.body[:len(c.body)-1], c.name, permissive()); got != files.ReasonImageInvalid {
			t.Errorf("%s truncated: %q", c.name, got)
		}
	}
}

// webp is a lossless WebP container whose VP8L header says w×h (the bitstream after it is not
// decoded by Inspect, so a placeholder does).
func webp(w, h int) []byte {
	payload := []byte{0x2f, 0, 0, 0, 0, 0}
	v := uint32(w-1) | uint32(h-1)<<14
	payload[1], payload[2], payload[3], payload[4] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	var b bytes.Buffer
	b.WriteString("RIFF")
	b.Write([]byte{byte(4 + 8 + len(payload)), 0, 0, 0})
	b.WriteString("WEBPVP8L")
	b.Write([]byte{byte(len(payload)), 0, 0, 0})
	b.Write(payload)
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

func TestInspect_PDF(t *testing.T) {
	t.Parallel()
	deflated := func(s string) string {
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write([]byte(s))
		zw.Close()
		return z.String()
	}
	bomb := func() string {
		var z bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
		zw.Write(make([]byte, 8<<20))
		zw.Close()
		return z.String()
	}()
	for _, c := range []struct {
		name, body, want string
	}{
		{"html first", "<html><body>hi</body></html>\n%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n", files.ReasonPDFHTML},
		{"doctype", "%PDF-1.7\n<!DOCTYPE HTML>\n%%EOF\n", files.ReasonPDFHTML},
		{"js short", "%PDF-1.7\n<</S/JavaScript/JS(x)>>\n", files.ReasonPDFJavaScript},
		{"js only short key", "%PDF-1.7\n<</JS(x)>>\n", files.ReasonPDFJavaScript},
		{"hex launch", "%PDF-1.7\n<</S/#4C#61unch>>\n", files.ReasonPDFLaunch},
		{"embedded singular", "%PDF-1.7\n<</Type/EmbeddedFile>>\n", files.ReasonPDFEmbeddedFile},
		{"case differs", "%PDF-1.7\n<</S/javascript /Js (x)>>\n", ""},
		{"longer name", "%PDF-1.7\n<</JavaScriptX 1 /JSON 2>>\n", ""},
		{"flate js, CRLF", "%PDF-1.7\n1 0 obj\n<</Filter/FlateDecode/Length 9>>stream\r\n" + deflated("<</S/JavaScript>>") + "\nendstream\nendobj\n", files.ReasonPDFJavaScript},
		{"flate hex js", "%PDF-1.7\n1 0 obj\n<</Filter /FlateDecode>>\nstream\n" + deflated("<</J#53 (x)>>") + "\nendstream\nendobj\n", files.ReasonPDFJavaScript},
		{"Fl abbreviation", "%PDF-1.7\n1 0 obj\n<</Filter/Fl>>stream\n" + deflated("<</JS (x)>>") + "\nendstream\nendobj\n", files.ReasonPDFJavaScript},
		{"objstm under a chain", "%PDF-1.7\n1 0 obj\n<</Type/ObjStm/Filter[/ASCII85Decode/FlateDecode]>>stream\nGau@\nendstream\nendobj\n", files.ReasonArchiveInvalid},
		{"objstm encrypted", "%PDF-1.7\n1 0 obj\n<</Type/ObjStm/Filter/FlateDecode>>stream\n\x9a\x11\x02\x7f\nendstream\nendobj\n", files.ReasonArchiveInvalid},
		{"objstm plain", "%PDF-1.7\n1 0 obj\n<</Type/ObjStm>>stream\n4 0 <</S/JavaScript>>\nendstream\nendobj\n", files.ReasonPDFJavaScript},
		{"image stream", "%PDF-1.7\n1 0 obj\n<</Subtype/Image/Filter/DCTDecode>>stream\n\xff\xd8\xff\xe0\nendstream\nendobj\n", ""},
		{"flate clean", "%PDF-1.7\n1 0 obj\n<</Filter /FlateDecode>>\nstream\n" + deflated("BT (hello) Tj ET") + "\nendstream\nendobj\n", ""},
		{"flate bomb", "%PDF-1.7\n1 0 obj\n<</Filter /FlateDecode>>\nstream\n" + bomb + "\nendstream\nendobj\n", files.ReasonArchiveBomb},
	} {
		p := permissive()
		p.MaxArchiveExpanded = 4 << 20
		if _, got := inspectBytes(t, []byte(c.body), "a.pdf", p); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestInspect_SVG(t *testing.T) {
	t.Parallel()
	const open = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">`
	for _, c := range []struct{ body, want string }{
		{open + `<a href="javascript:alert(1)"><rect/></a></svg>`, files.ReasonSVGScript},
		{open + `<a xlink:href=" JaVa&#x09;Script:alert(1)"><rect/></a></svg>`, files.ReasonSVGScript},
		{open + `<animate attributeName="href" values="javascript:alert(1)"/></svg>`, files.ReasonSVGScript},
		{open + `<image href="data:image/svg+xml;base64,PHN2Zz4="/></svg>`, files.ReasonSVGScript},
		{open + `<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject></svg>`, files.ReasonSVGScript},
		{open + `<rect onclick="alert(1)"/></svg>`, files.ReasonSVGScript},
		{open + `<use href="other.svg#icon"/></svg>`, files.ReasonSVGExternal},
		{open + `<a href="#x"><set attributeName="href" to="https://x.example/"/></a></svg>`, files.ReasonSVGExternal},
		{open + `<rect style="fill: url(https://x.example/a)"/></svg>`, files.ReasonSVGExternal},
		{open + `<rect fill="url(//x.example/p#a)"/></svg>`, files.ReasonSVGExternal},
		{open + `<style>@import "https://x.example/a.css";</style></svg>`, files.ReasonSVGExternal},
		{open + `<style>rect { fill: u\72l(https://x.example/) }</style></svg>`, files.ReasonSVGExternal},
		{`<?xml version="1.0"?><?xml-stylesheet href="https://x.example/a.css"?>` + open + `</svg>`, files.ReasonSVGExternal},
		{`<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>` + open + `<text>&b;</text></svg>`, files.ReasonXMLEntity},
		{open + `<text>&xxe;</text></svg>`, files.ReasonImageInvalid},
		{open + `<rect>`, files.ReasonImageInvalid},
		{open + strings.Repeat("<g>", 300) + strings.Repeat("</g>", 300) + `</svg>`, files.ReasonImageInvalid},
		{open + strings.Repeat("<g>", 200) + strings.Repeat("</g>", 200) + `</svg>`, ""},
		{open + `<iframe src="#x"/></svg>`, files.ReasonSVGScript},
		{open + `<desc>` + strings.Repeat("x", 5<<20) + `</desc></svg>`, files.ReasonTooLarge},
		{open + `<style>rect { fill: url(#g) }</style><rect fill="url(#g)" style="stroke:url('#h')"/><use href="#r"/></svg>`, ""},
	} {
		if _, got := inspectBytes(t, []byte(c.body), "a.svg", permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.body, got, c.want)
		}
	}
}

func TestInspect_Text(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ body, want string }{
		{"a,b\n1,2\n", ""},
		{"\xef\xbb\xbfa,b\n1,2\n", ""},
		{"a,b\n1,\x00\n", files.ReasonTextInvalid},
		{"a,b\n1,\xff\xfe\n", files.ReasonTextInvalid},
		{"a,b\n1,\xc3", files.ReasonTextInvalid}, // a rune cut by the end
		{"a,b\n1,<object data=x>\n", files.ReasonHTML},
		{"a,b\n1,<EMBED src=x>\n", files.ReasonHTML},
		{"a,b\n1,2 < 3\n", ""},
	} {
		if _, got := inspectBytes(t, []byte(c.body), "a.csv", permissive()); got != c.want {
			t.Errorf("%q: %q, want %q", c.body, got, c.want)
		}
	}
}

// predicted applies a PNG (filter 1, 2 or 4 on alternate rows) or, with png false, a TIFF
// predictor to data in rows of cols bytes: the form an object stream takes under /DecodeParms.
func predicted(data []byte, cols int, png bool) []byte {
	for len(data)%cols != 0 {
		data = append(data, ' ')
	}
	var out []byte
	prev := make([]byte, cols)
	for r := 0; r*cols < len(data); r++ {
		row := data[r*cols : (r+1)*cols]
		enc := make([]byte, cols)
		filter := byte(1 + r%2)
		if r%3 == 2 {
			filter = 4
		}
		for i := range row {
			var a, c byte
			if i > 0 {
				a, c = row[i-1], prev[i-1]
			}
			switch {
			case !png || filter == 1:
				enc[i] = row[i] - a
			case filter == 2:
				enc[i] = row[i] - prev[i]
			default:
				enc[i] = row[i] - paeth(a, prev[i], c)
			}
		}
		if png {
			out = append(out, filter)
		}
		out = append(out, enc...)
		prev = row
	}
	return out
}

func TestInspect_PDFPredictorIsUndone(t *testing.T) {
	t.Parallel()
	inner := []byte("4 0 << /S /JavaScript /JS (app.alert(1)) >>")
	for _, c := range []struct {
		params string
		cols   int
		png    bool
	}{
		{"/Predictor 12 /Columns 5", 5, true},
		{"/Predictor 15 /Colors 1 /BitsPerComponent 8 /Columns 7", 7, true},
		{"/Predictor 2 /Columns 6", 6, false},
	} {
		body := predicted(inner, c.cols, c.png)
		if bytes.Contains(body, []byte("JavaScript")) {
			t.Fatalf("%s: the predictor left the key readable", c.params)
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(body)
		zw.Close()
		pdf := "%PDF-1.7\n1 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /DecodeParms << " + c.params +
			" >> >>\nstream\n" + z.String() + "\nendstream\nendobj\n%%EOF\n"
		if _, got := inspectBytes(t, []byte(pdf), "a.pdf", permissive()); got != files.ReasonPDFJavaScript {
			t.Errorf("%s: %q, want pdf_javascript", c.params, got)
		}
	}
}

func TestInspect_MultiPictureJPEG(t *testing.T) {
	t.Parallel()
	jpg := read(t, "testdata/good/photo.jpg")
	app2 := []byte{0xff, 0xe2, 0, 10, 'M', 'P', 'F', 0, 'I', 'I', '*', 0}
	mpf := append(append(append([]byte{}, jpg[:2]...), app2...), jpg[2:]...)
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"MPF with a gain map", append(append([]byte{}, mpf...), jpg...), ""},
		{"MPF with two", append(append(append([]byte{}, mpf...), jpg...), jpg...), ""},
		{"MPF then text", append(append([]byte{}, mpf...), "<?php ?>"...), files.ReasonPolyglot},
		{"MPF then a JPEG then text", append(append(append([]byte{}, mpf...), jpg...), "PK\x03\x04"...), files.ReasonPolyglot},
		{"MPF then a truncated JPEG", append(append([]byte{}, mpf...), jpg[:len(jpg)-2]...), files.ReasonImageInvalid},
		{"no MPF then a JPEG", append(append([]byte{}, jpg...), jpg...), files.ReasonPolyglot},
	} {
		if _, got := inspectBytes(t, c.body, "a.jpg", permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestInspect_ZIPHiddenInsideIsAPolyglot(t *testing.T) {
	t.Parallel()
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("payload.html")
	w.Write([]byte("<script>alert(1)</script>"))
	zw.SetComment(strings.Repeat("x", 16)) // will be the chunk's CRC and the IEND chunk
	zw.Close()
	data := zb.Bytes()[:zb.Len()-16]

	img := read(t, "testdata/good/image.png")
	iend := img[len(img)-12:]
	var b bytes.Buffer
	b.Write(img[:len(img)-12])
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString("zIPp")
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("zIPp"), data...)))
	b.Write(iend)
	if _, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len())); err != nil {
		t.Fatalf("the test PNG does not open as a ZIP: %v", err)
	}
	if _, got := inspectBytes(t, b.Bytes(), "a.png", permissive()); got != files.ReasonPolyglot {
		t.Errorf("ZIP inside a PNG chunk: %q, want polyglot", got)
	}

	pdf := append(read(t, "testdata/good/report.pdf"), zipOf(t, "a.txt", []byte("x"))...)
	if _, got := inspectBytes(t, pdf, "a.pdf", permissive()); got != files.ReasonPolyglot {
		t.Errorf("ZIP after a PDF: %q, want polyglot", got)
	}
}
