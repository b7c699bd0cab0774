// Package mailtest runs a local SMTP sink for tests: enough of RFC 5321 (EHLO, STARTTLS, AUTH
// PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to receive what a client sends and hand it back
// to the test. It is deliberately strict where a lax server would hide client bugs: only
// CRLF line endings count and only CRLF.CRLF ends DATA.
package mailtest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Limits. RFC 5321 §4.5.3.1.4-6: command lines 512 octets, text lines 1000, both with CRLF.
// Lines are read through a buffer of maxLine, so a longer line ends the session.
const (
	maxLine              = 1000
	maxRecipients        = 100
	idleTimeout          = 30 * time.Second
	DefaultMaxMessageLen = 10 << 20
)

// Received is one message the server accepted.
type Received struct {
	From     string   // MAIL FROM path, without angle brackets
	To       []string // RCPT TO paths
	Data     []byte   // message after dot-unstuffing, CRLF line endings as sent
	TLS      bool     // the session had completed STARTTLS
	AuthUser string   // the AUTH PLAIN user, "" when not authenticated
}

// Option configures a Server.
type Option func(*Server)

// WithSTARTTLS offers STARTTLS with a self-signed certificate for 127.0.0.1, ::1 and
// localhost, generated per server; RootCAs returns a pool that trusts it.
func WithSTARTTLS() Option { return func(s *Server) { s.startTLS = true } }

// WithImplicitTLS speaks TLS from the first byte (SMTPS, RFC 8314 §3.3) with the same kind of
// certificate as WithSTARTTLS.
func WithImplicitTLS() Option { return func(s *Server) { s.implicitTLS = true } }

// WithAuth requires AUTH PLAIN with these credentials before MAIL. With a TLS option, AUTH is
// offered and accepted only once the session is encrypted, as real relays do.
func WithAuth(user, pass string) Option {
	return func(s *Server) { s.user, s.pass, s.auth = user, pass, true }
}

// WithMaxMessageLen sets the largest message DATA accepts; larger ones get 552.
func WithMaxMessageLen(n int) Option { return func(s *Server) { s.maxMsg = n } }

// WithRejectedRecipient answers RCPT TO for addr with 550 and a reply that repeats the address,
// as real relays do ("550 5.1.1 <addr>: Recipient address rejected: User unknown").
func WithRejectedRecipient(addr string) Option {
	return func(s *Server) { s.rejected = append(s.rejected, addr) }
}

// Server is a running SMTP sink on 127.0.0.1. It is closed by t.Cleanup.
type Server struct {
	t           testing.TB
	ln          net.Listener
	startTLS    bool
	implicitTLS bool
	auth        bool
	user        string
	pass        string
	maxMsg      int
	rejected    []string
	tlsCfg      *tls.Config
	roots       *x509.CertPool

	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	msgs    []Received
	changed chan struct{} // closed and replaced whenever msgs grows
}

// NewServer starts a sink on 127.0.0.1 on a free port.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, maxMsg: DefaultMaxMessageLen, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.startTLS || s.implicitTLS {
		cert, roots, err := selfSigned()
		if err != nil {
			t.Fatalf("mailtest: certificate: %v", err)
		}
		s.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.roots = roots
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr returns the listening address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RootCAs returns a pool trusting the server's certificate, or nil without a TLS option.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// Messages returns a copy of the messages received so far, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// WaitForMessages blocks until at least n messages have arrived and returns them. It is a
// synchronisation point, not a timing assertion: timeout only stops a broken test from hanging,
// and it fails the test with t.Fatalf, so call it from the test goroutine.
func (s *Server) WaitForMessages(n int, timeout time.Duration) []Received {
	s.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := append([]Received(nil), s.msgs...)
			s.mu.Unlock()
			return msgs
		}
		changed, got := s.changed, len(s.msgs)
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			s.t.Fatalf("mailtest: got %d messages, want %d", got, n)
			return nil
		}
	}
}

// Close stops the listener, ends open sessions and waits for them. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			(&session{srv: s}).run(c)
		}()
	}
}

