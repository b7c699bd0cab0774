package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"tutela/audit"
	"tutela/config"
	"tutela/sqlstore"
)

// publishErasures runs one full round of the erasure ledger publisher (what serve does every
// few seconds), signing with the audit key.
func publishErasures(e *env, m *Main) error {
	signer, vkey, err := m.auditSigner(e)
	if err != nil {
		return fmt.Errorf("publishing the erasure ledger needs the audit key: %w", err)
	}
	dir := erasureLedgerDir(m.Config)
	if _, err := sqlstore.NewErasurePublisher(m.DB, dir, signer, vkey).Publish(e.ctx, true); err != nil {
		return fmt.Errorf("publishing the erasure ledger to %s: %w", dir, err)
	}
	return nil
}

// errNoLedgerYetErased refuses --no-erasure-ledger for a backup that itself records erasures:
// that deployment erased people, so it published a ledger, which may hold later erasures too.
var errNoLedgerYetErased = errors.New("--no-erasure-ledger: the backup records erasures, so this deployment " +
	"published an erasure ledger; restore with it (--erasure-ledger DIR), or people erased after the backup come back")

// erasurePlan reads and verifies the published erasure ledger before anything is restored and
// returns what the restore runs in its transaction: re-applying every published erasure (or,
// with --no-erasure-ledger, checking the backup records none), and a line for the report.
func (c backupRestoreCmd) erasurePlan(e *env, cfg *config.Config, u *unpacked) (func(*sqlstore.Tx) error, func() string, error) {
	if c.NoErasureLedger {
		if c.ErasureLedger != "" {
			return nil, nil, errors.New("--no-erasure-ledger and --erasure-ledger exclude each other")
		}
		finish := func(tx *sqlstore.Tx) error {
			n, err := tx.CountErasures(e.ctx)
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w (%d recorded)", errNoLedgerYetErased, n)
			}
			return nil
		}
		return finish, func() string {
			return "erasure ledger: none (--no-erasure-ledger); the backup records no erasure"
		}, nil
	}
	dir := c.ErasureLedger
	if dir == "" {
		dir = erasureLedgerDir(cfg)
	}
	vkey, err := c.ledgerKey(cfg.DataDir, u)
	if err != nil {
		return nil, nil, err
	}
	entries, err := sqlstore.ReadErasureLedger(dir, vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; nothing was restored. Give the ledger synced off the database host with "+
			"--erasure-ledger DIR (--no-erasure-ledger only for a deployment that never erased anyone)", err)
	}
	reapplied := 0
	finish := func(tx *sqlstore.Tx) error {
		n, err := tx.ApplyErasureLedger(e.ctx, entries)
		reapplied = n
		return err
	}
	return finish, func() string {
		return fmt.Sprintf("erasure ledger %s: %d erasures, %d re-applied (people erased after the backup was taken)",
			dir, len(entries), reapplied)
	}, nil
}

// ledgerKey is the verifier key the ledger heads must be signed with: --erasure-key, else the
// data directory's audit.key, else the audit.key inside a backup made with --include-keys.
func (c backupRestoreCmd) ledgerKey(dataDir string, u *unpacked) (string, error) {
	if c.ErasureKey != "" {
		return c.ErasureKey, nil
	}
	if vkey, err := audit.ReadVerifierKey(filepath.Join(dataDir, audit.KeyFile), AuditOrigin); err == nil {
		return vkey, nil
	}
	if p, ok := u.paths[keyPartAudit]; ok {
		return audit.ReadVerifierKey(p, AuditOrigin)
	}
	return "", errors.New("the erasure ledger is verified with the audit verifier key: put audit.key in the data " +
		"directory or pass --erasure-key VKEY; nothing was restored")
}

type privacyCmd struct {
	Retention     privacyRetentionCmd     `cmd:"" help:"The retention schedule: erase subjects whose retention ended."`
	Records       privacyRecordsCmd       `cmd:"" help:"A tenant's record of processing activities (GDPR Art. 30), generated from the live configuration."`
	Subprocessors privacySubprocessorsCmd `cmd:"" help:"A tenant's sub-processor register."`
}

type privacyRetentionCmd struct {
	Run privacyRetentionRunCmd `cmd:"" help:"Run the retention schedule now (serve runs it hourly)."`
}

type privacyRetentionRunCmd struct {
	DryRun bool `name:"dry-run" help:"Only count what a run would erase and what legal holds keep."`
}

// Run erases every expired subject no legal hold protects, as serve's hourly sweep does, then
// publishes the erasure ledger so a restore re-applies these erasures too.
func (c privacyRetentionRunCmd) Run(e *env) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	run, err := m.DB.RunRetentionSchedule(e.ctx, sqlstore.RetentionBatch, c.DryRun)
	verb := "erased"
	if c.DryRun {
		verb = "would erase"
	}
	fmt.Fprintf(e.stdout, "retention schedule: %s %d subject(s); %d kept by a legal hold; %d repaired; %d failed subject(s)\n",
		verb, run.Erased, run.Held, run.Repaired, run.Failed)
	if c.DryRun || run.Erased == 0 {
		return err
	}
	// Subjects that failed do not hold back the others: what was erased is published even when
	// some failed, so a restore re-applies it.
	return errors.Join(err, publishErasures(e, m))
}
