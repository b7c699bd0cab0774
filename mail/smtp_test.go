package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/mail"
	"tutela/mail/mailtest"
)

const waitLimit = 10 * time.Second // only stops a broken test from hanging

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSender(t *testing.T, cfg mail.SMTPConfig) *mail.SMTPSender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "Tutela <no-reply@tutela.example>"
	}
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return fixedNow }
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = waitLimit
	}
	s, err := mail.NewSMTPSender(cfg)
	if err != nil {
		t.Fatalf("NewSMTPSender: %v", err)
	}
	return s
}

// sendOne sends m over a plain loopback session and returns the message as received.
func sendOne(t *testing.T, m mail.Message) (*netmail.Message, []byte) {
	t.Helper()
	srv := mailtest.NewServer(t)
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr(), TLS: mail.TLSNone})
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitForMessages(1, waitLimit)
	raw := got[0].Data
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, raw)
	}
	return msg, raw
}

func decodeBody(t *testing.T, msg *netmail.Message) string {
	t.Helper()
	if cte := msg.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", cte)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return string(b)
}

func TestSend_PlainToLoopbackSink(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr(), TLS: mail.TLSNone})
	m := mail.Message{To: "Ada <ada@example.com>", Subject: "Reset your password", Text: "Open https://tutela.example/reset?t=abc\n"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitForMessages(1, waitLimit)
	if len(got) != 1 {
		t.Fatalf("got %d messages", len(got))
	}
	r := got[0]
	if r.From != "no-reply@tutela.example" || len(r.To) != 1 || r.To[0] != "ada@example.com" {
		t.Fatalf("envelope = %q -> %q", r.From, r.To)
	}
	if r.TLS || r.AuthUser != "" {
		t.Fatalf("TLS=%v AuthUser=%q, want plain unauthenticated", r.TLS, r.AuthUser)
	}
	if i := bytes.IndexByte(bytes.ReplaceAll(r.Data, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Fatalf("bare LF in message:\n%q", r.Data)
	}

	msg, err := netmail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	h := msg.Header
	want := map[string]string{
		"From":                      `"Tutela" <no-reply@tutela.example>`,
		"To":                        `"Ada" <ada@example.com>`,
		"Subject":                   "Reset your password",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	date, err := h.Date()
	if err != nil || !date.Equal(fixedNow) {
		t.Errorf("Date = %q (%v), want %v", h.Get("Date"), err, fixedNow)
	}
	if !strings.HasSuffix(h.Get("Date"), "+0000") {
		t.Errorf("Date %q is not UTC", h.Get("Date"))
	}
	id := h.Get("Message-Id")
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@tutela.example>") || len(id) < 30 {
		t.Errorf("Message-ID = %q", id)
	}
	if body := decodeBody(t, msg); body != "Open https://tutela.example/reset?t=abc\r\n" {
		t.Errorf("body = %q", body)
	}
}

func TestSend_MessageIDIsRandom(t *testing.T) {
	t.Parallel()
	a, _ := sendOne(t, mail.Message{To: "a@example.com", Subject: "x", Text: "x"})
	b, _ := sendOne(t, mail.Message{To: "a@example.com", Subject: "x", Text: "x"})
	if a.Header.Get("Message-Id") == b.Header.Get("Message-Id") {
		t.Fatalf("two messages share Message-ID %q", a.Header.Get("Message-Id"))
	}
}

func TestSend_STARTTLSWithAuth(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS(), mailtest.WithAuth("relay", "s3cret-pw"))
	s := newSender(t, mail.SMTPConfig{
		Addr:     srv.Addr(),
		Username: "relay",
		Password: tutela.NewSecret("s3cret-pw"),
		RootCAs:  srv.RootCAs(),
	})
	if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "hello"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := srv.WaitForMessages(1, waitLimit)[0]
	if !r.TLS || r.AuthUser != "relay" {
		t.Fatalf("TLS=%v AuthUser=%q, want TLS and relay", r.TLS, r.AuthUser)
	}
}

