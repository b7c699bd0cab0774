package sqlstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
	"tutela/vault"
)

// The published erasure ledger: every row of the erasures table, copied outside the database
// so that restoring a backup taken before an erasure can shred the person again (docs/backup.md,
// "Erasure reaches backups"). The directory holds
//
//	ledger.jsonl      one LedgerEntry per line (IDs, kind, trigger, time: no reason, no data)
//	heads/<n>.head    signed notes (audit key, origin ErasureLedgerOrigin) committing to the
//	                  first n lines by their hash chain: h0 = 32 zero bytes,
//	                  h(i) = SHA-256(h(i-1) || line i including its newline)
//
// Lines are only ever appended and a head is never rewritten, so a ledger whose file was
// truncated below its newest head, or whose lines were altered, or whose heads were forged
// without the audit key, fails ReadErasureLedger.

// ErasureLedgerOrigin names the published ledger in its signed heads (the audit key signs
// them; the origin keeps a ledger head from ever passing as an audit checkpoint and back).
const ErasureLedgerOrigin = "tutela/erasures"

const (
	ledgerFile   = "ledger.jsonl"
	ledgerHeads  = "heads"
	ledgerHeadEx = ".head"
	// maxLedgerLine bounds one entry: five IDs and a time fit in far less.
	maxLedgerLine = 1 << 10
)

// Errors of ReadErasureLedger. ErrLedgerTampered and ErrLedgerBehind make a restore refuse.
var (
	ErrLedgerMissing  = errors.New("erasure ledger: no published ledger in this directory")
	ErrLedgerTampered = errors.New("erasure ledger: fails its integrity check (truncated, altered, or signed by another key)")
	ErrLedgerBehind   = errors.New("erasure ledger: it lacks erasures the backup itself records, so it was truncated or belongs to another deployment")
)

// LedgerEntry is one published erasure: identifiers and times only.
type LedgerEntry struct {
	ID       string    `json:"id"`
	TenantID string    `json:"tenant_id"`
	PersonID string    `json:"person_id"`
	Kind     string    `json:"kind"`
	Trigger  string    `json:"trigger"`
	ErasedAt time.Time `json:"erased_at"`
}

func (e LedgerEntry) valid() bool {
	return tutela.ValidID(e.ID) && tutela.ValidID(e.TenantID) && tutela.ValidID(e.PersonID) &&
		(e.Kind == PersonSubject || e.Kind == PersonUser) &&
		(e.Trigger == ErasureRequest || e.Trigger == ErasureRetention) && !e.ErasedAt.IsZero()
}

func chainNext(h tlog.Hash, line []byte) tlog.Hash {
	s := sha256.New()
	s.Write(h[:])
	s.Write(line)
	var out tlog.Hash
	copy(out[:], s.Sum(nil))
	return out
}

// ledgerState is what the ledger file holds: its entries, the chain hash after each, and the
// length of the complete lines (a crash mid-append can leave a partial last line).
type ledgerState struct {
	entries  []LedgerEntry
	chain    []tlog.Hash // chain[i] = hash after i entries; chain[0] is the zero hash
	complete int64
}

func readLedgerFile(dir string) (*ledgerState, error) {
	st := &ledgerState{chain: []tlog.Hash{{}}}
	f, err := os.Open(filepath.Join(dir, ledgerFile)) // #nosec G304 -- the ledger file in the configured data directory
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	seen := map[string]bool{}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			return st, nil // a partial last line was never covered by a head: ignored
		}
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLedgerLine {
			return nil, fmt.Errorf("%w: line %d too long", ErrLedgerTampered, len(st.entries)+1)
		}
		if err != nil {
			return nil, err
		}
		var e LedgerEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || !e.valid() || seen[e.ID] {
			return nil, fmt.Errorf("%w: line %d is not a valid entry", ErrLedgerTampered, len(st.entries)+1)
		}
		seen[e.ID] = true
		st.entries = append(st.entries, e)
		st.chain = append(st.chain, chainNext(st.chain[len(st.chain)-1], line))
		st.complete += int64(len(line))
	}
}

