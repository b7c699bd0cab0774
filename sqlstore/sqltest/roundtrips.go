package sqltest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// RoundTripCounter is a TCP proxy in front of PostgreSQL that counts the round trips its
// clients make, whatever the driver does: each Sync message (the end of an extended-protocol
// exchange: prepare, or bind and execute) and each simple Query (BEGIN, COMMIT) waits for the
// server once. It also keeps the text of each statement parsed or queried, for finding which
// statements a code path runs (open the store with default_query_exec_mode=exec to see every
// one: the default caches prepared statements, so their text crosses the wire only once per
// connection).
type RoundTripCounter struct {
	mu     sync.Mutex
	trips  int
	texts  []string
	target string
}

// CountRoundTrips starts a RoundTripCounter in front of the PostgreSQL database at dsn and
// returns it with the DSN that goes through it. It stops when the test ends.
func CountRoundTrips(t testing.TB, dsn string) (*RoundTripCounter, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &RoundTripCounter{target: u.Host}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { c.serve(client) })
		}
	})
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable") // the proxy reads the protocol; TLS would hide it
	u.RawQuery = q.Encode()
	return c, u.String()
}

// RoundTrips returns the round trips counted so far.
func (c *RoundTripCounter) RoundTrips() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trips
}

// Statements returns the statement texts seen since the last call, and forgets them.
func (c *RoundTripCounter) Statements() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.texts
	c.texts = nil
	return s
}

func (c *RoundTripCounter) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", c.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(client, server)
		_ = client.Close()
	}()
	_ = c.forward(bufio.NewReader(client), server)
}

// forward copies the client's messages to the server, counting them: first the untyped
// start-up message (length, protocol version, parameters), then typed ones (a byte, length).
func (c *RoundTripCounter) forward(r *bufio.Reader, w io.Writer) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > 1<<16 {
		return errors.New("sqltest: unexpected start-up message")
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(body) != 3<<16 { // SSL or GSS request: sslmode=disable sends none
		return errors.New("sqltest: only protocol 3.0 start-up is proxied")
	}
	if _, err := w.Write(append(hdr[:], body...)); err != nil {
		return err
	}
	var th [5]byte
	for {
		if _, err := io.ReadFull(r, th[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(th[1:])
		if n < 4 || n > 1<<30 {
			return errors.New("sqltest: bad message length")
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		c.note(th[0], body)
		if _, err := w.Write(append(th[:], body...)); err != nil {
			return err
		}
	}
}

func (c *RoundTripCounter) note(kind byte, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch kind {
	case 'S': // Sync
		c.trips++
	case 'Q': // simple Query: its text, NUL-terminated
		c.trips++
		c.texts = append(c.texts, cstring(body))
	case 'P': // Parse: statement name, then its text
		if i := bytes.IndexByte(body, 0); i >= 0 {
			c.texts = append(c.texts, cstring(body[i+1:]))
		}
	}
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