func TestSend_STARTTLSWithoutAuth(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS())
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr(), RootCAs: srv.RootCAs()})
	if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "hello"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r := srv.WaitForMessages(1, waitLimit)[0]; !r.TLS {
		t.Fatal("message was not sent over TLS")
	}
}

func TestSend_ImplicitTLSWithAuth(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithImplicitTLS(), mailtest.WithAuth("relay", "pw"))
	s := newSender(t, mail.SMTPConfig{
		Addr: srv.Addr(), TLS: mail.TLSImplicit, Username: "relay", Password: tutela.NewSecret("pw"), RootCAs: srv.RootCAs(),
	})
	if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "hello"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r := srv.WaitForMessages(1, waitLimit)[0]; !r.TLS || r.AuthUser != "relay" {
		t.Fatalf("TLS=%v AuthUser=%q, want TLS and relay", r.TLS, r.AuthUser)
	}
}

func TestSend_STARTTLSRequiredButNotOffered(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t) // no STARTTLS: a downgrade attacker's view of a real relay
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr(), TLS: mail.TLSStartTLS})
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "reset link"})
	if !errors.Is(err, mail.ErrSTARTTLSUnavailable) {
		t.Fatalf("err = %v, want ErrSTARTTLSUnavailable", err)
	}
	if code := tutela.ErrorCode(err); code != tutela.EUNAVAILABLE {
		t.Errorf("code = %q, want %q", code, tutela.EUNAVAILABLE)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestSend_STARTTLSUntrustedCertificate(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS())
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr()}) // system roots do not trust the sink
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a STARTTLS certificate failure", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestSend_WrongPasswordNotInError(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS(), mailtest.WithAuth("relay", "right"))
	const pw = "wrong-password-XYZ"
	s := newSender(t, mail.SMTPConfig{
		Addr: srv.Addr(), Username: "relay", Password: tutela.NewSecret(pw), RootCAs: srv.RootCAs(),
	})
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"})
	if err == nil {
		t.Fatal("Send succeeded with a wrong password")
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", s)} {
		if strings.Contains(text, pw) {
			t.Fatalf("password leaked: %s", text)
		}
	}
	if !strings.Contains(err.Error(), "535") {
		t.Errorf("err = %v, want the SMTP code", err)
	}
}

// A relay's refusal of RCPT TO repeats the recipient's address; the error (which reaches logs and
// the job queue's last_error) keeps the step and the SMTP code, never that text.
func TestSend_RejectedRecipientAddressNotInError(t *testing.T) {
	t.Parallel()
	const to = "ada.lovelace@example.com"
	srv := mailtest.NewServer(t, mailtest.WithRejectedRecipient(to))
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr(), TLS: mail.TLSNone})
	err := s.Send(context.Background(), mail.Message{To: to, Subject: "Hi", Text: "x"})
	if err == nil {
		t.Fatal("Send succeeded to a rejected recipient")
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%v", errors.Unwrap(err))} {
		if strings.Contains(text, "ada.lovelace") || strings.Contains(text, "User unknown") {
			t.Fatalf("server reply leaked into the error: %s", text)
		}
	}
	var de *mail.DeliveryError
	if !errors.As(err, &de) || de.Step != "RCPT TO" || de.Code != 550 {
		t.Fatalf("err = %v, want a RCPT TO DeliveryError with code 550", err)
	}
	if got, want := de.Class(), "mail: RCPT TO rejected by server (code 550)"; got != want {
		t.Fatalf("class = %q, want %q", got, want)
	}
	if tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Fatalf("code = %q, want unavailable", tutela.ErrorCode(err))
	}
}

func TestNewSMTPSender_AuthRefusedWithoutTLS(t *testing.T) {
	t.Parallel()
	_, err := mail.NewSMTPSender(mail.SMTPConfig{
		Addr: "127.0.0.1:25", From: "a@example.com", TLS: mail.TLSNone,
		Username: "relay", Password: tutela.NewSecret("pw"),
	})
	var ce *mail.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.Contains(ce.Problems[0], "credentials are never sent without TLS") {
		t.Fatalf("err = %v, want one problem about credentials without TLS", err)
	}
}

