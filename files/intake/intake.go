// Package intake takes a file in and lets it out again (issue 17). An upload streams through
// one pass: its bytes are counted against the tenant's limits, hashed, judged by
// files/inspect (in a goroutine of its own, fed through a pipe), and encrypted under a fresh
// data key into a temporary blob. Only when the whole body arrived and the inspector accepted it
// is the blob committed under its content address and the file recorded, in one transaction
// with its audit event and the job that guarantees its malware scan. A refused or broken upload
// aborts the blob: nothing of it remains.
//
// The scan (ClamAV, files/clamd) reads the blob back, decrypted, right after the upload; when
// the scanner is down or slow the file stays quarantined (it cannot be downloaded) and the
// files.scan job tries again with backoff until the scanner answers.
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/files"
	"tutela/files/blob"
	"tutela/files/clamd"
	"tutela/files/inspect"
	"tutela/sqlstore"
	"tutela/vault"
)

// Scanner scans content for malware (a *clamd.Client).
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (clamd.Verdict, error)
}

// Service is the file intake of one node.
type Service struct {
	DB    *sqlstore.DB
	Blobs blob.Store
	// Scanner judges stored files. Nil only when the operator switched malware scanning off
	// (files.malware_scan: false): files are then available unscanned, marked "not_scanned".
	Scanner Scanner
	// ScanTimeout bounds one scan (default 2 min).
	ScanTimeout time.Duration
	// ScanMaxSize is the largest file the scanner is known to judge whole (clamd's MaxFileSize,
	// MaxScanSize and StreamMaxLength are at least this; config files.scan_max_size). A larger
	// file is never sent: clamd would answer "OK" for content past its limits without having
	// scanned it, so it stays quarantined (scanner_limit). 0: no bound.
	ScanMaxSize int64
	// DBTimeout bounds each of the intake's transactions (default 5 s): uploads and downloads
	// run for as long as their bodies take, so the API's per-request bound cannot cover them.
	DBTimeout time.Duration
	Log       *slog.Logger
}

// Upload is one file coming in.
type Upload struct {
	TenantID       string
	SubjectID      string // optional: the data subject the file belongs to
	Classification string // GREEN, YELLOW (default) or RED
	Name           string // the uploader's file name
	DeclaredType   string // declared Content-Type ("" or application/octet-stream: none)
	// DeclaredSize is the size the uploader announced (-1: none). A body longer or shorter is
	// refused (size_mismatch), and reading stops one byte past it.
	DeclaredSize int64
	UploadedBy   string
	Body         io.Reader
	// Policy is the tenant's file policy (read by the caller with its authorization).
	Policy files.Policy
}

// bufSize is the unit an upload is read, hashed, inspected and encrypted in; pipeDepth how
// many such chunks may wait for the inspector (memory: about pipeDepth+2 chunks per upload).
const (
	bufSize   = 256 << 10
	pipeDepth = 4
)

// blobAAD binds a blob's ciphertext to its tenant and file: a blob copied under another
// file's row does not decrypt.
func blobAAD(tenantID, fileID string) []byte { return vault.LengthPrefixed("files", tenantID, fileID) }

// Upload takes u in. It returns the recorded file (available once scanned clean, or quarantined
// while the scanner gives no verdict), or a file_refused error with its reason, after which
// nothing of the upload remains in the blob store. Refusals by content are audited as
// file.refused, malware as file.malware_found (the file's row stays, status infected).
func (s *Service) Upload(ctx context.Context, u Upload) (*files.File, error) {
	if u.Classification == "" {
		u.Classification = "YELLOW"
	}
	switch u.Classification {
	case "GREEN", "YELLOW", "RED":
	default:
		return nil, tutela.FieldErrorf("classification", "classification must be GREEN, YELLOW or RED")
	}
	fileID := tutela.NewID()
	f, err := s.receive(ctx, fileID, u)
	if err != nil {
		if reason := files.RefusalReason(err); reason != "" {
			s.recordRefusal(ctx, u, fileID, reason)
		}
		return nil, err
	}
	out, err := s.scan(ctx, f.TenantID, f.ID, true)
	switch {
	case errors.Is(err, ErrStillQuarantined):
		// Stored and safe: it waits in quarantine for the scanner (the files.scan job).
		return out, nil
	case err != nil:
		return nil, err
	case out.Status == files.StatusInfected:
		// Refused like any other hostile file; its blob is gone, its row is the record.
		return nil, files.Refused(files.ReasonMalware, "the malware scan found %s", out.ScanResult)
	}
	return out, nil
}

