// Package files is safe file intake (issue 17): what a tenant accepts (Policy), what is known
// about a stored file (File), why an upload is refused (the Reason codes), and the signed,
// expiring download links that are the only way a file's bytes leave (link.go).
//
// The work is done by its subpackages: inspect judges content (magic bytes, structure,
// archives, images, PDFs, SVG, Office macros), clamd asks ClamAV, blob stores the encrypted
// bytes (a directory or an S3-compatible bucket), and intake ties them together: stream,
// inspect, encrypt, store, scan, record.
package files

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"tutela"
)

// Status is where a stored file stands.
type Status string

// File statuses. Only an available file can be downloaded.
const (
	// StatusQuarantined: stored, encrypted, not yet judged clean by the malware scanner (the
	// scanner was down, timed out or refused the size). It is scanned again until it is.
	StatusQuarantined Status = "quarantined"
	// StatusAvailable: scanned clean; links can be issued and used.
	StatusAvailable Status = "available"
	// StatusInfected: the scanner found malware; the blob is removed, the row stays as the
	// record (with the signature name).
	StatusInfected Status = "infected"
	// StatusDeleted: deleted by a user; the blob is removed and the data key shredded.
	StatusDeleted Status = "deleted"
	// StatusErased: its subject was erased; the data key went with the subject's key.
	StatusErased Status = "erased"
)

// Job kinds of the durable queue. The payload of each is the file's ID (its bytes).
const (
	// JobScan scans a quarantined file again: enqueued with every new file as the safety net
	// for a node that dies before its own scan, and for files the scanner could not judge. It
	// finds nothing to do when the file is no longer quarantined.
	JobScan = "files.scan"
	// JobPurge removes the blob of an infected, deleted or erased file.
	JobPurge = "files.purge"
)

// Quarantine reasons (File.QuarantineReason).
const (
	QuarantinePending     = "scan_pending"        // stored, scan not finished yet
	QuarantineUnavailable = "scanner_unavailable" // clamd could not be reached
	QuarantineTimeout     = "scanner_timeout"     // clamd did not answer in time
	QuarantineLimit       = "scanner_limit"       // clamd refused the stream (StreamMaxLength)
	QuarantineError       = "scanner_error"       // clamd answered with an error
)

// Scan results of an available file (File.ScanResult); an infected file's is the signature.
const (
	ScanClean      = "clean"
	ScanNotScanned = "not_scanned" // files.malware_scan is off: accepted without a scan
)

// Reasons an upload is refused: the "reason" of a 422 file_refused error. Each is a stable word
// a client can act on; the message says more in prose.
const (
	ReasonTypeNotAllowed    = "type_not_allowed"       // detected type not in the tenant's allow-list
	ReasonTypeMismatch      = "type_mismatch"          // declared type is not what the bytes are
	ReasonExtensionMismatch = "extension_mismatch"     // file name's extension does not fit the detected type
	ReasonExecutable        = "executable"             // PE, ELF, Mach-O, Java class, or one embedded
	ReasonScript            = "script"                 // a file or archive entry starting with "#!", or like a batch or PowerShell script
	ReasonHTML              = "html"                   // HTML (or XHTML) in any type that is not allowed to hold it
	ReasonPolyglot          = "polyglot"               // data past the end of an image or a second format inside
	ReasonSVGScript         = "svg_script"             // SVG with script, event handlers or javascript: URLs
	ReasonSVGExternal       = "svg_external_reference" // SVG referring to anything outside itself
	ReasonXMLEntity         = "xml_entity"             // DTD or entity declaration (XXE, billion laughs)
	ReasonPDFJavaScript     = "pdf_javascript"         // PDF with /JavaScript or /JS
	ReasonPDFLaunch         = "pdf_launch_action"      // PDF with /Launch
	ReasonPDFEmbeddedFile   = "pdf_embedded_file"      // PDF carrying another file (/EmbeddedFile)
	ReasonPDFHTML           = "pdf_html"               // PDF that is also HTML (PDF+HTML polyglot)
	ReasonOfficeMacro       = "office_macro"           // Office file with a VBA project or macro-enabled type
	ReasonArchiveBomb       = "archive_bomb"           // compression ratio or expanded size past the limits
	ReasonArchiveNested     = "nested_archive"         // an archive inside an archive
	ReasonArchiveEntries    = "archive_too_many_entries"
	ReasonArchiveInvalid    = "archive_invalid" // unreadable, overlapping or inconsistent archive
	ReasonImageTooLarge     = "image_too_large" // width, height or pixel count past the limits
	ReasonImageInvalid      = "image_invalid"   // image header unreadable
	ReasonTextInvalid       = "text_invalid"    // text type that is not valid UTF-8 text (NUL bytes)
	ReasonTooLarge          = "too_large"       // past the size limit for the tenant or type
	ReasonSizeMismatch      = "size_mismatch"   // more or fewer bytes than declared
	ReasonTruncated         = "truncated"       // the upload ended before its declared end
	ReasonEmpty             = "empty"           // no content
	ReasonMalware           = "malware"         // the scanner found a signature
	ReasonNameInvalid       = "name_invalid"    // file name missing, too long or with control characters
)

