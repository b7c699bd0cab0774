package blob

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Local stores blobs in a directory: dir/ab/cd/<key> for a key starting "abcd", temporaries in
// dir/tmp. Files are 0600 and directories 0700; a blob appears under its name only once its
// bytes are on disk (write a temporary, fsync, rename, fsync the directory), so a crash leaves
// a whole blob or a temporary for CleanTemp, never a partial blob under a valid name.
type Local struct {
	dir string
	tmp string
	now func() time.Time // CleanTemp's clock
}

var _ Store = (*Local)(nil)

// localWriteBuffer batches small writes; Encrypt writes whole 1 MiB segments, which pass
// through unbuffered.
const localWriteBuffer = 64 << 10

// NewLocal returns a store in dir, creating it (0700) and its temporary directory if missing.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("blob: local store needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: local store directory: %w", err)
	}
	l := &Local{dir: abs, tmp: filepath.Join(abs, "tmp"), now: time.Now}
	for _, d := range []string{l.dir, l.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blob: creating local store directory: %w", err)
		}
	}
	return l, nil
}

// path returns where key's blob lives; the caller has checked ValidKey, so key is plain hex
// and cannot name anything outside dir.
func (l *Local) path(key string) string {
	return filepath.Join(l.dir, key[0:2], key[2:4], key)
}

// Create starts a blob in a new temporary file, created exclusively (O_EXCL) under a random
// name so it can neither collide with nor be redirected to an existing file.
func (l *Local) Create(ctx context.Context) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := randomName()
	if err != nil {
		return nil, fmt.Errorf("blob: naming a temporary: %w", err)
	}
	path := filepath.Join(l.tmp, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- a path built from the configured root and a server-generated ID
	if err != nil {
		return nil, fmt.Errorf("blob: creating a temporary: %w", err)
	}
	return &localWriter{l: l, f: f, path: path, buf: bufio.NewWriterSize(f, localWriteBuffer), h: sha256.New()}, nil
}

type localWriter struct {
	l    *Local
	f    *os.File
	path string
	buf  *bufio.Writer
	h    hash.Hash
	size int64
	err  error // sticky write error: a blob with a hole must not be committed
	done bool  // committed or aborted
}

func (w *localWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.buf.Write(p)
	w.h.Write(p[:n])
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("blob: writing: %w", err)
		return n, w.err
	}
	return n, nil
}

// Commit fsyncs the temporary, renames it to its content address and fsyncs the directories
// that changed, so a committed blob survives a crash. On any failure the temporary is removed.
func (w *localWriter) Commit(ctx context.Context) (string, int64, error) {
	if w.done {
		return "", 0, errFinished
	}
	key, err := w.commit(ctx)
	if err != nil {
		_ = w.Abort()
		return "", 0, err
	}
	w.done = true
	return key, w.size, nil
}

func (w *localWriter) commit(ctx context.Context) (string, error) {
	if w.err != nil {
		return "", w.err
	}
	if err := w.buf.Flush(); err != nil {
		return "", fmt.Errorf("blob: writing: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("blob: syncing: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("blob: closing: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key := hex.EncodeToString(w.h.Sum(nil))
	final := w.l.path(key)
	if err := mkdirSynced(filepath.Dir(filepath.Dir(final))); err != nil {
		return "", err
	}
	if err := mkdirSynced(filepath.Dir(final)); err != nil {
		return "", err
	}
	// Same bytes already stored under this name: the rename replaces them with identical
	// bytes, atomically, and repairs a damaged copy.
	if err := os.Rename(w.path, final); err != nil {
		return "", fmt.Errorf("blob: renaming into place: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return "", err
	}
	return key, nil
}

// Abort closes and removes the temporary. After Commit it does nothing.
func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	_ = w.f.Close() // may already be closed by a failed Commit
	if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: removing a temporary: %w", err)
	}
	return nil
}

// mkdirSynced creates dir (0700) if missing and then fsyncs its parent, so the new directory
// entry is durable before a blob is renamed into it.
func mkdirSynced(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blob: creating a directory: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- a directory under the configured root
	if err != nil {
		return fmt.Errorf("blob: opening a directory to sync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob: syncing a directory: %w", err)
	}
	return nil
}

// Open streams key's blob, verifying it against its name at the end.
func (l *Local) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if !ValidKey(key) {
		return nil, ErrInvalidKey
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blob: opening: %w", err)
	}
	return newVerifyingReader(f, key), nil
}

// Delete removes key's blob; a missing blob is not an error.
func (l *Local) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return ErrInvalidKey
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := l.path(key)
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blob: deleting: %w", err)
	}
	// Durable like a commit: a deleted blob must not come back after a crash.
	return syncDir(filepath.Dir(path))
}

// Objects lists every file under the directory, as slash-separated paths relative to it
// ("ab/cd/<key>", "tmp/<name>").
func (l *Local) Objects(ctx context.Context) ([]string, error) {
	var out []string
	err := filepath.WalkDir(l.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(l.dir, path)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob: listing: %w", err)
	}
	return out, nil
}

// Check reports whether a blob could be written: it creates and removes a temporary.
func (l *Local) Check(ctx context.Context) error {
	w, err := l.Create(ctx)
	if err != nil {
		return err
	}
	return w.Abort()
}

// CleanTemp removes temporaries last written more than olderThan ago: what uploads left behind
// when the process died between Create and Commit or Abort. Call it at start-up, with olderThan
// longer than any upload may stall, so an upload still in progress is never cut off. It returns
// how many it removed.
func (l *Local) CleanTemp(olderThan time.Duration) (int, error) {
	entries, err := os.ReadDir(l.tmp)
	if err != nil {
		return 0, fmt.Errorf("blob: listing temporaries: %w", err)
	}
	cutoff := l.now().Add(-olderThan)
	removed := 0
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !info.Mode().IsRegular() || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(l.tmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("blob: cleaning temporaries: %w", err)
	}
	return removed, nil
}