// listenCounting returns a listener nobody serves, for checking that a dial did or did not
// happen: a completed dial sits in the accept queue, so pendingConn finds it synchronously.
func listenCounting(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func pendingConn(ln *net.TCPListener) bool {
	ln.SetDeadline(time.Now().Add(50 * time.Millisecond))
	c, err := ln.Accept()
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestSend_HeaderInjectionRejectedBeforeConnecting(t *testing.T) {
	t.Parallel()
	ln := listenCounting(t)
	s := newSender(t, mail.SMTPConfig{Addr: ln.Addr().String(), TLS: mail.TLSNone, Timeout: 200 * time.Millisecond})
	ok := mail.Message{To: "ada@example.com", Subject: "Reset", Text: "x"}
	tests := []struct {
		name  string
		m     func(m *mail.Message)
		field string
	}{
		{"to CRLF Bcc", func(m *mail.Message) { m.To = "ada@example.com\r\nBcc: eve@evil.example" }, "to"},
		{"to LF", func(m *mail.Message) { m.To = "ada@example.com\nBcc: eve@evil.example" }, "to"},
		{"to CR", func(m *mail.Message) { m.To = "ada@example.com\rBcc: eve@evil.example" }, "to"},
		{"to NUL", func(m *mail.Message) { m.To = "ada@example.com\x00eve@evil.example" }, "to"},
		{"to display name CRLF", func(m *mail.Message) { m.To = "Ada\r\nBcc: eve@evil.example <ada@example.com>" }, "to"},
		{"to percent-encoded CRLF", func(m *mail.Message) { m.To = "ada@example.com%0d%0aBcc:eve@evil.example" }, "to"},
		{"to two recipients", func(m *mail.Message) { m.To = "ada@example.com, eve@evil.example" }, "to"},
		{"to quoted local part smuggling RCPT params", func(m *mail.Message) { m.To = `"x> NOTIFY=SUCCESS ORCPT=rfc822;eve"@example.com` }, "to"},
		{"to domain literal", func(m *mail.Message) { m.To = "ada@[127.0.0.1]" }, "to"},
		{"to empty", func(m *mail.Message) { m.To = "" }, "to"},
		{"subject CRLF", func(m *mail.Message) { m.Subject = "Reset\r\nBcc: eve@evil.example" }, "subject"},
		{"subject LF", func(m *mail.Message) { m.Subject = "Reset\nContent-Type: text/html" }, "subject"},
		{"subject CR", func(m *mail.Message) { m.Subject = "Reset\r" }, "subject"},
		{"subject NUL", func(m *mail.Message) { m.Subject = "Reset\x00" }, "subject"},
		{"subject header/body split", func(m *mail.Message) { m.Subject = "Reset\r\n\r\n<html>" }, "subject"},
		{"subject invalid UTF-8", func(m *mail.Message) { m.Subject = "Reset \xff" }, "subject"},
		{"text invalid UTF-8", func(m *mail.Message) { m.Text = "\xc3\x28" }, "text"},
	}
	for _, tt := range tests {
		m := ok
		tt.m(&m)
		err := s.Send(context.Background(), m)
		var e *tutela.Error
		if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != tt.field {
			t.Errorf("%s: err = %v, want EINVALID on %q", tt.name, err, tt.field)
		}
		if err := m.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", tt.name)
		}
	}
	if pendingConn(ln) {
		t.Fatal("a rejected message opened a connection")
	}
}

func TestSend_PercentEncodedCRLFInSubjectIsLiteral(t *testing.T) {
	t.Parallel()
	subject := "Reset%0d%0aBcc: eve@evil.example"
	msg, _ := sendOne(t, mail.Message{To: "ada@example.com", Subject: subject, Text: "x"})
	if got := msg.Header.Get("Subject"); got != subject {
		t.Fatalf("Subject = %q, want %q", got, subject)
	}
	if bcc := msg.Header.Get("Bcc"); bcc != "" {
		t.Fatalf("Bcc header appeared: %q", bcc)
	}
}

func TestSend_NonASCIISubjectEncoded(t *testing.T) {
	t.Parallel()
	subjects := []string{
		"Réinitialisation du mot de passe",
		"Sicherheitshinweis: neue Anmeldung über Ihr Konto — bitte prüfen Sie die Aktivität 🔐 jetzt sofort",
		"パスワードの再設定",
		"Tab\tand ü",
	}
	for _, subject := range subjects {
		msg, raw := sendOne(t, mail.Message{To: "ada@example.com", Subject: subject, Text: "x"})
		head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(head), "\r\n") {
			if len(line) > 998 {
				t.Errorf("header line of %d bytes", len(line))
			}
			for i := 0; i < len(line); i++ {
				if line[i] >= 0x80 {
					t.Fatalf("non-ASCII byte in header line %q", line)
				}
			}
		}
		var dec mime.WordDecoder
		got, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Fatalf("DecodeHeader: %v", err)
		}
		if got != subject {
			t.Errorf("Subject decodes to %q, want %q", got, subject)
		}
	}
}

