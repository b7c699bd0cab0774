package inspect

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"image"
	"testing"

	"tutela/files"
)

// peBytes is a DOS header pointing at a "PE\0\0" signature: code by its magic.
func peBytes(n int) []byte {
	b := make([]byte, n)
	copy(b, "MZ")
	b[0x3c] = 0x80
	copy(b[0x80:], "PE\x00\x00")
	return b
}

// The security review's M3: JavaScript in an object stream the scan never read, because the
// stream's filter was an indirect reference, or because the stream was an object stream only
// by its /N and /First (pdf.js's XRef.fetchCompressed never checks /Type /ObjStm).
func TestInspect_PDFStreamsTheScanCannotReadAreRefused(t *testing.T) {
	t.Parallel()
	inner := "4 0 << /S /JavaScript /JS (app.alert\\(1\\)) >>"
	hexed := hex.EncodeToString([]byte(inner)) + ">"
	z := deflateString(t, inner)
	head := "%PDF-1.7\n1 0 obj\n<< /Type /Catalog /OpenAction 4 0 R >>\nendobj\n"
	obj := func(dict, data string) string {
		return head + "3 0 obj\n<< " + dict + " >>\nstream\n" + data + "\nendstream\nendobj\n9 0 obj\n/ASCIIHexDecode\nendobj\n%%EOF\n"
	}
	for _, c := range []struct{ name, body, want string }{
		{"indirect filter", obj("/Type /ObjStm /N 1 /First 4 /Filter 9 0 R", hexed), files.ReasonArchiveInvalid},
		{"indirect filter in an array", obj("/Type /ObjStm /N 1 /First 4 /Filter [ 9 0 R ]", hexed), files.ReasonArchiveInvalid},
		{"indirect filter, pdf.js abbreviation", obj("/Type /ObjStm /N 1 /First 4 /F 9 0 R", hexed), files.ReasonArchiveInvalid},
		{"indirect filter on any stream", obj("/Filter 9 0 R", hexed), files.ReasonArchiveInvalid},
		{"indirect parameters", obj("/Filter /FlateDecode /DecodeParms 9 0 R", z), files.ReasonArchiveInvalid},
		{"indirect predictor", obj("/Filter /FlateDecode /DecodeParms << /Predictor 9 0 R /Columns 4 >>", z), files.ReasonArchiveInvalid},
		{"indirect parameters in an array", obj("/Filter [/FlateDecode] /DP [ 9 0 R ]", z), files.ReasonArchiveInvalid},
		{"object stream without /Type", obj("/N 1 /First 4 /Filter /ASCIIHexDecode", hexed), files.ReasonArchiveInvalid},
		{"object stream without /Type, deflated twice", obj("/N 1 /First 4 /Filter [/FlateDecode /FlateDecode]", deflateString(t, z)), files.ReasonArchiveInvalid},
		{"object stream without /Type, 4-bit predictor", obj("/N 1 /First 4 /Filter /FlateDecode /DecodeParms << /Predictor 12 /BitsPerComponent 4 >>", z), files.ReasonArchiveInvalid},
		{"object stream without /Type, readable", obj("/N 1 /First 4 /Filter /FlateDecode", z), files.ReasonPDFJavaScript},
		// What must still pass: a direct filter, a null parameter, an indirect length, an
		// annotation's /F flags, an ICC profile's /N.
		{"direct filter, null parameters", obj("/Filter /FlateDecode /DecodeParms null /Length 8 0 R", deflateString(t, "BT ET")), ""},
		{"annotation flags", head + "5 0 obj\n<< /Type /Annot /F 4 /P 0 R /Length 5 >>\nstream\nhello\nendstream\nendobj\n%%EOF\n", ""},
		{"JBIG2 image sharing its globals", obj("/Subtype /Image /Filter [/JBIG2Decode] /DecodeParms [<< /JBIG2Globals 7 0 R >>]", "\x00\x01"), ""},
		{"ICC profile", obj("/N 3 /Alternate /DeviceRGB /Filter /FlateDecode", deflateString(t, "profile")), ""},
	} {
		if _, got := inspectBytes(t, []byte(c.body), "a.pdf", permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Names stay readable in an encrypted PDF except inside object streams; its other streams do
// not inflate. /Encrypt comes last, in the trailer.
func TestInspect_EncryptedPDFWithUnreadableStreamsIsRefused(t *testing.T) {
	t.Parallel()
	trailer := "trailer\n<< /Root 1 0 R /Encrypt 6 0 R >>\n%%EOF\n"
	head := "%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n6 0 obj\n<< /Filter /Standard /V 2 /R 3 >>\nendobj\n"
	for _, c := range []struct{ name, body, want string }{
		// Ciphertext that happens to begin like zlib (1 in ~500 streams) inflates to nothing.
		{"object stream", "2 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>\nstream\nx\x9c\x8a\x11\x02\x7f\x00\x12\nendstream\nendobj\n", files.ReasonArchiveInvalid},
		{"encrypted content", "2 0 obj\n<< /Filter /FlateDecode >>\nstream\n\x9a\x11\x02\x7f\nendstream\nendobj\n", files.ReasonArchiveInvalid},
		{"under a filter not undone", "2 0 obj\n<< /Filter /LZWDecode >>\nstream\n\x9a\x11\x02\x7f\nendstream\nendobj\n", files.ReasonArchiveInvalid},
		{"images only", "2 0 obj\n<< /Subtype /Image /Filter /DCTDecode >>\nstream\n\x9a\x11\x02\x7f\nendstream\nendobj\n", ""},
	} {
		if _, got := inspectBytes(t, []byte(head+c.body+trailer), "a.pdf", permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		// Not encrypted, the same streams are judged as before.
		plain := head + c.body + "trailer\n<< /Root 1 0 R >>\n%%EOF\n"
		if _, got := inspectBytes(t, []byte(plain), "a.pdf", permissive()); c.name != "object stream" && got != "" {
			t.Errorf("%s, not encrypted: %q", c.name, got)
		}
	}
}

func deflateString(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// zipWithExe is a ZIP holding setup.exe (PE magic).
func zipWithExe(t testing.TB) []byte {
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	w, _ := zw.Create("setup.exe")
	w.Write(peBytes(256))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// pngWithChunk is a 4×4 PNG with a private ancillary chunk holding data before IEND.
func pngWithChunk(data []byte) []byte {
	png := encodePNG(image.NewGray(image.Rect(0, 0, 4, 4)))
	iend := png[len(png)-12:]
	chunk := make([]byte, 8, 12+len(data))
	binary.BigEndian.PutUint32(chunk, uint32(len(data)))
	copy(chunk[4:], "zzIp")
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	return append(append(append([]byte{}, png[:len(png)-12]...), chunk...), iend...)
}

// The security review's M4: ZIP readers find the end-of-central-directory record with bytes
// after it; the polyglot check must too.
func TestInspect_ZIPInsideAnyTypeIsAPolyglot(t *testing.T) {
	t.Parallel()
	z := zipWithExe(t)
	pdf := "%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
	gif := read(t, "testdata/good/anim.gif")
	tiny := zipOf(t, "a.txt", []byte("hi"))
	gifComment := append(append(append([]byte{}, gif[:len(gif)-1]...), 0x21, 0xfe, byte(len(tiny))), tiny...)
	gifComment = append(gifComment, 0, 0x3b)
	jpg := read(t, "testdata/good/photo.jpg")
	jpgComment := append([]byte{0xff, 0xd8, 0xff, 0xfe, byte((len(tiny) + 2) >> 8), byte(len(tiny) + 2)}, tiny...)
	jpgComment = append(jpgComment, jpg[2:]...)
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"a.pdf", append(append([]byte(pdf), z...), "\n%%EOF\n"...), files.ReasonPolyglot},
		{"a.png", pngWithChunk(z), files.ReasonPolyglot},
		{"a.gif", gifComment, files.ReasonPolyglot},
		{"a.jpg", jpgComment, files.ReasonPolyglot},
		// A central directory larger than the bytes kept is not verified: refused all the same.
		{"a.png", pngWithChunk(zipOf(t, manyEntries(3000)...)), files.ReasonPolyglot},
		// An end record with no directory where it points is no archive: nothing opens.
		{"a.png", pngWithChunk([]byte("PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00\x2e\x00\x00\x00\x10\x00\x00\x00\x00\x00")), ""},
		{"a.pdf", append([]byte(pdf), "%PK\x05\x06 not an archive\n"...), ""},
	} {
		if c.want != "" {
			if zr, err := zip.NewReader(bytes.NewReader(c.body), int64(len(c.body))); err != nil || len(zr.File) == 0 {
				t.Fatalf("%s: setup: not a zip: %v", c.name, err)
			}
		}
		if _, got := inspectBytes(t, c.body, c.name, permissive()); got != c.want {
			t.Errorf("%s of %d bytes holding a ZIP: %q, want %q", c.name, len(c.body), got, c.want)
		}
	}
}

// The security review's L3, and the other ways bytes hide outside a ZIP's listed entries.
func TestInspect_ZipBytesOutsideListedEntriesAreRefused(t *testing.T) {
	t.Parallel()
	// A lone local entry "invoice.exe", without its central directory, then the visible archive
	// with its offsets shifted past it.
	var hidden bytes.Buffer
	zw := zip.NewWriter(&hidden)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "invoice.exe", Method: zip.Store})
	w.Write(peBytes(512))
	zw.Flush()
	local := append([]byte(nil), hidden.Bytes()...)
	var visible bytes.Buffer
	zw2 := zip.NewWriter(&visible)
	zw2.SetOffset(int64(len(local)))
	w2, _ := zw2.Create("a.txt")
	w2.Write([]byte("hello"))
	zw2.Close()
	hiddenEntry := append(local, visible.Bytes()...)

	good := zipOf(t, "a.txt", []byte("hello"), "b.txt", []byte("world"))
	second := bytes.LastIndex(good[:bytes.Index(good, []byte("PK\x01\x02"))], []byte("PK\x03\x04"))
	gap := append(append(append([]byte{}, good[:second]...), "JUNK"...), good[second:]...)
	shiftDirectory(t, gap, 4)
	renamed := bytes.Clone(good)
	renamed[30] = 'A' // the first local name: "A.txt" locally, "a.txt" listed
	resized := bytes.Clone(raw(t, "a.txt", []byte("hello")))
	resized[18]++                                                            // the local compressed size
	padded := rawJunk(t, "a.txt", []byte("hello"), []byte("PK\x03\x04JUNK")) // after the deflate end

	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"hidden local entry", hiddenEntry, files.ReasonArchiveInvalid},
		{"gap between entries", gap, files.ReasonArchiveInvalid},
		{"bytes before the archive", append([]byte("PK\x03\x04JUNK"), good...), files.ReasonArchiveInvalid},
		{"bytes after the end record", append(bytes.Clone(good), "JUNK"...), files.ReasonArchiveInvalid},
		{"local name not the listed one", renamed, files.ReasonArchiveInvalid},
		{"local size not the listed one", resized, files.ReasonArchiveInvalid},
		{"bytes after the deflate stream", padded, files.ReasonArchiveInvalid},
		{"data descriptors (Go's writer)", good, ""},
		{"sizes in the local header", raw(t, "a.txt", []byte("hello")), ""},
	} {
		if _, err := zip.NewReader(bytes.NewReader(c.body), int64(len(c.body))); err != nil && c.name != "bytes after the deflate stream" && c.name != "gap between entries" {
			t.Fatalf("%s: setup: %v", c.name, err)
		}
		if _, got := inspectBytes(t, c.body, "a.zip", permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// raw is a ZIP of one deflated entry whose local header holds its sizes (no data descriptor).
func raw(t testing.TB, name string, data []byte) []byte {
	return rawJunk(t, name, data, nil)
}

// rawJunk is raw with junk after the deflate stream, inside the entry's compressed size.
func rawJunk(t testing.TB, name string, data, junk []byte) []byte {
	t.Helper()
	var c bytes.Buffer
	fw, _ := flate.NewWriter(&c, flate.DefaultCompression)
	fw.Write(data)
	fw.Close()
	c.Write(junk)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(data),
		CompressedSize64: uint64(c.Len()), UncompressedSize64: uint64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(c.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// shiftDirectory adds by to the central directory's offset and to every listed entry's
// local-header offset past the first, after by bytes were inserted before the second entry.
func shiftDirectory(t testing.TB, b []byte, by uint32) {
	t.Helper()
	eocd := bytes.LastIndex(b, sigEOCD)
	binary.LittleEndian.PutUint32(b[eocd+16:], binary.LittleEndian.Uint32(b[eocd+16:])+by)
	for i, k := bytes.Index(b, sigDirectory), 0; i >= 0 && i < eocd; k++ {
		if k > 0 {
			binary.LittleEndian.PutUint32(b[i+42:], binary.LittleEndian.Uint32(b[i+42:])+by)
		}
		next := bytes.Index(b[i+4:], sigDirectory)
		if next < 0 {
			break
		}
		i += 4 + next
	}
}

func TestInspect_ZipEntriesThatRunOrRender(t *testing.T) {
	t.Parallel()
	for _, ext := range []string{".reg", ".url", ".chm", ".one", ".xll", ".msix", ".appx", ".img", ".vhd", ".vhdx",
		".msi", ".ps1", ".psm1", ".wsf", ".vbe", ".jse", ".cpl", ".pif", ".gadget", ".application", ".desktop", ".command", ".app"} {
		if _, got := inspectBytes(t, zipOf(t, "Invoice"+ext, []byte("x")), "a.zip", permissive()); got != files.ReasonExecutable {
			t.Errorf("%s: %q, want executable", ext, got)
		}
	}
	for _, ext := range []string{".html", ".htm", ".xhtml", ".svg", ".HTML"} {
		if _, got := inspectBytes(t, zipOf(t, "invoice"+ext, []byte("x")), "a.zip", permissive()); got != files.ReasonHTML {
			t.Errorf("%s: %q, want html", ext, got)
		}
	}
	for _, c := range []struct {
		name, as string
		body     []byte
		want     string
	}{
		{"app bundle", "a.zip", zipOf(t, "Tool.app/Contents/MacOS/tool", []byte("x")), files.ReasonExecutable},
		{"app bundle directory", "a.zip", zipOf(t, "Tool.app/", []byte{}), files.ReasonExecutable},
		{"HTML named .txt", "a.zip", zipOf(t, "notes.txt", []byte("<!DOCTYPE html><html><body>x</body></html>")), files.ReasonHTML},
		{"HTML in a document", "a.docx", zipOf(t, append(docxParts(), "word/afchunk.dat", []byte("<html><script>x</script></html>"))...), files.ReasonHTML},
		// Office renders an SVG picture without script (and keeps a PNG fallback).
		{"SVG picture in a document", "a.docx", zipOf(t, append(docxParts(), "word/media/image1.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`))...), ""},
		{"app.xml", "a.docx", zipOf(t, append(docxParts(), "docProps/app.xml", []byte(`<?xml version="1.0"?><Properties/>`))...), ""},
	} {
		if _, got := inspectBytes(t, c.body, c.as, permissive()); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// manyEntries are n name/data pairs for zipOf.
func manyEntries(n int) []any {
	kv := make([]any, 0, 2*n)
	for i := range n {
		kv = append(kv, fmt.Sprintf("entry-%04d.txt", i), []byte("x"))
	}
	return kv
}

// Batch and PowerShell scripts are refused by their first line, whatever they are called; text
// that merely mentions those words is not.
func TestInspect_BatchAndPowerShellByFirstLine(t *testing.T) {
	for body, want := range map[string]string{
		"@echo off\r\ndel /q C:\\*\r\n":            files.ReasonScript,
		"\xef\xbb\xbf\n  @Echo On\nrem x\n":        files.ReasonScript,
		"#Requires -Version 5\nRemove-Item C:\\\n": files.ReasonScript,
		"<#\n.SYNOPSIS\n#>\nparam()\n":             files.ReasonScript,
		"command,note\nbatch,\"@echo off\"\n":      "",
		"note\nthe script begins with @echo off\n": "",
	} {
		_, got := inspectBytes(t, []byte(body), "data.csv", permissive())
		if got != want {
			t.Errorf("%q: reason %q, want %q", body, got, want)
		}
	}
}
