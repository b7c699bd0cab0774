package clamd_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/files/clamd"
	"tutela/files/clamd/clamdtest"
)

// One clamd serves the tests that only scan; tests that stop it start their own.
func startShared(t *testing.T) *clamdtest.Server {
	t.Helper()
	return clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 4 << 20})
}

func TestScan_Verdicts(t *testing.T) {
	srv := startShared(t)
	c := srv.Client()
	ctx := context.Background()

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	v, err := c.Version(ctx)
	if err != nil || !strings.HasPrefix(v, "ClamAV ") {
		t.Fatalf("Version = %q, %v", v, err)
	}

	planted := func(prefix, suffix string) []byte {
		return []byte(prefix + clamdtest.PlantedSample + suffix)
	}
	tests := []struct {
		name    string
		content []byte
		wantSig string // "" for clean
	}{
		{"clean text", []byte("Quarterly report: nothing to see here.\n"), ""},
		{"empty", nil, ""},
		{"EICAR", []byte(clamdtest.EICAR), clamdtest.EICARSignature},
		{"planted sample alone", planted("", ""), clamdtest.PlantedSignature},
		{"planted sample inside text", planted(strings.Repeat("lorem ipsum ", 1000), " dolor"), clamdtest.PlantedSignature},
		{"planted sample in a zip entry (deflated)", zipOf(t, "notes/a.txt", planted("x", "y"), zip.Deflate), clamdtest.PlantedSignature},
		{"planted sample in a docx paragraph", docx(t, planted("<w:t>", "</w:t>")), clamdtest.PlantedSignature},
		{"EICAR in a zip entry", zipOf(t, "eicar.com", []byte(clamdtest.EICAR), zip.Deflate), clamdtest.EICARSignature},
		{"half of the sample is not the sample", []byte(clamdtest.PlantedSample[:20]), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.Scan(ctx, bytes.NewReader(tt.content))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			want := clamd.Verdict{Clean: tt.wantSig == "", Signature: tt.wantSig}
			if got != want {
				t.Fatalf("Scan = %+v, want %+v", got, want)
			}
		})
	}
}

// Several MB in small chunks: the planted sample straddles a chunk boundary and sits near the
// end, so it is found only if every chunk arrived in order.
func TestScan_LargeContentInChunks(t *testing.T) {
	srv := startShared(t)
	c := srv.Client()
	c.ChunkSize = 1000

	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	v, err := c.Scan(context.Background(), bytes.NewReader(big))
	if err != nil || !v.Clean {
		t.Fatalf("random 3 MiB: %+v, %v", v, err)
	}
	at := len(big) - 1000*3 - len(clamdtest.PlantedSample)/2 // across a 1000-byte boundary
	copy(big[at:], clamdtest.PlantedSample)
	// iotest-style reader that returns a few bytes at a time, so chunks are not all full.
	v, err = c.Scan(context.Background(), &smallReads{r: bytes.NewReader(big), n: 777})
	if err != nil || v.Signature != clamdtest.PlantedSignature {
		t.Fatalf("3 MiB with the sample near the end: %+v, %v", v, err)
	}
}

func TestScan_StreamMaxLengthIsErrLimit(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 1 << 20})
	c := srv.Client()
	// 8 MiB against a 1 MiB limit: clamd refuses and hangs up while the client still writes.
	_, err := c.Scan(context.Background(), bytes.NewReader(make([]byte, 8<<20)))
	if !errors.Is(err, clamd.ErrLimit) {
		t.Fatalf("Scan past StreamMaxLength: %v, want ErrLimit", err)
	}
	if tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Fatalf("code = %q", tutela.ErrorCode(err))
	}
	// The limit itself is scanned; one byte more is refused, even in one small last chunk.
	v, err := c.Scan(context.Background(), bytes.NewReader(make([]byte, 1<<20)))
	if err != nil || !v.Clean {
		t.Fatalf("Scan at the limit: %+v, %v", v, err)
	}
	if _, err := c.Scan(context.Background(), bytes.NewReader(make([]byte, 1<<20+1))); !errors.Is(err, clamd.ErrLimit) {
		t.Fatalf("Scan one byte past the limit: %v, want ErrLimit", err)
	}
}

func TestScan_StoppedIsUnavailableAndRestartRecovers(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{})
	c := srv.Client()
	srv.Stop()
	srv.Stop() // idempotent
	_, err := c.Scan(context.Background(), strings.NewReader(clamdtest.EICAR))
	if !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("Scan with clamd stopped: %v, want ErrUnavailable", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("Ping with clamd stopped: %v, want ErrUnavailable", err)
	}

	srv.Restart(t)
	v, err := c.Scan(context.Background(), strings.NewReader(clamdtest.EICAR))
	if err != nil || v.Signature != clamdtest.EICARSignature {
		t.Fatalf("Scan after Restart: %+v, %v", v, err)
	}
}