func TestSend_DotLineSurvives(t *testing.T) {
	t.Parallel()
	text := "first\r\n.\r\n..two dots\r\n.\r\nlast\r\n"
	msg, _ := sendOne(t, mail.Message{To: "ada@example.com", Subject: "dots", Text: text})
	if got := decodeBody(t, msg); got != text {
		t.Fatalf("body = %q, want %q", got, text)
	}
}

func TestSend_QuotedPrintableRoundTrip(t *testing.T) {
	t.Parallel()
	text := "Bonjour Zoë,\n\n" +
		"Pour réinitialiser votre mot de passe, ouvrez ce lien : https://tutela.example/reset?token=" + strings.Repeat("a1=", 40) + "\n" +
		"trailing spaces   \n\ttab-indented line\n" +
		"From the team (a line starting with From)\n" +
		"a=b; c=3D literal; 100% sure ☃\n" +
		"bare CR \r becomes a line break\n"
	msg, raw := sendOne(t, mail.Message{To: "ada@example.com", Subject: "qp", Text: text})
	_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(body), "\r\n") {
		if len(line) > 76 {
			t.Errorf("encoded body line of %d bytes: %q", len(line), line)
		}
		for i := 0; i < len(line); i++ {
			if line[i] >= 0x80 {
				t.Fatalf("8-bit byte in encoded body line %q", line)
			}
		}
	}
	want := strings.NewReplacer("\r", "\r\n", "\n", "\r\n").Replace(text)
	if got := decodeBody(t, msg); got != want {
		t.Fatalf("body =\n%q\nwant\n%q", got, want)
	}
}

// silentListener accepts connections and never writes: a relay that hangs.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestSend_TimeoutAgainstSilentServer(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	s := newSender(t, mail.SMTPConfig{Addr: addr, TLS: mail.TLSNone, Timeout: 200 * time.Millisecond})
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if code := tutela.ErrorCode(err); code != tutela.EUNAVAILABLE {
		t.Errorf("code = %q, want %q", code, tutela.EUNAVAILABLE)
	}
}

