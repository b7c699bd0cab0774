package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/files"
	"tutela/files/blob"
	"tutela/files/clamd"
	"tutela/jobs"
	"tutela/sqlstore"
)

// DefaultScanTimeout bounds one scan when Service.ScanTimeout is unset; InlineScanTimeout the
// scan an uploader waits for (the job's retries get the full ScanTimeout).
const (
	DefaultScanTimeout = 2 * time.Minute
	InlineScanTimeout  = 30 * time.Second
)

// Scan runs the malware scan of a quarantined file and records the outcome: available when
// clean, infected (blob removed, key shredded) when a signature matched, still quarantined
// with the reason when the scanner could not give a verdict. A file that is not quarantined is
// returned as it is. The error is nil whenever the outcome was recorded; ErrStillQuarantined
// (with the file) tells the scan job to try again later.
func (s *Service) Scan(ctx context.Context, tenantID, fileID string) (*files.File, error) {
	return s.scan(ctx, tenantID, fileID, false)
}

// scan is Scan; justUploaded is true for the scan that ends an upload. With scanning switched
// off only that one passes a file unscanned: a file quarantined while scanning was required
// waits for a scanner, so switching scanning off for a moment never releases the backlog.
func (s *Service) scan(ctx context.Context, tenantID, fileID string, justUploaded bool) (*files.File, error) {
	var f *files.File
	var dek []byte
	err := s.view(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
		var err error
		if f, err = tx.Files(tenantID).Get(ctx, fileID); err != nil || f.Status != files.StatusQuarantined {
			return err
		}
		dek, _, err = tx.OpenFile(ctx, f)
		return err
	})
	if err != nil || f.Status != files.StatusQuarantined {
		return f, err
	}
	defer clear(dek)
	if s.Scanner == nil && !justUploaded {
		return f, ErrStillQuarantined
	}

	rec, verdict := s.judge(ctx, f, dek, justUploaded)
	var out *files.File
	// Recorded even if the caller went away meanwhile: the verdict is the file's, not the
	// request's.
	err = s.update(context.WithoutCancel(ctx), func(ctx context.Context, tx *sqlstore.Tx) error {
		var err error
		if out, err = tx.Files(tenantID).RecordScan(ctx, fileID, rec); err != nil {
			return err
		}
		details := map[string]any{"status": string(rec.Status), "attempt": out.ScanAttempts}
		action, outcome := "file.scanned", audit.OutcomeSuccess
		switch {
		case rec.Status == files.StatusInfected:
			action, outcome = "file.malware_found", audit.OutcomeFailure
			details["signature"] = verdict.Signature
		case rec.Status == files.StatusQuarantined:
			action, outcome = "file.scan_failed", audit.OutcomeError
			details["reason"] = rec.QuarantineReason
		}
		return tx.Record(ctx, action, tenantID, "file", fileID, outcome, details)
	})
	if tutela.ErrorCode(err) == tutela.ECONFLICT {
		// Another node recorded a scan meanwhile: its outcome stands.
		return s.get(ctx, tenantID, fileID)
	}
	if err != nil {
		return nil, err
	}
	switch out.Status {
	case files.StatusInfected:
		// Removed now; the purge job enqueued with the verdict removes it if this fails.
		if err := s.Purge(context.WithoutCancel(ctx), tenantID, fileID); err != nil {
			s.log().Warn("files: removing an infected blob failed; the purge job will retry", "file", fileID, "error", err)
		}
	case files.StatusQuarantined:
		return out, ErrStillQuarantined
	}
	return out, nil
}

// ErrStillQuarantined means a scan gave no verdict (scanner down, slow or refusing): the file
// stays quarantined and must be scanned again.
var ErrStillQuarantined = errors.New("files: the scanner gave no verdict; the file stays quarantined")

