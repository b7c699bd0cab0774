package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"tutela"
	"tutela/audit"
	"tutela/compliance"
	"tutela/sqlstore"
	"tutela/vault"
)

// backupFormat names the archive layout: an age-encrypted tar whose first entry is
// manifest.json, followed by every part the manifest lists, in order.
const backupFormat = "tutela-backup/1"

const (
	manifestName     = "manifest.json"
	maxManifestBytes = 16 << 20
	keyPartMaster    = "keys/" + vault.MasterKeyFile
	keyPartAudit     = "keys/" + audit.KeyFile
)

type backupManifest struct {
	Format           string                  `json:"format"`
	TutelaVersion    string                  `json:"tutela_version"`
	Dialect          sqlstore.Dialect        `json:"dialect"`
	MigrationVersion int64                   `json:"migration_version"`
	CreatedAt        time.Time               `json:"created_at"`
	IncludesKeys     bool                    `json:"includes_keys"`
	Parts            []sqlstore.SnapshotPart `json:"parts"`
	Tables           []sqlstore.TableDump    `json:"tables,omitempty"` // PostgreSQL, in insert order
}

type backupCmd struct {
	Create  backupCreateCmd  `cmd:"" help:"Write an encrypted (age) backup of the database; keys are not included unless --include-keys."`
	Restore backupRestoreCmd `cmd:"" help:"Decrypt, verify and restore a backup into an empty database (or --force)."`
	Test    backupTestCmd    `cmd:"" help:"Restore test: decrypt a backup, check every part and open its database apart; the result is recorded for the compliance report."`
}

type backupCreateCmd struct {
	File           string   `arg:"" help:"Backup file to write (must not exist)." type:"path"`
	Recipient      []string `help:"age X25519 recipient (age1…); repeatable." sep:"none" placeholder:"AGE1…"`
	RecipientsFile []string `name:"recipients-file" help:"File of age X25519 recipients, one per line (# comments); repeatable." type:"path" sep:"none" placeholder:"FILE"`
	IncludeKeys    bool     `name:"include-keys" help:"Also put the data directory's master.key and audit.key into the backup (dangerous: see docs/backup.md)."`
}

// parseRecipients accepts only X25519 recipients: one key type, no plugins, no passphrases
// (scrypt recipients would put the whole backup behind a guessable secret).
func parseRecipients(flags, files []string) ([]age.Recipient, error) {
	var out []age.Recipient
	add := func(where, s string) error {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%s: not an age X25519 recipient (age1…): %w", where, err)
		}
		out = append(out, r)
		return nil
	}
	for _, s := range flags {
		if err := add("--recipient", s); err != nil {
			return nil, err
		}
	}
	for _, path := range files {
		b, err := os.ReadFile(path) // #nosec G304 -- a file named by the operator on the command line
		if err != nil {
			return nil, err
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(fmt.Sprintf("%s line %d", path, i+1), line); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one --recipient or --recipients-file is required")
	}
	return out, nil
}

