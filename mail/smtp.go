package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// TLS modes for SMTPConfig.TLS.
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS; refuse servers that do not offer it
	TLSImplicit = "implicit" // TLS from the first byte (SMTPS, RFC 8314 §3.3), usually port 465
	TLSNone     = "none"     // no encryption; only to a loopback relay
)

// DefaultTimeout bounds one delivery (dial and whole conversation) when SMTPConfig.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Errors a delivery can fail with, for errors.Is. Each is wrapped in an EUNAVAILABLE
// *tutela.Error.
var (
	// ErrSTARTTLSUnavailable: the server did not offer STARTTLS in starttls mode. Falling back
	// to plain text would let anyone on the path strip STARTTLS and read reset links.
	ErrSTARTTLSUnavailable = errors.New("mail: server does not offer STARTTLS")
	// ErrAuthWithoutTLS: credentials would have gone over an unencrypted connection.
	ErrAuthWithoutTLS = errors.New("mail: refusing to authenticate over an unencrypted connection")
	// ErrAuthMechanism: the server does not offer AUTH PLAIN, the only mechanism used.
	ErrAuthMechanism = errors.New("mail: server does not offer AUTH PLAIN")
	// ErrNotLoopback: TLS "none" resolved to a non-loopback address.
	ErrNotLoopback = errors.New("mail: unencrypted SMTP is only allowed to a loopback address")
)

// SMTPConfig configures an SMTPSender. Printing it is safe: Password is a tutela.Secret.
type SMTPConfig struct {
	Addr      string // host:port of the relay
	From      string // envelope and header sender; its domain names the Message-ID
	Username  string // empty for no authentication
	Password  tutela.Secret
	TLS       string         // TLSStartTLS (default), TLSImplicit or TLSNone
	Timeout   time.Duration  // bounds dial and conversation; 0 means DefaultTimeout
	HelloName string         // EHLO name; default "localhost"
	RootCAs   *x509.CertPool // nil means the system roots; set in tests
	Clock     tutela.Clock   // for the Date header; default tutela.SystemClock
}

// ConfigError lists every problem NewSMTPSender found, so an operator fixes them in one pass.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "mail: invalid SMTP config: " + strings.Join(e.Problems, "; ")
}

// SMTPSender delivers messages over SMTP with net/smtp, one connection per message.
type SMTPSender struct {
	cfg  SMTPConfig
	host string
	from *mail.Address
}

var _ Sender = (*SMTPSender)(nil)

// NewSMTPSender validates cfg, reporting every problem at once in a *ConfigError.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Clock == nil {
		cfg.Clock = tutela.SystemClock
	}

	host, port, err := net.SplitHostPort(cfg.Addr)
	switch {
	case err != nil:
		add("addr: %q is not host:port", cfg.Addr)
	case host == "":
		add("addr: host must not be empty")
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add("addr: port %q is not 1-65535", port)
		}
	}
	from, err := parseAddress("from", cfg.From)
	if err != nil {
		add("from: %s", tutela.ErrorMessage(err))
	}
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if host != "" && !tutela.IsLoopbackHost(host) {
			add("tls: %q is only allowed when addr is a loopback host (localhost, 127.0.0.1, ::1)", TLSNone)
		}
		if cfg.Username != "" || !cfg.Password.IsZero() {
			add("tls: credentials are never sent without TLS; use %q or %q", TLSStartTLS, TLSImplicit)
		}
	default:
		add("tls: %q is not one of %q, %q, %q", cfg.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}
	// RFC 4616: NUL separates the PLAIN fields, so it cannot appear inside one. The password's
	// value is never put in a message.
	if strings.ContainsAny(cfg.Username, "\x00\r\n") {
		add("username: must not contain NUL or line breaks")
	}
	if strings.ContainsRune(cfg.Password.Reveal(), 0) {
		add("password: must not contain NUL")
	}
	if cfg.Username != "" && cfg.Password.IsZero() {
		add("password: required when username is set")
	}
	if cfg.Username == "" && !cfg.Password.IsZero() {
		add("username: required when password is set")
	}
	if cfg.Timeout < 0 {
		add("timeout: must not be negative")
	}
	if strings.ContainsAny(cfg.HelloName, " \t\r\n\x00") {
		add("hello_name: %q must be a single word", cfg.HelloName)
	}

	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return &SMTPSender{cfg: cfg, host: host, from: from}, nil
}

