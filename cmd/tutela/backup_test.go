package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"tutela"
	"tutela/audit"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

func dataDirOf(environ []string) string { return strings.TrimPrefix(environ[0], "TUTELA_DATA_DIR=") }

// ageKey returns a fresh X25519 recipient and a 0600 identity file holding its secret key.
func ageKey(t *testing.T) (recipient, identityFile string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identityFile = filepath.Join(t.TempDir(), "backup.agekey")
	if err := os.WriteFile(identityFile, []byte("# test identity\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String(), identityFile
}

// seedSource bootstraps a tenant and super-admin, records more audit events, sequences them
// (publishing checkpoints) and leaves one event pending, so the backup holds both states.
func seedSource(t *testing.T, environ []string, dsn string) {
	t.Helper()
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatalf("bootstrap: %s", stderr)
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	record := func(i int) {
		ev := audit.Event{ActorType: audit.ActorSystem, Action: fmt.Sprintf("test.backup_%d", i), Outcome: audit.OutcomeSuccess}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		record(i)
	}
	if out, err := auditRun(t, environ, auditSequenceCmd{}); err != nil {
		t.Fatalf("sequence: %s %v", out, err)
	}
	record(99) // pending: not yet in the log
}

// ledgerOf is the erasure ledger directory `backup create` published for environ.
func ledgerOf(environ []string) string { return filepath.Join(dataDirOf(environ), "erasures") }

func sqliteDSN(environ []string) string { return filepath.Join(dataDirOf(environ), "tutela.db") }

// dumpDB reads every table except goose's as sorted row strings.
func dumpDB(t *testing.T, dsn string) map[string][]string {
	t.Helper()
	driver, list := "sqlite", `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if strings.HasPrefix(dsn, "postgres") {
		driver, list = "pgx", `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		if n != "goose_db_version" {
			tables = append(tables, n)
		}
	}
	rows.Close()
	out := map[string][]string{}
	for _, tbl := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tbl + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out[tbl] = append(out[tbl], fmt.Sprintf("%v", vals))
		}
		rows.Close()
		slices.Sort(out[tbl])
	}
	return out
}

func sameData(t *testing.T, a, b map[string][]string) {
	t.Helper()
	// A backup records itself in the source after its snapshot, and a restore records itself in
	// the restored database (compliance_evidence, with their audit events): neither is data the
	// round trip carries.
	a, b = withoutOperationRecords(a), withoutOperationRecords(b)
	// Change counters of cached authentication state: the restore rebuilds them (auth_epochs).
	maps.DeleteFunc(a, func(tbl string, _ []string) bool { return sqlstore.RebuiltOnRestore(tbl) })
	maps.DeleteFunc(b, func(tbl string, _ []string) bool { return sqlstore.RebuiltOnRestore(tbl) })
	if len(a) != len(b) {
		t.Fatalf("table sets differ: %d vs %d", len(a), len(b))
	}
	for tbl, rows := range a {
		if !slices.Equal(rows, b[tbl]) {
			t.Fatalf("table %s differs after restore:\n%v\nvs\n%v", tbl, rows, b[tbl])
		}
	}
	for _, tbl := range []string{"tenants", "users", "audit_events", "audit_log", "audit_checkpoints"} {
		if len(a[tbl]) == 0 {
			t.Fatalf("source table %s is empty: the round trip proves nothing", tbl)
		}
	}
}

func withoutOperationRecords(d map[string][]string) map[string][]string {
	out := make(map[string][]string, len(d))
	// "[pos " and "[id]" of each operation record: their queue entries and registered ids go too.
	var ops, opIDs []string
	for tbl, rows := range d {
		if tbl == "compliance_evidence" {
			rows = nil
		}
		if tbl == "audit_events" {
			rows = slices.DeleteFunc(slices.Clone(rows), func(r string) bool {
				op := strings.Contains(r, " compliance.backup_created ") || strings.Contains(r, " compliance.backup_restored ")
				if op {
					f := strings.Fields(r)
					ops = append(ops, f[0]+" ")
					opIDs = append(opIDs, "["+f[1]+"]")
				}
				return op
			})
		}
		out[tbl] = rows
	}
	// On PostgreSQL a queue entry carries its event's time, and audit_event_ids its id
	// (migration 00041).
	out["audit_pending"] = slices.DeleteFunc(slices.Clone(out["audit_pending"]), func(r string) bool {
		return slices.ContainsFunc(ops, func(p string) bool { return strings.HasPrefix(r, p) })
	})
	if ids, ok := out["audit_event_ids"]; ok {
		out["audit_event_ids"] = slices.DeleteFunc(slices.Clone(ids), func(r string) bool { return slices.Contains(opIDs, r) })
	}
	return out
}

