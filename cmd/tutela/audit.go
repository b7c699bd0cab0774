package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tutela/audit"
	"tutela/compliance"
	"tutela/sqlstore"
	"tutela/vault"
)

// AuditOrigin names Tutela's audit log in its checkpoints and is the name of its signing key.
const AuditOrigin = audit.LogOrigin

// auditCheckpointDir is the default directory, inside the data directory, where the sequencer
// publishes checkpoints and verify reads them.
const auditCheckpointDir = "checkpoints"

type auditCmd struct {
	Verify   auditVerifyCmd   `cmd:"" help:"Recompute the whole audit log and check every checkpoint; exit 1 on any failure."`
	Export   auditExportCmd   `cmd:"" help:"Write an auditor bundle: entries, the latest checkpoint and inclusion proofs."`
	Prune    auditPruneCmd    `cmd:"" help:"Remove event bodies older than a date (retention); leaf hashes stay, the prune is audited."`
	Sequence auditSequenceCmd `cmd:"" help:"Run one sequencer round: append committed events to the log and sign a checkpoint."`
	Key      auditKeyCmd      `cmd:"" help:"Print the audit log's public verifier key (creating the key pair if missing)."`
	Receive  auditReceiveCmd  `cmd:"" help:"Receive shipped audit batches (audit.ship) on another system, verify and keep them."`
	Shipping auditShippingCmd `cmd:"" help:"Show how far the log has been shipped to each audit.ship destination."`
}

func auditKeyPath(dataDir string) string { return filepath.Join(dataDir, audit.KeyFile) }

// auditVerifierKey returns the log's public verifier key from the data directory; a missing
// key file is an error rather than a new key (a new key would verify nothing).
func auditVerifierKey(dataDir string) (string, error) {
	path := auditKeyPath(dataDir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no audit key at %s: pass --key with the log's verifier key", path)
	}
	return audit.ReadVerifierKey(path, AuditOrigin)
}

// auditSigner loads (or creates) the log's signer, its private key sealed by the vault.
func (m *Main) auditSigner(e *env) (*audit.Signer, string, error) {
	if m.MasterKey.IsZero() {
		if err := m.loadMasterKey(e.ctx, true); err != nil {
			return nil, "", err
		}
	}
	if m.vault == nil {
		v, err := m.openVault(e)
		if err != nil {
			return nil, "", err
		}
		m.vault = v
	}
	return m.loadAuditSigner(e.ctx)
}

// loadAuditSigner loads the audit key from the data directory, creating it only for a log that
// has none yet, and checks it is the key this database's log is signed with.
func (m *Main) loadAuditSigner(ctx context.Context) (*audit.Signer, string, error) {
	path := auditKeyPath(m.Config.DataDir)
	if err := m.checkAuditKeyFile(ctx, path); err != nil {
		return nil, "", err
	}
	sealer, err := vault.NewVaultSealer(m.vault, "", vault.PurposeAuditKey, m.MasterKey)
	if err != nil {
		return nil, "", err
	}
	signer, vkey, err := audit.LoadOrCreateSigner(path, AuditOrigin, sealer)
	if err != nil {
		return nil, "", fmt.Errorf("audit signing key: %w", err)
	}
	if err := m.agreeAuditKey(ctx, path, vkey); err != nil {
		return nil, "", err
	}
	return signer, vkey, nil
}

type auditVerifyCmd struct {
	Key         string `help:"Verifier key to trust (default: the one in the data directory's audit.key). Required with --bundle." placeholder:"VKEY"`
	Bundle      string `help:"Verify an exported bundle instead of the database." type:"path" placeholder:"FILE"`
	Checkpoints string `help:"Directory of published checkpoints (default: <data_dir>/checkpoints)." type:"path" placeholder:"DIR"`
}