func TestSend_ContextDeadlineAgainstSilentServer(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	s := newSender(t, mail.SMTPConfig{Addr: addr, TLS: mail.TLSNone, Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"})
	if err == nil {
		t.Fatal("Send succeeded against a silent server")
	}
}

func TestSend_ContextCancelledAgainstSilentServer(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	s := newSender(t, mail.SMTPConfig{Addr: addr, TLS: mail.TLSNone, Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Send(ctx, mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"}) }()
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Send succeeded after cancel")
		}
	case <-time.After(waitLimit):
		t.Fatal("Send ignored cancellation")
	}
}

func TestSend_ImplicitTLSAgainstPlainServerFails(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := newSender(t, mail.SMTPConfig{Addr: srv.Addr(), TLS: mail.TLSImplicit, Timeout: 2 * time.Second})
	if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Hi", Text: "x"}); err == nil {
		t.Fatal("implicit TLS succeeded against a plain-text server")
	}
}

func TestNewSMTPSender_ReportsEveryProblem(t *testing.T) {
	t.Parallel()
	const pw = "pass\x00word-SECRET"
	_, err := mail.NewSMTPSender(mail.SMTPConfig{
		Addr:      "smtp.example.com",
		From:      "not an address",
		Username:  "user\r\nRCPT",
		Password:  tutela.NewSecret(pw),
		TLS:       "sslv3",
		Timeout:   -time.Second,
		HelloName: "two words",
	})
	var ce *mail.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *ConfigError", err)
	}
	want := []string{"addr:", "from:", "tls:", "username:", "password: must not contain NUL", "timeout:", "hello_name:"}
	if len(ce.Problems) != len(want) {
		t.Fatalf("got %d problems %q, want %d", len(ce.Problems), ce.Problems, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(ce.Problems[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, ce.Problems[i], w)
		}
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("password in error: %v", err)
	}
}

func TestNewSMTPSender_Rules(t *testing.T) {
	t.Parallel()
	pw := tutela.NewSecret("pw")
	tests := []struct {
		name string
		cfg  mail.SMTPConfig
		want string // "" means valid
	}{
		{"defaults to starttls", mail.SMTPConfig{Addr: "smtp.example.com:587", From: "a@example.com"}, ""},
		{"implicit with auth", mail.SMTPConfig{Addr: "smtp.example.com:465", From: "a@example.com", TLS: mail.TLSImplicit, Username: "u", Password: pw}, ""},
		{"none to 127.0.0.1", mail.SMTPConfig{Addr: "127.0.0.1:25", From: "a@example.com", TLS: mail.TLSNone}, ""},
		{"none to ::1", mail.SMTPConfig{Addr: "[::1]:25", From: "a@example.com", TLS: mail.TLSNone}, ""},
		{"none to localhost", mail.SMTPConfig{Addr: "localhost:25", From: "a@example.com", TLS: mail.TLSNone}, ""},
		{"none to remote host", mail.SMTPConfig{Addr: "smtp.example.com:25", From: "a@example.com", TLS: mail.TLSNone}, "only allowed when addr is a loopback host"},
		{"none to remote IP", mail.SMTPConfig{Addr: "10.0.0.1:25", From: "a@example.com", TLS: mail.TLSNone}, "only allowed when addr is a loopback host"},
		{"none with credentials", mail.SMTPConfig{Addr: "127.0.0.1:25", From: "a@example.com", TLS: mail.TLSNone, Username: "u", Password: pw}, "credentials are never sent without TLS"},
		{"username without password", mail.SMTPConfig{Addr: "smtp.example.com:587", From: "a@example.com", Username: "u"}, "password: required"},
		{"password without username", mail.SMTPConfig{Addr: "smtp.example.com:587", From: "a@example.com", Password: pw}, "username: required"},
		{"from with CRLF", mail.SMTPConfig{Addr: "smtp.example.com:587", From: "a@example.com\r\nBcc: b@example.com"}, "from:"},
		{"from quoted local part", mail.SMTPConfig{Addr: "smtp.example.com:587", From: `"a b"@example.com`}, "from:"},
		{"port zero", mail.SMTPConfig{Addr: "smtp.example.com:0", From: "a@example.com"}, "addr: port"},
		{"no host", mail.SMTPConfig{Addr: ":25", From: "a@example.com"}, "addr: host"},
	}
	for _, tt := range tests {
		_, err := mail.NewSMTPSender(tt.cfg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestSMTPConfig_PasswordRedacted(t *testing.T) {
	t.Parallel()
	cfg := mail.SMTPConfig{Addr: "smtp.example.com:587", From: "a@example.com", Username: "u", Password: tutela.NewSecret("hunter2")}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, cfg); strings.Contains(s, "hunter2") {
			t.Fatalf("%s prints the password: %s", f, s)
		}
	}
}