// judge scans f's content and says what to record.
func (s *Service) judge(ctx context.Context, f *files.File, dek []byte, justUploaded bool) (sqlstore.ScanRecord, clamd.Verdict) {
	if s.Scanner == nil {
		return sqlstore.ScanRecord{Status: files.StatusAvailable, Result: files.ScanNotScanned}, clamd.Verdict{}
	}
	if s.ScanMaxSize > 0 && f.Size > s.ScanMaxSize {
		return sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineLimit}, clamd.Verdict{}
	}
	timeout := s.ScanTimeout
	if timeout <= 0 {
		timeout = DefaultScanTimeout
	}
	if justUploaded {
		// The uploader waits for this one: a scanner that hangs leaves the file quarantined
		// after InlineScanTimeout, and the files.scan job gives it the full ScanTimeout.
		timeout = min(timeout, InlineScanTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := s.open(ctx, f, dek)
	if err != nil {
		s.log().Error("files: reading a quarantined file for its scan failed", "file", f.ID, "error", err)
		return sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineError}, clamd.Verdict{}
	}
	defer rc.Close()
	v, err := s.Scanner.Scan(ctx, rc)
	switch {
	case err == nil && v.Clean:
		return sqlstore.ScanRecord{Status: files.StatusAvailable, Result: files.ScanClean}, v
	case err == nil:
		return sqlstore.ScanRecord{Status: files.StatusInfected, Result: v.Signature}, v
	case errors.Is(err, clamd.ErrUnavailable):
		s.log().Warn("files: the malware scanner cannot be reached; the file waits in quarantine", "file", f.ID, "error", err)
		return sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineUnavailable}, v
	case errors.Is(err, clamd.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		s.log().Warn("files: the malware scanner did not answer in time; the file waits in quarantine", "file", f.ID,
			"timeout", timeout)
		return sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineTimeout}, v
	case errors.Is(err, clamd.ErrLimit):
		s.log().Warn("files: the file is larger than the malware scanner judges; it stays in quarantine", "file", f.ID,
			"size", f.Size)
		return sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineLimit}, v
	default:
		s.log().Warn("files: scan failed", "file", f.ID, "error", err)
		return sqlstore.ScanRecord{Status: files.StatusQuarantined, QuarantineReason: files.QuarantineError}, v
	}
}

// open returns f's plaintext, decrypted from its blob with dek.
func (s *Service) open(ctx context.Context, f *files.File, dek []byte) (io.ReadCloser, error) {
	if f.BlobKey == "" {
		return nil, sqlstore.ErrFileShredded
	}
	rc, err := s.Blobs.Open(ctx, f.BlobKey)
	if err != nil {
		return nil, err
	}
	pt, err := blob.Decrypt(rc, dek, blobAAD(f.TenantID, f.ID))
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return readCloser{pt, rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Content returns an available file's plaintext for a download: the caller has authorized
// the download and opened the data key (sqlstore.Tx.OpenFile). Tampering with the blob is a
// read error, never altered content.
func (s *Service) Content(ctx context.Context, f *files.File, dek []byte) (io.ReadCloser, error) {
	if err := f.Downloadable(); err != nil {
		return nil, err
	}
	return s.open(ctx, f, dek)
}

// Purge removes the blob of a file that was deleted, found infected or erased, and clears its
// blob key. Idempotent: a file already purged, or still live, is left as it is.
func (s *Service) Purge(ctx context.Context, tenantID, fileID string) error {
	f, err := s.get(ctx, tenantID, fileID)
	if err != nil {
		return err
	}
	switch f.Status {
	case files.StatusInfected, files.StatusDeleted, files.StatusErased:
	default:
		return nil
	}
	if f.BlobKey == "" {
		return nil
	}
	if err := s.Blobs.Delete(ctx, f.BlobKey); err != nil {
		return fmt.Errorf("files: remove blob of %s: %w", fileID, err)
	}
	return s.update(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
		return tx.Files(tenantID).BlobRemoved(ctx, fileID, f.BlobKey)
	})
}

func (s *Service) get(ctx context.Context, tenantID, fileID string) (*files.File, error) {
	var f *files.File
	err := s.view(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
		var err error
		f, err = tx.Files(tenantID).Get(ctx, fileID)
		return err
	})
	return f, err
}

// Register adds the intake's job kinds to q: files.scan (the scan that did not finish at
// upload, retried with backoff for about three days while the scanner is away) and files.purge
// (removing the blob of a deleted, infected or erased file).
func (s *Service) Register(q *jobs.Queue) {
	timeout := s.ScanTimeout
	if timeout <= 0 {
		timeout = DefaultScanTimeout
	}
	q.Register(jobs.Kind{Name: files.JobScan, MaxAttempts: 72, Timeout: timeout + 30*time.Second,
		Handle: func(ctx context.Context, tenantID string, payload []byte) error {
			_, err := s.Scan(ctx, tenantID, string(payload))
			if tutela.ErrorCode(err) == tutela.ENOTFOUND {
				return nil // deleted or erased meanwhile
			}
			return err
		}})
	q.Register(jobs.Kind{Name: files.JobPurge, MaxAttempts: 20,
		Handle: func(ctx context.Context, tenantID string, payload []byte) error {
			err := s.Purge(ctx, tenantID, string(payload))
			if tutela.ErrorCode(err) == tutela.ENOTFOUND {
				return nil
			}
			return err
		}})
}
