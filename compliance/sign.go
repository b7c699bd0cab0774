package compliance

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"tutela/audit"
)

// A report is signed with the audit log's key as a C2SP signed note in the checkpoint format,
// as the erasure ledger is: origin SignatureOrigin, "size" the length of the signed bytes and
// "root" their SHA-256, with the signing time. The origin keeps a report signature from ever
// passing as an audit checkpoint (or a ledger head), and the reverse. `tutela compliance
// verify` and anyone with the verifier key (GET /v1/audit/public-key) can check it.
//
// HTML: the file is the rendered page followed by one last line, an HTML comment that holds the
// base64 of the signed note:
//
//	<!-- tutela-compliance-signature BASE64 -->\n
//
// JSON: an envelope {"format", "signature", "report"} whose report is signed as the exact bytes
// that appear in the file. In both, the file must be exactly what signing wrote (the signature
// in its one canonical encoding, nothing before or after the envelope), so editing any byte
// anywhere fails verification.

// SignatureOrigin names compliance reports in their signatures.
const SignatureOrigin = "tutela/compliance-report"

// EnvelopeFormat names the signed JSON envelope.
const EnvelopeFormat = Format + "+signed"

const (
	htmlSigPrefix = "<!-- tutela-compliance-signature "
	htmlSigSuffix = " -->\n"
)

// MaxReportSize bounds a file given to Verify.
const MaxReportSize = 64 << 20

// ErrMalformedKey means the verifier key given to Verify is not a verifier key at all (not a
// failed check of the file): nothing was verified.
var ErrMalformedKey = errors.New("compliance report: the verifier key is malformed")

// VerifyError says which check a file failed.
type VerifyError struct {
	Check  string // "format", "signature", "digest", "envelope"
	Detail string
}

func (e *VerifyError) Error() string { return "compliance report: " + e.Check + ": " + e.Detail }

func verr(check, format string, args ...any) error {
	return &VerifyError{Check: check, Detail: fmt.Sprintf(format, args...)}
}

func signBytes(signer *audit.Signer, body []byte, at time.Time) (string, error) {
	if signer == nil {
		return "", errors.New("compliance: no audit signing key")
	}
	note, err := signer.Sign(audit.Checkpoint{Origin: SignatureOrigin, Size: int64(len(body)), Root: sha256.Sum256(body),
		Time: at.UTC().Truncate(time.Second)})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(note), nil
}

// SignHTML appends the signature line to a rendered page.
func SignHTML(page []byte, signer *audit.Signer, at time.Time) ([]byte, error) {
	sig, err := signBytes(signer, page, at)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(page)+len(sig)+64)
	out = append(out, page...)
	out = append(out, htmlSigPrefix...)
	out = append(out, sig...)
	return append(out, htmlSigSuffix...), nil
}

