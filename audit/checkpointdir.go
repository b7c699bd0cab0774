package audit

import (
	"bytes"
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"tutela/vault"
)

// CheckpointFileExt is the extension of checkpoint files: dir/<size>.checkpoint, as the
// sequencer publishes them and an audit receiver keeps them.
const CheckpointFileExt = ".checkpoint"

// WriteCheckpointFile writes a signed checkpoint as dir/<size>.checkpoint (mode 0644: it is
// public), atomically. An existing file for the size is left alone: the first checkpoint
// written at a size is the one the log committed to.
func WriteCheckpointFile(dir string, size int64, signed []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil { // #nosec G301 -- checkpoints are published on purpose (signed, public)
		return err
	}
	path := filepath.Join(dir, strconv.FormatInt(size, 10)+CheckpointFileExt)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return vault.WriteFileAtomic(path, signed, 0o644)
}

// ReadCheckpointDir returns the checkpoints in dir, smallest size first: every file
// <size>.checkpoint, or with upTo > 0 those of size upTo or less. A missing directory holds
// none; a file larger than a signed checkpoint can be is an error.
func ReadCheckpointDir(dir string, upTo int64) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type cp struct {
		size int64
		b    []byte
	}
	var cps []cp
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), CheckpointFileExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		size, err := strconv.ParseInt(name, 10, 64)
		if err != nil || (upTo > 0 && size > upTo) {
			continue
		}
		b, err := vault.ReadFileLimited(filepath.Join(dir, e.Name()), MaxSignedCheckpointSize) // #nosec G304 -- a <size>.checkpoint file in the directory the caller names
		if err != nil {
			return nil, err
		}
		cps = append(cps, cp{size, b})
	}
	// Sorting by the size in the name keeps the order stable; Verify checks each one anyway.
	slices.SortFunc(cps, func(a, b cp) int { return cmp.Compare(a.size, b.size) })
	out := make([][]byte, len(cps))
	for i, c := range cps {
		out[i] = c.b
	}
	return out, nil
}

// DefaultCheckpointKeepHourly is how long a thinned checkpoint directory keeps one checkpoint per
// hour (audit.checkpoint_keep_hourly's default); older ones are kept one per day.
const DefaultCheckpointKeepHourly = 30 * 24 * time.Hour

// ThinCheckpointDir removes checkpoint files from dir that a thinned history does not need and
// returns how many it removed. It keeps:
//
//   - the largest and the smallest size (the latest, and the oldest the directory vouches for);
//   - of the checkpoints signed within keepHourly before now, the largest of each UTC hour;
//   - of older ones, the largest of each UTC day;
//   - every file whose checkpoint time it cannot read (never removing what it does not
//     understand), and every file that is not <size>.checkpoint.
//
// Each kept checkpoint still has to be consistent with the log (audit.Verify checks every one),
// so a rewrite of any part of the log before the latest is still caught; what thinning gives up
// is only the time resolution of the evidence ("the log had n entries by then"). The signature is
// not checked here: a forged file is kept or removed as any other, and Verify reports it.
// keepHourly <= 0 keeps everything.
func ThinCheckpointDir(dir string, now time.Time, keepHourly time.Duration) (removed int, err error) {
	if keepHourly <= 0 {
		return 0, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	type file struct {
		name string
		size int64
		t    time.Time
	}
	var files []file
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), CheckpointFileExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		size, err := strconv.ParseInt(name, 10, 64)
		if err != nil || size < 0 || strconv.FormatInt(size, 10) != name {
			continue
		}
		b, err := vault.ReadFileLimited(filepath.Join(dir, e.Name()), MaxSignedCheckpointSize) // #nosec G304 -- a <size>.checkpoint file in the directory the caller names
		if err != nil {
			return removed, err
		}
		files = append(files, file{e.Name(), size, checkpointFileTime(b)})
	}
	if len(files) < 3 {
		return 0, nil
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.size, b.size) })
	keep := map[string]bool{files[0].name: true, files[len(files)-1].name: true}
	last := map[string]string{} // bucket -> name of the largest size in it (files ascend)
	horizon := now.Add(-keepHourly)
	for _, f := range files {
		if f.t.IsZero() {
			keep[f.name] = true
			continue
		}
		bucket := "d" + f.t.UTC().Format(time.DateOnly)
		if !f.t.Before(horizon) {
			bucket = "h" + f.t.UTC().Truncate(time.Hour).Format(time.RFC3339)
		}
		last[bucket] = f.name
	}
	for _, name := range last {
		keep[name] = true
	}
	for _, f := range files {
		if keep[f.name] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// checkpointFileTime is the time line of a signed checkpoint's body, zero when there is none or
// the note does not parse.
func checkpointFileTime(signed []byte) time.Time {
	i := bytes.Index(signed, []byte("\n\n"))
	if i < 0 {
		return time.Time{}
	}
	c, err := ParseCheckpoint(signed[:i+1])
	if err != nil {
		return time.Time{}
	}
	return c.Time
}

// CheckpointThinner thins a checkpoint directory (ThinCheckpointDir) at most once per hour of
// the clock it is given, which is when a checkpoint can first become superfluous: a writer
// that publishes every second calls Wrote after each file and pays for a directory read once an
// hour. Safe for concurrent use.
type CheckpointThinner struct {
	Dir        string
	KeepHourly time.Duration // <= 0: keep every checkpoint

	mu   sync.Mutex
	last time.Time // the hour of the last thinning
}

// Wrote thins the directory when now is in a later hour than the last thinning (or it is the
// first call) and returns how many files it removed.
func (t *CheckpointThinner) Wrote(now time.Time) (int, error) {
	if t == nil || t.KeepHourly <= 0 || t.Dir == "" {
		return 0, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	hour := now.UTC().Truncate(time.Hour)
	if !t.last.IsZero() && !hour.After(t.last) {
		return 0, nil
	}
	n, err := ThinCheckpointDir(t.Dir, now, t.KeepHourly)
	if err == nil {
		t.last = hour
	}
	return n, err
}