// Reasons lists every refusal reason (documentation and tests).
var Reasons = []string{ReasonTypeNotAllowed, ReasonTypeMismatch, ReasonExtensionMismatch, ReasonExecutable,
	ReasonScript, ReasonHTML, ReasonPolyglot, ReasonSVGScript, ReasonSVGExternal, ReasonXMLEntity,
	ReasonPDFJavaScript, ReasonPDFLaunch, ReasonPDFEmbeddedFile, ReasonPDFHTML, ReasonOfficeMacro,
	ReasonArchiveBomb, ReasonArchiveNested, ReasonArchiveEntries, ReasonArchiveInvalid, ReasonImageTooLarge,
	ReasonImageInvalid, ReasonTextInvalid, ReasonTooLarge, ReasonSizeMismatch, ReasonTruncated, ReasonEmpty,
	ReasonMalware, ReasonNameInvalid}

// Refused is the error of a refused upload: code file_refused (422) with reason, and a message
// safe to show the uploader (it never quotes the file's content).
func Refused(reason, format string, args ...any) *tutela.Error {
	return &tutela.Error{Code: tutela.EFILEREFUSED, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// RefusalReason is the reason of a file_refused error, or "".
func RefusalReason(err error) string {
	var e *tutela.Error
	if errors.As(err, &e) && e.Code == tutela.EFILEREFUSED {
		return e.Reason
	}
	return ""
}

// File is what is known about one stored file. Its bytes are in the blob store, encrypted with
// a data key of its own (WrappedDEK).
type File struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	// SubjectID, when set, is the data subject the file belongs to (a document attached to a
	// case): the data key is wrapped by the subject's key, so erasing the subject shreds it.
	SubjectID string `json:"subject_id,omitempty"`
	// Name is the uploader's file name (sealed at rest; "" once shredded).
	Name         string `json:"name"`
	DeclaredType string `json:"declared_type"`
	// DetectedType is the MIME type the content's magic bytes and structure say it is; the
	// one a download is served with.
	DetectedType   string `json:"detected_type"`
	Extension      string `json:"extension"`
	Size           int64  `json:"size"`
	SHA256         string `json:"sha256"` // of the content, hex; "" once shredded
	Classification string `json:"classification"`
	Status         Status `json:"status"`
	// QuarantineReason says why a quarantined file is not available yet.
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// ScanResult is "clean", or the signature clamd found.
	ScanResult   string     `json:"scan_result,omitempty"`
	ScanAttempts int        `json:"scan_attempts"`
	ScannedAt    *time.Time `json:"scanned_at,omitempty"`
	UploadedBy   string     `json:"uploaded_by"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`

	// BlobKey is the encrypted blob's name in the blob store ("" once removed).
	BlobKey string `json:"-"`
	// WrappedDEK is the file's data key, wrapped (nil once shredded).
	WrappedDEK []byte `json:"-"`
	// NameSealed is Name, sealed like the data key.
	NameSealed []byte `json:"-"`
}

// Downloadable is nil for an available file; a quarantined one is file_quarantined with its
// quarantine reason (the client may try later); an infected, deleted or erased one is gone:
// not found. Links are issued and used only for available files.
func (f *File) Downloadable() error {
	switch f.Status {
	case StatusAvailable:
		return nil
	case StatusQuarantined:
		return &tutela.Error{Code: tutela.EQUARANTINED, Reason: f.QuarantineReason,
			Message: "the file has not been judged clean by the malware scanner yet"}
	}
	return tutela.Errorf(tutela.ENOTFOUND, "file not found")
}

// Well-known types. The allow-list holds MIME types as the detector names them.
const (
	TypePNG  = "image/png"
	TypeJPEG = "image/jpeg"
	TypeGIF  = "image/gif"
	TypeWebP = "image/webp"
	TypeSVG  = "image/svg+xml"
	TypePDF  = "application/pdf"
	TypeCSV  = "text/csv"
	TypeText = "text/plain"
	TypeDOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	TypeXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	TypePPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	TypeZIP  = "application/zip"
)

// Extensions are the file-name extensions each accepted type may carry (lower case, with the
// dot). A type absent here cannot be accepted: the extension check would refuse it.
var Extensions = map[string][]string{
	TypePNG:  {".png"},
	TypeJPEG: {".jpg", ".jpeg"},
	TypeGIF:  {".gif"},
	TypeWebP: {".webp"},
	TypeSVG:  {".svg"},
	TypePDF:  {".pdf"},
	TypeCSV:  {".csv"},
	TypeText: {".txt", ".text", ".log"},
	TypeDOCX: {".docx"},
	TypeXLSX: {".xlsx"},
	TypePPTX: {".pptx"},
	TypeZIP:  {".zip"},
}

// ArchiveTypes are the zip-based types: inspected whole (every entry expanded under the
// archive limits), so they are held in memory up to Policy.MaxArchiveSize.
var ArchiveTypes = []string{TypeZIP, TypeDOCX, TypeXLSX, TypePPTX}

// Policy is what a tenant accepts. The zero value is not a valid policy; start from
// DefaultPolicy.
type Policy struct {
	// AllowedTypes are the detected MIME types accepted (keys of Extensions).
	AllowedTypes []string `json:"allowed_types"`
	// MaxSize bounds any file, in bytes (1 B – MaxSizeCeiling).
	MaxSize int64 `json:"max_size"`
	// MaxSizeByType lowers (never raises) MaxSize for some types.
	MaxSizeByType map[string]int64 `json:"max_size_by_type,omitempty"`
	// MaxArchiveSize bounds zip-based files (DOCX, XLSX, PPTX, ZIP), which are inspected in
	// memory (≤ MaxArchiveSizeCeiling).
	MaxArchiveSize int64 `json:"max_archive_size"`
	// MaxArchiveExpanded bounds the total expanded size of an archive's entries.
	MaxArchiveExpanded int64 `json:"max_archive_expanded"`
	// MaxArchiveRatio bounds expanded/compressed, per entry and for the whole archive.
	MaxArchiveRatio int `json:"max_archive_ratio"`
	// MaxArchiveEntries bounds the number of entries.
	MaxArchiveEntries int `json:"max_archive_entries"`
	// MaxImagePixels bounds width × height of an image; MaxImageSide either dimension.
	MaxImagePixels int64 `json:"max_image_pixels"`
	MaxImageSide   int   `json:"max_image_side"`
}

// Limits of the limits.
const (
	MaxSizeCeiling        int64 = 5 << 30   // 5 GiB: the largest object one S3 copy moves
	MaxArchiveSizeCeiling int64 = 128 << 20 // archives are held in memory while inspected
	MaxExpandedCeiling    int64 = 4 << 30
	MaxRatioCeiling             = 1000
	MaxEntriesCeiling           = 100000
	MaxPixelsCeiling      int64 = 1 << 30
	MaxSideCeiling              = 1 << 16
)

// DefaultPolicy is what a tenant accepts until it sets its own: common office documents and
// images, 25 MiB.
func DefaultPolicy() Policy {
	return Policy{
		AllowedTypes:       []string{TypePNG, TypeJPEG, TypePDF, TypeCSV, TypeText, TypeDOCX, TypeXLSX},
		MaxSize:            25 << 20,
		MaxArchiveSize:     25 << 20,
		MaxArchiveExpanded: 200 << 20,
		MaxArchiveRatio:    100,
		MaxArchiveEntries:  5000,
		MaxImagePixels:     50_000_000,
		MaxImageSide:       20000,
	}
}

// Validate reports every problem with p at once (one invalid error naming the first field and
// listing them all).
func (p *Policy) Validate() error {
	var field string
	var problems []string
	add := func(f, format string, args ...any) {
		if field == "" {
			field = f
		}
		problems = append(problems, f+" "+fmt.Sprintf(format, args...))
	}
	if len(p.AllowedTypes) == 0 {
		add("allowed_types", "must allow at least one type")
	}
	for _, t := range p.AllowedTypes {
		if _, ok := Extensions[t]; !ok {
			add("allowed_types", "holds an unsupported type %q (supported: %s)", t, strings.Join(SupportedTypes(), ", "))
		}
	}
	between := func(f string, v, lo, hi int64) {
		if v < lo || v > hi {
			add(f, "must be between %d and %d", lo, hi)
		}
	}
	between("max_size", p.MaxSize, 1, MaxSizeCeiling)
	for t, n := range p.MaxSizeByType {
		if _, ok := Extensions[t]; !ok {
			add("max_size_by_type", "holds an unsupported type %q", t)
		}
		between("max_size_by_type", n, 1, MaxSizeCeiling)
	}
	between("max_archive_size", p.MaxArchiveSize, 1, MaxArchiveSizeCeiling)
	between("max_archive_expanded", p.MaxArchiveExpanded, 1, MaxExpandedCeiling)
	between("max_archive_ratio", int64(p.MaxArchiveRatio), 1, MaxRatioCeiling)
	between("max_archive_entries", int64(p.MaxArchiveEntries), 1, MaxEntriesCeiling)
	between("max_image_pixels", p.MaxImagePixels, 1, MaxPixelsCeiling)
	between("max_image_side", int64(p.MaxImageSide), 1, MaxSideCeiling)
	if problems == nil {
		return nil
	}
	return tutela.FieldErrorf(field, "%s", strings.Join(problems, "; "))
}

// Allows reports whether the detected type t is in the allow-list.
func (p *Policy) Allows(t string) bool { return slices.Contains(p.AllowedTypes, t) }

// SizeLimit is the largest file of type t the tenant accepts (the archive limit for zip-based
// types).
func (p *Policy) SizeLimit(t string) int64 {
	n := p.MaxSize
	if m, ok := p.MaxSizeByType[t]; ok && m < n {
		n = m
	}
	if slices.Contains(ArchiveTypes, t) && p.MaxArchiveSize < n {
		n = p.MaxArchiveSize
	}
	return n
}

// SupportedTypes lists the types a policy may allow, sorted.
func SupportedTypes() []string {
	out := make([]string, 0, len(Extensions))
	for t := range Extensions {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Audience is who may use a download link.
type Audience string

// Link audiences.
const (
	// AudienceUser: only the user the link was issued to, signed in (bearer token).
	AudienceUser Audience = "user"
	// AudienceAnyone: whoever holds the link (issuing one is EXPORT on files, a step-up action).
	AudienceAnyone Audience = "anyone"
)

// Link lifetimes.
const (
	DefaultLinkTTL = 5 * time.Minute
	MaxLinkTTL     = 24 * time.Hour
	MinLinkTTL     = 10 * time.Second
)

// Link is one signed download link. Its token is never stored: it carries the link's ID, the
// signing key's ID and the expiry, signed with the platform's file_links PRF key (link.go).
type Link struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id"`
	FileID    string     `json:"file_id"`
	KeyID     uint32     `json:"key_id"`
	Audience  Audience   `json:"audience"`
	UserID    string     `json:"user_id,omitempty"` // AudienceUser: who may use it
	SingleUse bool       `json:"single_use"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
}
