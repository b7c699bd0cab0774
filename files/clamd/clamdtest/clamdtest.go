// Package clamdtest runs a real clamd for tests, with a small signature database of its own
// (the machine has no network for freshclam, and the official databases take clamd half a
// minute and a gigabyte to load). A start takes well under a second.
package clamdtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"tutela/files/clamd"
)

// Binary is where Debian's clamav-daemon installs clamd.
const Binary = "/usr/sbin/clamd"

// PlantedSample is content that the test database flags: a random-looking marker matched
// anywhere in a file's (or an archive entry's) body by an .ndb signature. Unlike EICAR it can be
// put inside other content (a DOCX paragraph, a ZIP entry) and is found there.
const PlantedSample = "tutela-planted-0471d242e0981f53f78a126ae3e6baf0"

// EICAR is the standard anti-virus test file (eicar.org), matched by its MD5 and size from an
// .hdb: only the file exactly, as the standard says. It is built from two halves so that a
// scanner on a developer's machine does not quarantine this source file.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR` + `-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Signature names as clamd reports them; it marks every signature outside its official
// databases ".UNOFFICIAL".
const (
	PlantedSignature = "Tutela.Test.PlantedSample.UNOFFICIAL"
	EICARSignature   = "Tutela.Test.EICAR.UNOFFICIAL"
)

// Options configure the clamd that Start runs.
type Options struct {
	// StreamMaxLength is the most bytes clamd accepts in one INSTREAM (default 4 MiB, small so
	// that tests of the limit stream little).
	StreamMaxLength int64
	// MaxFileSize is clamd's MaxFileSize and MaxScanSize (default StreamMaxLength): smaller,
	// clamd stops scanning content past it and, with AlertExceedsMax, says so.
	MaxFileSize int64
}

// Server is a clamd started for a test, listening only on the unix socket Socket.
type Server struct {
	// Socket is the path of clamd's unix socket.
	Socket string

	conf, log string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start writes a clamd.conf and a signature database into a temporary directory, starts
// /usr/sbin/clamd in the foreground and waits until it answers PING. Without clamd the test is
// skipped, or fails when CI=true. clamd is stopped when the test ends.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("clamd is required in CI (apt-get install clamav-daemon): %v", err)
		}
		t.Skipf("clamd not installed (apt-get install clamav-daemon): %v", err)
	}
	if opt.StreamMaxLength <= 0 {
		opt.StreamMaxLength = 4 << 20
	}
	if opt.MaxFileSize <= 0 {
		opt.MaxFileSize = opt.StreamMaxLength
	}
	dir := t.TempDir()
	// A unix socket's path has at most 107 bytes, which a TempDir named after a long subtest
	// can pass; the socket gets a short directory of its own.
	sockDir, err := os.MkdirTemp("", "clamd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	db := filepath.Join(dir, "db")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{db, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeDatabase(db); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Socket: filepath.Join(sockDir, "clamd.sock"),
		conf:   filepath.Join(dir, "clamd.conf"),
		log:    filepath.Join(dir, "clamd.log"),
	}
	conf := fmt.Sprintf(`# Written by clamdtest for one test.
Foreground yes
LocalSocket %s
LocalSocketMode 600
FixStaleSocket yes
DatabaseDirectory %s
TemporaryDirectory %s
LogFile %s
LogTime yes
StreamMaxLength %d
MaxFileSize %d
MaxScanSize %d
AlertExceedsMax yes
ScanArchive yes
SelfCheck 0
`, s.Socket, db, tmp, s.log, opt.StreamMaxLength, opt.MaxFileSize, opt.MaxFileSize)
	// As docs/files.md asks of production: every size limit at least the stream's, and content
	// past a limit reported (AlertExceedsMax), never passed as clean unscanned.
	// No User line: clamd then runs as whoever started it (root in CI) without switching.
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	s.start(t)
	return s
}

// writeDatabase writes the two signatures: EICAR by MD5 and size (.hdb: md5:size:name) and the
// planted sample as a body signature in any file type at any offset (.ndb:
// name:target:offset:hex). clamd refuses to start with no signatures at all.
func writeDatabase(dir string) error {
	sum := md5.Sum([]byte(EICAR))
	hdb := fmt.Sprintf("%s:%d:Tutela.Test.EICAR\n", hex.EncodeToString(sum[:]), len(EICAR))
	ndb := fmt.Sprintf("Tutela.Test.PlantedSample:0:*:%s\n", hex.EncodeToString([]byte(PlantedSample)))
	if err := os.WriteFile(filepath.Join(dir, "test.hdb"), []byte(hdb), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "test.ndb"), []byte(ndb), 0o600)
}

// Client returns a client of this clamd with short timeouts fit for tests.
func (s *Server) Client() *clamd.Client {
	return &clamd.Client{Network: "unix", Address: s.Socket, Timeout: 30 * time.Second, DialTimeout: 5 * time.Second}
}

// Stop kills clamd (as a crash would: the socket file stays, and connecting to it is refused)
// and waits for it to exit. It can be called any number of times.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts clamd again on the same socket, with the same configuration and database.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(Binary, "--config-file="+s.conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting clamd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	// Wait for PING: clamd creates the socket only after it loaded the database. The bound is
	// for a machine under load, not an expectation of speed.
	c := s.Client()
	c.Timeout, c.DialTimeout = time.Second, time.Second
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.Ping(context.Background())
		if err == nil {
			return
		}
		select {
		case <-done:
			s.cmd = nil
			t.Fatalf("clamd exited before answering PING: %v\n%s\n%s", cmd.ProcessState, out.String(), s.readLog())
		default:
		}
		if time.Now().After(deadline) || !errors.Is(err, clamd.ErrUnavailable) && !errors.Is(err, clamd.ErrTimeout) {
			t.Fatalf("clamd does not answer PING: %v\n%s", err, s.readLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) readLog() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no clamd log: " + err.Error() + ")"
	}
	return "clamd log:\n" + string(b)
}

// String names the server for test output.
func (s *Server) String() string { return "clamd at " + strconv.Quote(s.Socket) }