func (c backupCreateCmd) Run(e *env) (err error) {
	recipients, err := parseRecipients(c.Recipient, c.RecipientsFile)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(c.File); err == nil {
		return fmt.Errorf("%s exists; choose a new file name", c.File)
	}
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	snap, err := m.DB.Snapshot(e.ctx, m.Config.DataDir)
	if err != nil {
		return err
	}
	defer snap.Remove()
	if snap.MigrationVersion == 0 {
		return errors.New("the database has no schema yet: nothing to back up")
	}
	// Every erasure the snapshot holds is committed, so a full round now publishes all of them:
	// a restore can then tell a ledger that stops before the backup (ErrLedgerBehind).
	if err := publishErasures(e, m); err != nil {
		return err
	}
	man := backupManifest{Format: backupFormat, TutelaVersion: tutela.Version, Dialect: snap.Dialect,
		MigrationVersion: snap.MigrationVersion, CreatedAt: time.Now().UTC(), Parts: snap.Parts, Tables: snap.Tables}
	if c.IncludeKeys {
		for _, k := range []struct{ file, part string }{{vault.MasterKeyFile, keyPartMaster}, {audit.KeyFile, keyPartAudit}} {
			path := filepath.Join(m.Config.DataDir, k.file)
			p, err := hashPart(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			p.Name = k.part
			man.Parts = append(man.Parts, p)
			man.IncludesKeys = true
		}
		fmt.Fprintln(e.stderr, "WARNING: --include-keys: this backup holds the master key and the audit signing key. "+
			"Anyone holding an identity for its recipients can decrypt every keyset and sign audit checkpoints. "+
			"A master key from TUTELA_MASTER_KEY or a KMS/HSM KEK is never included.")
	}
	n, err := writeBackup(c.File, recipients, &man)
	if err != nil {
		return errors.Join(err, recordOperation(e.ctx, m.DB, compliance.OpBackup, compliance.OutcomeFailure,
			map[string]any{"file": filepath.Base(c.File), "error": errText(err)}))
	}
	sum, err := hashPart(c.File)
	if err != nil {
		return err
	}
	// The compliance report cites the last encrypted backup: when, how big, its digest.
	if err := recordOperation(e.ctx, m.DB, compliance.OpBackup, compliance.OutcomeSuccess, map[string]any{
		"file": filepath.Base(c.File), "bytes": n, "sha256": sum.SHA256, "recipients": len(recipients), "dialect": string(man.Dialect),
		"migration": man.MigrationVersion, "includes_keys": man.IncludesKeys, "backup_created_at": man.CreatedAt.Format(time.RFC3339)}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup written: %s (%s, migration %d, %d parts, %d bytes encrypted to %d recipient(s))\n",
		c.File, man.Dialect, man.MigrationVersion, len(man.Parts), n, len(recipients))
	if !man.IncludesKeys {
		fmt.Fprintln(e.stdout, "keys are not in this backup: keep master.key (or your KEK) and audit.key backed up separately; "+
			"without the KEK the restored data cannot be decrypted")
	}
	return nil
}

func hashPart(path string) (sqlstore.SnapshotPart, error) {
	f, err := os.Open(path) // #nosec G304 -- a file named by the operator on the command line
	if err != nil {
		return sqlstore.SnapshotPart{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return sqlstore.SnapshotPart{}, err
	}
	return sqlstore.SnapshotPart{Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeBackup streams the manifest and parts through age into a temporary file next to path
// (mode 0600) and renames it into place, so a failed run leaves no partial backup behind.
func writeBackup(path string, recipients []age.Recipient, man *backupManifest) (size int64, err error) {
	mb, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	aw, err := age.Encrypt(bw, recipients...)
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(aw)
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Size: size, Mode: 0o600, Typeflag: tar.TypeReg, ModTime: man.CreatedAt, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(manifestName, int64(len(mb)))); err != nil {
		return 0, err
	}
	if _, err := tw.Write(mb); err != nil {
		return 0, err
	}
	for _, p := range man.Parts {
		if err := copyPart(tw, hdr(p.Name, p.Size), p); err != nil {
			return 0, fmt.Errorf("backup part %s: %w", p.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := aw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return fi.Size(), os.Rename(tmp, path)
}

// copyPart copies a part and re-checks its hash while doing so: a file changed between the
// snapshot and the archive would otherwise be packaged under a stale manifest entry.
func copyPart(tw *tar.Writer, h *tar.Header, p sqlstore.SnapshotPart) error {
	src, err := os.Open(p.Path)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	sum := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(tw, sum), src, p.Size); err != nil {
		return err
	}
	if hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {
		return errors.New("changed while the backup was written")
	}
	return nil
}

type backupRestoreCmd struct {
	File     string `arg:"" help:"Backup file." type:"path"`
	Identity string `required:"" help:"age identity file (AGE-SECRET-KEY-1…) of one of the backup's recipients." type:"path" placeholder:"KEYFILE"`
	Force    bool   `help:"Replace a database that already holds data (and differing key files)."`
	// The erasure ledger: see docs/backup.md, "Erasure reaches backups".
	ErasureLedger   string `name:"erasure-ledger" help:"Directory of the published erasure ledger, re-applied after loading (default: privacy.erasure_ledger_dir, or <data_dir>/erasures)." type:"path" placeholder:"DIR"`
	ErasureKey      string `name:"erasure-key" help:"Audit verifier key the ledger's heads are signed with (default: the data directory's audit.key, or the backup's)." placeholder:"VKEY"`
	NoErasureLedger bool   `name:"no-erasure-ledger" help:"Restore without a ledger: only for a deployment that never erased anyone (refused if the backup records an erasure)."`
}

// ErrBackupCorrupt means the backup failed authentication or its manifest: it was damaged or
// tampered with, and nothing was restored.
var ErrBackupCorrupt = errors.New("backup is corrupt or was tampered with; nothing was restored")

func parseIdentities(path string) ([]age.Identity, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- a file named by the operator on the command line
	if err != nil {
		return nil, err
	}
	var out []age.Identity
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			// The error of ParseX25519Identity never echoes the key.
			return nil, fmt.Errorf("%s: not an age X25519 identity (AGE-SECRET-KEY-1…)", path)
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no age identity", path)
	}
	return out, nil
}

// unpacked is a decrypted, verified backup: its manifest and the parts in a private temporary
// directory.
type unpacked struct {
	man   backupManifest
	dir   string
	paths map[string]string
}

func (u *unpacked) open(part string) (io.ReadCloser, error) {
	p, ok := u.paths[part]
	if !ok {
		return nil, fmt.Errorf("%w: part %s missing", ErrBackupCorrupt, part)
	}
	return os.Open(p) // #nosec G304 -- a part inside the directory this command unpacked (names checked on unpack)
}

// unpackBackup decrypts r and writes every part into a new directory under tmpDir, checking
// each against the manifest's size and SHA-256. It reads the age stream to its end, so a
// truncated or modified ciphertext fails here (age authenticates every 64 KiB chunk and the
// last one), before any database is touched.
func unpackBackup(r io.Reader, ids []age.Identity, tmpDir string) (_ *unpacked, err error) {
	ar, err := age.Decrypt(r, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, errors.New("cannot decrypt: no identity in the key file matches a recipient of this backup")
		}
		return nil, fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	dir, err := os.MkdirTemp(tmpDir, ".restore-*")
	if err != nil {
		return nil, err
	}
	u := &unpacked{dir: dir, paths: map[string]string{}}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBackupCorrupt, fmt.Sprintf(format, args...))
	}
	tr := tar.NewReader(ar)
	h, err := tr.Next()
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if h.Name != manifestName || h.Size > maxManifestBytes {
		return nil, corrupt("first entry is %q, want %s", h.Name, manifestName)
	}
	mb, err := io.ReadAll(io.LimitReader(tr, maxManifestBytes))
	if err != nil {
		return nil, corrupt("manifest: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u.man); err != nil {
		return nil, corrupt("manifest: %v", err)
	}
	if u.man.Format != backupFormat {
		return nil, fmt.Errorf("unsupported backup format %q (this tutela reads %s)", u.man.Format, backupFormat)
	}
	want := map[string]sqlstore.SnapshotPart{}
	for _, p := range u.man.Parts {
		if _, dup := want[p.Name]; dup || p.Size < 0 {
			return nil, corrupt("manifest lists part %s twice", p.Name)
		}
		want[p.Name] = p
	}
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt("%v", err)
		}
		p, ok := want[h.Name]
		if !ok || h.Typeflag != tar.TypeReg || h.Size != p.Size {
			return nil, corrupt("unexpected entry %q", h.Name)
		}
		if _, seen := u.paths[h.Name]; seen {
			return nil, corrupt("entry %q appears twice", h.Name)
		}
		path := filepath.Join(dir, fmt.Sprintf("part-%04d", i)) // never a name taken from the archive
		if err := writeVerified(path, tr, p); err != nil {
			return nil, err
		}
		u.paths[h.Name] = path
	}
	if _, err := io.Copy(io.Discard, ar); err != nil { // authenticate the final chunk
		return nil, corrupt("%v", err)
	}
	for name := range want {
		if _, ok := u.paths[name]; !ok {
			return nil, corrupt("part %s missing", name)
		}
	}
	return u, nil
}

func writeVerified(path string, r io.Reader, p sqlstore.SnapshotPart) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) // #nosec G304 -- a file named by the operator on the command line, created 0600 and never overwritten
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), r)
	if err != nil {
		return fmt.Errorf("%w: part %s: %v", ErrBackupCorrupt, p.Name, err)
	}
	if n != p.Size || hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {
		return fmt.Errorf("%w: part %s does not match its manifest hash", ErrBackupCorrupt, p.Name)
	}
	return f.Close()
}