func TestScan_NoSocketIsUnavailable(t *testing.T) {
	c := &clamd.Client{Network: "unix", Address: filepath.Join(t.TempDir(), "absent.sock")}
	_, err := c.Scan(context.Background(), strings.NewReader("x"))
	if !errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("Scan: %v, want ErrUnavailable", err)
	}
	var te *tutela.Error
	if !errors.As(err, &te) || te.Code != tutela.EUNAVAILABLE {
		t.Fatalf("not a *tutela.Error with code unavailable: %v", err)
	}
}

func TestScan_ReaderErrorPropagatesAndNothingIsJudged(t *testing.T) {
	// A fake clamd records whether the stream was ever ended (a zero-length chunk): a reader
	// that fails must not leave clamd judging a truncated file.
	ended := make(chan bool, 1)
	sock := fake(t, func(conn net.Conn) {
		ended <- streamEnded(conn)
		io.WriteString(conn, "stream: OK\x00")
	})
	c := &clamd.Client{Network: "unix", Address: sock}
	boom := errors.New("disk on fire")
	v, err := c.Scan(context.Background(), io.MultiReader(strings.NewReader("some bytes"), iotestErrReader{boom}))
	if !errors.Is(err, boom) || v.Clean {
		t.Fatalf("Scan = %+v, %v; want the reader's error", v, err)
	}
	if <-ended {
		t.Fatal("the stream was ended after the reader failed")
	}
}

func TestScan_FakeThatNeverAnswersIsTimeout(t *testing.T) {
	sock := fake(t, func(conn net.Conn) {
		io.Copy(io.Discard, conn) // read everything, answer nothing, until the client hangs up
	})
	c := &clamd.Client{Network: "unix", Address: sock, Timeout: 200 * time.Millisecond}
	v, err := c.Scan(context.Background(), strings.NewReader("hello"))
	if !errors.Is(err, clamd.ErrTimeout) || v.Clean {
		t.Fatalf("Scan = %+v, %v; want ErrTimeout", v, err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, clamd.ErrTimeout) {
		t.Fatalf("Ping: %v, want ErrTimeout", err)
	}
}

func TestScan_ContextCancelledIsTimeout(t *testing.T) {
	accepted := make(chan struct{})
	sock := fake(t, func(conn net.Conn) {
		close(accepted)
		io.Copy(io.Discard, conn)
	})
	// A long Timeout: only the cancellation can end this scan.
	c := &clamd.Client{Network: "unix", Address: sock, Timeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-accepted
		cancel()
	}()
	v, err := c.Scan(ctx, strings.NewReader("hello"))
	if !errors.Is(err, clamd.ErrTimeout) || !errors.Is(err, context.Canceled) || v.Clean {
		t.Fatalf("Scan = %+v, %v; want ErrTimeout wrapping context.Canceled", v, err)
	}
}

func TestScan_ContextAlreadyEndedIsTimeout(t *testing.T) {
	sock := fake(t, func(conn net.Conn) {
		streamEnded(conn)
		io.WriteString(conn, "stream: OK\x00")
	})
	c := &clamd.Client{Network: "unix", Address: sock}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v, err := c.Scan(ctx, strings.NewReader("hello"))
	if !errors.Is(err, clamd.ErrTimeout) || !errors.Is(err, context.Canceled) || v.Clean {
		t.Fatalf("Scan = %+v, %v; want ErrTimeout", v, err)
	}
}

func TestScan_BadRepliesAreScanErrors(t *testing.T) {
	tests := []struct {
		name, reply string
		want        error // nil: a *ScanError
	}{
		{"clamd error", "Can't allocate memory ERROR\x00", nil},
		{"unknown command", "UNKNOWN COMMAND\x00", nil},
		{"garbage", "\x01\x02 ok?\x00", nil},
		{"OK with a newline instead of NUL", "stream: OK\n", nil},
		{"OK cut short before NUL", "stream: OK", nil},
		{"lower-case ok", "stream: ok\x00", nil},
		{"OK with trailing words", "stream: OK FOUND? no\x00", nil},
		{"FOUND without a name", "stream:  FOUND\x00", nil},
		{"FOUND with a control character", "stream: Evil\x1b[2J FOUND\x00", nil},
		{"a reply that never ends", strings.Repeat("A", 10000), nil},
		{"limit", "INSTREAM size limit exceeded. ERROR\x00", clamd.ErrLimit},
		{"hang up without a word", "", clamd.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sock := fake(t, func(conn net.Conn) {
				streamEnded(conn)
				io.WriteString(conn, tt.reply)
			})
			c := &clamd.Client{Network: "unix", Address: sock}
			v, err := c.Scan(context.Background(), strings.NewReader("hello"))
			if v.Clean || err == nil {
				t.Fatalf("Scan = %+v, %v; want an error", v, err)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Scan: %v, want %v", err, tt.want)
				}
				return
			}
			var se *clamd.ScanError
			if !errors.As(err, &se) {
				t.Fatalf("Scan: %T %v, want *ScanError", err, err)
			}
			if len(se.Reply) > 200 || tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
				t.Fatalf("ScanError %q, code %q", se.Reply, tutela.ErrorCode(err))
			}
		})
	}
}

