// Package syslogtest runs a local RFC 5425 collector for tests: TLS on 127.0.0.1 with a
// self-signed certificate, octet-counted frames, every message parsed strictly with
// syslog.Parse. A frame that does not parse fails the test that started the server.
package syslogtest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tutela/syslog"
)

// Received is one message the server parsed.
type Received struct {
	Raw      []byte         // the SYSLOG-MSG as framed
	Msg      syslog.Message // Raw parsed
	Conn     int            // 1 for the first connection accepted, 2 for the next, ...
	PeerCert string         // common name of the client certificate, "" without one
}

// Option configures a Server.
type Option func(*Server)

// WithClientAuth requires a client certificate signed by the server's own test CA; use
// ClientCert to get one.
func WithClientAuth() Option { return func(s *Server) { s.clientAuth = true } }

// WithMaxTLSVersion caps the TLS version the server speaks, to test that clients refuse
// anything below TLS 1.2.
func WithMaxTLSVersion(v uint16) Option { return func(s *Server) { s.maxVersion = v } }

// Server is a running collector. It is closed by t.Cleanup.
type Server struct {
	t          testing.TB
	clientAuth bool
	maxVersion uint16
	caCert     *x509.Certificate
	caKey      *ecdsa.PrivateKey
	roots      *x509.CertPool
	tlsCfg     *tls.Config

	mu      sync.Mutex
	ln      net.Listener
	addr    string
	conns   map[net.Conn]struct{}
	nconn   int
	msgs    []Received
	refused int // handshakes that failed
	changed chan struct{}
	closed  bool
	wg      sync.WaitGroup
}

// NewServer starts a collector on a free port of 127.0.0.1.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	var err error
	s.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("syslogtest: key: %v", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: "syslogtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &s.caKey.PublicKey, s.caKey)
	if err != nil {
		t.Fatalf("syslogtest: CA: %v", err)
	}
	s.caCert, _ = x509.ParseCertificate(der)
	s.roots = x509.NewCertPool()
	s.roots.AddCert(s.caCert)
	serverCert := s.issue("localhost", x509.ExtKeyUsageServerAuth)
	s.tlsCfg = &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS10, MaxVersion: s.maxVersion}
	if s.clientAuth {
		s.tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
		s.tlsCfg.ClientCAs = s.roots
	}
	s.listen("127.0.0.1:0")
	t.Cleanup(s.Close)
	return s
}

// issue makes a leaf certificate for 127.0.0.1, ::1 and localhost signed by the test CA.
func (s *Server) issue(cn string, usage x509.ExtKeyUsage) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatalf("syslogtest: key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(s.t), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, &key.PublicKey, s.caKey)
	if err != nil {
		s.t.Fatalf("syslogtest: certificate: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("syslogtest: serial: %v", err)
	}
	return n
}

// ClientCert returns a client certificate (CN cn) signed by the server's CA.
func (s *Server) ClientCert(cn string) tls.Certificate {
	return s.issue(cn, x509.ExtKeyUsageClientAuth)
}

// WriteClientCertFiles writes a client certificate and its key as PEM files in dir and
// returns their paths.
func (s *Server) WriteClientCertFiles(dir, cn string) (certFile, keyFile string) {
	c := s.ClientCert(cn)
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		s.t.Fatalf("syslogtest: key: %v", err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writePEM(s.t, certFile, "CERTIFICATE", c.Certificate[0])
	writePEM(s.t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// WriteCAFile writes the CA certificate that signed the server's certificate to dir.
func (s *Server) WriteCAFile(dir string) string {
	p := filepath.Join(dir, "ca.pem")
	writePEM(s.t, p, "CERTIFICATE", s.caCert.Raw)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("syslogtest: %v", err)
	}
}

// RootCAs returns a pool trusting the server's certificate.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// Addr returns host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// DropConnections closes every open connection but keeps listening, as a collector restart
// behind a load balancer would look to a client.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Stop closes the listener and every connection; Restart listens again on the same address.
func (s *Server) Stop() {
	s.mu.Lock()
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Restart listens again on the address used before Stop.
func (s *Server) Restart() { s.listen(s.Addr()) }

func (s *Server) listen(addr string) {
	ln, err := tls.Listen("tcp", addr, s.tlsCfg)
	if err != nil {
		s.t.Fatalf("syslogtest: listen: %v", err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go s.serve(ln)
}

// Messages returns what has been received so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// WaitForMessages blocks until n messages have arrived and returns them. The timeout only
// stops a broken test from hanging; it is not a timing assertion.
func (s *Server) WaitForMessages(n int, timeout time.Duration) []Received {
	s.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]Received(nil), s.msgs...)
			s.mu.Unlock()
			return out
		}
		ch, got := s.changed, len(s.msgs)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.t.Fatalf("syslogtest: got %d messages, want %d", got, n)
			return nil
		}
	}
}

// Close stops the server for good.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.Stop()
}

func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.nconn++
		n := s.nconn
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
			s.read(c.(*tls.Conn), n)
		}()
	}
}

func (s *Server) read(c *tls.Conn, n int) {
	if err := c.Handshake(); err != nil {
		s.mu.Lock()
		s.refused++
		s.notifyLocked()
		s.mu.Unlock()
		return
	}
	var peer string
	if st := c.ConnectionState(); len(st.PeerCertificates) > 0 {
		peer = st.PeerCertificates[0].Subject.CommonName
	}
	r := bufio.NewReader(c)
	for {
		raw, err := syslog.ReadFrame(r, 0)
		if err != nil {
			var ne net.Error
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) {
				s.t.Errorf("syslogtest: bad frame: %v", err)
			}
			return
		}
		m, err := syslog.Parse(raw)
		if err != nil {
			s.t.Errorf("syslogtest: %v in %q", err, raw)
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, Received{Raw: raw, Msg: m, Conn: n, PeerCert: peer})
		s.notifyLocked()
		s.mu.Unlock()
	}
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitForRefused blocks until n TLS handshakes have failed on the server side (a client
// without an acceptable certificate, or one that gave up on ours).
func (s *Server) WaitForRefused(n int, timeout time.Duration) {
	s.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got, ch := s.refused, s.changed
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			s.t.Fatalf("syslogtest: %d refused handshakes, want %d", got, n)
			return
		}
	}
}
