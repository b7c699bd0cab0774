// Package syslog sends RFC 5424 syslog messages over TLS (RFC 5425) to a collector such as
// rsyslog, syslog-ng or a SIEM's syslog input, and parses them back for receivers and tests.
//
// There is no UDP and no plaintext TCP: security events leave Tutela only over a TLS connection
// whose server certificate is verified (TLS 1.2 or later), optionally with a client
// certificate. Messages are framed by octet counting (RFC 5425 §4.3, "MSG-LEN SP SYSLOG-MSG").
package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Facility is the RFC 5424 §6.2.1 facility code (0-23).
type Facility int

// Facilities Tutela uses; any value 0-23 is accepted.
const (
	FacilityAuth     Facility = 4  // security/authorization messages
	FacilityAuthPriv Facility = 10 // security/authorization messages (private)
	FacilityAudit    Facility = 13 // log audit
	FacilityAlert    Facility = 14 // log alert
	FacilityLocal0   Facility = 16
)

// Severity is the RFC 5424 §6.2.1 severity (0 emergency - 7 debug).
type Severity int

// Severities.
const (
	SevEmergency Severity = iota
	SevAlert
	SevCritical
	SevError
	SevWarning
	SevNotice
	SevInfo
	SevDebug
)

// AppName is the APP-NAME Tutela sends (RFC 5424 §6.2.5).
const AppName = "tutela"

// bom is the UTF-8 byte order mark that marks MSG as UTF-8 (RFC 5424 §6.4).
const bom = "\xef\xbb\xbf"

// Field limits from the ABNF in RFC 5424 §6.
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxSDName   = 32
)

// Param is one SD-PARAM: PARAM-NAME="PARAM-VALUE".
type Param struct {
	Name  string
	Value string
}

// Element is one SD-ELEMENT. An ID without "@" must be one registered with IANA (timeQuality,
// origin, meta, ...); private elements are "name@<private enterprise number>".
type Element struct {
	ID     string
	Params []Param
}

// Message is one syslog message. Empty header fields are sent as the NILVALUE "-".
type Message struct {
	Facility Facility
	Severity Severity
	Time     time.Time // sent in UTC with microseconds; the zero time is sent as "-"
	Hostname string
	AppName  string // "" sends AppName when formatted by a Client; "-" in Format
	ProcID   string
	MsgID    string
	Data     []Element
	Msg      string // free text, UTF-8; sent after a BOM, omitted when empty
}

// Append formats m as an RFC 5424 SYSLOG-MSG and appends it to dst. It refuses a message it
// cannot send faithfully (a header field with a space or non-ASCII byte, invalid UTF-8, a bad
// SD name) rather than mangle it: a collector must receive what the caller meant or nothing.
func (m *Message) Append(dst []byte) ([]byte, error) {
	if m.Facility < 0 || m.Facility > 23 {
		return nil, fmt.Errorf("syslog: facility %d out of range 0-23", m.Facility)
	}
	if m.Severity < 0 || m.Severity > 7 {
		return nil, fmt.Errorf("syslog: severity %d out of range 0-7", m.Severity)
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(m.Facility)*8+int64(m.Severity), 10)
	dst = append(dst, ">1 "...)
	if m.Time.IsZero() {
		dst = append(dst, '-')
	} else {
		// RFC 5424 §6.2.3: RFC 3339 with TIME-SECFRAC of at most six digits.
		t := m.Time.UTC()
		if t.Year() < 0 || t.Year() > 9999 {
			return nil, errors.New("syslog: TIMESTAMP year outside 0000-9999")
		}
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"HOSTNAME", m.Hostname, maxHostname}, {"APP-NAME", m.AppName, maxAppName}, {"PROCID", m.ProcID, maxProcID}, {"MSGID", m.MsgID, maxMsgID}} {
		dst = append(dst, ' ')
		if f.v == "" {
			dst = append(dst, '-')
			continue
		}
		if err := checkHeader(f.name, f.v, f.max); err != nil {
			return nil, err
		}
		dst = append(dst, f.v...)
	}
	dst = append(dst, ' ')
	if len(m.Data) == 0 {
		dst = append(dst, '-')
	}
	for _, e := range m.Data {
		if err := checkSDName("SD-ID", e.ID); err != nil {
			return nil, err
		}
		dst = append(dst, '[')
		dst = append(dst, e.ID...)
		for _, p := range e.Params {
			if err := checkSDName("PARAM-NAME", p.Name); err != nil {
				return nil, err
			}
			if !utf8.ValidString(p.Value) {
				return nil, fmt.Errorf("syslog: PARAM-VALUE of %s is not valid UTF-8", p.Name)
			}
			dst = append(dst, ' ')
			dst = append(dst, p.Name...)
			dst = append(dst, '=', '"')
			dst = AppendEscaped(dst, p.Value)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if m.Msg != "" {
		if !utf8.ValidString(m.Msg) {
			return nil, errors.New("syslog: MSG is not valid UTF-8")
		}
		dst = append(dst, ' ')
		dst = append(dst, bom...)
		dst = append(dst, m.Msg...)
	}
	return dst, nil
}

// AppendEscaped appends v with '"', '\' and ']' escaped by a backslash, as RFC 5424 §6.3.3
// requires inside a PARAM-VALUE. Nothing else is changed.
func AppendEscaped(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', ']':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func checkHeader(name, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("syslog: %s longer than %d octets", name, max)
	}
	if v == "-" {
		return fmt.Errorf("syslog: %s %q is the NILVALUE; leave it empty instead", name, v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 33 || v[i] > 126 {
			return fmt.Errorf("syslog: %s has a byte outside printable US-ASCII", name)
		}
	}
	return nil
}

