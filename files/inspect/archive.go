package inspect

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/xml"
	"hash/crc32"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"tutela/files"
)

// ratioFloor is the expanded size below which the compression ratio is not judged: a few KiB of
// repeated XML compress 200:1 and are no bomb.
const ratioFloor = 1 << 20

// entryHead is how much of an entry's content is read before judging its magic (enough for a
// PE header's usual offset and a tar header).
const entryHead = 1024

// executableNames are entry extensions that run code when opened: by Windows (programs,
// scripts, installers, shortcuts, registry files, compiled help, OneNote, Excel add-ins, app
// packages, disk images that mount and run from), a shell, a desktop (.desktop, .command, an
// .app bundle) or a JVM.
var executableNames = []string{".exe", ".dll", ".js", ".jse", ".vbs", ".vbe", ".wsf", ".wsh", ".ps1", ".psm1", ".psd1",
	".bat", ".cmd", ".sh", ".jar", ".scr", ".hta", ".lnk", ".url", ".com", ".msi", ".msp", ".msix", ".appx",
	".appxbundle", ".msixbundle", ".pif", ".cpl", ".class", ".reg", ".chm", ".one", ".xll", ".img", ".vhd",
	".vhdx", ".gadget", ".application", ".desktop", ".command", ".app", ".inf", ".scf", ".settingcontent-ms"}

// htmlNames are entry extensions a browser or Windows renders as a web page, with script:
// HTML smuggling delivers its payload so. SVG is one (a browser runs its script) except as an
// Office document's image, which Office renders without script.
var htmlNames = []string{".html", ".htm", ".xhtml", ".xht", ".shtml", ".mht", ".mhtml", ".svg", ".svgz"}

// archiveNames are entry extensions of archives.
var archiveNames = []string{".zip", ".gz", ".tgz", ".7z", ".rar", ".tar", ".bz2", ".xz", ".zst", ".cab", ".iso"}

// macroMarkers, found in [Content_Types].xml or a .rels part, say an Office document carries
// code: VBA projects, macro-enabled main parts, Excel 4.0 macro sheets, ActiveX controls.
var macroMarkers = []string{"vbaproject", "vbadata", "macroenabled", "macrosheet", "activex", "application/vnd.ms-office.vba"}

// officeParts are the parts a document of each type cannot lack.
var officeParts = map[string][]string{
	files.TypeDOCX: {"[Content_Types].xml", "word/document.xml"},
	files.TypeXLSX: {"[Content_Types].xml", "xl/workbook.xml"},
	files.TypePPTX: {"[Content_Types].xml", "ppt/presentation.xml"},
}

func invalidArchive(format string, args ...any) error {
	return files.Refused(files.ReasonArchiveInvalid, format, args...)
}

// checkArchive holds the archive in memory (the central directory is at its end) and expands
// every entry, counting what comes out rather than trusting the sizes the headers claim.
func checkArchive(src io.Reader, res *Result, p *files.Policy) error {
	limit := min(p.SizeLimit(res.Type), p.MaxArchiveSize)
	data, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		return nil // a read error or the size limit: finish reports it
	}
	if int64(len(data)) > limit {
		return files.Refused(files.ReasonTooLarge, "the archive is larger than %d bytes", limit)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return invalidArchive("the archive is malformed")
	}
	if len(zr.File) > p.MaxArchiveEntries {
		return files.Refused(files.ReasonArchiveEntries, "the archive has more than %d entries", p.MaxArchiveEntries)
	}
	res.Entries = len(zr.File)
	if err := checkEntryNames(zr.File, res.Type); err != nil {
		return err
	}
	if err := checkLayout(data, zr.File); err != nil {
		return err
	}
	if want, ok := officeParts[res.Type]; ok {
		for _, part := range want {
			if !slices.ContainsFunc(zr.File, func(f *zip.File) bool { return f.Name == part }) {
				return invalidArchive("the document lacks its %s part", part)
			}
		}
	}
	var total int64
	for _, f := range zr.File {
		if f.Flags&0x1 != 0 {
			return invalidArchive("the archive has an encrypted entry")
		}
		if err := expandEntry(f, p, &total, int64(len(data))); err != nil {
			return err
		}
	}
	return nil
}

