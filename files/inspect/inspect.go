package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"

	"tutela"
	"tutela/files"
)

// headSize is how much of the content is read before deciding its type: enough for mimetype
// (which looks at up to a few KiB) and for headers such as a PE's, whose "PE\0\0" may sit far in.
const headSize = 64 << 10

// maxNameLen is the longest file name accepted, in bytes (most file systems' limit).
const maxNameLen = 255

// Input is what Inspect judges besides the content.
type Input struct {
	// Name is the uploader's file name (any string; its extension is judged).
	Name string
	// DeclaredType is the declared Content-Type, parameters allowed; "" or
	// "application/octet-stream" means not declared (no mismatch check).
	DeclaredType string
	// Policy is the tenant's policy.
	Policy *files.Policy
}

// Result is what Inspect learnt about accepted content.
type Result struct {
	Type          string // the detected MIME type, one of files.Type* (parameters stripped)
	Extension     string // lower-case extension of Name, with the dot ("" if none)
	Width, Height int    // images
	Entries       int    // archives: number of entries
}

// typeAliases maps names other software uses to the files.Type* names (declared types and
// mimetype's names alike).
var typeAliases = map[string]string{
	"image/jpg":                    files.TypeJPEG,
	"image/pjpeg":                  files.TypeJPEG,
	"image/x-png":                  files.TypePNG,
	"image/apng":                   files.TypePNG, // an animated PNG is a PNG: same chunks, same end
	"image/vnd.mozilla.apng":       files.TypePNG,
	"image/svg":                    files.TypeSVG,
	"application/x-pdf":            files.TypePDF,
	"application/csv":              files.TypeCSV,
	"text/comma-separated-values":  files.TypeCSV,
	"text/x-csv":                   files.TypeCSV,
	"application/x-zip-compressed": files.TypeZIP,
	"application/x-zip":            files.TypeZIP,
	// Tab-separated values are plain text; named or declared .csv they are judged as CSV.
	"text/tab-separated-values": files.TypeText,
}

// macroExtensions are the names of macro-enabled Office documents: the name alone says what
// the file is meant to carry.
var macroExtensions = []string{".docm", ".dotm", ".xlsm", ".xltm", ".xlam", ".pptm", ".potm", ".ppsm", ".ppam", ".sldm"}

// normalize strips parameters and case from a MIME type and maps aliases; "" when t does not
// parse.
func normalize(t string) string {
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return ""
	}
	if a, ok := typeAliases[mt]; ok {
		return a
	}
	return mt
}

// Detect is the type of content that begins with head, as Inspect names it: one of files.Type*
// when it is one of those, else the detector's name (parameters stripped). It judges nothing.
func Detect(head []byte) string {
	return normalize(mimetype.Detect(head).String())
}