// checkSDName enforces SD-NAME: 1*32 PRINTUSASCII except '=', SP, ']', '"'.
func checkSDName(what, v string) error {
	if v == "" || len(v) > maxSDName {
		return fmt.Errorf("syslog: %s must be 1-%d octets", what, maxSDName)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return fmt.Errorf("syslog: %s %q has a forbidden character", what, v)
		}
	}
	return nil
}

// CleanHostname turns a host name into a valid HOSTNAME: bytes outside printable US-ASCII are
// dropped and the result is cut to 255 octets; "" when nothing is left (sent as "-").
func CleanHostname(h string) string {
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < maxHostname; i++ {
		if h[i] >= 33 && h[i] <= 126 {
			b.WriteByte(h[i])
		}
	}
	if b.String() == "-" {
		return ""
	}
	return b.String()
}

// Parse reads one SYSLOG-MSG (without its transport framing). It is strict: anything the
// RFC 5424 ABNF does not allow is an error, so a test receiver catches a sender's mistakes.
// A MSG that starts with the BOM is returned without it and must be valid UTF-8.
func Parse(b []byte) (Message, error) {
	var m Message
	p := parser{b: b}
	if !p.eat('<') {
		return m, errors.New("syslog: missing PRI")
	}
	pri, ok := p.digits(3)
	if !ok || pri > 191 || !p.eat('>') {
		return m, errors.New("syslog: bad PRI")
	}
	m.Facility, m.Severity = Facility(pri/8), Severity(pri%8)
	if v, ok := p.digits(3); !ok || v != 1 || !p.eat(' ') {
		return m, errors.New("syslog: VERSION is not 1")
	}
	ts, err := p.field("TIMESTAMP", 64)
	if err != nil {
		return m, err
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || strings.ContainsAny(ts, "tz") {
			return m, errors.New("syslog: bad TIMESTAMP")
		}
		if i := strings.IndexByte(ts, '.'); i >= 0 {
			frac := ts[i+1:]
			if len(frac)-len(strings.TrimLeft(frac, "0123456789")) > 6 {
				return m, errors.New("syslog: TIME-SECFRAC longer than six digits")
			}
		}
		m.Time = t
	}
	if m.Hostname, err = p.field("HOSTNAME", maxHostname); err != nil {
		return m, err
	}
	if m.AppName, err = p.field("APP-NAME", maxAppName); err != nil {
		return m, err
	}
	if m.ProcID, err = p.field("PROCID", maxProcID); err != nil {
		return m, err
	}
	if m.MsgID, err = p.field("MSGID", maxMsgID); err != nil {
		return m, err
	}
	if m.Data, err = p.structuredData(); err != nil {
		return m, err
	}
	if p.i == len(b) {
		return m, nil
	}
	if !p.eat(' ') {
		return m, errors.New("syslog: junk after STRUCTURED-DATA")
	}
	rest := b[p.i:]
	if bytes.HasPrefix(rest, []byte(bom)) {
		rest = rest[len(bom):]
		if !utf8.Valid(rest) {
			return m, errors.New("syslog: MSG after BOM is not valid UTF-8")
		}
	}
	m.Msg = string(rest)
	return m, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// digits reads 1-max decimal digits without a leading zero (PRI and VERSION).
func (p *parser) digits(max int) (int, bool) {
	start := p.i
	for p.i < len(p.b) && p.i-start < max && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	s := string(p.b[start:p.i])
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// field reads a header field up to the next space (consumed); "-" is returned as "".
func (p *parser) field(name string, max int) (string, error) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != ' ' {
		if c := p.b[p.i]; c < 33 || c > 126 {
			return "", fmt.Errorf("syslog: %s has a byte outside printable US-ASCII", name)
		}
		p.i++
	}
	v := string(p.b[start:p.i])
	if v == "" || len(v) > max || !p.eat(' ') {
		return "", fmt.Errorf("syslog: bad %s", name)
	}
	if v == "-" {
		return "", nil
	}
	return v, nil
}

func (p *parser) sdName(what string) (string, error) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			break
		}
		p.i++
	}
	v := string(p.b[start:p.i])
	if v == "" || len(v) > maxSDName {
		return "", fmt.Errorf("syslog: bad %s", what)
	}
	return v, nil
}

func (p *parser) structuredData() ([]Element, error) {
	if p.eat('-') {
		return nil, nil
	}
	var out []Element
	for p.i < len(p.b) && p.b[p.i] == '[' {
		p.i++
		id, err := p.sdName("SD-ID")
		if err != nil {
			return nil, err
		}
		e := Element{ID: id}
		for p.eat(' ') {
			name, err := p.sdName("PARAM-NAME")
			if err != nil {
				return nil, err
			}
			if !p.eat('=') || !p.eat('"') {
				return nil, errors.New("syslog: bad SD-PARAM")
			}
			var v []byte
			for {
				if p.i >= len(p.b) {
					return nil, errors.New("syslog: unterminated PARAM-VALUE")
				}
				c := p.b[p.i]
				p.i++
				if c == '"' {
					break
				}
				if c == ']' {
					return nil, errors.New("syslog: unescaped ']' in PARAM-VALUE")
				}
				if c == '\\' && p.i < len(p.b) {
					if n := p.b[p.i]; n == '"' || n == '\\' || n == ']' {
						c = n
						p.i++
					}
				}
				v = append(v, c)
			}
			if !utf8.Valid(v) {
				return nil, errors.New("syslog: PARAM-VALUE is not valid UTF-8")
			}
			e.Params = append(e.Params, Param{Name: name, Value: string(v)})
		}
		if !p.eat(']') {
			return nil, errors.New("syslog: unterminated SD-ELEMENT")
		}
		out = append(out, e)
	}
	if out == nil {
		return nil, errors.New("syslog: bad STRUCTURED-DATA")
	}
	return out, nil
}
