// Package mail sends Tutela's outgoing e-mail: password reset links and security
// notifications. Messages are plain UTF-8 text; every header value that comes from input is
// checked so a crafted address or subject cannot add headers or recipients.
package mail

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
)

// Message is one plain-text e-mail to one recipient.
type Message struct {
	To      string // an address, optionally with a display name: "Ada <ada@example.com>"
	Subject string
	Text    string // UTF-8 body; "\n", "\r\n" and a bare "\r" all become CRLF line breaks
}

// Sender delivers messages. SMTPSender is the production implementation, Recorder the one
// for other packages' tests.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Limits on message parts. RFC 5322 §2.1.1 caps a header line at 998 characters; the subject
// limit keeps the encoded, folded Subject well inside it. The body limit stops a caller bug
// from queueing megabytes at the relay.
const (
	maxSubjectBytes = 400
	maxTextBytes    = 1 << 20
)

// Validate checks m without sending it. Send calls it first, so a rejected message never
// opens a connection. Errors are EINVALID *tutela.Error values naming the field.
func (m Message) Validate() error {
	_, err := m.recipient()
	if err != nil {
		return err
	}
	if err := checkHeaderValue("subject", m.Subject); err != nil {
		return err
	}
	if strings.TrimSpace(m.Subject) == "" {
		return tutela.FieldErrorf("subject", "subject must not be empty")
	}
	if len(m.Subject) > maxSubjectBytes {
		return tutela.FieldErrorf("subject", "subject is longer than %d bytes", maxSubjectBytes)
	}
	if !utf8.ValidString(m.Text) {
		return tutela.FieldErrorf("text", "text is not valid UTF-8")
	}
	if len(m.Text) > maxTextBytes {
		return tutela.FieldErrorf("text", "text is longer than %d bytes", maxTextBytes)
	}
	return nil
}

func (m Message) recipient() (*mail.Address, error) {
	return parseAddress("to", m.To)
}

// checkHeaderValue rejects CR, LF and NUL: CR and LF end a header line, so either one lets the
// value start a new header (Bcc:, a second Content-Type) or end the header block; NUL is
// forbidden in RFC 5322 and truncates in some MTAs. Invalid UTF-8 is refused because the
// encoders below would pass it through as bytes.
func checkHeaderValue(field, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return tutela.FieldErrorf(field, "%s must not contain line breaks or NUL", field)
	}
	if !utf8.ValidString(v) {
		return tutela.FieldErrorf(field, "%s is not valid UTF-8", field)
	}
	return nil
}

// parseAddress accepts one RFC 5322 address whose addr-spec passes tutela.ValidEmail, the rule
// user addresses are stored under. net/mail also accepts quoted local parts
// (`"x> NOTIFY=..."@host`) and returns them unquoted, which would let the address add
// parameters to the SMTP MAIL or RCPT command; a dot-atom cannot contain space, '<', '>' or
// quotes. Internationalised addresses (RFC 6531) are not supported.
func parseAddress(field, v string) (*mail.Address, error) {
	if err := checkHeaderValue(field, v); err != nil {
		return nil, err
	}
	if strings.TrimSpace(v) == "" {
		return nil, tutela.FieldErrorf(field, "%s must not be empty", field)
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		return nil, tutela.FieldErrorf(field, "%s is not a valid e-mail address", field)
	}
	if !tutela.ValidEmail(a.Address) {
		return nil, tutela.FieldErrorf(field, "%s must be a plain ASCII address (local@domain)", field)
	}
	return a, nil
}

func domainOf(a *mail.Address) string {
	return a.Address[strings.LastIndexByte(a.Address, '@')+1:]
}

// compose renders m as an RFC 5322 message with CRLF line endings. Dot-stuffing is left to the
// SMTP DATA writer.
func compose(from, to *mail.Address, m Message, now time.Time) []byte {
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("Date", now.UTC().Format(time.RFC1123Z))
	header("From", from.String())
	header("To", to.String())
	header("Subject", encodeSubject(m.Subject))
	header("Message-ID", "<"+tutela.RandomToken(16)+"@"+domainOf(from)+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834 §5: tells auto-responders (vacation replies) not to answer.
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")

	// Quoted-printable keeps every body line under 76 characters and 7-bit, so the message
	// passes relays without 8BITMIME; in text mode the writer emits CRLF for "\n" and "\r\n".
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(m.Text)) // writes to a bytes.Buffer cannot fail
	_ = qp.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// encodeSubject returns s unchanged when it is printable ASCII, else RFC 2047 Q-encoded words
// (mime leaves such text alone). The encoder separates words with a space; folding there keeps
// each header line short (RFC 5322 §2.2.3).
func encodeSubject(s string) string {
	return strings.ReplaceAll(mime.QEncoding.Encode("utf-8", s), "?= =?", "?=\r\n =?")
}

// errorf builds the error returned when delivery fails: the client sees a generic message, the
// log gets the cause.
func errorf(format string, args ...any) error {
	return &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "could not send e-mail", Err: fmt.Errorf(format, args...)}
}
