package syslog

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// DefaultPort is the IANA port for syslog over TLS (RFC 5425 §4.1).
const DefaultPort = "6514"

// MaxMessageLen bounds one message, sent or received. RFC 5425 §4.3.1 requires receivers to
// take 2048 octets and recommends 8192; we send at most this and refuse more when parsing.
const MaxMessageLen = 64 << 10

// Config says where and how to send.
type Config struct {
	Addr string // host:port of the collector; port 6514 when missing

	// RootCAs verifies the collector's certificate. When nil, CAFile (PEM) is read; when both
	// are empty the system roots are used. Verification is never switched off.
	RootCAs *x509.CertPool
	CAFile  string
	// ServerName is the name the certificate must carry; the host of Addr when empty.
	ServerName string

	// ClientCert is presented when the collector asks for one (mutual TLS). CertFile and
	// KeyFile (PEM) load it when ClientCert is nil and both are set.
	ClientCert *tls.Certificate
	CertFile   string
	KeyFile    string

	Hostname     string        // HOSTNAME sent; os.Hostname() when empty
	DialTimeout  time.Duration // 10 s when zero
	WriteTimeout time.Duration // 10 s when zero
}

// Client sends messages to one collector over one TLS connection, dialled on first use and
// again after any failure. It is safe for concurrent use; sends are serialised.
type Client struct {
	addr     string
	tls      *tls.Config
	hostname string
	procID   string
	dialT    time.Duration
	writeT   time.Duration

	mu   sync.Mutex
	conn *conn
}

// conn is one TLS connection plus a reader that notices when the collector hangs up. RFC 5425
// collectors never send application data, so anything the reader sees (EOF, an error, bytes)
// means the connection is no longer one to write to.
type conn struct {
	c    *tls.Conn
	dead chan struct{}
}

// New checks cfg and loads its certificates; it does not dial.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("syslog: no address")
	}
	addr := cfg.Addr
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
		addr = net.JoinHostPort(addr, DefaultPort)
	}
	roots := cfg.RootCAs
	if roots == nil && cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("syslog: CA file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("syslog: CA file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	tc := &tls.Config{RootCAs: roots, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	switch {
	case cfg.ClientCert != nil:
		tc.Certificates = []tls.Certificate{*cfg.ClientCert}
	case cfg.CertFile != "" || cfg.KeyFile != "":
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("syslog: a client certificate needs both a cert file and a key file")
		}
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			// The error names the files, never their contents.
			return nil, fmt.Errorf("syslog: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	c := &Client{addr: addr, tls: tc, hostname: CleanHostname(hostname), procID: strconv.Itoa(os.Getpid()),
		dialT: cfg.DialTimeout, writeT: cfg.WriteTimeout}
	if c.dialT <= 0 {
		c.dialT = 10 * time.Second
	}
	if c.writeT <= 0 {
		c.writeT = 10 * time.Second
	}
	return c, nil
}

// Send formats m (filling HOSTNAME, APP-NAME and PROCID when empty) and writes it as one
// octet-counted frame. A connection the collector closed, or one that fails the write, is
// dropped and the message is sent once more on a fresh connection; a second failure is
// returned, so the caller's queue retries later. As with any syslog transport there is no
// application-level acknowledgement: success means the bytes reached the TLS connection.
func (c *Client) Send(ctx context.Context, m Message) error {
	if m.Hostname == "" {
		m.Hostname = c.hostname
	}
	if m.AppName == "" {
		m.AppName = AppName
	}
	if m.ProcID == "" {
		m.ProcID = c.procID
	}
	body, err := m.Append(nil)
	if err != nil {
		return err
	}
	if len(body) > MaxMessageLen {
		return fmt.Errorf("syslog: message of %d octets exceeds %d", len(body), MaxMessageLen)
	}
	frame := AppendFrame(nil, body)

	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := c.connectLocked(ctx); err != nil {
			return err
		}
		err := c.writeLocked(frame)
		if err == nil {
			return nil
		}
		_ = c.dropLocked() // the write's error is the one that matters
		if attempt == 1 || ctx.Err() != nil {
			return fmt.Errorf("syslog: write to %s: %w", c.addr, err)
		}
	}
}

func (c *Client) connectLocked(ctx context.Context) error {
	if c.conn != nil {
		select {
		case <-c.conn.dead:
			_ = c.dropLocked() // the collector hung up; a fresh connection follows
		default:
			return nil
		}
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: c.dialT}, Config: c.tls}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("syslog: connect to %s: %w", c.addr, err)
	}
	cn := &conn{c: nc.(*tls.Conn), dead: make(chan struct{})}
	go func() {
		defer close(cn.dead)
		_, _ = cn.c.Read(make([]byte, 1))
	}()
	c.conn = cn
	return nil
}

func (c *Client) writeLocked(frame []byte) error {
	if err := c.conn.c.SetWriteDeadline(time.Now().Add(c.writeT)); err != nil {
		return err
	}
	_, err := c.conn.c.Write(frame)
	return err
}

func (c *Client) dropLocked() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.c.Close()
	<-c.conn.dead
	c.conn = nil
	return err
}

// Close closes the connection, if any, and returns the error of closing it (sending TLS
// close_notify). The Client may be used again; it redials.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropLocked()
}

// AppendFrame appends msg with RFC 5425 §4.3 octet-counting framing: "MSG-LEN SP SYSLOG-MSG".
func AppendFrame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// ReadFrame reads one octet-counted frame. MSG-LEN must be NONZERO-DIGIT *DIGIT and at most
// max (MaxMessageLen when max <= 0); a longer claim is refused before anything is allocated.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxMessageLen
	}
	n := 0
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i == 0 && err == io.EOF {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		}
		if b == ' ' && i > 0 {
			break
		}
		if b < '0' || b > '9' || (i == 0 && b == '0') {
			return nil, errors.New("syslog: bad MSG-LEN")
		}
		n = n*10 + int(b-'0')
		if n > max {
			return nil, fmt.Errorf("syslog: frame longer than %d octets", max)
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}
