package mailtest_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"tutela/mail/mailtest"
)

const waitLimit = 10 * time.Second

// session drives the sink with raw SMTP lines.
type session struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func dial(t *testing.T, s *mailtest.Server) *session {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { c.Close() })
	ss := &session{t: t, conn: c, tp: textproto.NewConn(c)}
	ss.expect(220)
	return ss
}

func (s *session) send(format string, args ...any) {
	s.t.Helper()
	if err := s.tp.PrintfLine(format, args...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) raw(text string) {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(text)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) expect(code int) string {
	s.t.Helper()
	got, msg, err := s.tp.ReadResponse(0)
	if got != code {
		s.t.Fatalf("reply %d %q (%v), want %d", got, msg, err, code)
	}
	return msg
}

func (s *session) cmd(code int, format string, args ...any) string {
	s.t.Helper()
	s.send(format, args...)
	return s.expect(code)
}

func TestServer_DotUnstuffingAndEnvelope(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := dial(t, srv)
	ehlo := s.cmd(250, "EHLO client")
	if strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO offers %q without options", ehlo)
	}
	s.cmd(250, "NOOP")
	s.cmd(250, "MAIL FROM:<a@example.com> BODY=8BITMIME")
	s.cmd(250, "RCPT TO:<b@example.com>")
	s.cmd(250, "RCPT TO:<c@example.com>")
	s.cmd(354, "DATA")
	s.raw("Subject: x\r\n\r\n..\r\n..leading\r\n.\r\n")
	s.expect(250)
	s.cmd(221, "QUIT")

	got := srv.WaitForMessages(1, waitLimit)[0]
	if got.From != "a@example.com" || strings.Join(got.To, ",") != "b@example.com,c@example.com" {
		t.Fatalf("envelope %q -> %q", got.From, got.To)
	}
	if want := "Subject: x\r\n\r\n.\r\n.leading\r\n"; string(got.Data) != want {
		t.Fatalf("data = %q, want %q", got.Data, want)
	}
}

func TestServer_RSETDropsTransaction(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := dial(t, srv)
	s.cmd(250, "EHLO client")
	s.cmd(250, "MAIL FROM:<a@example.com>")
	s.cmd(250, "RCPT TO:<b@example.com>")
	s.cmd(250, "RSET")
	s.cmd(503, "DATA")
	s.cmd(503, "RCPT TO:<b@example.com>")
}

// SMTP smuggling: a bare-LF "." must not end DATA, or a second message hidden in the body
// would be accepted as if the client had sent it.
func TestServer_BareLFDotDoesNotEndData(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := dial(t, srv)
	s.cmd(250, "EHLO client")
	s.cmd(250, "MAIL FROM:<a@example.com>")
	s.cmd(250, "RCPT TO:<b@example.com>")
	s.cmd(354, "DATA")
	s.raw("body\n.\nMAIL FROM:<eve@evil.example>\r\n.\r\n")
	s.expect(250)
	got := srv.WaitForMessages(1, waitLimit)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "MAIL FROM:<eve@evil.example>") {
		t.Fatalf("messages = %+v", got)
	}
}

func TestServer_LineTooLongEndsSession(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := dial(t, srv)
	s.raw("EHLO " + strings.Repeat("a", 2000) + "\r\n")
	s.expect(500)
}

func TestServer_MessageTooBig(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithMaxMessageLen(100))
	s := dial(t, srv)
	s.cmd(250, "EHLO client")
	s.cmd(250, "MAIL FROM:<a@example.com>")
	s.cmd(250, "RCPT TO:<b@example.com>")
	s.cmd(354, "DATA")
	for range 10 {
		s.raw(strings.Repeat("x", 50) + "\r\n")
	}
	s.raw(".\r\n")
	s.expect(552)
	s.cmd(250, "NOOP")
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("stored %d oversized messages", n)
	}
}

func TestServer_AuthRequiresSTARTTLS(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS(), mailtest.WithAuth("u", "p"))
	s := dial(t, srv)
	ehlo := s.cmd(250, "EHLO client")
	if !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO before TLS = %q, want STARTTLS and no AUTH", ehlo)
	}
	s.cmd(538, "AUTH PLAIN AHUAcA==")
	s.cmd(530, "MAIL FROM:<a@example.com>")
}

// CVE-2011-0411: commands pipelined with STARTTLS must not run inside the TLS session.
func TestServer_RejectsCommandsPipelinedAfterSTARTTLS(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS())
	s := dial(t, srv)
	s.cmd(250, "EHLO client")
	s.raw("STARTTLS\r\nMAIL FROM:<eve@evil.example>\r\n")
	s.expect(501)
}

func TestServer_STARTTLSThenAuth(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t, mailtest.WithSTARTTLS(), mailtest.WithAuth("u", "p"))
	s := dial(t, srv)
	s.cmd(250, "EHLO client")
	s.cmd(220, "STARTTLS")
	tc := tls.Client(s.conn, &tls.Config{ServerName: "127.0.0.1", RootCAs: srv.RootCAs(), MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	s.conn, s.tp = tc, textproto.NewConn(tc)
	s.cmd(503, "MAIL FROM:<a@example.com>") // EHLO again after TLS (RFC 3207 §4.2)
	if ehlo := s.cmd(250, "EHLO client"); !strings.Contains(ehlo, "AUTH PLAIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO after TLS = %q", ehlo)
	}
	s.cmd(535, "AUTH PLAIN AHUAd3Jvbmc=") // \0u\0wrong
	s.cmd(334, "AUTH PLAIN")
	s.cmd(235, "AHUAcA==") // \0u\0p
	s.cmd(250, "MAIL FROM:<a@example.com>")
	s.cmd(250, "RCPT TO:<b@example.com>")
	s.cmd(354, "DATA")
	s.raw("hi\r\n.\r\n")
	s.expect(250)
	got := srv.WaitForMessages(1, waitLimit)[0]
	if !got.TLS || got.AuthUser != "u" {
		t.Fatalf("TLS=%v AuthUser=%q", got.TLS, got.AuthUser)
	}
}

func TestServer_CloseEndsOpenSessions(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := dial(t, srv)
	s.cmd(250, "EHLO client")
	srv.Close() // must not wait for the idle client
	if _, err := bufio.NewReader(s.conn).ReadByte(); err == nil {
		t.Fatal("connection still open after Close")
	}
	srv.Close()
}
