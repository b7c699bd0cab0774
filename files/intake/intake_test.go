package intake_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"tutela"
	"tutela/files"
	"tutela/files/blob"
	"tutela/files/clamd"
	"tutela/files/clamd/clamdtest"
	"tutela/files/intake"
	"tutela/jobs"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

var ctx = context.Background()

// kit is an intake over a fresh store of one dialect, a local blob store and a real clamd.
type kit struct {
	db     *sqlstore.DB
	now    *clock
	blobs  blob.Store
	dir    string
	clamd  *clamdtest.Server
	svc    *intake.Service
	tenant string
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newKit(t *testing.T, d sqlstore.Dialect, scanner bool) *kit { return newKitTB(t, d, scanner) }

func newKitTB(t testing.TB, d sqlstore.Dialect, scanner bool) *kit {
	t.Helper()
	c := &clock{t: time.Now().UTC()}
	db := sqltest.Open(t, d, sqlstore.Options{Clock: c.Now})
	sqltest.AttachVaultAt(t, db, c.Now)
	dir := t.TempDir()
	bl, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := &kit{db: db, now: c, blobs: bl, dir: dir}
	k.svc = &intake.Service{DB: db, Blobs: bl, ScanTimeout: 20 * time.Second}
	if scanner {
		k.clamd = clamdtest.Start(t, clamdtest.Options{})
		k.svc.Scanner = k.clamd.Client()
	}
	tn := &tutela.Tenant{Slug: "acme", Name: "Acme", Region: "eu-west"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
		t.Fatal(err)
	}
	k.tenant = tn.ID
	return k
}

func (k *kit) upload(name, typ string, body []byte) (*files.File, error) {
	return k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: name, DeclaredType: typ,
		DeclaredSize: int64(len(body)), UploadedBy: "tester", Body: bytes.NewReader(body), Policy: files.DefaultPolicy()})
}

// content reads an available file back through its data key.
func (k *kit) content(t *testing.T, f *files.File) ([]byte, error) {
	t.Helper()
	var dek []byte
	var cur *files.File
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
		var err error
		if cur, err = tx.Files(k.tenant).Get(ctx, f.ID); err != nil {
			return err
		}
		dek, _, err = tx.OpenFile(ctx, cur)
		return err
	}); err != nil {
		return nil, err
	}
	rc, err := k.svc.Content(ctx, cur, dek)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (k *kit) objects(t *testing.T) []string {
	t.Helper()
	objs, err := k.blobs.Objects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func (k *kit) auditActions(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: k.tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		b.WriteString(r.Event.Action + " ")
	}
	return b.String()
}

const csv = "name,city\nAda,London\nGrace,Arlington\n"

func TestUpload_CleanFileIsStoredEncryptedAndReadBack(t *testing.T) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			k := newKit(t, d, true)
			f, err := k.upload("people.csv", "text/csv", []byte(csv))
			if err != nil {
				t.Fatal(err)
			}
			if f.Status != files.StatusAvailable || f.ScanResult != "clean" || f.DetectedType != files.TypeCSV || f.Size != int64(len(csv)) {
				t.Fatalf("file = %+v", f)
			}
			got, err := k.content(t, f)
			if err != nil || string(got) != csv {
				t.Fatalf("content = %q, %v", got, err)
			}
			// On disk: one blob, named by its own hash, holding no plaintext.
			objs := k.objects(t)
			if len(objs) != 1 {
				t.Fatalf("objects = %v", objs)
			}
			raw := readBlobFile(t, k.dir, f.BlobKey)
			if bytes.Contains(raw, []byte("Grace")) || bytes.Contains(raw, []byte("Arlington")) {
				t.Fatal("the blob holds plaintext")
			}
			for _, want := range []string{"file.uploaded", "file.scanned"} {
				if !strings.Contains(k.auditActions(t), want) {
					t.Errorf("audit lacks %s", want)
				}
			}
		})
	}
}