// copyKeys copies master.key and audit.key, which operators back up separately.
func copyKeys(t *testing.T, fromDir, toDir string) {
	t.Helper()
	if err := os.MkdirAll(toDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{vault.MasterKeyFile, audit.KeyFile} {
		b, err := os.ReadFile(filepath.Join(fromDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := vault.WriteFileAtomic(filepath.Join(toDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// verifyAudit does what restore tells the operator: sequence the events the backup held
// outside the log (seedSource leaves one), then verify against the published checkpoints.
func verifyAudit(t *testing.T, environ []string, publishedDir string) {
	t.Helper()
	if out, err := auditRun(t, environ, auditSequenceCmd{}); err != nil {
		t.Fatalf("audit sequence after restore: %v\n%s", err, out)
	}
	out, err := auditRun(t, environ, auditVerifyCmd{Checkpoints: publishedDir})
	if err != nil || !strings.Contains(out, "result:      OK") {
		t.Fatalf("audit verify after restore: %v\n%s", err, out)
	}
}

func createBackup(t *testing.T, environ []string, cmd backupCreateCmd) string {
	t.Helper()
	out, err := auditRun(t, environ, cmd)
	if err != nil || !strings.Contains(out, "backup written") {
		t.Fatalf("backup create: %v\n%s", err, out)
	}
	if fi, err := os.Stat(cmd.File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v", err)
	}
	return out
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "absent"
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func noRestoreLeftovers(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".restore-") || strings.HasPrefix(e.Name(), ".backup-") {
			t.Errorf("temporary %s left in the data directory", e.Name())
		}
	}
}

func TestBackup_SQLiteRoundTripAuditVerifies(t *testing.T) {
	t.Parallel()
	src := baseEnv(t)
	seedSource(t, src, sqliteDSN(src))
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	out := createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	if !strings.Contains(out, "keys are not in this backup") {
		t.Errorf("no reminder to back keys up separately: %s", out)
	}
	noRestoreLeftovers(t, dataDirOf(src))

	dst := baseEnv(t)
	copyKeys(t, dataDirOf(src), dataDirOf(dst))
	if out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src)}); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	noRestoreLeftovers(t, dataDirOf(dst))
	if fi, err := os.Stat(sqliteDSN(dst)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored database: %v", err)
	}
	sameData(t, dumpDB(t, sqliteDSN(src)), dumpDB(t, sqliteDSN(dst)))
	verifyAudit(t, dst, filepath.Join(dataDirOf(src), "checkpoints"))
	// The pending event is sequenced after restore and the log still verifies.
	if out, err := auditRun(t, dst, auditSequenceCmd{}); err != nil {
		t.Fatalf("sequence after restore: %v %s", err, out)
	}
	verifyAudit(t, dst, filepath.Join(dataDirOf(dst), "checkpoints"))
}

func TestBackup_PostgresRoundTripIntoFreshDatabase(t *testing.T) {
	t.Parallel()
	srcURL := sqltest.PostgresURL(t)
	src := append(baseEnv(t), "TUTELA_DATABASE_URL="+srcURL)
	seedSource(t, src, srcURL)
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})

	dstURL := sqltest.PostgresURL(t)
	dst := append(baseEnv(t), "TUTELA_DATABASE_URL="+dstURL)
	if code, _, stderr := runCmd(t, dst, "migrate", "up"); code != 0 { // a freshly migrated, empty database
		t.Fatal(stderr)
	}
	copyKeys(t, dataDirOf(src), dataDirOf(dst))

	// Tampered first: refused, and the target stays empty.
	b, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "tampered.backup")
	b2 := bytes.Clone(b)
	b2[len(b2)/2] ^= 0x01
	os.WriteFile(bad, b2, 0o600)
	if _, err := auditRun(t, dst, backupRestoreCmd{File: bad, Identity: idFile}); !errors.Is(err, ErrBackupCorrupt) {
		t.Fatalf("tampered restore: %v", err)
	}
	before := dumpDB(t, dstURL)
	if len(before["users"]) != 0 || len(before["audit_events"]) != 0 {
		t.Fatal("refused restore wrote rows")
	}

	if out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src)}); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	sameData(t, dumpDB(t, srcURL), dumpDB(t, dstURL))
	verifyAudit(t, dst, filepath.Join(dataDirOf(src), "checkpoints"))

	// New writes after the restore: the serial position continues past the restored events.
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dstURL, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "test.after_restore", Outcome: audit.OutcomeSuccess})
	}); err != nil {
		t.Fatalf("audit insert after restore: %v", err)
	}
	if out, err := auditRun(t, dst, auditSequenceCmd{}); err != nil {
		t.Fatalf("sequence after restore: %v %s", err, out)
	}
	verifyAudit(t, dst, filepath.Join(dataDirOf(dst), "checkpoints"))

	// The target now holds data: a second restore is refused without --force, allowed with it.
	if _, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src)}); !errors.Is(err, sqlstore.ErrNotEmpty) {
		t.Fatalf("restore into non-empty database: %v", err)
	}
	if out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src), Force: true}); err != nil {
		t.Fatalf("forced restore: %v\n%s", err, out)
	}
	sameData(t, dumpDB(t, srcURL), dumpDB(t, dstURL))
	verifyAudit(t, dst, filepath.Join(dataDirOf(src), "checkpoints"))
}