// receive streams the body into an encrypted blob and records the file.
func (s *Service) receive(ctx context.Context, fileID string, u Upload) (_ *files.File, err error) {
	dek, err := blob.NewDEK()
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	w, err := s.Blobs.Create(ctx)
	if err != nil {
		return nil, tutela.Wrap(err, "the file store is not available")
	}
	defer func() {
		if err != nil {
			if aerr := w.Abort(); aerr != nil {
				s.log().Error("files: abort of a refused upload failed", "file", fileID, "error", aerr)
			}
		}
	}()
	enc, err := blob.Encrypt(w, dek, blobAAD(u.TenantID, fileID))
	if err != nil {
		return nil, err
	}

	// The inspector reads what the loop below writes, in its own goroutine, and hashes it
	// there too, so hashing and inspecting one chunk overlap encrypting the next.
	pipe := newChunkPipe(pipeDepth, bufSize)
	type verdict struct {
		res inspect.Result
		err error
	}
	done := make(chan verdict, 1)
	sum := sha256.New()
	go func() {
		defer func() {
			// A parser's panic on hostile input is this upload's failure, not the server's.
			if p := recover(); p != nil {
				s.log().Error("files: inspector panicked", "file", fileID, "panic", fmt.Sprint(p))
				pipe.CloseRead(errInspectorDone)
				done <- verdict{err: fmt.Errorf("files: inspector panicked: %v", p)}
			}
		}()
		res, err := inspect.Inspect(hashingReader{pipe, sum}, inspect.Input{Name: u.Name, DeclaredType: u.DeclaredType, Policy: &u.Policy})
		if err == nil {
			// Whatever the inspector left unread is still hashed.
			_, err = io.Copy(io.Discard, hashingReader{pipe, sum})
		}
		pipe.CloseRead(errInspectorDone)
		done <- verdict{res, err}
	}()
	n, rerr := s.pump(u, enc, pipe)
	pipe.CloseWithError(rerr)
	v := <-done
	// The inspector's refusal comes first: it is why the pump stopped, when it stopped early.
	if v.err != nil && files.RefusalReason(v.err) != "" {
		return nil, v.err
	}
	if rerr != nil {
		return nil, rerr
	}
	if v.err != nil {
		return nil, fmt.Errorf("files: inspect: %w", v.err)
	}
	if err := enc.Close(); err != nil {
		return nil, tutela.Wrap(err, "the file could not be stored")
	}
	key, _, err := w.Commit(ctx)
	if err != nil {
		return nil, tutela.Wrap(err, "the file could not be stored")
	}
	f := &files.File{ID: fileID, TenantID: u.TenantID, SubjectID: u.SubjectID, Name: u.Name,
		DeclaredType: u.DeclaredType, DetectedType: v.res.Type, Extension: v.res.Extension, Size: n,
		SHA256: hex.EncodeToString(sum.Sum(nil)), Classification: u.Classification,
		Status: files.StatusQuarantined, QuarantineReason: files.QuarantinePending, UploadedBy: u.UploadedBy, BlobKey: key}
	err = s.update(ctx, func(ctx context.Context, tx *sqlstore.Tx) error {
		wrapped, name, err := tx.SealFile(ctx, u.TenantID, u.SubjectID, fileID, dek, u.Name)
		if err != nil {
			return err
		}
		f.WrappedDEK, f.NameSealed = wrapped, name
		if err := tx.Files(u.TenantID).Create(ctx, f); err != nil {
			return err
		}
		// Not the content's hash: the log is append-only, and a subject's erasure must not
		// leave a fingerprint of their documents behind (the files row forgets it).
		return tx.Record(ctx, "file.uploaded", u.TenantID, "file", fileID, "", map[string]any{
			"type": f.DetectedType, "declared_type": f.DeclaredType, "size": f.Size,
			"classification": f.Classification, "subject_id": f.SubjectID})
	})
	if err != nil {
		// Committed but not recorded: the blob is nobody's; remove it now.
		if derr := s.Blobs.Delete(context.WithoutCancel(ctx), key); derr != nil {
			s.log().Error("files: removing the blob of an unrecorded upload failed", "blob", key, "error", derr)
		}
		return nil, err
	}
	return f, nil
}