// Send validates m, then delivers it in one SMTP session. The context deadline and cfg.Timeout,
// whichever is sooner, bound the dial and the whole conversation; cancelling ctx aborts it.
// Errors are EINVALID for a bad message and EUNAVAILABLE for delivery failures.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	to, _ := m.recipient()
	if err := ctx.Err(); err != nil {
		return errorf("mail: %w", err)
	}
	data := compose(s.from, to, m, s.cfg.Clock())

	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn, err := s.dial(ctx, deadline)
	if err != nil {
		return errorf("%w", &DeliveryError{Step: "connect", Err: err})
	}
	defer conn.Close()
	// One deadline for the whole conversation, so a server that stalls at any step (greeting,
	// TLS handshake, DATA) cannot hold the caller longer than the timeout.
	if err := conn.SetDeadline(deadline); err != nil {
		return errorf("mail: set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := s.converse(conn, to.Address, data); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return errorf("%w (%w)", err, cerr)
		}
		return errorf("%w", err)
	}
	return nil
}

func (s *SMTPSender) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.host, RootCAs: s.cfg.RootCAs}
}

func (s *SMTPSender) dial(ctx context.Context, deadline time.Time) (net.Conn, error) {
	d := &net.Dialer{Deadline: deadline}
	if s.cfg.TLS == TLSImplicit {
		td := &tls.Dialer{NetDialer: d, Config: s.tlsConfig()}
		return td.DialContext(ctx, "tcp", s.cfg.Addr)
	}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if s.cfg.TLS == TLSNone {
		if a, ok := conn.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			_ = conn.Close()
			return nil, ErrNotLoopback
		}
	}
	return conn, nil
}

func (s *SMTPSender) converse(conn net.Conn, rcpt string, data []byte) error {
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return stepError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return stepError("EHLO", err)
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return ErrSTARTTLSUnavailable
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return stepError("STARTTLS", err)
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(plainAuth{user: s.cfg.Username, pass: s.cfg.Password}); err != nil {
			return authError(err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return stepError("MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return stepError("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return stepError("DATA", err)
	}
	if _, err := w.Write(data); err != nil {
		return stepError("DATA", err)
	}
	if err := w.Close(); err != nil {
		return stepError("DATA", err)
	}
	// The server accepted the message at the end of DATA; a failed QUIT does not undo that.
	_ = c.Quit()
	return nil
}

// DeliveryError is a failed step of the SMTP conversation. It keeps the server's status code but
// never the server's reply text: a relay's answer to RCPT TO (or to DATA) usually repeats the
// recipient's address, and this error ends up in logs and in the job queue's last_error, where
// personal data must not be (the job's payload is sealed for that reason).
type DeliveryError struct {
	Step string // greeting, EHLO, STARTTLS, MAIL FROM, RCPT TO, DATA
	Code int    // the SMTP reply code; 0 when the step failed without a reply
	// Err is the cause when there was no reply (a network or TLS error). It names the relay,
	// never the recipient.
	Err error
}

func (e *DeliveryError) Error() string {
	if e.Code != 0 {
		return e.Class()
	}
	return fmt.Sprintf("mail: %s: %v", e.Step, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Class describes the failure without anything the relay sent back: the step and the SMTP
// code (package jobs records only this).
func (e *DeliveryError) Class() string {
	if e.Code != 0 {
		return fmt.Sprintf("mail: %s rejected by server (code %d)", e.Step, e.Code)
	}
	return fmt.Sprintf("mail: %s failed", e.Step)
}

// stepError wraps a failed step, dropping the text of an SMTP reply.
func stepError(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &DeliveryError{Step: step, Code: te.Code}
	}
	return &DeliveryError{Step: step, Err: err}
}

// authError keeps only the SMTP status code of a rejected AUTH: the reply text comes from the
// server and could echo the (base64) credentials back into our logs.
func authError(err error) error {
	if errors.Is(err, ErrAuthWithoutTLS) || errors.Is(err, ErrAuthMechanism) {
		return err
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Errorf("mail: AUTH rejected by server (code %d)", te.Code)
	}
	return errors.New("mail: AUTH failed")
}

// plainAuth is RFC 4616 PLAIN, refused unless the connection is TLS. net/smtp's PlainAuth
// also allows plain text to "localhost", which we do not want: TLS "none" never authenticates.
type plainAuth struct {
	user string
	pass tutela.Secret
}

func (a plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, ErrAuthWithoutTLS
	}
	if !slices.Contains(server.Auth, "PLAIN") {
		return "", nil, ErrAuthMechanism
	}
	resp := make([]byte, 0, 2+len(a.user)+len(a.pass.Bytes()))
	resp = append(resp, 0)
	resp = append(resp, a.user...)
	resp = append(resp, 0)
	resp = append(resp, a.pass.Bytes()...)
	return "PLAIN", resp, nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("mail: unexpected AUTH PLAIN challenge")
	}
	return nil, nil
}