// checkEntryNames refuses names that are paths out of the extraction directory, duplicates (a
// checker and an extractor may pick different ones), executables, web pages, archives and
// macro parts.
func checkEntryNames(fs []*zip.File, typ string) error {
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		name := f.Name
		if name == "" || strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") ||
			len(name) > 1 && name[1] == ':' || slices.Contains(strings.Split(name, "/"), "..") {
			return invalidArchive("the archive holds an unsafe entry name")
		}
		key := strings.ToLower(path.Clean(name))
		if seen[key] {
			return invalidArchive("the archive holds a duplicate entry name")
		}
		seen[key] = true
		// A macOS application is a directory: "Tool.app/Contents/MacOS/tool".
		for _, dir := range strings.Split(strings.ToLower(path.Dir(strings.TrimSuffix(name, "/"))), "/") {
			if strings.HasSuffix(dir, ".app") {
				return files.Refused(files.ReasonExecutable, "the archive holds a program (.app)")
			}
		}
		if strings.HasSuffix(name, "/") {
			if strings.HasSuffix(strings.ToLower(name), ".app/") {
				return files.Refused(files.ReasonExecutable, "the archive holds a program (.app)")
			}
			continue
		}
		base := strings.ToLower(path.Base(name))
		ext := extension(base)
		switch {
		case slices.Contains(htmlNames, ext) && (typ == files.TypeZIP || ext != ".svg"):
			return files.Refused(files.ReasonHTML, "the archive holds a web page (%s)", ext)
		case base == "vbaproject.bin" || base == "vbadata.xml" || strings.Contains(strings.ToLower(name), "activex") ||
			strings.Contains(strings.ToLower(name), "macrosheets/"):
			return files.Refused(files.ReasonOfficeMacro, "the document holds macros or ActiveX controls")
		case slices.Contains(executableNames, ext):
			return files.Refused(files.ReasonExecutable, "the archive holds a program (%s)", ext)
		case slices.Contains(archiveNames, ext) || slices.Contains(macroExtensions, ext):
			return files.Refused(files.ReasonArchiveNested, "the archive holds another archive")
		}
	}
	return nil
}