func (c auditVerifyCmd) Run(e *env) error {
	if c.Bundle != "" {
		if c.Key == "" {
			return errors.New("--bundle needs --key: the verifier key you obtained independently of the bundle")
		}
		f, err := os.Open(c.Bundle)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := audit.ReadBundle(io.LimitReader(f, 4<<30))
		if err != nil {
			return err
		}
		rep, err := audit.VerifyBundle(b, c.Key, AuditOrigin)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "bundle: %d entries\n", len(b.Entries))
		return printAuditReport(e, rep)
	}
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	vkey := c.Key
	if vkey == "" {
		if vkey, err = auditVerifierKey(m.Config.DataDir); err != nil {
			return err
		}
	}
	dir := c.Checkpoints
	if dir == "" {
		dir = checkpointDir(m.Config)
	}
	published, err := audit.ReadCheckpointDir(dir, 0)
	if err != nil {
		return fmt.Errorf("published checkpoints: %w", err)
	}
	rep, err := audit.Verify(e.ctx, m.DB.AuditSource(), vkey, AuditOrigin, published)
	if err != nil {
		// The compliance report shows the last verification and its result, a failed one too.
		return errors.Join(err, recordOperation(e.ctx, m.DB, compliance.OpAuditVerify, compliance.OutcomeFailure,
			map[string]any{"error": errText(err)}))
	}
	pending, err := m.DB.AuditPending(e.ctx)
	if err != nil {
		return fmt.Errorf("pending audit events: %w", err)
	}
	now := m.DB.Now()
	fmt.Fprintf(e.stdout, "pending:     %s\n", describePending(pending, now))
	if pending.Stale(now) {
		// Recorded but outside the tree: no leaf hash, no checkpoint, so deleting them would go
		// unnoticed. Left by a node that stopped without draining, and no node has run since.
		rep.Failures = append(rep.Failures, audit.Failure{Index: -1, Kind: audit.KindUnsequenced,
			Detail: fmt.Sprintf("%d events recorded but not in the log, the oldest from %s, and no sequencer has run for %s: "+
				"start a node or run `tutela audit sequence`", pending.Count, pending.Oldest.Format(time.RFC3339), pending.Grace())})
		rep.FailureCount++
		rep.OK = false
	}
	// An event neither in the log nor in the sequencer's queue waits for nothing: its queue
	// entry was deleted (the runtime role may delete there), or it was inserted by hand.
	if n, oldest, err := m.DB.AuditUnqueued(e.ctx); err != nil {
		return fmt.Errorf("unqueued audit events: %w", err)
	} else if n > 0 {
		rep.Failures = append(rep.Failures, audit.Failure{Index: -1, Kind: audit.KindUnsequenced,
			Detail: fmt.Sprintf("%d events recorded but neither in the log nor queued for it, the oldest from %s: "+
				"their queue entries were deleted; `tutela audit sequence` queues them again", n, oldest.Format(time.RFC3339))})
		rep.FailureCount++
		rep.OK = false
	}
	details := map[string]any{"size": rep.Size, "checkpoints": rep.Checkpoints, "published_verified": rep.Published,
		"signed_coverage": rep.Covered, "pruned": rep.Pruned, "failures": rep.FailureCount}
	outcome := compliance.OutcomeSuccess
	if !rep.OK {
		outcome = compliance.OutcomeFailure
		details["first_failure"] = string(rep.Failures[0].Kind)
	}
	if err := errors.Join(printAuditReport(e, rep), recordOperation(e.ctx, m.DB, compliance.OpAuditVerify, outcome, details)); err != nil {
		return err
	}
	// Only a log that verified is extended: a failed one is left as found for the investigation.
	m.sequenceIfIdle(e)
	return nil
}

