package inspect

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"tutela/files"
)

// zipOf is a zip of name/data pairs.
func zipOf(t testing.TB, kv ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < len(kv); i += 2 {
		w, err := zw.Create(kv[i].(string))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(kv[i+1].([]byte))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// docxParts are the parts of a minimal Word document.
func docxParts() []any {
	return []any{
		"[Content_Types].xml", []byte(`<Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`),
		"word/document.xml", []byte(`<w:document/>`),
	}
}

func TestInspect_Archives(t *testing.T) {
	t.Parallel()
	gz := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"plain.zip", zipOf(t, "a.txt", []byte("hello"), "dir/", []byte{}, "dir/b.csv", []byte("1,2")), ""},
		{"gz-inside.zip", zipOf(t, "data.bin", gz), files.ReasonArchiveNested},
		{"tar-name.zip", zipOf(t, "x.tar", []byte("x")), files.ReasonArchiveNested},
		{"pe-inside.zip", zipOf(t, "notes.txt", read(t, "testdata/hostile/pe-renamed.png")), files.ReasonExecutable},
		{"elf-inside.docx", zipOf(t, append(docxParts(), "word/media/image1.png", read(t, "testdata/hostile/elf-named.pdf"))...), files.ReasonExecutable},
		{"script-inside.zip", zipOf(t, "run", []byte("#!/bin/sh\n")), files.ReasonScript},
		{"js-name.zip", zipOf(t, "a/b/Invoice.JS", []byte("x")), files.ReasonExecutable},
		{"lnk-name.zip", zipOf(t, "open me.lnk", []byte("x")), files.ReasonExecutable},
		{"dup.zip", zipOf(t, "a.txt", []byte("1"), "a.txt", []byte("2")), files.ReasonArchiveInvalid},
		{"dup-case.zip", zipOf(t, "a.txt", []byte("1"), "A.TXT", []byte("2")), files.ReasonArchiveInvalid},
		{"abs.zip", zipOf(t, "/etc/passwd", []byte("1")), files.ReasonArchiveInvalid},
		{"backslash.zip", zipOf(t, `..\..\x.txt`, []byte("1")), files.ReasonArchiveInvalid},
		{"drive.zip", zipOf(t, `C:/x.txt`, []byte("1")), files.ReasonArchiveInvalid},
		{"activex.docx", zipOf(t, append(docxParts(), "word/activeX/activeX1.xml", []byte("<x/>"))...), files.ReasonOfficeMacro},
		{"vbadata.docx", zipOf(t, append(docxParts(), "word/vbaData.xml", []byte("<x/>"))...), files.ReasonOfficeMacro},
		{"rels-vba.docx", zipOf(t, append(docxParts(), "word/_rels/document.xml.rels", []byte(`<Relationship Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" Target="x.bin"/>`))...), files.ReasonOfficeMacro},
		{"xlm.xlsx", zipOf(t, "[Content_Types].xml", []byte("<Types/>"), "xl/workbook.xml", []byte("<w/>"), "xl/macrosheets/sheet1.xml", []byte("<x/>")), files.ReasonOfficeMacro},
		{"follina.docx", zipOf(t, append(docxParts(), "word/_rels/document.xml.rels", []byte(`<Relationships><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/oleObject" Target="http://x.example/a.html!" TargetMode="External"/></Relationships>`))...), files.ReasonOfficeMacro},
		{"template.docx", zipOf(t, append(docxParts(), "word/_rels/settings.xml.rels", []byte(`<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="https://x.example/t.dotm" TargetMode="External"/></Relationships>`))...), files.ReasonOfficeMacro},
		{"hyperlink.docx", zipOf(t, append(docxParts(), "word/_rels/document.xml.rels", []byte(`<Relationships><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/" TargetMode="External"/></Relationships>`))...), ""},
		{"rels-dtd.docx", zipOf(t, append(docxParts(), "_rels/.rels", []byte(`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Relationships/>`))...), files.ReasonXMLEntity},
		{"rels-malformed.docx", zipOf(t, append(docxParts(), "_rels/.rels", []byte(`<Relationships>`))...), files.ReasonArchiveInvalid},
		{"no-document.docx", zipOf(t, "[Content_Types].xml", []byte("<Types/>"), "word/styles.xml", []byte("<s/>")), files.ReasonArchiveInvalid},
		{"clean.docx", zipOf(t, docxParts()...), ""},
		{"truncated.zip", zipOf(t, "a.txt", []byte("hello"))[:30], files.ReasonArchiveInvalid},
	} {
		if _, got := inspectBytes(t, c.body, c.name, permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestInspect_ArchiveLimits(t *testing.T) {
	t.Parallel()
	many := make([]any, 0, 22)
	for i := range 11 {
		many = append(many, fmt.Sprintf("f%d.txt", i), []byte("x"))
	}
	p := permissive()
	p.MaxArchiveEntries = 10
	if _, got := inspectBytes(t, zipOf(t, many...), "a.zip", p); got != files.ReasonArchiveEntries {
		t.Errorf("11 entries, limit 10: %q", got)
	}
	p.MaxArchiveEntries = 11
	if _, got := inspectBytes(t, zipOf(t, many...), "a.zip", p); got != "" {
		t.Errorf("11 entries, limit 11: %q", got)
	}

	// Poorly compressible content past the expansion limit: refused on size, not ratio.
	noise := make([]byte, 3<<20)
	x := uint64(88172645463325252)
	for i := range noise {
		x ^= x << 13 // xorshift: incompressible enough, and the same every run
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	p = permissive()
	p.MaxArchiveExpanded = 2 << 20
	if _, got := inspectBytes(t, zipOf(t, "a.bin", noise), "a.zip", p); got != files.ReasonArchiveBomb {
		t.Errorf("expanded past the limit: %q", got)
	}
	// Zeros: refused on ratio well before the expansion limit.
	p = permissive()
	p.MaxArchiveRatio = 10
	if _, got := inspectBytes(t, zipOf(t, "a.bin", make([]byte, 3<<20)), "a.zip", p); got != files.ReasonArchiveBomb {
		t.Errorf("ratio past the limit: %q", got)
	}
	// The archive's own size limit.
	p = permissive()
	p.MaxArchiveSize = 1 << 20
	if _, got := inspectBytes(t, zipOf(t, "a.bin", noise), "a.zip", p); got != files.ReasonTooLarge {
		t.Errorf("archive past MaxArchiveSize: %q", got)
	}
}

// lyingZip writes one entry whose headers claim size claimed (and a wrong CRC) while its deflated
// body expands to body.
func lyingZip(t *testing.T, name string, body []byte, claimed uint64, extra ...any) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < len(extra); i += 2 {
		w, _ := zw.Create(extra[i].(string))
		w.Write(extra[i+1].([]byte))
	}
	var c bytes.Buffer
	fw, _ := flate.NewWriter(&c, flate.BestCompression)
	fw.Write(body)
	fw.Close()
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(body[:min(len(body), int(claimed))]),
		CompressedSize64: uint64(c.Len()), UncompressedSize64: claimed})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(c.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestInspect_DOCXWithLyingSizes(t *testing.T) {
	t.Parallel()
	parts := docxParts()[:2]
	// Headers say 100 bytes; the body expands to 64 MiB: the counting reader, not the header,
	// decides.
	b := lyingZip(t, "word/document.xml", make([]byte, 64<<20), 100, parts...)
	if _, got := inspectBytes(t, b, "a.docx", permissive()); got != files.ReasonArchiveBomb {
		t.Errorf("lying sizes, large body: %q, want archive_bomb", got)
	}
	// A small lie is still a lie.
	b = lyingZip(t, "word/document.xml", []byte(strings.Repeat("<w:document/>", 10)), 13, parts...)
	if _, got := inspectBytes(t, b, "a.docx", permissive()); got != files.ReasonArchiveInvalid {
		t.Errorf("lying sizes, small body: %q, want archive_invalid", got)
	}
}

func TestInspect_ZipOverlappingEntries(t *testing.T) {
	t.Parallel()
	b := zipOf(t, "a.txt", []byte("hello"), "b.txt", []byte("world"))
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Point the second central-directory record at the first entry's local header.
	cd := bytes.LastIndex(b, []byte("PK\x01\x02"))
	if zr.File[1].Name != "b.txt" || cd < 0 {
		t.Fatal("unexpected layout")
	}
	copy(b[cd+42:cd+46], []byte{0, 0, 0, 0})
	if _, got := inspectBytes(t, b, "a.zip", permissive()); got != files.ReasonArchiveInvalid {
		t.Errorf("overlapping entries: %q", got)
	}
}

func TestInspect_ZipEncryptedEntry(t *testing.T) {
	t.Parallel()
	b := zipOf(t, "a.txt", []byte("hello"))
	for _, sig := range []string{"PK\x03\x04", "PK\x01\x02"} {
		i := bytes.Index(b, []byte(sig))
		off := 6
		if sig == "PK\x01\x02" {
			off = 8
		}
		b[i+off] |= 1
	}
	if _, got := inspectBytes(t, b, "a.zip", permissive()); got != files.ReasonArchiveInvalid {
		t.Errorf("encrypted entry: %q", got)
	}
}

var errBroken = errors.New("connection reset by uploader")

func TestInspect_ReadErrorIsReturnedAsIs(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"good/image.png", "good/report.pdf", "good/data.csv", "good/letter.docx", "good/icon.svg", "good/photo.jpg"} {
		b := read(t, "testdata/"+name)
		for _, cut := range []int{0, len(b) / 2} {
			r := io.MultiReader(bytes.NewReader(b[:cut]), iotest.ErrReader(errBroken))
			_, err := Inspect(r, Input{Name: name[strings.IndexByte(name, '/')+1:], Policy: permissive()})
			if !errors.Is(err, errBroken) || files.RefusalReason(err) != "" {
				t.Errorf("%s cut at %d: %v, want the read error", name, cut, err)
			}
		}
	}
	// io.ErrUnexpectedEOF from the uploader is a read error, not the end of the content.
	r0 := io.MultiReader(strings.NewReader("a,b\n"), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := Inspect(r0, Input{Name: "a.csv", Policy: permissive()}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("unexpected EOF in the head: %v", err)
	}
	// Past the head, through a long text.
	r := io.MultiReader(strings.NewReader(strings.Repeat("a,b\n", 40000)), iotest.ErrReader(errBroken))
	if _, err := Inspect(r, Input{Name: "a.csv", Policy: permissive()}); !errors.Is(err, errBroken) {
		t.Errorf("csv past the head: %v", err)
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"good/image.png":       files.TypePNG,
		"good/photo.jpg":       files.TypeJPEG,
		"good/letter.docx":     files.TypeDOCX,
		"good/sheet.xlsx":      files.TypeXLSX,
		"good/report.pdf":      files.TypePDF,
		"good/icon.svg":        files.TypeSVG,
		"hostile/zip-bomb.zip": files.TypeZIP,
	} {
		if got := Detect(read(t, "testdata/"+name)); got != want {
			t.Errorf("Detect(%s) = %q, want %q", name, got, want)
		}
	}
}

func BenchmarkInspectCSV(b *testing.B) {
	var body bytes.Buffer
	for body.Len() < 64<<20 {
		body.WriteString("2026-01-01,Zoë Example,zoe@example.com,1234.50,\"a quoted, field\"\n")
	}
	p := permissive()
	p.MaxSize = 128 << 20
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Inspect(bytes.NewReader(body.Bytes()), Input{Name: "big.csv", Policy: p}); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzInspect(f *testing.F) {
	for _, dir := range []string{"testdata/hostile", "testdata/good"} {
		es, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range es {
			b, err := os.ReadFile(dir + "/" + e.Name())
			if err != nil {
				f.Fatal(err)
			}
			if len(b) < 64<<10 {
				f.Add(b, e.Name())
			}
		}
	}
	p := permissive()
	p.MaxArchiveExpanded = 16 << 20
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		_, err := Inspect(bytes.NewReader(b), Input{Name: name, Policy: p})
		if err != nil && files.RefusalReason(err) == "" {
			t.Fatalf("not a refusal: %v", err)
		}
	})
}