// checkLayout requires the archive to be nothing but its listed entries, back to back from its
// first byte (local header with the central directory's name, sizes and flags, then the data
// and any data descriptor), then the central directory, then the end record, whose comment runs
// to the last byte. Bytes outside the listed entries are where a second archive hides: a local
// entry left out of the central directory (an "invoice.exe" before "a.txt") is extracted by
// streaming readers that walk local headers (Java's ZipInputStream, stream-unzip libraries,
// mail gateways) and never seen by one that reads the directory, as this check does. Entries
// sharing bytes (a non-recursive zip bomb's thousands of entries over one body) fail too.
func checkLayout(data []byte, fs []*zip.File) error {
	size := int64(len(data))
	type located struct {
		f    *zip.File
		data int64 // offset of its data
	}
	es := make([]located, 0, len(fs))
	for _, f := range fs {
		off, err := f.DataOffset()
		if err != nil {
			return invalidArchive("the archive has an unreadable entry")
		}
		if f.CompressedSize64 > uint64(size) || off+int64(f.CompressedSize64) > size { // #nosec G115 -- size is a file length (>= 0); the check bounds CompressedSize64 by it
			return invalidArchive("an entry runs past the archive's end")
		}
		es = append(es, located{f, off})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].data < es[j].data })
	u16 := func(at int64) int64 { return int64(binary.LittleEndian.Uint16(data[at:])) }
	u32 := func(at int64) uint32 { return binary.LittleEndian.Uint32(data[at:]) }
	// localAt is the data offset of the local header at pos, or -1 if there is none.
	localAt := func(pos int64) int64 {
		if pos < 0 || pos+30 > size || !bytes.HasPrefix(data[pos:], []byte("PK\x03\x04")) {
			return -1
		}
		return pos + 30 + u16(pos+26) + u16(pos+28)
	}
	gap := func() error { return invalidArchive("the archive holds bytes outside its listed entries") }
	var pos int64
	for k, e := range es {
		f := e.f
		if localAt(pos) != e.data {
			return gap()
		}
		if string(data[pos+30:pos+30+u16(pos+26)]) != f.Name {
			return invalidArchive("an entry's local name is not its listed name")
		}
		flags, method := u16(pos+6), u16(pos+8)
		if method != int64(f.Method) || flags&8 != int64(f.Flags&8) {
			return invalidArchive("an entry's local header is not its listed header")
		}
		// Streaming readers trust the local sizes: they must be the listed ones (with a data
		// descriptor, they may also be unknown: zero, or 0xFFFFFFFF deferring to ZIP64).
		crc, csize, usize := u32(pos+14), int64(u32(pos+18)), int64(u32(pos+22))
		n := u16(pos + 26)
		if csize == 0xffffffff || usize == 0xffffffff {
			// APPNOTE 4.5.3: a local header's ZIP64 field holds both sizes.
			usize, csize = -1, -1
			if x, ok := zip64Sizes(data[pos+30+n : e.data]); ok {
				usize, csize = x[0], x[1]
			}
		}
		same := crc == f.CRC32 && csize == int64(f.CompressedSize64) && usize == int64(f.UncompressedSize64) // #nosec G115 -- equality of two 64-bit sizes is preserved by the reinterpretation; CompressedSize64 <= size (line 169)
		unknown := flags&8 != 0 && (crc == 0 || crc == f.CRC32) &&
			(csize == 0 || csize == int64(f.CompressedSize64)) && (usize == 0 || usize == int64(f.UncompressedSize64)) // #nosec G115 -- equality of two 64-bit sizes is preserved by the reinterpretation; CompressedSize64 <= size (line 169)
		if !same && !unknown {
			return invalidArchive("an entry's local header is not its listed header")
		}
		pos = e.data + int64(f.CompressedSize64) // #nosec G115 -- CompressedSize64 <= size was checked when the entry was located
		if flags&8 == 0 {
			continue
		}
		// The data descriptor (APPNOTE 4.3.9): an optional signature, the CRC, then both sizes
		// in 4 or (ZIP64) 8 bytes. Its end is where the next local header or the directory is.
		next := func(at int64) bool {
			if k+1 < len(es) {
				return localAt(at) == es[k+1].data
			}
			return at+4 <= size && bytes.HasPrefix(data[at:], sigDirectory)
		}
		found := false
		for _, sig := range []int64{4, 0} {
			if sig == 4 && (pos+4 > size || !bytes.HasPrefix(data[pos:], []byte("PK\x07\x08"))) {
				continue
			}
			for _, n := range []int64{12, 20} {
				end := pos + sig + n
				if end <= size && u32(pos+sig) == f.CRC32 && next(end) {
					pos, found = end, true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return gap()
		}
	}
	for range fs {
		if pos+46 > size || !bytes.HasPrefix(data[pos:], sigDirectory) {
			return gap()
		}
		pos += 46 + u16(pos+28) + u16(pos+30) + u16(pos+32)
	}
	if pos+56 <= size && bytes.HasPrefix(data[pos:], []byte("PK\x06\x06")) { // ZIP64 end record
		n := binary.LittleEndian.Uint64(data[pos+4:])
		if n > uint64(size) {
			return gap()
		}
		pos += 12 + int64(n) // #nosec G115 -- n <= size was checked on the line above
		if pos+20 > size || !bytes.HasPrefix(data[pos:], sigZip64Locate) {
			return gap()
		}
		pos += 20
	}
	if pos+22 > size || !bytes.HasPrefix(data[pos:], sigEOCD) || pos+22+u16(pos+20) != size {
		return gap()
	}
	return nil
}

// zip64Sizes reads the uncompressed and compressed sizes from a local header's extra field's
// ZIP64 block (header ID 1).
func zip64Sizes(extra []byte) ([2]int64, bool) {
	for len(extra) >= 4 {
		id, n := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		if n > len(extra)-4 {
			break
		}
		if id == 1 && n >= 16 {
			u, c := binary.LittleEndian.Uint64(extra[4:]), binary.LittleEndian.Uint64(extra[12:])
			if u < 1<<62 && c < 1<<62 {
				return [2]int64{int64(u), int64(c)}, true
			}
		}
		extra = extra[4+n:]
	}
	return [2]int64{}, false
}

// expandEntry inflates one entry into a counter, refusing as soon as the entry or the archive
// expands past the policy's limits, and checks the CRC and size the headers claim only after.
func expandEntry(f *zip.File, p *files.Policy, total *int64, archiveSize int64) error {
	raw, err := f.OpenRaw()
	if err != nil {
		return invalidArchive("the archive has an unreadable entry")
	}
	var r io.Reader
	var rest *bufio.Reader
	switch f.Method {
	case zip.Store:
		r = raw
	case zip.Deflate:
		// flate reads a ByteReader byte by byte, so what it leaves unread is exactly what
		// follows the deflate stream's last block.
		rest = bufio.NewReader(raw)
		fr := flate.NewReader(rest)
		defer fr.Close()
		r = fr
	default:
		return invalidArchive("the archive uses an unsupported compression method")
	}
	compressed := max(int64(f.CompressedSize64), 1) // #nosec G115 -- CompressedSize64 <= size was checked when the entry was located
	lname := strings.ToLower(f.Name)
	var macros *matcher
	if lname == "[content_types].xml" || strings.HasSuffix(lname, ".rels") {
		macros = newMatcher(macroMarkers...)
	}
	var rels *bytes.Buffer // a relationships part, kept to judge its targets
	if strings.HasSuffix(lname, ".rels") {
		rels = new(bytes.Buffer)
	}
	crc := crc32.NewIEEE()
	buf := make([]byte, 32<<10)
	var n int64
	var head []byte // the entry's first bytes: its content's magic, whatever its name says
	judged := false
	judge := func() error {
		judged = true
		if reason, what := executable(head); reason != "" {
			return files.Refused(reason, "the archive holds %s", what)
		}
		if archiveMagic(head) {
			return files.Refused(files.ReasonArchiveNested, "the archive holds another archive")
		}
		// A web page under another name: a browser sniffs it as HTML when opened from disk.
		if t := Detect(head); t == "text/html" || t == "application/xhtml+xml" {
			return files.Refused(files.ReasonHTML, "the archive holds a web page")
		}
		return nil
	}
	for {
		m, err := r.Read(buf)
		if m > 0 {
			chunk := buf[:m]
			if !judged {
				head = append(head, chunk[:min(len(chunk), entryHead-len(head))]...)
				if len(head) == entryHead {
					if err := judge(); err != nil {
						return err
					}
				}
			}
			n += int64(m)
			*total += int64(m)
			switch {
			case *total > p.MaxArchiveExpanded:
				return files.Refused(files.ReasonArchiveBomb, "the archive expands past %d bytes", p.MaxArchiveExpanded)
			case n > ratioFloor && n > int64(p.MaxArchiveRatio)*compressed,
				*total > ratioFloor && *total > int64(p.MaxArchiveRatio)*archiveSize:
				return files.Refused(files.ReasonArchiveBomb, "the archive's compression ratio is past %d", p.MaxArchiveRatio)
			}
			crc.Write(chunk)
			if rels != nil {
				if rels.Len()+len(chunk) > maxRels {
					return invalidArchive("a relationships part is larger than %d bytes", maxRels)
				}
				rels.Write(chunk)
			}
			if macros != nil {
				_, _ = macros.Write(chunk)
				if macros.found != nil {
					return files.Refused(files.ReasonOfficeMacro, "the document is macro-enabled")
				}
			}
		}
		if err == io.EOF {
			if !judged {
				if err := judge(); err != nil {
					return err
				}
			}
			break
		}
		if err != nil {
			return invalidArchive("the archive has a corrupt entry")
		}
	}
	// Bytes after the deflate stream's end, inside the entry, are a place to hide a local
	// entry from readers that judge entries by their inflated content.
	if rest != nil {
		if _, err := rest.ReadByte(); err != io.EOF {
			return invalidArchive("an entry holds bytes after its compressed data")
		}
	}
	if uint64(n) != f.UncompressedSize64 || crc.Sum32() != f.CRC32 {
		return invalidArchive("an entry's size or checksum is not what its header says")
	}
	if rels != nil {
		return checkRels(rels.Bytes())
	}
	return nil
}

// maxRels bounds a relationships part (they list a part's links: kilobytes).
const maxRels = 4 << 20

// checkRels refuses relationships to targets outside the package other than hyperlinks (ECMA-376
// part 2, §9.3): a remote template or OLE object is fetched when the document opens, which is
// how template injection and CVE-2022-30190 (Follina) load their code. A DTD in the part is
// refused as in SVG.
func checkRels(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalidArchive("a relationships part is malformed")
		}
		switch t := tok.(type) {
		case xml.Directive:
			return files.Refused(files.ReasonXMLEntity, "the document declares a document type or entities")
		case xml.StartElement:
			if t.Name.Local != "Relationship" {
				continue
			}
			var mode, typ string
			for _, a := range t.Attr {
				switch a.Name.Local {
				case "TargetMode":
					mode = a.Value
				case "Type":
					typ = a.Value
				}
			}
			if strings.EqualFold(strings.TrimSpace(mode), "External") && !strings.HasSuffix(typ, "/hyperlink") {
				return files.Refused(files.ReasonOfficeMacro, "the document loads content from outside itself when opened")
			}
		}
	}
}