// describePending says how many events wait outside the log and whether a sequencer is alive.
func describePending(p sqlstore.AuditPending, now time.Time) string {
	if p.Count == 0 {
		return "0 events waiting to be sequenced"
	}
	s := fmt.Sprintf("%d events waiting to be sequenced, the oldest from %s", p.Count, p.Oldest.Format(time.RFC3339))
	switch {
	case p.SequencerAlive(now):
		s += fmt.Sprintf("; a sequencer ran at %s (every %s) and will append them", p.SequencerSeen.Format(time.RFC3339), p.SequencerInterval)
	case p.SequencerSeen.IsZero():
		s += "; no sequencer has run"
	default:
		s += fmt.Sprintf("; the sequencer last ran at %s", p.SequencerSeen.Format(time.RFC3339))
	}
	return s
}

func printAuditReport(e *env, rep *audit.Report) error {
	w := e.stdout
	fmt.Fprintf(w, "origin:      %s\n", rep.Origin)
	fmt.Fprintf(w, "size:        %d\n", rep.Size)
	fmt.Fprintf(w, "root:        %s\n", rep.Root)
	fmt.Fprintf(w, "pruned:      %d\n", rep.Pruned)
	fmt.Fprintf(w, "checkpoints: %d stored, %d published verified; signed coverage %d of %d\n",
		rep.Checkpoints, rep.Published, rep.Covered, rep.Size)
	if rep.OK {
		fmt.Fprintln(w, "result:      OK")
		return nil
	}
	fmt.Fprintf(w, "result:      FAILED (%d failures)\n", rep.FailureCount)
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "  %s\n", describeFailure(f))
	}
	first := rep.Failures[0]
	return fmt.Errorf("audit log verification failed: %d failures; first: %s", rep.FailureCount, describeFailure(first))
}

func describeFailure(f audit.Failure) string {
	var b strings.Builder
	if f.Index >= 0 {
		fmt.Fprintf(&b, "index %d", f.Index)
	} else if f.Kind == audit.KindUnsequenced {
		b.WriteString("pending events")
	} else if f.TreeSize > 0 {
		fmt.Fprintf(&b, "checkpoint of size %d", f.TreeSize)
	} else {
		b.WriteString("checkpoint")
	}
	if f.EventID != "" {
		fmt.Fprintf(&b, " event %s", f.EventID)
	}
	fmt.Fprintf(&b, ": %s: %s", f.Kind, f.Detail)
	return b.String()
}

type auditExportCmd struct {
	From int64  `required:"" help:"First index to export."`
	To   int64  `required:"" help:"Last index to export (inclusive)."`
	File string `arg:"" help:"Bundle file to write." type:"path"`
}

func (c auditExportCmd) Run(e *env) error {
	if c.From < 0 || c.To < c.From || c.To-c.From >= audit.MaxBundleEntries {
		return fmt.Errorf("bad range %d..%d (at most %d entries per bundle)", c.From, c.To, audit.MaxBundleEntries)
	}
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	vkey, err := auditVerifierKey(m.Config.DataDir)
	if err != nil {
		return err
	}
	cp, err := m.DB.AuditCheckpoint(e.ctx)
	if err != nil {
		return err
	}
	c2, err := audit.OpenCheckpoint(cp, vkey, AuditOrigin)
	if err != nil {
		return fmt.Errorf("latest checkpoint: %w", err)
	}
	if c.To >= c2.Size {
		return fmt.Errorf("the latest checkpoint covers indexes 0..%d; run `tutela audit sequence` or export less", c2.Size-1)
	}
	entries, err := m.DB.AuditEntries(e.ctx, c.From, c.To+1)
	if err != nil {
		return err
	}
	b, err := audit.BuildBundle(e.ctx, m.DB.AuditSource().Hashes(), cp, vkey, AuditOrigin, entries)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := audit.WriteBundle(&buf, b); err != nil {
		return err
	}
	if err := vault.WriteFileAtomic(c.File, buf.Bytes(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported entries %d..%d against checkpoint size %d to %s\nverifier key: %s\n",
		c.From, c.To, c2.Size, c.File, vkey)
	return nil
}

type auditPruneCmd struct {
	Before string `help:"Remove bodies of events before this date (YYYY-MM-DD or RFC 3339); default: now minus audit.retention (2 years)." placeholder:"DATE"`
}

func (c auditPruneCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	before := time.Now().UTC().Add(-m.Config.Audit.Retention)
	if c.Before != "" {
		if before, err = time.Parse(time.RFC3339, c.Before); err != nil {
			if before, err = time.Parse(time.DateOnly, c.Before); err != nil {
				return fmt.Errorf("--before: want YYYY-MM-DD or RFC 3339, got %q", c.Before)
			}
		}
	}
	n, err := m.DB.AuditPrune(e.ctx, before, audit.Event{ActorType: audit.ActorSystem, Reason: "tutela audit prune"})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pruned the bodies of %d events before %s; their leaf hashes stay in the log\n",
		n, before.UTC().Format(time.RFC3339))
	return nil
}

