package audit

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

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
