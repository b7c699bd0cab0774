package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeSignedAt writes a signed checkpoint of size, signed at t, into dir.
func writeSignedAt(t *testing.T, s *Signer, dir string, size int64, at time.Time) {
	t.Helper()
	signed, err := s.Sign(Checkpoint{Origin: testOrigin, Size: size, Time: at.Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCheckpointFile(dir, size, signed); err != nil {
		t.Fatal(err)
	}
}

func dirSizes(t *testing.T, dir string) []int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), CheckpointFileExt); ok {
			n, _ := strconv.ParseInt(name, 10, 64)
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// ThinCheckpointDir keeps the first and the latest, the last of each hour inside the window, the
// last of each day before it, and whatever it cannot read; it removes only the rest.
func TestThinCheckpointDir_KeepsHourlyDailyFirstAndLast(t *testing.T) {
	t.Parallel()
	skey, _, err := GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	now := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		size int64
		at   time.Time
	}{
		{1, now.Add(-1000 * time.Hour)},                // the first: kept
		{2, now.Add(-1000*time.Hour + 10*time.Minute)}, // same old day as 3: removed
		{3, now.Add(-1000*time.Hour + 20*time.Minute)}, // last of its day: kept
		{4, now.Add(-50 * time.Hour)},                  // same hour as 5: removed
		{5, now.Add(-50*time.Hour + 20*time.Minute)},   // last of its hour: kept
		{6, now.Add(-2 * time.Hour)},                   // alone in its hour: kept
		{7, now.Add(-10 * time.Minute)},                // same hour as 8: removed
		{8, now.Add(-5 * time.Minute)},                 // the latest: kept
	} {
		writeSignedAt(t, s, dir, c.size, c.at)
	}
	// A file it cannot read the time of, and a file that is not a checkpoint, stay.
	if err := os.WriteFile(filepath.Join(dir, "45"+CheckpointFileExt), []byte("not a note"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := ThinCheckpointDir(dir, now, 0); err != nil || n != 0 {
		t.Fatalf("keepHourly 0 removed %d, %v", n, err)
	}
	n, err := ThinCheckpointDir(dir, now, 72*time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("removed %d, %v; want 3", n, err)
	}
	if got, want := dirSizes(t, dir), []int64{1, 3, 5, 6, 8, 45}; !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("a file that is not a checkpoint was touched: %v", err)
	}
	// Thinning again changes nothing; the kept files still read as checkpoints.
	if n, err := ThinCheckpointDir(dir, now, 72*time.Hour); err != nil || n != 0 {
		t.Fatalf("second thinning removed %d, %v", n, err)
	}
	// Once the window has passed the hourly ones, they fall to one per day.
	if n, err := ThinCheckpointDir(dir, now.Add(100*time.Hour), 72*time.Hour); err != nil || n != 1 {
		t.Fatalf("after the window moved: removed %d, %v; want 1 (5 and 6 are days apart, 6 and 8 share a day)", n, err)
	}
	if got, want := dirSizes(t, dir), []int64{1, 3, 5, 8, 45}; !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

// A CheckpointThinner reads the directory once per hour of its clock, not on every write.
func TestCheckpointThinner_OncePerHour(t *testing.T) {
	t.Parallel()
	skey, _, _ := GenerateKey(testOrigin)
	s, _ := NewSigner(skey)
	dir := t.TempDir()
	th := &CheckpointThinner{Dir: dir, KeepHourly: 24 * time.Hour}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for i := range int64(10) { // one every 6 minutes from 12:00 to 12:54
		at := now.Add(time.Duration(i) * 6 * time.Minute)
		writeSignedAt(t, s, dir, i+1, at)
		if _, err := th.Wrote(at); err != nil {
			t.Fatal(err)
		}
	}
	// Thinned once, at 12:00, with one file: all ten are there.
	if got := dirSizes(t, dir); len(got) != 10 {
		t.Fatalf("within the first hour: %v", got)
	}
	at := now.Add(61 * time.Minute)
	writeSignedAt(t, s, dir, 11, at)
	if n, err := th.Wrote(at); err != nil || n != 8 {
		t.Fatalf("the next hour's first write removed %d, %v; want 8", n, err)
	}
	if got, want := dirSizes(t, dir), []int64{1, 10, 11}; !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}
