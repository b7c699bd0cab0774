package inspect

import (
	"bufio"
	"compress/zlib"
	"io"

	"tutela/files"
)

// A PDF is judged by its name tokens, not by parsing its object graph: every name in the file
// (in dictionaries, but also in strings, comments and stream data, since a tokenizer cannot tell
// a recovering reader's view from ours) is decoded (#xx escapes, ISO 32000-1 §7.3.5) and
// compared, case-sensitively as PDF names are, with the keys of actions that run code or carry
// files. FlateDecode streams are inflated, under a cap, and their names judged too: an object
// stream (/Type /ObjStm) hides dictionaries, keys and all, inside compressed data.

// pdfHTML are the markers of an HTML document anywhere in a PDF's raw bytes: a browser that
// sniffs the file as HTML would run it (PDF+HTML polyglot).
var pdfHTML = []string{"<html", "<script", "<body", "<iframe", "<!doctype html"}

// maxPDFName bounds a name token; longer names are not any of the judged keys.
const maxPDFName = 127

// nameScanner tokenizes PDF names from bytes fed one at a time.
type nameScanner struct {
	in     bool // inside a name
	name   []byte
	hex    int  // pending #xx digits: 0 none, 1 after '#', 2 after the first digit
	hi     byte // first hex digit's value
	long   bool // the name outgrew maxPDFName
	word   []byte
	reason string // first refusal reason found
	flate  bool   // /FlateDecode seen since the last stream or object ended
}

func isPDFSpace(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func isPDFDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// feed takes one byte; it returns the regular-character word (keyword) that this byte ended, if
// any, so the caller can see "stream".
func (s *nameScanner) feed(c byte) (ended []byte) {
	regular := !isPDFSpace(c) && !isPDFDelim(c)
	if s.in {
		if regular {
			s.addNameByte(c)
			return nil
		}
		s.endName()
	} else if regular {
		if len(s.word) < 16 {
			s.word = append(s.word, c)
		}
		return nil
	}
	ended = s.word
	s.word = s.word[:0]
	if c == '/' {
		s.in, s.name, s.hex, s.long = true, s.name[:0], 0, false
	}
	return ended
}

func (s *nameScanner) addNameByte(c byte) {
	switch s.hex {
	case 1:
		if v, ok := hexVal(c); ok {
			s.hi, s.hex = v, 2
			return
		}
		s.hex = 0
		s.put('#') // not an escape: a reader keeps the '#'
	case 2:
		s.hex = 0
		if v, ok := hexVal(c); ok {
			s.put(s.hi<<4 | v)
			return
		}
		s.put('#')
		s.put("0123456789ABCDEF"[s.hi])
	}
	if c == '#' {
		s.hex = 1
		return
	}
	s.put(c)
}

func (s *nameScanner) put(c byte) {
	if len(s.name) >= maxPDFName {
		s.long = true
		return
	}
	s.name = append(s.name, c)
}

func (s *nameScanner) endName() {
	s.in = false
	if s.long {
		return
	}
	if s.hex == 1 {
		s.put('#')
	}
	var reason string
	switch string(s.name) {
	case "JavaScript", "JS":
		reason = files.ReasonPDFJavaScript
	case "Launch":
		reason = files.ReasonPDFLaunch
	case "EmbeddedFile", "EmbeddedFiles":
		reason = files.ReasonPDFEmbeddedFile
	case "FlateDecode", "Fl": // readers (pdf.js) take the inline-image abbreviation for streams too
		s.flate = true
	}
	if reason != "" && s.reason == "" {
		s.reason = reason
	}
}

// end flushes a name at the end of input.
func (s *nameScanner) end() {
	if s.in {
		s.endName()
	}
}

func pdfRefusal(reason string) error {
	switch reason {
	case files.ReasonPDFJavaScript:
		return files.Refused(reason, "the PDF holds JavaScript")
	case files.ReasonPDFLaunch:
		return files.Refused(reason, "the PDF holds a launch action")
	default:
		return files.Refused(reason, "the PDF holds an embedded file")
	}
}

// checkPDF scans the whole file. Inflated bytes are capped at 16 × the size limit and at the
// archive expansion limit: a small PDF of deflated zeros is a decompression bomb too.
func checkPDF(src io.Reader, p *files.Policy) error {
	html := newMatcher(pdfHTML...)
	br := bufio.NewReaderSize(io.TeeReader(src, html), 32<<10)
	budget := min(16*p.SizeLimit(files.TypePDF), p.MaxArchiveExpanded)
	var s nameScanner
	var inner nameScanner
	buf := make([]byte, 32<<10)
	for {
		c, err := br.ReadByte()
		if err != nil {
			s.end()
			break
		}
		w := s.feed(c)
		if s.reason != "" || html.found != nil {
			break
		}
		if string(w) == "endstream" || string(w) == "endobj" {
			s.flate = false
		}
		if string(w) != "stream" || !s.flate {
			continue
		}
		// "stream" must be followed by an end of line, then the data begins.
		if c == '\r' {
			if b, err := br.Peek(1); err == nil && b[0] == '\n' {
				br.ReadByte()
			}
		} else if c != '\n' {
			continue
		}
		s.flate = false
		zr, err := zlib.NewReader(br)
		if err != nil {
			// Not zlib data after all: the raw bytes are scanned as they come.
			continue
		}
		for {
			n, err := zr.Read(buf)
			budget -= int64(n)
			if budget < 0 {
				return files.Refused(files.ReasonArchiveBomb, "the PDF's compressed streams expand past the limit")
			}
			for _, b := range buf[:n] {
				inner.feed(b)
			}
			if err != nil {
				// io.EOF, or corrupt data: what could be inflated was judged, and no reader
				// inflates further than a corrupt point; the raw scan continues after it.
				break
			}
		}
		inner.end()
		inner.feed(' ')
		if inner.reason != "" {
			return pdfRefusal(inner.reason)
		}
		if html.found != nil {
			break
		}
	}
	if html.found != nil {
		return files.Refused(files.ReasonPDFHTML, "the PDF is also an HTML document")
	}
	if s.reason != "" {
		return pdfRefusal(s.reason)
	}
	return nil
}
