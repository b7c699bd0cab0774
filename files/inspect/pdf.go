package inspect

import (
	"bufio"
	"compress/zlib"
	"io"
	"strconv"

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
	flate  int    // /FlateDecode names seen since the last stream or object ended
	// objStm: /ObjStm seen likewise; hasN and hasFirst: the /N and /First keys, which make a
	// stream an object stream to pdf.js whatever its /Type says (XRef.fetchCompressed).
	objStm, hasN, hasFirst bool
	// dataFilter and imageFilter: a filter this scan does not undo, over data (ASCIIHex, LZW,
	// ...) or over image samples (DCT, JPX, ...).
	dataFilter, imageFilter bool
	// value tracks the value of a /Filter or /DecodeParms key (or pdf.js's abbreviations /F and
	// /DP): 1 its first token is next, 2 and 3 after one and two numbers (an indirect reference
	// "n g R" is being read), 4 inside its array or dictionary, depth deep.
	value, depth int
	valueKey     string // the last name inside that array or dictionary
	indirect     bool   // a filter or its parameters given by an indirect reference
	// Sticky for the whole file: /Encrypt seen, an object stream seen, a stream that could not
	// be inflated or is under a data filter this scan does not undo.
	encrypted, sawObjStm, unscannable bool
	// The stream's predictor parameters (ISO 32000-1 §7.4.4.4): a predictor reorders inflated
	// bytes, so an object stream's keys are only readable once it is undone.
	key                             string // the parameter name whose number comes next
	predictor, colors, bpc, columns int
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
	if s.value != 0 {
		s.trackValue(ended, c)
	}
	if s.key != "" && len(ended) > 0 {
		if v, err := strconv.Atoi(string(ended)); err == nil && v >= 0 {
			switch s.key {
			case "Predictor":
				s.predictor = v
			case "Colors":
				s.colors = v
			case "BitsPerComponent":
				s.bpc = v
			case "Columns":
				s.columns = v
			}
		}
		s.key = ""
	}
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
	s.key = ""
	if s.value != 4 {
		s.value = 0 // a name: a filter given directly, or the next key after a number
	} else {
		s.valueKey = string(s.name)
	}
	var reason string
	switch string(s.name) {
	case "Filter", "DecodeParms", "F", "DP":
		if s.value == 0 {
			s.value, s.depth, s.valueKey = 1, 0, ""
		}
	case "N":
		s.hasN = true
	case "First":
		s.hasFirst = true
	case "Encrypt":
		s.encrypted = true
	case "Predictor", "Colors", "BitsPerComponent", "Columns":
		s.key = string(s.name)
	case "JavaScript", "JS":
		reason = files.ReasonPDFJavaScript
	case "Launch":
		reason = files.ReasonPDFLaunch
	case "EmbeddedFile", "EmbeddedFiles":
		reason = files.ReasonPDFEmbeddedFile
	case "FlateDecode", "Fl": // readers (pdf.js) take the inline-image abbreviation for streams too
		s.flate++
	case "ObjStm":
		s.objStm = true
	case "ASCIIHexDecode", "AHx", "ASCII85Decode", "A85", "LZWDecode", "LZW", "RunLengthDecode", "RL", "Crypt":
		s.dataFilter = true
	case "CCITTFaxDecode", "CCF", "DCTDecode", "DCT", "JBIG2Decode", "JPXDecode":
		s.imageFilter = true
	}
	if reason != "" && s.reason == "" {
		s.reason = reason
	}
}