func TestBackup_TamperedAnywhereRefusedTargetUntouched(t *testing.T) {
	t.Parallel()
	src := baseEnv(t)
	seedSource(t, src, sqliteDSN(src))
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	good, _ := os.ReadFile(file)

	// The target is a live database restored with --force, so a refused restore that touched
	// it would show.
	dst := baseEnv(t)
	if code, _, stderr := runCmd(t, dst, "bootstrap", "--tenant", "other", "--email", "x@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	before := fileSum(t, sqliteDSN(dst))
	positions := []int{0, 20, 100, len(good) / 3, len(good) / 2, len(good) - 17, len(good) - 1}
	for _, pos := range positions {
		bad := bytes.Clone(good)
		bad[pos] ^= 0x20
		path := filepath.Join(t.TempDir(), "bad.backup")
		os.WriteFile(path, bad, 0o600)
		_, err := auditRun(t, dst, backupRestoreCmd{File: path, Identity: idFile, Force: true})
		if err == nil {
			t.Fatalf("byte %d of %d flipped: restore succeeded", pos, len(good))
		}
		if after := fileSum(t, sqliteDSN(dst)); after != before {
			t.Fatalf("byte %d flipped: the target database changed", pos)
		}
	}
	// Truncated: age's final-chunk flag catches it.
	path := filepath.Join(t.TempDir(), "short.backup")
	os.WriteFile(path, good[:len(good)-100], 0o600)
	if _, err := auditRun(t, dst, backupRestoreCmd{File: path, Identity: idFile, Force: true}); !errors.Is(err, ErrBackupCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	if fileSum(t, sqliteDSN(dst)) != before {
		t.Fatal("truncated backup changed the target")
	}
	noRestoreLeftovers(t, dataDirOf(dst))
}

func TestBackup_WrongIdentityRefused(t *testing.T) {
	t.Parallel()
	src := baseEnv(t)
	seedSource(t, src, sqliteDSN(src))
	rcpt, _ := ageKey(t)
	_, otherID := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	dst := baseEnv(t)
	_, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: otherID})
	if err == nil || !strings.Contains(err.Error(), "no identity") {
		t.Fatalf("wrong identity: %v", err)
	}
	if _, err := os.Stat(sqliteDSN(dst)); err == nil {
		t.Fatal("database created by a refused restore")
	}
}