// readHeads verifies every signed head in dir against the chain and returns the largest size a
// head commits to (-1 when there is none).
func readHeads(dir, vkey string, st *ledgerState) (int64, error) {
	ents, err := os.ReadDir(filepath.Join(dir, ledgerHeads))
	if errors.Is(err, os.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	largest := int64(-1)
	for _, de := range ents {
		name, ok := strings.CutSuffix(de.Name(), ledgerHeadEx)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil || n < 0 || !de.Type().IsRegular() {
			return -1, fmt.Errorf("%w: unexpected head file %s", ErrLedgerTampered, de.Name())
		}
		b, err := vault.ReadFileLimited(filepath.Join(dir, ledgerHeads, de.Name()), audit.MaxSignedCheckpointSize)
		if err != nil {
			return -1, err
		}
		c, err := audit.OpenCheckpoint(b, vkey, ErasureLedgerOrigin)
		if err != nil {
			return -1, fmt.Errorf("%w: head %d: %v", ErrLedgerTampered, n, err)
		}
		if c.Size != n {
			return -1, fmt.Errorf("%w: head file %d holds size %d", ErrLedgerTampered, n, c.Size)
		}
		if n >= int64(len(st.chain)) {
			return -1, fmt.Errorf("%w: a signed head covers %d entries, the file holds %d", ErrLedgerTampered, n, len(st.entries))
		}
		if st.chain[n] != c.Root {
			return -1, fmt.Errorf("%w: the first %d entries do not match their signed head", ErrLedgerTampered, n)
		}
		largest = max(largest, n)
	}
	return largest, nil
}

// ReadErasureLedger reads and verifies the ledger published in dir with the audit verifier key
// vkey: every signed head must verify and match the hash chain of the entries it covers, and
// the file must hold at least as many entries as the newest head. Complete entries past the
// newest head (appended just before a crash) are returned too: they can only erase more.
func ReadErasureLedger(dir, vkey string) ([]LedgerEntry, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s does not exist)", ErrLedgerMissing, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("erasure ledger: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("erasure ledger: %s is not a directory", dir)
	}
	st, err := readLedgerFile(dir)
	if err != nil {
		return nil, err
	}
	largest, err := readHeads(dir, vkey, st)
	if err != nil {
		return nil, err
	}
	if largest < 0 {
		return nil, fmt.Errorf("%w (%s holds no signed head)", ErrLedgerMissing, dir)
	}
	return st.entries, nil
}

// ErasurePublisher copies the erasures table to the ledger directory. It is a reconciler, not
// a queue: each round lists the erasures committed in the database and appends those the
// directory lacks, so no entry can be lost while the table holds it (the table is
// append-only). A full round reads every erasure; an incremental one those erased since the
// previous round's start less LedgerOverlap, which covers transactions still open then.
type ErasurePublisher struct {
	db     *DB
	dir    string
	signer *audit.Signer
	vkey   string

	mu     sync.Mutex
	st     *ledgerState
	ids    map[string]bool
	heads  int64 // newest signed head, -1 none
	since  time.Time
	loaded bool
}

// LedgerOverlap is how far back an incremental round looks before the previous round's start.
// An erasure whose transaction ran longer than this is published by the next full round
// (serve runs one an hour).
const LedgerOverlap = 10 * time.Minute

// NewErasurePublisher publishes db's erasures into dir, signing heads with signer (whose
// verifier key is vkey).
func NewErasurePublisher(db *DB, dir string, signer *audit.Signer, vkey string) *ErasurePublisher {
	return &ErasurePublisher{db: db, dir: dir, signer: signer, vkey: vkey}
}

func (p *ErasurePublisher) load() error {
	if err := os.MkdirAll(filepath.Join(p.dir, ledgerHeads), 0o700); err != nil {
		return err
	}
	st, err := readLedgerFile(p.dir)
	if err != nil {
		return err
	}
	heads, err := readHeads(p.dir, p.vkey, st)
	if err != nil {
		return err
	}
	// Drop a partial last line left by a crash before appending after it.
	if fi, err := os.Stat(filepath.Join(p.dir, ledgerFile)); err == nil && fi.Size() > st.complete {
		if err := os.Truncate(filepath.Join(p.dir, ledgerFile), st.complete); err != nil {
			return err
		}
	}
	p.st, p.heads, p.ids = st, heads, map[string]bool{}
	for _, e := range st.entries {
		p.ids[e.ID] = true
	}
	p.loaded = true
	return nil
}