func (s *Server) deliver(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

// session is one SMTP connection's state.
type session struct {
	srv      *Server
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	helo     bool
	tls      bool
	authUser string
	from     string
	mailSeen bool
	rcpts    []string
}

var errLineTooLong = errors.New("line too long")

func (ss *session) setConn(c net.Conn) {
	ss.conn = c
	ss.r = bufio.NewReaderSize(c, maxLine)
	ss.w = bufio.NewWriter(c)
}

func (ss *session) reply(code int, text string) error {
	fmt.Fprintf(ss.w, "%d %s\r\n", code, text)
	return ss.w.Flush()
}

// readLine returns one line including its terminator. A line without LF within maxLine bytes
// is an error: the session ends rather than buffering without bound.
func (ss *session) readLine() ([]byte, error) {
	ss.conn.SetReadDeadline(time.Now().Add(idleTimeout))
	line, err := ss.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errLineTooLong
	}
	return line, err
}

func (ss *session) resetTxn() {
	ss.from, ss.mailSeen, ss.rcpts = "", false, nil
}

func (ss *session) run(c net.Conn) {
	if ss.srv.implicitTLS {
		tc := tls.Server(c, ss.srv.tlsCfg)
		tc.SetDeadline(time.Now().Add(idleTimeout))
		if tc.Handshake() != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		c, ss.tls = tc, true
	}
	ss.setConn(c)
	if ss.reply(220, "mailtest ESMTP ready") != nil {
		return
	}
	for {
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				ss.reply(500, "5.5.2 line too long")
			}
			return
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			ss.reply(500, "5.5.2 command must end in CRLF")
			return
		}
		cmdLine := string(line[:len(line)-2])
		verb, arg, _ := strings.Cut(cmdLine, " ")
		if !ss.command(strings.ToUpper(verb), arg) {
			return
		}
	}
}

// command handles one command and reports whether the session continues.
func (ss *session) command(verb, arg string) bool {
	s := ss.srv
	ok := func(code int, text string) bool { return ss.reply(code, text) == nil }
	switch verb {
	case "EHLO", "HELO":
		if strings.TrimSpace(arg) == "" {
			return ok(501, "5.5.4 domain required")
		}
		ss.helo = true
		ss.resetTxn()
		if verb == "HELO" {
			return ok(250, "mailtest")
		}
		lines := []string{"mailtest", "8BITMIME", fmt.Sprintf("SIZE %d", s.maxMsg)}
		if s.startTLS && !ss.tls {
			lines = append(lines, "STARTTLS")
		}
		if s.auth && (ss.tls || s.tlsCfg == nil) {
			lines = append(lines, "AUTH PLAIN")
		}
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			fmt.Fprintf(ss.w, "250%s%s\r\n", sep, l)
		}
		return ss.w.Flush() == nil
	case "STARTTLS":
		switch {
		case !s.startTLS || ss.tls:
			return ok(502, "5.5.1 STARTTLS not offered")
		case arg != "":
			return ok(501, "5.5.4 no parameters allowed")
		}
		// RFC 3207 §4.2 / CVE-2011-0411: commands pipelined after STARTTLS must not be
		// carried into the TLS session.
		if ss.r.Buffered() > 0 {
			ss.reply(501, "5.5.1 data after STARTTLS")
			return false
		}
		if !ok(220, "2.0.0 ready to start TLS") {
			return false
		}
		tc := tls.Server(ss.conn, s.tlsCfg)
		tc.SetDeadline(time.Now().Add(idleTimeout))
		if tc.Handshake() != nil {
			return false
		}
		tc.SetDeadline(time.Time{})
		ss.setConn(tc)
		ss.tls, ss.helo, ss.authUser = true, false, ""
		ss.resetTxn()
		return true
	case "AUTH":
		return ss.authPlain(arg)
	case "MAIL":
		if !ss.helo {
			return ok(503, "5.5.1 EHLO first")
		}
		if s.tlsCfg != nil && s.auth && !ss.tls {
			return ok(530, "5.7.0 must issue STARTTLS first")
		}
		if s.auth && ss.authUser == "" {
			return ok(530, "5.7.0 authentication required")
		}
		if ss.mailSeen {
			return ok(503, "5.5.1 nested MAIL")
		}
		path, okPath := parsePath(arg, "FROM:")
		if !okPath {
			return ok(501, "5.5.4 syntax: MAIL FROM:<address>")
		}
		ss.from, ss.mailSeen = path, true
		return ok(250, "2.1.0 ok")
	case "RCPT":
		if !ss.mailSeen {
			return ok(503, "5.5.1 MAIL first")
		}
		path, okPath := parsePath(arg, "TO:")
		if !okPath || path == "" {
			return ok(501, "5.5.4 syntax: RCPT TO:<address>")
		}
		if slices.Contains(s.rejected, path) {
			return ok(550, "5.1.1 <"+path+">: Recipient address rejected: User unknown in virtual mailbox table")
		}
		if len(ss.rcpts) >= maxRecipients {
			return ok(452, "4.5.3 too many recipients")
		}
		ss.rcpts = append(ss.rcpts, path)
		return ok(250, "2.1.5 ok")
	case "DATA":
		if len(ss.rcpts) == 0 {
			return ok(503, "5.5.1 RCPT first")
		}
		if !ok(354, "end data with <CR><LF>.<CR><LF>") {
			return false
		}
		return ss.data()
	case "RSET":
		ss.resetTxn()
		return ok(250, "2.0.0 ok")
	case "NOOP":
		return ok(250, "2.0.0 ok")
	case "QUIT":
		ss.reply(221, "2.0.0 bye")
		return false
	default:
		return ok(502, "5.5.1 command not implemented")
	}
}