// envelope is the signed JSON file's layout, written by hand so its bytes are one fixed form.
func envelope(sig string, report []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"format":`)
	f, _ := json.Marshal(EnvelopeFormat)
	b.Write(f)
	b.WriteString(`,"signature":`)
	s, _ := json.Marshal(sig)
	b.Write(s)
	b.WriteString(`,"report":`)
	b.Write(report)
	b.WriteString("}\n")
	return b.Bytes()
}

// SignJSON marshals r and wraps it in the signed envelope.
func SignJSON(r *Report, signer *audit.Signer, at time.Time) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sig, err := signBytes(signer, body, at)
	if err != nil {
		return nil, err
	}
	return envelope(sig, body), nil
}

// Verified describes a file that verified.
type Verified struct {
	Kind     string    // "html" or "json"
	SignedAt time.Time // the time in the signature
	Size     int64     // bytes signed
	Digest   string    // their SHA-256, hex
}

// Verify checks a signed report (HTML or JSON envelope) against the audit verifier key vkey.
// The error is a *VerifyError naming the failed check.
func Verify(file []byte, vkey string) (*Verified, error) {
	if len(file) > MaxReportSize {
		return nil, verr("format", "larger than %d bytes", MaxReportSize)
	}
	if len(file) > 0 && file[0] == '{' {
		return verifyJSON(file, vkey)
	}
	return verifyHTML(file, vkey)
}

func verifyHTML(file []byte, vkey string) (*Verified, error) {
	i := bytes.LastIndex(file, []byte(htmlSigPrefix))
	if i < 0 {
		return nil, verr("format", "no signature line (%q…) found: not a signed report, or the line was edited", htmlSigPrefix)
	}
	page, line := file[:i], file[i:]
	if !bytes.HasSuffix(line, []byte(htmlSigSuffix)) {
		// A signature-line problem, so `format` (docs/compliance.md). Bytes after the comment are
		// most often a newline an editor added: still a change to the file as signed.
		if end := bytes.Index(line, []byte(htmlSigSuffix)); end >= 0 {
			return nil, verr("format", "%d byte(s) follow the signature line, which must end the file as signed "+
				"(an editor may have added a newline at the end): the file is not exactly what signing wrote", len(line)-end-len(htmlSigSuffix))
		}
		return nil, verr("format", "the signature line does not end the file as written (%q then end of file)", htmlSigSuffix)
	}
	sig := string(line[len(htmlSigPrefix) : len(line)-len(htmlSigSuffix)])
	return check("html", page, sig, vkey)
}

func verifyJSON(file []byte, vkey string) (*Verified, error) {
	var env struct {
		Format    string          `json:"format"`
		Signature string          `json:"signature"`
		Report    json.RawMessage `json:"report"`
	}
	if err := json.Unmarshal(file, &env); err != nil {
		return nil, verr("format", "not a JSON envelope: %v", err)
	}
	if env.Format != EnvelopeFormat {
		return nil, verr("format", "format is %q, want %q", env.Format, EnvelopeFormat)
	}
	if !bytes.Equal(envelope(env.Signature, env.Report), file) {
		return nil, verr("envelope", "the file is not exactly the envelope signing wrote (something outside the signed report was edited)")
	}
	return check("json", env.Report, env.Signature, vkey)
}

// check verifies the signature sig (base64 of a signed note) over body.
func check(kind string, body []byte, sig, vkey string) (*Verified, error) {
	note, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || base64.StdEncoding.EncodeToString(note) != sig {
		return nil, verr("signature", "the signature is not valid base64 in its canonical form (it was edited)")
	}
	cp, err := audit.OpenCheckpoint(note, vkey, SignatureOrigin)
	switch {
	case errors.Is(err, audit.ErrInvalidKey):
		return nil, ErrMalformedKey
	case errors.Is(err, audit.ErrBadSignature):
		return nil, verr("signature", "the report's signature is not by this key: the report was signed with another key, or its signature was edited")
	case errors.Is(err, audit.ErrWrongOrigin):
		return nil, verr("signature", "the signature is by this key but not over a compliance report (another kind of signed note, origin not %q)", SignatureOrigin)
	case err != nil:
		return nil, verr("signature", "the signature is malformed (it was edited)")
	}
	sum := sha256.Sum256(body)
	if cp.Size != int64(len(body)) || cp.Root != sum {
		return nil, verr("digest", "the signed content is %d bytes with SHA-256 %x; the file holds %d bytes with SHA-256 %x: the report was edited after signing",
			cp.Size, cp.Root[:], len(body), sum[:])
	}
	return &Verified{Kind: kind, SignedAt: cp.Time, Size: cp.Size, Digest: fmt.Sprintf("%x", sum[:])}, nil
}

// Encode renders r in format ("html": the self-contained page; anything else: JSON) and signs
// it with signer, as the API and the CLI both hand it out.
func Encode(r *Report, format string, signer *audit.Signer) ([]byte, error) {
	if format != "html" {
		return SignJSON(r, signer, r.GeneratedAt)
	}
	page, err := RenderHTML(r)
	if err != nil {
		return nil, err
	}
	return SignHTML(page, signer, r.GeneratedAt)
}