// Publish runs one round and returns how many entries it appended.
func (p *ErasurePublisher) Publish(ctx context.Context, full bool) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.loaded {
		if err := p.load(); err != nil {
			return 0, fmt.Errorf("erasure ledger %s: %w", p.dir, err)
		}
		full = true
	}
	start := p.db.Now()
	var since time.Time
	if !full {
		since = p.since
	}
	var fresh []LedgerEntry
	err := p.db.View(ctx, func(tx *Tx) error {
		return tx.erasuresSince(ctx, since, func(e LedgerEntry) {
			if !p.ids[e.ID] {
				fresh = append(fresh, e)
			}
		})
	})
	if err != nil {
		return 0, err
	}
	if err := p.append(fresh); err != nil {
		return 0, fmt.Errorf("erasure ledger %s: %w", p.dir, err)
	}
	p.since = start.Add(-LedgerOverlap)
	return len(fresh), nil
}

func (p *ErasurePublisher) append(fresh []LedgerEntry) error {
	n := int64(len(p.st.entries))
	if len(fresh) > 0 {
		f, err := os.OpenFile(filepath.Join(p.dir, ledgerFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		chain := p.st.chain
		for _, e := range fresh {
			e.ErasedAt = e.ErasedAt.UTC()
			line, err := json.Marshal(e)
			if err != nil {
				_ = f.Close()
				return err
			}
			line = append(line, '\n')
			buf.Write(line)
			chain = append(chain, chainNext(chain[len(chain)-1], line))
		}
		_, err = f.Write(buf.Bytes())
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			// What was written may be partial: reload from the file before the next round.
			p.loaded = false
			return err
		}
		for _, e := range fresh {
			p.ids[e.ID] = true
		}
		p.st.entries = append(p.st.entries, fresh...)
		p.st.chain = chain
		p.st.complete += int64(buf.Len())
		n = int64(len(p.st.entries))
	}
	if n == p.heads {
		return nil
	}
	signed, err := p.signer.Sign(audit.Checkpoint{Origin: ErasureLedgerOrigin, Size: n, Root: p.st.chain[n],
		Time: p.db.Now().Truncate(time.Second)})
	if err != nil {
		return err
	}
	path := filepath.Join(p.dir, ledgerHeads, strconv.FormatInt(n, 10)+ledgerHeadEx)
	if _, err := os.Stat(path); err == nil {
		// Written by a round that failed after it; it must commit to the same chain.
		b, err := vault.ReadFileLimited(path, audit.MaxSignedCheckpointSize)
		if err != nil {
			return err
		}
		c, err := audit.OpenCheckpoint(b, p.vkey, ErasureLedgerOrigin)
		if err != nil || c.Root != p.st.chain[n] {
			return fmt.Errorf("%w: head %d exists and differs", ErrLedgerTampered, n)
		}
	} else if err := vault.WriteFileAtomic(path, signed, 0o600); err != nil {
		return err
	}
	p.heads = n
	return nil
}

// Run publishes every interval until ctx ends: a full round first and then hourly, incremental
// rounds between. Failures are returned to report, and the next round retries.
func (p *ErasurePublisher) Run(ctx context.Context, interval time.Duration, report func(error)) {
	lastFull := time.Time{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := time.Now()
		full := now.Sub(lastFull) >= time.Hour
		if _, err := p.Publish(ctx, full); err != nil {
			if ctx.Err() != nil {
				return
			}
			report(err)
		} else if full {
			lastFull = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// erasuresSince calls fn for every erasure (all tenants) erased at or after since, oldest first.
func (tx *Tx) erasuresSince(ctx context.Context, since time.Time, fn func(LedgerEntry)) error {
	rows, err := tx.query(ctx, `SELECT id, tenant_id, person_id, kind, trigger, erased_at FROM erasures
		WHERE erased_at >= $1 ORDER BY erased_at, id`, since.UTC())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e LedgerEntry
		if err := rows.Scan(&e.ID, &e.TenantID, &e.PersonID, &e.Kind, &e.Trigger, &e.ErasedAt); err != nil {
			return err
		}
		e.ErasedAt = e.ErasedAt.UTC()
		fn(e)
	}
	return rows.Err()
}