// Inspect reads r until its end, or until it can refuse, and judges the content against
// in.Policy. A refusal is a *tutela.Error from files.Refused(reason, ...) with the most specific
// files.Reason* code; a read error from r is returned as it is (wrapped with %w).
//
// Memory is bounded independently of the file's size, except zip-based types
// (files.ArchiveTypes), which are held in memory up to Policy.MaxArchiveSize.
func Inspect(r io.Reader, in Input) (Result, error) {
	p := in.Policy
	if p == nil {
		return Result{}, &tutela.Error{Code: tutela.EINTERNAL, Message: "inspect: no policy"}
	}
	// Not io.ReadFull: it turns an early io.EOF into io.ErrUnexpectedEOF, which an uploader's
	// stream may also return for a body cut short; only io.EOF ends the content.
	head := make([]byte, headSize)
	n := 0
	for n < len(head) {
		m, err := r.Read(head[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("inspect: read: %w", err)
		}
	}
	head = head[:n]
	res := Result{Extension: extension(in.Name)}

	// Executables and scripts first: whatever the name or declared type says, these bytes are
	// code, and the most useful thing to tell the uploader.
	if reason, what := executable(head); reason != "" {
		return res, files.Refused(reason, "the file is %s", what)
	}
	typ := Detect(head)
	switch typ {
	case "text/html", "application/xhtml+xml":
		return res, files.Refused(files.ReasonHTML, "the file is HTML")
	case "application/java-archive", "application/x-java-archive":
		return res, files.Refused(files.ReasonExecutable, "the file is a Java archive")
	}
	if n == 0 {
		return res, files.Refused(files.ReasonEmpty, "the file is empty")
	}
	if err := checkName(in.Name); err != nil {
		return res, err
	}
	declared := ""
	if in.DeclaredType != "" {
		declared = normalize(in.DeclaredType)
		if declared == "" {
			return res, files.Refused(files.ReasonTypeMismatch, "the declared type does not parse")
		}
		if declared == "application/octet-stream" {
			declared = ""
		}
	}
	// CSV is plain text with a shape: mimetype names it only when the head has that shape, so
	// for text the uploader's word (declared type or name) settles which of the two it is. Excel
	// on Windows makes browsers declare a .csv file as application/vnd.ms-excel.
	if typ == files.TypeText || typ == files.TypeCSV {
		typ = files.TypeText
		if declared == files.TypeCSV || res.Extension == ".csv" {
			typ = files.TypeCSV
		}
		if declared == files.TypeText || declared == files.TypeCSV || declared == "application/vnd.ms-excel" && res.Extension == ".csv" {
			declared = typ
		}
	}
	// Bytes that are not text under a text name or declaration: say so, not just "not allowed".
	if typ == "application/octet-stream" && (strings.HasPrefix(declared, "text/") ||
		slices.Contains(files.Extensions[files.TypeText], res.Extension) || res.Extension == ".csv") {
		return res, files.Refused(files.ReasonTextInvalid, "the file is not text")
	}
	res.Type = typ

	src := &source{r: io.MultiReader(bytes.NewReader(head), r), limit: p.SizeLimit(typ)}
	// Every type but the archives themselves must not open as a ZIP archive too.
	if !slices.Contains(files.ArchiveTypes, typ) {
		src.tail = &tail{}
	}
	// SVG is judged before the allow-list so that a hostile SVG is refused for what it holds.
	if typ == files.TypeSVG {
		if err := finish(src, checkSVG(src)); err != nil {
			return res, err
		}
	}
	if !p.Allows(typ) {
		return res, files.Refused(files.ReasonTypeNotAllowed, "files of type %s are not accepted", typ)
	}
	if slices.Contains(macroExtensions, res.Extension) || strings.Contains(declared, "macroenabled") {
		return res, files.Refused(files.ReasonOfficeMacro, "macro-enabled Office documents are not accepted")
	}
	if declared != "" && declared != typ {
		return res, files.Refused(files.ReasonTypeMismatch, "the file is %s, not %s as declared", typ, declared)
	}
	if !slices.Contains(files.Extensions[typ], res.Extension) {
		return res, files.Refused(files.ReasonExtensionMismatch, "a file of type %s cannot be named %q", typ, res.Extension)
	}
	if typ == files.TypeSVG {
		return res, nil // judged above, to its end
	}

	var check error
	switch typ {
	case files.TypePNG:
		check = checkPNG(src, &res, p)
	case files.TypeJPEG:
		check = checkJPEG(src, &res, p)
	case files.TypeGIF:
		check = checkGIF(src, &res, p)
	case files.TypeWebP:
		check = checkWebP(src, &res, p)
	case files.TypePDF:
		check = checkPDF(src, p)
	case files.TypeCSV, files.TypeText:
		check = checkText(src)
	case files.TypeZIP, files.TypeDOCX, files.TypeXLSX, files.TypePPTX:
		check = checkArchive(src, &res, p)
	default:
		// Allowed by a policy but unknown here: nothing is accepted unjudged.
		check = files.Refused(files.ReasonTypeNotAllowed, "files of type %s cannot be inspected", typ)
	}
	return res, finish(src, check)
}

// finish settles a check's outcome: the source's own error (a read error, or the size limit)
// wins, because a check that failed on a short read would otherwise misname the cause; then
// the check's refusal; then the rest of the stream is read (to its end, under the size limit).
func finish(src *source, check error) error {
	if src.err != nil {
		return src.failure()
	}
	if check != nil {
		return check
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return src.failure()
	}
	if src.tail != nil && src.tail.zipAtEnd() {
		return files.Refused(files.ReasonPolyglot, "the file is also a ZIP archive")
	}
	return nil
}

// source is the content as the checks read it: it counts bytes, refuses past the size limit
// without reading further, and remembers the first error so finish can report it exactly.
type source struct {
	r     io.Reader
	n     int64
	limit int64
	err   error // first error other than io.EOF: a read error or the too_large refusal
	tail  *tail // watches for an embedded ZIP, in types that must not be one
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	// Ask for at most one byte past the limit: enough to know it is exceeded, and a hostile
	// body is never read further than that.
	if room := s.limit + 1 - s.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.tail != nil {
		s.tail.write(p[:n])
	}
	if s.n > s.limit {
		s.err = files.Refused(files.ReasonTooLarge, "the file is larger than %d bytes", s.limit)
		return 0, s.err
	}
	if err != nil && err != io.EOF {
		s.err = readError{err}
	}
	return n, err
}

// readError marks an error from the uploader's stream, as opposed to a refusal.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

func (s *source) failure() error {
	var re readError
	if errors.As(s.err, &re) {
		return fmt.Errorf("inspect: read: %w", re.err)
	}
	return s.err
}

// extension is the lower-case extension of name, with the dot.
func extension(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || strings.ContainsAny(name[i:], `/\`) {
		return ""
	}
	return strings.ToLower(name[i:])
}

// checkName refuses names that are empty, too long, not UTF-8, hold control or bidirectional
// formatting characters (which make "gpj.exe" read as "exe.jpg"), or path separators (which
// make a name a path).
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return files.Refused(files.ReasonNameInvalid, "the file needs a name")
	case len(name) > maxNameLen:
		return files.Refused(files.ReasonNameInvalid, "the file name is longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return files.Refused(files.ReasonNameInvalid, "the file name is not UTF-8")
	case strings.ContainsAny(name, `/\`):
		return files.Refused(files.ReasonNameInvalid, "the file name holds a path separator")
	}
	for _, c := range name {
		if unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) || c == '\u2028' || c == '\u2029' {
			return files.Refused(files.ReasonNameInvalid, "the file name holds a control character")
		}
	}
	return nil
}