// readBlobFile finds the committed blob's file under dir (any layout) by its name.
func readBlobFile(t *testing.T, dir, key string) []byte {
	t.Helper()
	var found []byte
	_ = filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && de.Name() == key {
			found, _ = os.ReadFile(p)
		}
		return nil
	})
	if found == nil {
		t.Fatalf("blob %s not on disk", key)
	}
	return found
}

func TestUpload_RefusalsLeaveNothingBehind(t *testing.T) {
	k := newKit(t, sqlstore.SQLite, true)
	exe := append([]byte("MZ"), bytes.Repeat([]byte{0}, 58)...)
	exe = append(exe, 0x40, 0, 0, 0)
	exe = append(exe, []byte("PE\x00\x00")...)
	exe = append(exe, bytes.Repeat([]byte{0}, 200)...)
	cases := []struct {
		name   string
		upload func() (*files.File, error)
		reason string
	}{
		{"executable as png", func() (*files.File, error) { return k.upload("logo.png", "image/png", exe) }, files.ReasonExecutable},
		{"eicar", func() (*files.File, error) { return k.upload("notes.txt", "text/plain", []byte(clamdtest.EICAR)) }, files.ReasonMalware},
		{"planted sample in a csv", func() (*files.File, error) {
			return k.upload("data.csv", "text/csv", []byte("a,b\n"+clamdtest.PlantedSample+",1\n"))
		}, files.ReasonMalware},
		{"longer than declared", func() (*files.File, error) {
			return k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "a.csv", DeclaredType: "text/csv", DeclaredSize: 4,
				Body: strings.NewReader(csv), Policy: files.DefaultPolicy()})
		}, files.ReasonSizeMismatch},
		{"shorter than declared", func() (*files.File, error) {
			return k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "a.csv", DeclaredType: "text/csv", DeclaredSize: 1000,
				Body: strings.NewReader(csv), Policy: files.DefaultPolicy()})
		}, files.ReasonSizeMismatch},
		{"over the tenant's limit", func() (*files.File, error) {
			p := files.DefaultPolicy()
			p.MaxSize = 10
			return k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "a.csv", DeclaredType: "text/csv", DeclaredSize: -1,
				Body: strings.NewReader(csv), Policy: p})
		}, files.ReasonTooLarge},
		{"truncated", func() (*files.File, error) {
			return k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "a.csv", DeclaredType: "text/csv", DeclaredSize: -1,
				Body: io.MultiReader(strings.NewReader(csv), errReader{io.ErrUnexpectedEOF}), Policy: files.DefaultPolicy()})
		}, files.ReasonTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := c.upload()
			if got := files.RefusalReason(err); got != c.reason {
				t.Fatalf("reason = %q (file %+v, err %v), want %q", got, f, err, c.reason)
			}
			if objs := k.objects(t); len(objs) != 0 {
				t.Fatalf("a refused upload left %v", objs)
			}
		})
	}
	actions := k.auditActions(t)
	if !strings.Contains(actions, "file.refused") || !strings.Contains(actions, "file.malware_found") {
		t.Fatalf("audit = %s", actions)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// stallScanner never answers before its context ends.
type stallScanner struct{}

func (stallScanner) Scan(ctx context.Context, r io.Reader) (clamd.Verdict, error) {
	<-ctx.Done()
	return clamd.Verdict{}, clamd.ErrTimeout
}

func TestScan_DownOrSlowScannerQuarantinesUntilItAnswers(t *testing.T) {
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			k := newKit(t, d, true)
			k.clamd.Stop()
			f, err := k.upload("people.csv", "text/csv", []byte(csv))
			if err != nil {
				t.Fatal(err)
			}
			if f.Status != files.StatusQuarantined || f.QuarantineReason != files.QuarantineUnavailable {
				t.Fatalf("with clamd down: %+v", f)
			}
			if _, err := k.content(t, f); tutela.ErrorCode(err) != tutela.EQUARANTINED {
				t.Fatalf("content of a quarantined file: %v", err)
			}

			// A scanner that does not answer in time: still quarantined, for that reason.
			slow := *k.svc
			slow.Scanner, slow.ScanTimeout = stallScanner{}, 50*time.Millisecond
			if f, err = slow.Scan(ctx, k.tenant, f.ID); !errors.Is(err, intake.ErrStillQuarantined) || f.QuarantineReason != files.QuarantineTimeout {
				t.Fatalf("slow scanner: %+v, %v", f, err)
			}

			// The scanner comes back: the files.scan job (enqueued with the upload) clears it.
			k.clamd.Restart(t)
			q := jobs.New(k.db, nil, jobs.Options{})
			k.svc.Register(q)
			k.now.Add(2 * time.Minute)
			if _, err := q.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			var cur *files.File
			if err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
				var err error
				cur, err = tx.Files(k.tenant).Get(ctx, f.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if cur.Status != files.StatusAvailable || cur.ScanAttempts != 3 {
				t.Fatalf("after the scanner came back: %+v", cur)
			}
			if got, err := k.content(t, cur); err != nil || string(got) != csv {
				t.Fatalf("content = %q, %v", got, err)
			}
		})
	}
}

