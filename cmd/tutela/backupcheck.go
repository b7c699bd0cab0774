package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"tutela"
	"tutela/compliance"
	"tutela/sqlstore"
)

// complianceEvidenceMigration is the migration that made compliance_evidence: a restored
// database at or past it records its own restore.
const complianceEvidenceMigration = 34

// backupTestCmd is the restore test the compliance report asks for: it proves a backup can be
// decrypted with the operator's identity and restored, without touching the live database
// (beyond recording the result there). Every part is checked against the manifest's SHA-256
// while it is decrypted; an SQLite database part is then opened apart, in a temporary directory,
// its schema version compared with the manifest and its tenants read.
type backupTestCmd struct {
	File     string `arg:"" help:"Backup file." type:"path"`
	Identity string `required:"" help:"age identity file (AGE-SECRET-KEY-1…) of one of the backup's recipients." type:"path" placeholder:"KEYFILE"`
}

func (c backupTestCmd) Run(e *env) error {
	ids, err := parseIdentities(c.Identity)
	if err != nil {
		return err
	}
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	sum, err := hashPart(c.File)
	if err != nil {
		return err
	}
	details := map[string]any{"file": filepath.Base(c.File), "sha256": sum.SHA256, "bytes": sum.Size}
	checked, err := c.check(e, ids, m.Config.DataDir, details)
	outcome := compliance.OutcomeSuccess
	if err != nil {
		outcome, details["error"] = compliance.OutcomeFailure, errText(err)
	}
	if rerr := recordOperation(e.ctx, m.DB, compliance.OpRestoreTest, outcome, details); rerr != nil {
		return errors.Join(err, rerr)
	}
	m.sequenceIfIdle(e)
	if err != nil {
		return fmt.Errorf("restore test failed (recorded): %w", err)
	}
	fmt.Fprintf(e.stdout, "restore test passed (recorded): %s\n", checked)
	return nil
}

// check decrypts the backup (unpackBackup checks every part against the manifest's SHA-256)
// and, for SQLite, opens the database part apart; it fills details and says what it checked.
func (c backupTestCmd) check(e *env, ids []age.Identity, dataDir string, details map[string]any) (string, error) {
	f, err := os.Open(c.File)
	if err != nil {
		return "", err
	}
	defer f.Close()
	u, err := unpackBackup(bufio.NewReaderSize(f, 1<<16), ids, dataDir)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(u.dir)
	man := u.man
	details["backup_created_at"], details["migration"] = man.CreatedAt.Format(time.RFC3339), man.MigrationVersion
	details["dialect"], details["parts"] = string(man.Dialect), len(man.Parts)
	what := fmt.Sprintf("%s backup of %s, %d part(s) decrypted and matching the manifest", man.Dialect, man.CreatedAt.Format(time.RFC3339), len(man.Parts))
	if man.Dialect != sqlstore.SQLite {
		var rows int64
		for _, t := range man.Tables {
			rows += t.Rows
		}
		// Nothing is loaded into a database: the report answers partial for such a test.
		details["tables"], details["rows"] = len(man.Tables), rows
		details["loaded"], details["checked"] = false, "decrypted and hash-checked only, not loaded"
		return fmt.Sprintf("%s (%d tables, %d rows); decrypted and hash-checked only, not loaded into a database: "+
			"for a full restore test run `tutela backup restore` into a scratch database", what, len(man.Tables), rows), nil
	}
	src, ok := u.paths[sqlstore.SQLiteSnapshotPart]
	if !ok {
		return "", fmt.Errorf("%w: no database part", ErrBackupCorrupt)
	}
	v, n, err := openSnapshot(e, src)
	if err != nil {
		return "", fmt.Errorf("opening the restored database: %w", err)
	}
	if v != man.MigrationVersion {
		return "", fmt.Errorf("%w: the database part is at migration %d, the manifest says %d", ErrBackupCorrupt, v, man.MigrationVersion)
	}
	details["tenants"] = n
	details["loaded"], details["checked"] = true, "decrypted, hash-checked, loaded and opened"
	return fmt.Sprintf("%s; the database opens at migration %d with %d tenant(s)", what, v, n), nil
}

// openSnapshot opens a restored SQLite part apart and reads its schema version and tenants.
func openSnapshot(e *env, path string) (version int64, tenants int, err error) {
	db, err := sqlstore.Open(e.ctx, path, sqlstore.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	if version, err = db.MigrationVersion(e.ctx); err != nil {
		return 0, 0, err
	}
	var all []*tutela.Tenant
	err = db.View(e.ctx, func(tx *sqlstore.Tx) (err error) { all, err = tx.AllTenants(e.ctx); return })
	return version, len(all), err
}