func (c backupRestoreCmd) Run(e *env) error {
	ids, err := parseIdentities(c.Identity)
	if err != nil {
		return err
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	f, err := os.Open(c.File)
	if err != nil {
		return err
	}
	defer f.Close()
	u, err := unpackBackup(bufio.NewReaderSize(f, 1<<16), ids, cfg.DataDir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(u.dir)
	man := u.man

	target := sqlstore.SQLite
	if cfg.DatabaseDSN() != "" {
		target = sqlstore.Postgres
	}
	if man.Dialect != target {
		return fmt.Errorf("this is a %s backup and the configured database is %s; restore into the same kind of store", man.Dialect, target)
	}
	latest, err := sqlstore.LatestMigration(target)
	if err != nil {
		return err
	}
	if man.MigrationVersion > latest {
		return fmt.Errorf("the backup is at migration %d, this tutela knows only up to %d: restore with the newer tutela (%s)",
			man.MigrationVersion, latest, man.TutelaVersion)
	}
	keys, err := c.keyPlan(cfg.DataDir, u)
	if err != nil {
		return err
	}
	finish, report, err := c.erasurePlan(e, cfg, u)
	if err != nil {
		return err
	}
	if man.MigrationVersion >= complianceEvidenceMigration {
		// The restored database records its own restore (the compliance report's "last
		// restore"), in the transaction that re-applies the erasure ledger. An older backup has
		// no table for it until `tutela migrate up`.
		reapply := finish
		finish = func(tx *sqlstore.Tx) error {
			if reapply != nil {
				if err := reapply(tx); err != nil {
					return err
				}
			}
			_, err := tx.RecordOperation(e.ctx, compliance.OpRestore, compliance.OutcomeSuccess, map[string]any{
				"file": filepath.Base(c.File), "backup_created_at": man.CreatedAt.Format(time.RFC3339), "migration": man.MigrationVersion,
				"dialect": string(man.Dialect), "forced": c.Force})
			return err
		}
	}

	if target == sqlstore.SQLite {
		src, ok := u.paths[sqlstore.SQLiteSnapshotPart]
		if !ok {
			return fmt.Errorf("%w: no database part", ErrBackupCorrupt)
		}
		if err := sqlstore.RestoreSQLiteFile(e.ctx, src, filepath.Join(cfg.DataDir, "tutela.db"), man.MigrationVersion, c.Force, finish); err != nil {
			return err
		}
	} else {
		if err := c.restorePostgres(e, man, u, finish); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := vault.WriteFileAtomic(k.path, k.data, 0o600); err != nil {
			return fmt.Errorf("restore %s: %w", k.path, err)
		}
		fmt.Fprintf(e.stdout, "restored %s\n", k.path)
	}
	fmt.Fprintf(e.stdout, "restored %s backup of %s (migration %d) into %s\n",
		man.Dialect, man.CreatedAt.Format(time.RFC3339), man.MigrationVersion, target)
	fmt.Fprintln(e.stdout, report())
	size, err := restoredAuditSize(e)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "next: with the master key (or KEK) and audit.key in place, run `tutela audit sequence` (or start a node), "+
		"which appends the events the backup held outside the log, then `tutela audit verify`")
	// Checkpoints published after the backup cover entries it does not hold (at least the
	// source's own compliance.backup_created record): verifying against them reports
	// checkpoint_mismatch, or a fork once the restored log grows past them.
	fmt.Fprintf(e.stdout, "audit log: the backup holds %d entries; verify against the published checkpoints up to the backup only: "+
		"those of size <= %d (files 1%s … %d%s), not the ones published after it\n", size, size, audit.CheckpointFileExt, size, audit.CheckpointFileExt)
	if !man.IncludesKeys {
		fmt.Fprintln(e.stdout, "the backup holds no keys: put the master key (or configure the KEK) and audit.key in place before `serve`")
	}
	return nil
}

// restoredAuditSize is the size of the restored audit log before anything is sequenced: the
// size of the log the backup holds.
func restoredAuditSize(e *env) (int64, error) {
	m, err := open(e, false)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	return m.DB.AuditSource().Size(e.ctx)
}

func (c backupRestoreCmd) restorePostgres(e *env, man backupManifest, u *unpacked, finish func(*sqlstore.Tx) error) error {
	m, err := open(e, false)
	if err != nil {
		return err
	}
	defer m.Close()
	v, err := m.DB.MigrationVersion(e.ctx)
	if err != nil {
		return err
	}
	switch {
	case v > man.MigrationVersion:
		return fmt.Errorf("the target database is at migration %d, the backup at %d: restore into a new database "+
			"(this tutela migrates it to the backup's version)", v, man.MigrationVersion)
	case v < man.MigrationVersion:
		if err := m.DB.MigrateTo(e.ctx, man.MigrationVersion); err != nil {
			return err
		}
	}
	return m.DB.RestorePostgres(e.ctx, man.Tables, u.open, c.Force, finish)
}

type keyWrite struct {
	path string
	data []byte
}

// keyPlan decides, before anything is written, which key files a backup made with
// --include-keys restores: missing ones are written; an existing different one is kept and
// the restore refused unless --force (a silent swap would strand data under the old key).
func (c backupRestoreCmd) keyPlan(dataDir string, u *unpacked) ([]keyWrite, error) {
	var out []keyWrite
	for part, file := range map[string]string{keyPartMaster: vault.MasterKeyFile, keyPartAudit: audit.KeyFile} {
		src, ok := u.paths[part]
		if !ok {
			continue
		}
		data, err := os.ReadFile(src) // #nosec G304 -- a file named by the operator on the command line
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dataDir, file)
		cur, err := os.ReadFile(path) // #nosec G304 -- a file named by the operator on the command line
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		case bytes.Equal(cur, data):
			continue
		case !c.Force:
			return nil, fmt.Errorf("%s differs from the key in the backup; pass --force to replace it", path)
		}
		out = append(out, keyWrite{path: path, data: data})
	}
	return out, nil
}