func TestBackup_RestoreIntoNonEmptyNeedsForce(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	seedSource(t, env, sqliteDSN(env))
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	createBackup(t, env, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	snapshot := dumpDB(t, sqliteDSN(env))
	// A later change, which a forced restore rolls back.
	if code, _, stderr := runCmd(t, env, "service-account", "create", "--tenant", "acme", "--name", "later"); code != 0 {
		t.Fatal(stderr)
	}
	before := fileSum(t, sqliteDSN(env))
	_, err := auditRun(t, env, backupRestoreCmd{File: file, Identity: idFile})
	if !errors.Is(err, sqlstore.ErrNotEmpty) {
		t.Fatalf("restore into non-empty: %v", err)
	}
	if fileSum(t, sqliteDSN(env)) != before {
		t.Fatal("refused restore changed the database")
	}
	if out, err := auditRun(t, env, backupRestoreCmd{File: file, Identity: idFile, Force: true}); err != nil {
		t.Fatalf("forced restore: %v\n%s", err, out)
	}
	got := dumpDB(t, sqliteDSN(env))
	sameData(t, snapshot, got)
	verifyAudit(t, env, filepath.Join(t.TempDir(), "none")) // the later checkpoints are gone with the rollback
}

func decryptAll(t *testing.T, file, idFile string) []byte {
	t.Helper()
	ids, err := parseIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, ids...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBackup_KeysOnlyWithIncludeKeys(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	seedSource(t, environ, sqliteDSN(environ))
	dir := dataDirOf(environ)
	masterText, err := os.ReadFile(filepath.Join(dir, vault.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	master, err := vault.ParseMasterKey(string(masterText))
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := os.ReadFile(filepath.Join(dir, audit.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	signerLine, _, _ := strings.Cut(string(auditKey), "\n")
	rcpt, idFile := ageKey(t)
	// Two recipients, one from a file: either can decrypt.
	rfile := filepath.Join(t.TempDir(), "recipients.txt")
	rcpt2, idFile2 := ageKey(t)
	os.WriteFile(rfile, []byte("# ops team\n"+rcpt2+"\n"), 0o600)

	file := filepath.Join(t.TempDir(), "nokeys.backup")
	createBackup(t, environ, backupCreateCmd{File: file, Recipient: []string{rcpt}, RecipientsFile: []string{rfile}})
	for _, id := range []string{idFile, idFile2} {
		plain := decryptAll(t, file, id)
		for _, secret := range [][]byte{bytes.TrimSpace(masterText), master.Bytes(), []byte(strings.TrimSpace(signerLine))} {
			if bytes.Contains(plain, secret) {
				t.Fatalf("key material in a backup made without --include-keys")
			}
		}
	}

	withKeys := filepath.Join(t.TempDir(), "keys.backup")
	var errb bytes.Buffer
	c := backupCreateCmd{File: withKeys, Recipient: []string{rcpt}, IncludeKeys: true}
	if err := c.Run(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: &errb}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "WARNING") {
		t.Errorf("no warning for --include-keys: %q", errb.String())
	}
	if !bytes.Contains(decryptAll(t, withKeys, idFile), bytes.TrimSpace(masterText)) {
		t.Fatal("--include-keys backup lacks the master key")
	}
	// Restored into an empty data directory, the keys come back with mode 0600.
	dst := baseEnv(t)
	if out, err := auditRun(t, dst, backupRestoreCmd{File: withKeys, Identity: idFile, ErasureLedger: ledgerOf(environ)}); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	for _, name := range []string{vault.MasterKeyFile, audit.KeyFile} {
		fi, err := os.Stat(filepath.Join(dataDirOf(dst), name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s after restore: %v", name, err)
		}
	}
	verifyAudit(t, dst, filepath.Join(dir, "checkpoints"))
}

func TestBackup_RecipientsValidated(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	for _, c := range []backupCreateCmd{
		{File: filepath.Join(t.TempDir(), "a")},
		{File: filepath.Join(t.TempDir(), "b"), Recipient: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKey"}},
		{File: filepath.Join(t.TempDir(), "c"), Recipient: []string{"age1notvalid"}},
	} {
		if _, err := auditRun(t, env, c); err == nil {
			t.Fatalf("%v accepted", c.Recipient)
		}
		if _, err := os.Stat(c.File); err == nil {
			t.Fatal("backup written despite bad recipients")
		}
	}
}

// personStore opens environ's store with its vault, to make and read person keys as the
// privacy vault does.
func personStore(t *testing.T, environ []string) (*Main, *env) {
	t.Helper()
	e := &env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard}
	m, err := open(e, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.loadMasterKey(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	if m.vault, err = m.openVault(e); err != nil {
		t.Fatal(err)
	}
	return m, e
}

func tenantID(t *testing.T, m *Main, slug string) string {
	t.Helper()
	var id string
	if err := m.DB.View(context.Background(), func(tx *sqlstore.Tx) error {
		tn, err := tx.TenantBySlug(context.Background(), slug)
		if err == nil {
			id = tn.ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// sealedPerson gives a new person a key and returns their name sealed under it.
func sealedPerson(t *testing.T, m *Main, tenant, name string) (id string, ct []byte) {
	t.Helper()
	ctx := context.Background()
	id = tutela.NewID()
	pk, wrapped, err := privacy.Keys{Vault: m.vault}.New(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if ct, err = pk.Seal("name", []byte(name)); err != nil {
		t.Fatal(err)
	}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.PersonKeys(tenant).Create(ctx, id, sqlstore.PersonSubject, wrapped)
	}); err != nil {
		t.Fatal(err)
	}
	return id, ct
}

// openPerson reads a person's sealed value back through their stored key.
func openPerson(t *testing.T, m *Main, tenant, id string, ct []byte) (string, error) {
	t.Helper()
	ctx := context.Background()
	var wrapped []byte
	if err := m.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		wrapped, err = tx.PersonKeys(tenant).Get(ctx, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pk, err := privacy.Keys{Vault: m.vault}.Open(ctx, tenant, id, wrapped)
	if err != nil {
		return "", err
	}
	pt, err := pk.Open("name", ct)
	return string(pt), err
}

// erasureScenario: two people, a backup, then one of them erased and the ledger published as
// serve would. It returns the backup and identity files and the two people.
func erasureScenario(t *testing.T, src []string, dsn string) (file, idFile, tenant, gone, kept string, goneCT, keptCT []byte) {
	t.Helper()
	seedSource(t, src, dsn)
	m, e := personStore(t, src)
	tenant = tenantID(t, m, "acme")
	gone, goneCT = sealedPerson(t, m, tenant, "Alice Erased")
	kept, keptCT = sealedPerson(t, m, tenant, "Bob Kept")
	var rcpt string
	rcpt, idFile = ageKey(t)
	file = filepath.Join(t.TempDir(), "tutela.backup")
	createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	if err := m.DB.Update(e.ctx, func(tx *sqlstore.Tx) error {
		return tx.ErasePerson(e.ctx, &sqlstore.Erasure{TenantID: tenant, PersonID: gone, Kind: sqlstore.PersonSubject,
			Trigger: sqlstore.ErasureRequest, Reason: "data subject's request", LegalBasis: "GDPR Art. 17"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := publishErasures(e, m); err != nil {
		t.Fatal(err)
	}
	if _, err := openPerson(t, m, tenant, gone, goneCT); !errors.Is(err, privacy.ErrErased) {
		t.Fatalf("erased person still opens in the source: %v", err)
	}
	return file, idFile, tenant, gone, kept, goneCT, keptCT
}

func checkErasureRestored(t *testing.T, dst []string, tenant, gone, kept string, goneCT, keptCT []byte) {
	t.Helper()
	m, _ := personStore(t, dst)
	if _, err := openPerson(t, m, tenant, gone, goneCT); !errors.Is(err, privacy.ErrErased) {
		t.Fatalf("a person erased after the backup came back with the restore: %v", err)
	}
	if got, err := openPerson(t, m, tenant, kept, keptCT); err != nil || got != "Bob Kept" {
		t.Fatalf("another person's data after restore: %q, %v", got, err)
	}
}

func TestBackup_ErasureAfterBackupReachesTheRestoreSQLite(t *testing.T) {
	t.Parallel()
	src := baseEnv(t)
	file, idFile, tenant, gone, kept, goneCT, keptCT := erasureScenario(t, src, sqliteDSN(src))

	// Attacks on the ledger: each refuses and writes no database.
	good := ledgerOf(src)
	attacks := map[string]func(dir string) error{
		"missing":   func(dir string) error { return os.RemoveAll(dir) },
		"truncated": func(dir string) error { return os.Truncate(filepath.Join(dir, "ledger.jsonl"), 0) },
		"altered": func(dir string) error {
			p := filepath.Join(dir, "ledger.jsonl")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, bytes.Replace(b, []byte(gone[:8]), []byte("00000000"), 1), 0o600)
		},
	}
	for name, attack := range attacks {
		dst := baseEnv(t)
		copyKeys(t, dataDirOf(src), dataDirOf(dst))
		dir := filepath.Join(t.TempDir(), "ledger")
		if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
			t.Fatal(err)
		}
		if err := attack(dir); err != nil {
			t.Fatal(err)
		}
		_, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: dir})
		if !errors.Is(err, sqlstore.ErrLedgerTampered) && !errors.Is(err, sqlstore.ErrLedgerMissing) {
			t.Errorf("%s ledger: restore = %v", name, err)
		}
		if _, err := os.Stat(sqliteDSN(dst)); err == nil {
			t.Errorf("%s ledger: a refused restore wrote the database", name)
		}
	}

	dst := baseEnv(t)
	copyKeys(t, dataDirOf(src), dataDirOf(dst))
	out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: good})
	if err != nil || !strings.Contains(out, "1 erasures, 1 re-applied") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	checkErasureRestored(t, dst, tenant, gone, kept, goneCT, keptCT)
	// The re-applied erasure is audited, and the log still verifies.
	verifyAudit(t, dst, filepath.Join(dataDirOf(src), "checkpoints"))

	// --no-erasure-ledger restores the person: refused for this backup only if it records an
	// erasure, which it does not (it predates the only one), so the flag is the operator's word.
	// A backup taken after the erasure records it, and the flag is refused.
	rcpt2, id2 := ageKey(t)
	after := filepath.Join(t.TempDir(), "after.backup")
	createBackup(t, src, backupCreateCmd{File: after, Recipient: []string{rcpt2}})
	dst2 := baseEnv(t)
	copyKeys(t, dataDirOf(src), dataDirOf(dst2))
	if _, err := auditRun(t, dst2, backupRestoreCmd{File: after, Identity: id2, NoErasureLedger: true}); !errors.Is(err, errNoLedgerYetErased) {
		t.Fatalf("--no-erasure-ledger with a backup that records erasures: %v", err)
	}
	if _, err := os.Stat(sqliteDSN(dst2)); err == nil {
		t.Fatal("refused restore wrote the database")
	}
}

func TestBackup_ErasureAfterBackupReachesTheRestorePostgres(t *testing.T) {
	t.Parallel()
	srcURL := sqltest.PostgresURL(t)
	src := append(baseEnv(t), "TUTELA_DATABASE_URL="+srcURL)
	file, idFile, tenant, gone, kept, goneCT, keptCT := erasureScenario(t, src, srcURL)

	dstURL := sqltest.PostgresURL(t)
	dst := append(baseEnv(t), "TUTELA_DATABASE_URL="+dstURL)
	if code, _, stderr := runCmd(t, dst, "migrate", "up"); code != 0 {
		t.Fatal(stderr)
	}
	copyKeys(t, dataDirOf(src), dataDirOf(dst))
	// A ledger truncated to before the erasure, with its newer heads left: refused, target empty.
	bad := filepath.Join(t.TempDir(), "ledger")
	if err := os.CopyFS(bad, os.DirFS(ledgerOf(src))); err != nil {
		t.Fatal(err)
	}
	os.Truncate(filepath.Join(bad, "ledger.jsonl"), 0)
	if _, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: bad}); !errors.Is(err, sqlstore.ErrLedgerTampered) {
		t.Fatalf("truncated ledger: %v", err)
	}
	if rows := dumpDB(t, dstURL); len(rows["users"]) != 0 || len(rows["person_keys"]) != 0 {
		t.Fatal("refused restore wrote rows")
	}
	out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src)})
	if err != nil || !strings.Contains(out, "1 re-applied") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	checkErasureRestored(t, dst, tenant, gone, kept, goneCT, keptCT)
	verifyAudit(t, dst, filepath.Join(dataDirOf(src), "checkpoints"))
}