// trackValue follows a /Filter or /DecodeParms value through the keyword (or number) word that
// the byte c ended, and c itself: a reference anywhere in it ("n g R", also inside an array or
// a parameters dictionary) is one a reader resolves and this scan cannot.
func (s *nameScanner) trackValue(word []byte, c byte) {
	if len(word) > 0 {
		_, err := strconv.Atoi(string(word))
		switch {
		case s.value == 4:
			// JBIG2 images share their symbol dictionary by reference (ISO 32000-1 §7.4.7):
			// image data, nothing this scan would read.
			if string(word) == "R" && s.valueKey != "JBIG2Globals" {
				s.indirect = true
			}
		case s.value == 3 && string(word) == "R":
			s.indirect, s.value = true, 0
		case (s.value == 1 || s.value == 2) && err == nil:
			s.value++
		default:
			s.value = 0 // null, or malformed: nothing a reader resolves
		}
	}
	if s.value == 0 {
		return
	}
	switch c {
	case '[', '<':
		if s.value != 4 {
			s.value, s.depth = 4, 0
		}
		s.depth++
	case ']', '>':
		if s.value == 4 {
			if s.depth--; s.depth <= 0 {
				s.value = 0
			}
		} else {
			s.value = 0
		}
	case '(', ')', '{', '}', '%':
		if s.value != 4 {
			s.value = 0
		}
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
			s.resetStream()
		}
		if string(w) != "stream" {
			continue
		}
		// "stream" must be followed by an end of line, then the data begins.
		if c == '\r' {
			if b, err := br.Peek(1); err == nil && b[0] == '\n' {
				_, _ = br.ReadByte()
			}
		} else if c != '\n' {
			continue
		}
		flateCount, dataFilter := s.flate, s.dataFilter
		flate := flateCount > 0
		objStm := s.objStm || s.hasN && s.hasFirst
		indirect, other := s.indirect, s.dataFilter || s.imageFilter
		un := newUnpredictor(&s, inner.feed)
		unpredictable := s.predictor >= 2 && un.kind == 0
		s.resetStream()
		h, err := br.Peek(2)
		zlibData := err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
		// A filter given by reference is resolved by readers but not by this scan, which would
		// pass the data raw whatever it decodes to.
		if indirect {
			return files.Refused(files.ReasonArchiveInvalid, "the PDF holds a stream whose filter cannot be inspected")
		}
		// An object stream holds dictionaries, keys and all. One this scan cannot read (another
		// filter, a filter chain, a predictor it does not undo, or encrypted: a reader with the
		// empty user password decrypts it silently) could hide a /JS key, so it is refused
		// rather than passed unseen. Producers write object streams with FlateDecode alone.
		if objStm {
			s.sawObjStm = true
			if other || flateCount > 1 || flate && (!zlibData || unpredictable) {
				return files.Refused(files.ReasonArchiveInvalid, "the PDF holds an object stream that cannot be inspected")
			}
		}
		if flate && !zlibData || dataFilter {
			s.unscannable = true
		}
		if !flate || !zlibData {
			continue // the raw bytes are scanned as they come
		}
		zr, err := zlib.NewReader(br)
		if err != nil {
			continue
		}
		for {
			n, err := zr.Read(buf)
			budget -= int64(n)
			if budget < 0 {
				return files.Refused(files.ReasonArchiveBomb, "the PDF's compressed streams expand past the limit")
			}
			for _, b := range buf[:n] {
				un.feed(b)
			}
			if err != nil {
				// io.EOF, or corrupt data: what could be inflated was judged, and no reader
				// inflates further than a corrupt point; the raw scan continues after it.
				break
			}
		}
		un.flush()
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
	// Names stay readable in an encrypted PDF (ISO 32000-1 §7.6.1: strings and streams are
	// encrypted, dictionaries are not), except inside object streams, and /Encrypt comes in the
	// trailer, after the streams: one that held an object stream, or a stream this scan could
	// not read, is refused now.
	if s.encrypted && (s.sawObjStm || s.unscannable) {
		return files.Refused(files.ReasonArchiveInvalid, "the PDF is encrypted and holds streams that cannot be inspected")
	}
	return nil
}

func (s *nameScanner) resetStream() {
	s.flate, s.objStm, s.hasN, s.hasFirst, s.key = 0, false, false, false, ""
	s.dataFilter, s.imageFilter, s.value, s.depth, s.indirect, s.valueKey = false, false, 0, 0, false, ""
	s.predictor, s.colors, s.bpc, s.columns = 0, 0, 0, 0
}

// maxPredictorRow bounds a predictor row: /Columns is the uploader's number.
const maxPredictorRow = 1 << 20

// unpredictor undoes a stream's PNG (10–15) or TIFF (2) predictor for 8-bit components, row by
// row, before the bytes reach the name scanner; other streams pass through unchanged.
type unpredictor struct {
	out       func(byte) []byte
	kind      int // 0 none, 2 TIFF, 10 PNG
	bpp, row  int
	prev, cur []byte
	filter    byte
	pos       int // bytes of the current row seen, the PNG filter byte included
}

func newUnpredictor(s *nameScanner, out func(byte) []byte) *unpredictor {
	u := &unpredictor{out: out}
	colors, bpc, columns := max(s.colors, 1), s.bpc, max(s.columns, 1)
	if bpc == 0 {
		bpc = 8
	}
	if (s.predictor == 2 || s.predictor >= 10) && bpc == 8 && colors*columns <= maxPredictorRow {
		u.kind = min(s.predictor, 10)
		u.bpp, u.row = colors, colors*columns
		u.prev, u.cur = make([]byte, u.row), make([]byte, u.row)
	}
	return u
}

func (u *unpredictor) feed(b byte) {
	switch u.kind {
	case 0:
		u.out(b)
		return
	case 10:
		if u.pos == 0 {
			u.filter, u.pos = b, 1
			return
		}
		u.cur[u.pos-1] = b
	case 2:
		u.cur[u.pos] = b
	}
	u.pos++
	if u.kind == 10 && u.pos == u.row+1 || u.kind == 2 && u.pos == u.row {
		u.decodeRow()
		for _, c := range u.cur {
			u.out(c)
		}
		u.prev, u.cur, u.pos = u.cur, u.prev, 0
	}
}

// flush passes on a last, incomplete row as it is.
func (u *unpredictor) flush() {
	if u.kind == 0 {
		return
	}
	n := u.pos
	if u.kind == 10 {
		n = max(u.pos-1, 0)
	}
	for _, c := range u.cur[:n] {
		u.out(c)
	}
	u.pos = 0
}

func (u *unpredictor) decodeRow() {
	cur, prev, bpp := u.cur, u.prev, u.bpp
	for i := range cur {
		var a, b, c byte
		if i >= bpp {
			a, c = cur[i-bpp], prev[i-bpp]
		}
		b = prev[i]
		if u.kind == 2 {
			cur[i] += a
			continue
		}
		switch u.filter {
		case 1:
			cur[i] += a
		case 2:
			cur[i] += b
		case 3:
			cur[i] += byte((int(a) + int(b)) / 2) // #nosec G115 -- the mean of two bytes is a byte (PNG Average predictor)
		case 4:
			cur[i] += paeth(a, b, c)
		}
	}
}

// paeth is the PNG Paeth predictor (RFC 2083 §6.6).
func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
