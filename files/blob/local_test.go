package blob

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tutela/clocktest"
)

func newTestLocal(t testing.TB) *Local {
	t.Helper()
	l, err := NewLocal(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocal_Conformance(t *testing.T) {
	l := newTestLocal(t)
	testStore(t, l, func(t *testing.T, key string, data []byte) {
		if err := os.WriteFile(l.path(key), data, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLocal_Permissions(t *testing.T) {
	l := newTestLocal(t)
	key, _ := put(t, l, []byte("secret-ish bytes"))
	want := map[string]os.FileMode{
		l.dir:                                   0o700 | os.ModeDir,
		l.tmp:                                   0o700 | os.ModeDir,
		filepath.Join(l.dir, key[:2]):           0o700 | os.ModeDir,
		filepath.Join(l.dir, key[:2], key[2:4]): 0o700 | os.ModeDir,
		l.path(key):                             0o600,
	}
	for path, mode := range want {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeDir); got != mode {
			t.Errorf("%s: mode %v, want %v", path, got, mode)
		}
	}
	w, err := l.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	info, err := os.Stat(w.(*localWriter).path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("temporary: mode %v, want 0600", info.Mode().Perm())
	}
}

// A key that tried to leave the directory must not touch what lies outside it.
func TestLocal_TraversalTouchesNothingOutside(t *testing.T) {
	parent := t.TempDir()
	l, err := NewLocal(filepath.Join(parent, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(parent, "x")
	if err := os.WriteFile(outside, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"../x", "../../x", outside} {
		if err := l.Delete(ctx, key); err == nil {
			t.Fatalf("Delete(%q) accepted", key)
		}
		if _, err := l.Open(ctx, key); err == nil {
			t.Fatalf("Open(%q) accepted", key)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep me" {
		t.Fatalf("file outside the store: %q, %v", b, err)
	}
}

func TestLocal_ObjectsListsTemporaries(t *testing.T) {
	l := newTestLocal(t)
	w, err := l.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, l)
	if len(objs) != 1 || !strings.HasPrefix(objs[0], "tmp/") {
		t.Fatalf("Objects = %q, want the temporary", objs)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	mustBeEmpty(t, l)
}

// CleanTemp removes what a crash left (a writer never committed nor aborted) once it is old
// enough, and leaves a recent temporary, which may belong to an upload still running.
func TestLocal_CleanTempRemovesOnlyOldTemporaries(t *testing.T) {
	l := newTestLocal(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l.now = clocktest.New(now).Now
	ctx := context.Background()
	var paths []string
	for range 3 {
		w, err := l.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("half an upload")); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, w.(*localWriter).path)
	}
	committed, _ := put(t, l, []byte("a committed blob"))
	ages := []time.Duration{2 * time.Hour, 61 * time.Minute, 30 * time.Minute}
	for i, p := range paths {
		m := now.Add(-ages[i])
		if err := os.Chtimes(p, m, m); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.CleanTemp(time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("CleanTemp = %d, %v; want 2 removed", n, err)
	}
	for i, p := range paths {
		_, err := os.Stat(p)
		if gone := os.IsNotExist(err); gone != (ages[i] > time.Hour) {
			t.Errorf("temporary aged %v: gone = %v", ages[i], gone)
		}
	}
	if _, err := get(t, l, committed); err != nil {
		t.Fatalf("committed blob after CleanTemp: %v", err)
	}
	if n, err := l.CleanTemp(time.Hour); err != nil || n != 0 {
		t.Fatalf("second CleanTemp = %d, %v; want 0", n, err)
	}
}

func TestLocal_CheckFailsWithoutItsDirectory(t *testing.T) {
	l := newTestLocal(t)
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(context.Background()); err == nil {
		t.Fatal("Check passed with the directory gone")
	}
}

// A 64 MiB encrypted upload into the directory holds a few buffers, not the file.
func TestLocal_EncryptedWriteInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB written to disk")
	}
	l := newTestLocal(t)
	ctx := context.Background()
	dek := testDEK(t)
	var key string
	growth := heapGrowth(func(s *heapSampler) {
		w, err := l.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ew, err := Encrypt(sampledSink{w: w, s: s}, dek, testAAD)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(ew, &patternReader{n: 64 << 20}); err != nil {
			t.Fatal(err)
		}
		if err := ew.Close(); err != nil {
			t.Fatal(err)
		}
		if key, _, err = w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("peak heap growth: %.1f MiB", float64(growth)/(1<<20))
	if growth > 8<<20 {
		t.Fatalf("peak heap grew by %.1f MiB writing 64 MiB, want < 8 MiB", float64(growth)/(1<<20))
	}
	mustDelete(t, l, key)
}
