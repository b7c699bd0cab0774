// Package clamd asks ClamAV's daemon whether content is malware, over clamd's socket protocol
// (man clamd: null-terminated "z" commands; INSTREAM sends the content in chunks, each a 4-byte
// big-endian length and that many bytes, ended by a zero length).
//
// It fails closed: a Verdict with Clean=true comes only from clamd's own "stream: OK"; every
// doubt (no connection, no answer in time, a size limit, an error or an unreadable reply) is an
// error, and the caller keeps the file in quarantine.
package clamd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"tutela"
)

// Defaults for the zero values of Client's fields.
const (
	DefaultTimeout     = 2 * time.Minute
	DefaultDialTimeout = 5 * time.Second
	DefaultChunkSize   = 64 << 10
)

// maxReply bounds what is read of clamd's answer: a real one is a line of well under 1 KiB, and
// a peer that talks on without end must not grow our memory.
const maxReply = 4 << 10

// maxChunk caps ChunkSize.
const maxChunk = 8 << 20

// Errors of Scan, Ping and Version. Each is a *tutela.Error with code unavailable: the scanner,
// not the client, is at fault, and the file waits in quarantine for a later scan. They come
// wrapped with their cause; test with errors.Is.
var (
	// ErrUnavailable: clamd could not be reached, or went away before it answered.
	ErrUnavailable = &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "The malware scanner cannot be reached."}
	// ErrTimeout: clamd did not answer within the Client's Timeout, or the context ended.
	ErrTimeout = &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "The malware scanner did not answer in time."}
	// ErrLimit: clamd refused the stream as longer than its StreamMaxLength, or (with
	// AlertExceedsMax) said it stopped before the content's end: the content was not judged.
	ErrLimit = &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "The file is larger than the malware scanner accepts."}

	errScan = &tutela.Error{Code: tutela.EUNAVAILABLE, Message: "The malware scanner failed."}
)

// ScanError is clamd answering with an error other than the size limit, or with something this
// client cannot read as a verdict. It unwraps to a *tutela.Error with code unavailable.
type ScanError struct {
	// Reply is clamd's answer, cut to 200 bytes. clamd never echoes scanned content, so it is
	// safe to log.
	Reply string
}

func (e *ScanError) Error() string { return fmt.Sprintf("clamd: scan failed: %q", e.Reply) }

// Unwrap gives the *tutela.Error that the HTTP layer and tutela.ErrorCode understand.
func (e *ScanError) Unwrap() error { return errScan }

func scanError(reply []byte) *ScanError {
	const max = 200
	if len(reply) > max {
		reply = reply[:max]
	}
	return &ScanError{Reply: string(reply)}
}

// Client talks to one clamd. The zero value of each duration and size means its default. A
// Client holds no connection between calls (each call dials), so one value is safe for
// concurrent use.
type Client struct {
	// Network and Address are as for net.Dial: "unix", "/run/clamav/clamd.ctl" or
	// "tcp", "127.0.0.1:3310".
	Network, Address string
	// Timeout bounds one whole call: dial, stream and reply. Scanning a large archive can take
	// clamd a while, hence the generous default (DefaultTimeout).
	Timeout time.Duration
	// DialTimeout bounds the connection alone, so a scanner that is down is noticed quickly
	// (DefaultDialTimeout).
	DialTimeout time.Duration
	// ChunkSize is the most content sent in one INSTREAM chunk (DefaultChunkSize; at most
	// 8 MiB).
	ChunkSize int
}

// Verdict is clamd's judgement of content it scanned completely.
type Verdict struct {
	Clean bool
	// Signature, when !Clean, is the name of the signature clamd reported, e.g.
	// "Eicar-Test-Signature" (clamd appends ".UNOFFICIAL" to signatures outside its official
	// databases).
	Signature string
}

// Ping checks that clamd answers (PONG).
func (c *Client) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "zPING\x00")
	if err != nil {
		return err
	}
	if string(reply) != "PONG" {
		return scanError(reply)
	}
	return nil
}

// Version returns clamd's version line, e.g. "ClamAV 1.4.6/27480/Sun Dec  6 09:30:00 2026"
// (engine, database version and date when clamd loaded official databases).
func (c *Client) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "zVERSION\x00")
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(reply, []byte("ClamAV ")) {
		return "", scanError(reply)
	}
	return string(reply), nil
}

// command sends a command that has no payload and returns clamd's one-line reply.
func (c *Client) command(ctx context.Context, cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := watch(ctx, conn)
	defer stop()
	if _, err := io.WriteString(conn, cmd); err != nil {
		return nil, connError(ctx, "sending the command", err)
	}
	return readReply(ctx, conn)
}