type auditSequenceCmd struct{}

// Run first queues again the events that are neither in the log nor queued (AuditUnqueued: a
// queue entry deleted by hand), then appends everything queued.
func (auditSequenceCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	requeued, err := m.DB.AuditRequeue(e.ctx, audit.Event{ActorType: audit.ActorSystem, Reason: "tutela audit sequence"})
	if err != nil {
		return fmt.Errorf("queueing unqueued audit events: %w", err)
	}
	if requeued > 0 {
		fmt.Fprintf(e.stderr, "warning: %d audit events were neither in the log nor queued for it (queue entries deleted); "+
			"queued them again (recorded as %s)\n", requeued, sqlstore.ActionAuditRequeue)
	}
	total, err := m.sequencePending(e)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sequenced %d events\n", total)
	return nil
}

// sequencePending is `tutela audit sequence` on an open store.
func (m *Main) sequencePending(e *env) (int, error) {
	signer, _, err := m.auditSigner(e)
	if err != nil {
		return 0, err
	}
	seq := sqlstore.NewSequencer(m.DB, signer, AuditOrigin, sqlstore.SequencerOptions{
		CheckpointDir: checkpointDir(m.Config), CheckpointKeepHourly: m.Config.Audit.CheckpointKeepHourly, Logger: m.Logger})
	total := 0
	for {
		n, err := seq.Step(e.ctx)
		if err != nil {
			return total, err
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// sequenceIfIdle appends what a command just recorded (its compliance evidence) to the log when
// no node's sequencer is alive to do it, exactly as `tutela audit sequence` does: left pending,
// the command's own record would make the next `audit verify` fail as unsequenced (and raise
// audit_verify_failed) with no node running, as during a restore or an investigation. `audit
// verify` and `backup test` call it; `backup create` does not: its record follows the snapshot,
// and sequencing it would move the live log past the backup, so checkpoints published then
// cover entries no restore of that backup holds. A store
// whose audit key is not in the data directory keeps its events pending, with a warning: a key is
// never created here.
func (m *Main) sequenceIfIdle(e *env) {
	p, err := m.DB.AuditPending(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: pending audit events: %v\n", err)
		return
	}
	if p.Count == 0 || p.SequencerAlive(m.DB.Now()) {
		return
	}
	if _, err := os.Stat(auditKeyPath(m.Config.DataDir)); err != nil {
		fmt.Fprintf(e.stderr, "warning: no node is running and the audit key is not at %s: %d events stay pending; "+
			"run `tutela audit sequence` where the key is (or start a node)\n", auditKeyPath(m.Config.DataDir), p.Count)
		return
	}
	n, err := m.sequencePending(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: no node is running and sequencing the pending audit events failed: %v; "+
			"run `tutela audit sequence` (or start a node)\n", err)
		return
	}
	fmt.Fprintf(e.stderr, "no node is running: sequenced %d pending audit events (as `tutela audit sequence`)\n", n)
}

type auditKeyCmd struct{}

func (auditKeyCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	vkey, err := auditVerifierKey(m.Config.DataDir)
	if err != nil { // no key yet: create it, sealed, as serve would
		if _, vkey, err = m.auditSigner(e); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout, vkey)
	return nil
}
