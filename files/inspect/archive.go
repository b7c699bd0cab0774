package inspect

import (
	"archive/zip"
	"bytes"
	"compress/flate"
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

// executableNames are entry extensions that run when opened (by Windows, a shell, a JVM).
var executableNames = []string{".exe", ".dll", ".js", ".jse", ".vbs", ".vbe", ".wsf", ".ps1", ".bat", ".cmd", ".sh",
	".jar", ".scr", ".hta", ".lnk", ".com", ".msi", ".pif", ".cpl", ".class"}

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
	if err := checkEntryNames(zr.File); err != nil {
		return err
	}
	if err := checkOverlap(zr.File, int64(len(data))); err != nil {
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
// checker and an extractor may pick different ones), executables, archives and macro parts.
func checkEntryNames(fs []*zip.File) error {
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
		if strings.HasSuffix(name, "/") {
			continue
		}
		base := strings.ToLower(path.Base(name))
		ext := extension(base)
		switch {
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

// checkOverlap refuses entries whose local header and data share bytes with another's: that is
// how a non-recursive zip bomb makes one small body expand as thousands of entries.
func checkOverlap(fs []*zip.File, size int64) error {
	type span struct{ start, end int64 }
	spans := make([]span, 0, len(fs))
	for _, f := range fs {
		off, err := f.DataOffset()
		if err != nil {
			return invalidArchive("the archive has an unreadable entry")
		}
		end := off + int64(f.CompressedSize64)
		if f.CompressedSize64 > uint64(size) || end > size {
			return invalidArchive("an entry runs past the archive's end")
		}
		spans = append(spans, span{off - 30 - int64(len(f.Name)), end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return invalidArchive("the archive has overlapping entries")
		}
	}
	return nil
}

// expandEntry inflates one entry into a counter, refusing as soon as the entry or the archive
// expands past the policy's limits, and checks the CRC and size the headers claim only after.
func expandEntry(f *zip.File, p *files.Policy, total *int64, archiveSize int64) error {
	raw, err := f.OpenRaw()
	if err != nil {
		return invalidArchive("the archive has an unreadable entry")
	}
	var r io.Reader
	switch f.Method {
	case zip.Store:
		r = raw
	case zip.Deflate:
		fr := flate.NewReader(raw)
		defer fr.Close()
		r = fr
	default:
		return invalidArchive("the archive uses an unsupported compression method")
	}
	compressed := max(int64(f.CompressedSize64), 1)
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
				macros.Write(chunk)
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