// errInspectorDone stops the pump once the inspector has returned.
var errInspectorDone = errors.New("files: inspector finished")

type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (h hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// pump copies the body to the encrypter and the inspector, enforcing the size limits. It
// returns the number of bytes taken, or why the body was refused.
func (s *Service) pump(u Upload, enc io.Writer, insp io.Writer) (int64, error) {
	limit := u.Policy.MaxSize
	if u.DeclaredSize > limit {
		return 0, files.Refused(files.ReasonTooLarge, "the file is larger than the %d bytes this tenant accepts", limit)
	}
	buf := make([]byte, bufSize)
	var n int64
	for {
		k, rerr := u.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			switch {
			case u.DeclaredSize >= 0 && n > u.DeclaredSize:
				return n, files.Refused(files.ReasonSizeMismatch, "the body is longer than the declared %d bytes", u.DeclaredSize)
			case n > limit:
				return n, files.Refused(files.ReasonTooLarge, "the file is larger than the %d bytes this tenant accepts", limit)
			}
			if _, err := insp.Write(buf[:k]); err != nil {
				// The inspector returned: a refusal (reported by the caller) or its end.
				return n, err
			}
			if _, err := enc.Write(buf[:k]); err != nil {
				return n, tutela.Wrap(err, "the file could not be stored")
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, BodyError(rerr, limit)
		}
	}
	if u.DeclaredSize >= 0 && n != u.DeclaredSize {
		return n, files.Refused(files.ReasonSizeMismatch, "the body has %d bytes, not the declared %d", n, u.DeclaredSize)
	}
	return n, nil
}

// BodyError says why reading an upload's body failed: past the tenant's limit (http.MaxBytesReader)
// too_large, a *tutela.Error as it is, anything else (an early end, a reset connection, a
// cancelled request) truncated.
func BodyError(err error, limit int64) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return files.Refused(files.ReasonTooLarge, "the file is larger than the %d bytes this tenant accepts", limit)
	}
	if te := (*tutela.Error)(nil); errors.As(err, &te) {
		return err
	}
	// An early end (io.ErrUnexpectedEOF from a short Content-Length or a multipart body
	// without its closing boundary), a reset connection, a cancelled request: all the same
	// to the uploader.
	return files.Refused(files.ReasonTruncated, "the upload ended before the file was complete")
}

// recordRefusal audits a refused upload (in its own transaction: nothing else was written).
func (s *Service) recordRefusal(ctx context.Context, u Upload, fileID, reason string) {
	// Recorded even when the uploader hung up right after the last byte (a prober would
	// otherwise leave no trace).
	err := s.update(context.WithoutCancel(ctx), func(ctx context.Context, tx *sqlstore.Tx) error {
		return tx.Record(ctx, "file.refused", u.TenantID, "file", fileID, audit.OutcomeFailure, map[string]any{
			"reason": reason, "declared_type": clip(u.DeclaredType, 255), "subject_id": clip(u.SubjectID, 64)})
	})
	if err != nil {
		s.log().Error("files: recording a refused upload failed", "file", fileID, "error", err)
	}
}

// clip bounds an uploader's string on its way to the audit log.
func clip(v string, n int) string {
	if len(v) <= n {
		return v
	}
	return strings.ToValidUTF8(v[:n], "")
}

// update runs fn in a write transaction bounded by DBTimeout, fn getting the bounded context.
func (s *Service) update(ctx context.Context, fn func(ctx context.Context, tx *sqlstore.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.dbTimeout())
	defer cancel()
	return s.DB.Update(ctx, func(tx *sqlstore.Tx) error { return fn(ctx, tx) })
}

// view is update for a read transaction.
func (s *Service) view(ctx context.Context, fn func(ctx context.Context, tx *sqlstore.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.dbTimeout())
	defer cancel()
	return s.DB.View(ctx, func(tx *sqlstore.Tx) error { return fn(ctx, tx) })
}

func (s *Service) dbTimeout() time.Duration {
	if s.DBTimeout <= 0 {
		return 5 * time.Second
	}
	return s.DBTimeout
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