func TestScan_ExtendedDetectionInfoIsTrimmed(t *testing.T) {
	sock := fake(t, func(conn net.Conn) {
		streamEnded(conn)
		io.WriteString(conn, "stream: Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68) FOUND\x00")
	})
	c := &clamd.Client{Network: "unix", Address: sock}
	v, err := c.Scan(context.Background(), strings.NewReader("x"))
	if err != nil || v != (clamd.Verdict{Signature: "Eicar-Signature"}) {
		t.Fatalf("Scan = %+v, %v", v, err)
	}
}

// The client's bytes on the wire: the command, length-prefixed chunks, a zero length.
func TestScan_WireFormat(t *testing.T) {
	got := make(chan []byte, 1)
	sock := fake(t, func(conn net.Conn) {
		var buf bytes.Buffer
		tee := io.TeeReader(conn, &buf)
		streamEnded(readerConn{tee, conn})
		got <- buf.Bytes()
		io.WriteString(conn, "stream: OK\x00")
	})
	c := &clamd.Client{Network: "unix", Address: sock, ChunkSize: 4}
	if _, err := c.Scan(context.Background(), strings.NewReader("abcdefghij")); err != nil {
		t.Fatal(err)
	}
	want := "zINSTREAM\x00" + "\x00\x00\x00\x04abcd" + "\x00\x00\x00\x04efgh" + "\x00\x00\x00\x02ij" + "\x00\x00\x00\x00"
	if b := <-got; string(b) != want {
		t.Fatalf("wire = %q\nwant   %q", b, want)
	}
}

// clamd also listens on TCP (TCPSocket); the protocol is the same.
func TestScan_OverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if streamEnded(conn) {
			io.WriteString(conn, "stream: Tutela.Test.TCP FOUND\x00")
		}
	}()
	c := &clamd.Client{Network: "tcp", Address: ln.Addr().String()}
	v, err := c.Scan(context.Background(), strings.NewReader("over tcp"))
	if err != nil || v != (clamd.Verdict{Signature: "Tutela.Test.TCP"}) {
		t.Fatalf("Scan = %+v, %v", v, err)
	}
}

// fake serves a unix socket; each connection is handed to serve and then closed.
func fake(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fakeclamd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return sock
}

// streamEnded reads a zINSTREAM command and its chunks as clamd does, and reports whether the
// zero-length chunk that ends the stream came (false: the client hung up first).
func streamEnded(conn io.Reader) bool {
	cmd := make([]byte, len("zINSTREAM\x00"))
	if _, err := io.ReadFull(conn, cmd); err != nil || string(cmd) != "zINSTREAM\x00" {
		return false
	}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return false
		}
		n := int64(hdr[0])<<24 | int64(hdr[1])<<16 | int64(hdr[2])<<8 | int64(hdr[3])
		if n == 0 {
			return true
		}
		if _, err := io.CopyN(io.Discard, conn, n); err != nil {
			return false
		}
	}
}

type readerConn struct {
	io.Reader
	net.Conn
}

func (r readerConn) Read(p []byte) (int, error) { return r.Reader.Read(p) }

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// smallReads returns at most n bytes a Read.
type smallReads struct {
	r io.Reader
	n int
}

func (s *smallReads) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

func zipOf(t *testing.T, name string, content []byte, method uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// docx builds a minimal WordprocessingML package whose document body holds text, deflated as
// Word does, so the sample is visible only to a scanner that opens the archive.
func docx(t *testing.T, text []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	parts := []struct{ name, body string }{
		{"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		{"_rels/.rels", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>` + string(text) + `</w:r></w:p></w:body></w:document>`},
	}
	for _, p := range parts {
		w, err := zw.Create(p.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, p.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(clamdtest.PlantedSample)) {
		t.Fatal("the docx holds the sample in the clear; it must be inside a deflated entry")
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Content past clamd's MaxFileSize is not judged. With AlertExceedsMax (as docs/files.md asks)
// clamd says so, and the client reports ErrLimit: never "clean" for content it did not scan.
// (Without it, clamd answers "stream: OK" for the unscanned content; intake refuses to send a
// file larger than files.scan_max_size for that reason.)
func TestScan_PastMaxFileSizeIsALimitNeverClean(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 8 << 20, MaxFileSize: 1 << 20})
	body := io.MultiReader(strings.NewReader(clamdtest.PlantedSample), io.LimitReader(zeros{}, 2<<20))
	v, err := srv.Client().Scan(context.Background(), body)
	if !errors.Is(err, clamd.ErrLimit) {
		t.Fatalf("past MaxFileSize: %+v, %v; want ErrLimit", v, err)
	}
}

// Within the limits, a large stream is scanned to its end: a signature at its start is found.
func TestScan_LargeStreamWithinLimitsIsScanned(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 101 MiB")
	}
	srv := clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 200 << 20})
	body := io.MultiReader(strings.NewReader(clamdtest.PlantedSample), io.LimitReader(zeros{}, 101<<20))
	v, err := srv.Client().Scan(context.Background(), body)
	if err != nil || v.Clean || v.Signature != clamdtest.PlantedSignature {
		t.Fatalf("101 MiB with the planted sample: %+v, %v", v, err)
	}
}