// data reads the message until CRLF.CRLF, undoing dot-stuffing (RFC 5321 §4.5.2). A bare LF
// before "." does not end the message: treating it as the end is what SMTP smuggling exploits.
func (ss *session) data() bool {
	var buf bytes.Buffer
	tooBig := false
	for {
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				ss.reply(500, "5.5.2 line too long")
			}
			return false
		}
		if string(line) == ".\r\n" {
			break
		}
		if line[0] == '.' {
			line = line[1:]
		}
		if buf.Len()+len(line) > ss.srv.maxMsg {
			tooBig = true
			continue
		}
		buf.Write(line)
	}
	if tooBig {
		ss.resetTxn()
		return ss.reply(552, "5.3.4 message too big") == nil
	}
	ss.srv.deliver(Received{
		From:     ss.from,
		To:       append([]string(nil), ss.rcpts...),
		Data:     buf.Bytes(),
		TLS:      ss.tls,
		AuthUser: ss.authUser,
	})
	ss.resetTxn()
	return ss.reply(250, "2.0.0 queued") == nil
}

func (ss *session) authPlain(arg string) bool {
	s := ss.srv
	ok := func(code int, text string) bool { return ss.reply(code, text) == nil }
	switch {
	case !s.auth:
		return ok(502, "5.5.1 AUTH not offered")
	case !ss.helo:
		return ok(503, "5.5.1 EHLO first")
	case ss.authUser != "":
		return ok(503, "5.5.1 already authenticated")
	case s.tlsCfg != nil && !ss.tls:
		return ok(538, "5.7.11 encryption required for requested authentication mechanism")
	}
	mech, initial, _ := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return ok(504, "5.5.4 only PLAIN is supported")
	}
	if initial == "" {
		if !ok(334, "") {
			return false
		}
		line, err := ss.readLine()
		if err != nil || !bytes.HasSuffix(line, []byte("\r\n")) {
			return false
		}
		initial = string(line[:len(line)-2])
	}
	if initial == "*" {
		return ok(501, "5.0.0 authentication cancelled")
	}
	raw, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		return ok(501, "5.5.2 bad base64")
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return ok(501, "5.5.2 bad PLAIN response")
	}
	userOK := subtle.ConstantTimeCompare([]byte(parts[1]), []byte(s.user)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(parts[2]), []byte(s.pass)) == 1
	if !userOK || !passOK || (parts[0] != "" && parts[0] != parts[1]) {
		return ok(535, "5.7.8 authentication credentials invalid")
	}
	ss.authUser = parts[1]
	return ok(235, "2.7.0 authentication successful")
}

// parsePath parses `FROM:<path> [params]` (prefix "FROM:") or `TO:<path> [params]`, returning
// path. Parameters such as BODY=8BITMIME are ignored.
func parsePath(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	return rest[1:end], true
}

// selfSigned makes a short-lived ECDSA certificate that is its own CA, and a pool trusting it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