// Scan streams r to clamd (INSTREAM) and returns its verdict. Errors, never a clean Verdict on
// any doubt: ErrUnavailable (cannot connect, or clamd went away), ErrTimeout (no answer within
// Timeout, or ctx ended), ErrLimit (clamd's StreamMaxLength refused the size), *ScanError (any
// other clamd error or an unreadable reply), or r's own read error, wrapped (%w). On a read
// error nothing more is sent and the stream is not ended, so clamd never judges a truncated
// file.
//
// r is read in the calling goroutine: a Reader that blocks is not interrupted by Timeout or ctx
// (pass one that honours them, as an HTTP request body does).
func (c *Client) Scan(ctx context.Context, r io.Reader) (Verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return Verdict{}, err
	}
	defer conn.Close()
	stop := watch(ctx, conn)
	defer stop()

	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return Verdict{}, afterWriteError(ctx, conn, err)
	}
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	// The length prefix is 32 bits, and clamd holds a chunk in memory: no reason for more.
	chunk = min(chunk, maxChunk)
	// One buffer holds a chunk's length prefix and its data, so each chunk is one write.
	buf := make([]byte, 4+chunk)
	for {
		n, rerr := r.Read(buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n)) // #nosec G115 -- n <= maxChunk, which fits the 32-bit length prefix
			if _, err := conn.Write(buf[:4+n]); err != nil {
				// clamd closes the connection as soon as the stream passes StreamMaxLength;
				// its reply saying so is already on the way.
				return Verdict{}, afterWriteError(ctx, conn, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Verdict{}, fmt.Errorf("clamd: reading the content to scan: %w", rerr)
		}
		if err := ctx.Err(); err != nil {
			return Verdict{}, fmt.Errorf("%w: %w", ErrTimeout, err)
		}
	}
	binary.BigEndian.PutUint32(buf[:4], 0)
	if _, err := conn.Write(buf[:4]); err != nil {
		return Verdict{}, afterWriteError(ctx, conn, err)
	}
	reply, err := readReply(ctx, conn)
	if err != nil {
		return Verdict{}, err
	}
	return parseScanReply(reply)
}

// limitsExceeded prefixes the "signatures" clamd reports with AlertExceedsMax for content it
// did not scan to the end (Heuristics.Limits.Exceeded.MaxFileSize, ...MaxScanSize, ...).
const limitsExceeded = "Heuristics.Limits.Exceeded"

// parseScanReply reads clamd's answer to INSTREAM. Only the exact "stream: OK" is clean.
func parseScanReply(reply []byte) (Verdict, error) {
	s := string(reply)
	switch {
	case s == "stream: OK":
		return Verdict{Clean: true}, nil
	case strings.HasPrefix(s, "stream: ") && strings.HasSuffix(s, " FOUND"):
		sig := strings.TrimSuffix(strings.TrimPrefix(s, "stream: "), " FOUND")
		sig = trimDetectionInfo(sig)
		if !validSignature(sig) {
			return Verdict{}, scanError(reply)
		}
		if strings.HasPrefix(sig, limitsExceeded) {
			// AlertExceedsMax: clamd stopped short of the content's end (MaxFileSize,
			// MaxScanSize, MaxRecursion...). Not malware, and not judged either.
			return Verdict{}, ErrLimit
		}
		return Verdict{Signature: sig}, nil
	case s == "INSTREAM size limit exceeded. ERROR":
		return Verdict{}, ErrLimit
	default:
		return Verdict{}, scanError(reply)
	}
}

// trimDetectionInfo drops the "(md5:size)" that clamd adds to a hash signature's name when
// ExtendedDetectionInfo is on, so the name is the same whichever way clamd is configured.
func trimDetectionInfo(sig string) string {
	open := strings.LastIndexByte(sig, '(')
	if open <= 0 || !strings.HasSuffix(sig, ")") {
		return sig
	}
	hash, size, ok := strings.Cut(sig[open+1:len(sig)-1], ":")
	if !ok || hash == "" || size == "" || strings.Trim(hash, "0123456789abcdef") != "" || strings.Trim(size, "0123456789") != "" {
		return sig
	}
	return sig[:open]
}

// validSignature accepts the names ClamAV gives signatures: printable ASCII without spaces.
// Anything else is not a reply we understand, and the name goes into the database and logs.
func validSignature(sig string) bool {
	if sig == "" || len(sig) > 200 {
		return false
	}
	for i := 0; i < len(sig); i++ {
		if sig[i] <= ' ' || sig[i] > '~' {
			return false
		}
	}
	return true
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	dt := c.DialTimeout
	if dt <= 0 {
		dt = DefaultDialTimeout
	}
	d := net.Dialer{Timeout: dt}
	conn, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w: %w", ErrTimeout, context.Cause(ctx), err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return conn, nil
}

// watch closes conn when ctx ends, so a call blocked in a read or write returns at once even
// when ctx was cancelled rather than timed out. The returned func stops the watch.
func watch(ctx context.Context, conn net.Conn) func() {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	return func() { stop() }
}

// afterWriteError handles a failed write. clamd closes the connection early when it refuses a
// stream, having first sent its reason; read that before giving the write error as the cause.
func afterWriteError(ctx context.Context, conn net.Conn, werr error) error {
	if ctx.Err() != nil {
		return connError(ctx, "sending the content", werr)
	}
	reply, err := readReply(ctx, conn)
	if err != nil {
		return connError(ctx, "sending the content", werr)
	}
	if _, err := parseScanReply(reply); err != nil {
		return err
	}
	// A verdict on part of a stream is no verdict: the rest was never scanned.
	return scanError(reply)
}

// readReply reads clamd's reply up to its terminating NUL, which it removes (and a newline
// before it).
func readReply(ctx context.Context, conn net.Conn) ([]byte, error) {
	var reply []byte
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		reply = append(reply, buf[:n]...)
		if i := bytes.IndexByte(reply, 0); i >= 0 {
			return bytes.TrimSuffix(reply[:i], []byte("\n")), nil
		}
		if len(reply) > maxReply {
			return nil, scanError(reply)
		}
		if err == io.EOF {
			if len(reply) == 0 {
				// clamd hung up without a word: it went away (crashed, restarted) mid-call.
				return nil, fmt.Errorf("%w: connection closed without a reply", ErrUnavailable)
			}
			// A z-command's reply ends with NUL; one cut short is not a reply to trust.
			return nil, scanError(reply)
		}
		if err != nil {
			return nil, connError(ctx, "reading the reply", err)
		}
	}
}

// connError classifies a failed read or write on an open connection.
func connError(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w: %w", ErrTimeout, doing, context.Cause(ctx), err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, doing, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, doing, err)
}
