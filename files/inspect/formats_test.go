package inspect

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/gif"
	"image/jpeg"
	"strings"
	"testing"

	"tutela/files"
)

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
