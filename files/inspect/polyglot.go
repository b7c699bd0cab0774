package inspect

import (
	"bytes"
	"encoding/binary"
)

// ZIP readers find an archive by its end-of-central-directory record (EOCD, APPNOTE 4.3.16),
// searched backwards from the file's end, and then the central directory it points at; bytes
// before the archive and after the EOCD are ignored (Go's archive/zip, Python's zipfile, 7-Zip).
// So a file of any other type that holds an EOCD near its end, whose central directory is where
// the record says, also opens as an archive: in a PNG ancillary chunk followed by IEND, between
// a PDF's %%EOF and another "%%EOF", with or without trailing bytes.

// eocdWindow is how far from its end a ZIP's end-of-central-directory record may sit: its fixed
// 22 bytes and a comment of up to 65535.
const eocdWindow = 22 + 0xffff

var (
	sigEOCD        = []byte("PK\x05\x06")
	sigDirectory   = []byte("PK\x01\x02")
	sigZip64Locate = []byte("PK\x06\x07")
)

// tail watches a stream for an embedded ZIP. It keeps the last 1–2 × eocdWindow bytes; every
// EOCD signature that goes past is judged with the bytes before it (a central directory of up
// to ~64 KiB is verified wherever the archive sits), and at the end those in the last
// eocdWindow bytes, where ZIP readers look, are judged failing closed.
type tail struct {
	buf     []byte
	off     int64 // stream offset of buf[0]
	scanned int   // signatures starting before buf[scanned] have been judged
	found   bool
}

func (t *tail) write(p []byte) {
	t.buf = append(t.buf, p...)
	// A record is judged once its 22 fixed bytes are in.
	for t.scanned+22 <= len(t.buf) {
		i := bytes.Index(t.buf[t.scanned:], sigEOCD)
		if i < 0 || t.scanned+i+22 > len(t.buf) {
			if i < 0 {
				t.scanned = max(t.scanned, len(t.buf)-3)
			} else {
				t.scanned += i
			}
			break
		}
		if t.directoryFound(t.scanned+i, false) {
			t.found = true
		}
		t.scanned += i + 1
	}
	if len(t.buf) > 2*eocdWindow {
		drop := len(t.buf) - eocdWindow
		t.buf = append(t.buf[:0], t.buf[drop:]...)
		t.off += int64(drop)
		t.scanned = max(0, t.scanned-drop)
	}
}

// zipAtEnd reports whether the stream, now ended, opens as a ZIP archive too: an EOCD record
// seen anywhere with its central directory where it says, or one in the last eocdWindow bytes
// whose central directory lies before the bytes kept (it is not verified there: refused).
func (t *tail) zipAtEnd() bool {
	if t.found {
		return true
	}
	start := max(0, len(t.buf)-eocdWindow)
	for i := start; i+22 <= len(t.buf); i++ {
		if bytes.HasPrefix(t.buf[i:], sigEOCD) && t.directoryFound(i, true) {
			return true
		}
	}
	return false
}

// directoryFound judges the EOCD record at buf[i]: does a central directory start where a
// reader would look for it, relative to the record (end - size, as Go's reader and readers of
// self-extracting archives do) or at its absolute offset? A ZIP64 locator before the record
// counts (the ZIP64 record names the directory). With unverifiable set, a directory that would
// start before the bytes kept counts as found: the check fails closed where readers look.
func (t *tail) directoryFound(i int, unverifiable bool) bool {
	b := t.buf
	if i >= 20 && bytes.HasPrefix(b[i-20:], sigZip64Locate) {
		return true
	}
	entries := binary.LittleEndian.Uint16(b[i+10:])
	size := int64(binary.LittleEndian.Uint32(b[i+12:]))
	offset := int64(binary.LittleEndian.Uint32(b[i+16:]))
	if size == 0 {
		return false // no directory: no entry to extract
	}
	at := func(pos int64) (ok, known bool) {
		if pos < 0 {
			return false, true // before the stream's start
		}
		j := pos - t.off
		if j < 0 {
			return false, false
		}
		if j+4 > int64(len(b)) {
			return false, true
		}
		return bytes.HasPrefix(b[j:], sigDirectory), true
	}
	rel := t.off + int64(i) - size
	okRel, knownRel := at(rel)
	okAbs, knownAbs := at(offset)
	if okRel || okAbs {
		return true
	}
	// A directory too large to have been kept: a real one holds at least one 46-byte header
	// per entry and fits between the stream's start and the record.
	return unverifiable && (!knownRel || !knownAbs) && entries > 0 && size >= 46*int64(entries)
}