func TestContent_TamperedBlobIsAnErrorNeverOtherBytes(t *testing.T) {
	k := newKit(t, sqlstore.SQLite, false)
	body := bytes.Repeat([]byte("id,value\n1,ok\n"), 200_000) // several segments
	f, err := k.upload("big.csv", "text/csv", body)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != files.StatusAvailable || f.ScanResult != files.ScanNotScanned {
		t.Fatalf("without a scanner: %+v", f)
	}
	var path string
	_ = filepath.WalkDir(k.dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.Name() == f.BlobKey {
			path = p
		}
		return nil
	})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := k.content(t, f)
	if err == nil {
		t.Fatal("a flipped bit in the blob read back without error")
	}
	if len(got) > len(raw)/2 {
		t.Fatalf("%d bytes came out past the tampered segment", len(got))
	}
}

func TestPurge_DeletedFileLosesBlobAndKey(t *testing.T) {
	k := newKit(t, sqlstore.SQLite, false)
	f, err := k.upload("people.csv", "text/csv", []byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Files(k.tenant).Delete(ctx, f.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := k.svc.Purge(ctx, k.tenant, f.ID); err != nil {
		t.Fatal(err)
	}
	if objs := k.objects(t); len(objs) != 0 {
		t.Fatalf("objects after purge: %v", objs)
	}
	if _, err := k.content(t, f); err == nil {
		t.Fatal("a deleted file still reads")
	}
	// Twice is fine (the purge job may run after the request already purged).
	if err := k.svc.Purge(ctx, k.tenant, f.ID); err != nil {
		t.Fatal(err)
	}
}

// The same intake over an S3-compatible bucket (gofakes3 in-process): a large file goes up as a
// multipart upload and reads back; a refused one leaves no object and no unfinished upload.
func TestUpload_S3BucketKeepsOnlyWhatWasAccepted(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("tutela-files"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	store, err := blob.NewS3(ctx, blob.S3Config{Bucket: "tutela-files", Prefix: "prod", Region: "eu-central-1",
		Endpoint: srv.URL, UsePathStyle: true, AccessKeyID: "test", SecretAccessKey: tutela.NewSecret("test-secret"),
		PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	k := newKit(t, sqlstore.SQLite, false)
	k.blobs, k.svc.Blobs = store, store
	k.svc.Scanner = clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 64 << 20}).Client()
	pol := files.DefaultPolicy()
	big := bytes.Repeat([]byte("id,name\n1,Ada\n"), 1<<20) // 15 MiB: three parts
	f, err := k.svc.Upload(ctx, intake.Upload{TenantID: k.tenant, Name: "big.csv", DeclaredType: "text/csv",
		DeclaredSize: int64(len(big)), Body: bytes.NewReader(big), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.content(t, f); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	// Refused late (the planted sample at the end, found by the scan) and early (an
	// executable's header, after the first part went up): nothing of either stays.
	bad := append(bytes.Repeat([]byte("id,name\n1,Ada\n"), 1<<19), []byte(clamdtest.PlantedSample+"\n")...)
	if _, err := k.upload("bad.csv", "text/csv", bad); files.RefusalReason(err) != files.ReasonMalware {
		t.Fatalf("planted sample: %v", err)
	}
	exe := append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{0}, 12<<20)...)
	if _, err := k.upload("x.pdf", "application/pdf", exe); files.RefusalReason(err) != files.ReasonExecutable {
		t.Fatalf("executable: %v", err)
	}
	objs := k.objects(t)
	if len(objs) != 1 || !strings.HasSuffix(objs[0], f.BlobKey) {
		t.Fatalf("bucket holds %v, want only %s", objs, f.BlobKey)
	}
}

// A file larger than the scanner is known to judge whole is never sent (clamd would answer OK
// for what it skipped): it stays quarantined, scanner_limit, and cannot be read.
func TestScan_LargerThanTheScannerJudgesStaysQuarantined(t *testing.T) {
	k := newKit(t, sqlstore.SQLite, true)
	k.svc.ScanMaxSize = 16
	f, err := k.upload("people.csv", "text/csv", []byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != files.StatusQuarantined || f.QuarantineReason != files.QuarantineLimit {
		t.Fatalf("file = %+v", f)
	}
	if _, err := k.content(t, f); tutela.ErrorCode(err) != tutela.EQUARANTINED {
		t.Fatalf("content: %v", err)
	}
}

// Switching scanning off accepts new uploads unscanned, but never releases a file quarantined
// while scanning was required: it waits for a scanner.
func TestScan_SwitchingScanningOffKeepsTheBacklogQuarantined(t *testing.T) {
	k := newKit(t, sqlstore.SQLite, true)
	k.clamd.Stop()
	held, err := k.upload("eicar.txt", "text/plain", []byte(clamdtest.EICAR))
	if err != nil || held.Status != files.StatusQuarantined {
		t.Fatalf("with clamd down: %+v, %v", held, err)
	}
	k.svc.Scanner = nil // files.malware_scan: false
	q := jobs.New(k.db, nil, jobs.Options{})
	k.svc.Register(q)
	k.now.Add(2 * time.Minute)
	if _, err := q.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := k.svc.Scan(ctx, k.tenant, held.ID); !errors.Is(err, intake.ErrStillQuarantined) || f.Status != files.StatusQuarantined {
		t.Fatalf("backlog file with scanning off: %+v, %v", f, err)
	}
	if _, err := k.content(t, held); tutela.ErrorCode(err) != tutela.EQUARANTINED {
		t.Fatalf("backlog file readable: %v", err)
	}
	fresh, err := k.upload("people.csv", "text/csv", []byte(csv))
	if err != nil || fresh.Status != files.StatusAvailable || fresh.ScanResult != files.ScanNotScanned {
		t.Fatalf("new upload with scanning off: %+v, %v", fresh, err)
	}
}

// A blob moved under another file's row (a database writer pointing file B at file A's blob)
// does not open: the content is bound to its tenant and file, and B's key is not A's.
func TestContent_BlobSwappedToAnotherFileDoesNotOpen(t *testing.T) {
	k := newKit(t, sqlstore.SQLite, false)
	a, err := k.upload("a.csv", "text/csv", []byte("secret,a\n1,2\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.upload("b.csv", "text/csv", []byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	// Swapped (blob keys are unique): b's row now names a's blob and the other way round.
	for _, q := range [][2]string{{"", a.ID}, {a.BlobKey, b.ID}, {b.BlobKey, a.ID}} {
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE files SET blob_key = NULLIF($1, '') WHERE id = $2`, q[0], q[1]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := k.content(t, b)
	if err == nil || bytes.Contains(got, []byte("secret")) {
		t.Fatalf("file b read file a's blob: %q, %v", got, err)
	}
}
