package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"tutela/audit"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/vault"
)

// The rehearsals of docs/RUNBOOKS.md: each test types the runbook's commands through the real
// command grammar (runCmd, runCmdAt) against a real data directory and checks what the runbook
// promises. A runbook step that changes must change here too.

// runCmdAt is runCmd with the vault's clock, so a rehearsal moves time past vault.cache_ttl
// between a rotation and its rewrap instead of sleeping.
func runCmdAt(t *testing.T, environ []string, clock tutela.Clock, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runEnv(args, &env{ctx: context.Background(), environ: environ, stdout: &out, stderr: &errb, clock: clock})
	return code, out.String(), errb.String()
}

// keyInventory is `tutela keys list --json`.
func keyInventory(t *testing.T, environ []string, clock tutela.Clock) []vault.KeyView {
	t.Helper()
	code, out, stderr := runCmdAt(t, environ, clock, "keys", "list", "--json")
	if code != 0 {
		t.Fatalf("keys list: exit %d %s", code, stderr)
	}
	var view struct {
		Keysets []vault.KeyView `json:"keysets"`
	}
	if err := json.Unmarshal([]byte(out), &view); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	return view.Keysets
}

// TestRunbook_MasterKeyCompromise rehearses "Key compromise: master key / KEK": a new master key
// takes over the keysets (kek-rewrap), every data key is rotated, old ciphertexts re-encrypted
// and the old keys destroyed; the old master key then opens nothing and old data still reads.
func TestRunbook_MasterKeyCompromise(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	dataDir := dataDirOf(environ)
	clock := clocktest.New(time.Now().UTC())
	if code, _, stderr := runCmdAt(t, environ, clock.Now, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatalf("bootstrap: %s", stderr)
	}
	m, _ := personStore(t, environ)
	tenant := tenantID(t, m, "acme")
	person, ct := sealedPerson(t, m, tenant, "Amaka Obi")
	m.Close()

	// Step 1: keep the compromised key aside (for kek-rewrap only) and install a new one.
	oldKey := filepath.Join(t.TempDir(), "master.key.compromised")
	if err := os.Rename(filepath.Join(dataDir, vault.MasterKeyFile), oldKey); err != nil {
		t.Fatal(err)
	}
	if _, created, err := vault.LoadOrCreateMasterKey(filepath.Join(dataDir, vault.MasterKeyFile)); err != nil || !created {
		t.Fatalf("new master key: %v", err)
	}
	// Step 2: move every keyset under the new KEK.
	if code, out, stderr := runCmdAt(t, environ, clock.Now, "keys", "kek-rewrap", "--from-uri", "local:",
		"--from-master-key-file", oldKey); code != 0 {
		t.Fatalf("kek-rewrap: exit %d %s %s", code, out, stderr)
	}
	// Step 3: new data keys everywhere, wait vault.cache_ttl, re-encrypt, destroy the old keys.
	if code, _, stderr := runCmdAt(t, environ, clock.Now, "keys", "rotate"); code != 0 {
		t.Fatalf("rotate: %s", stderr)
	}
	settleRotation(clock)
	if code, out, stderr := runCmdAt(t, environ, clock.Now, "keys", "rewrap"); code != 0 {
		t.Fatalf("rewrap: exit %d %s %s", code, out, stderr)
	}
	for _, ks := range keyInventory(t, environ, clock.Now) {
		tn := ks.TenantID
		if tn == "" {
			tn = "platform"
		}
		code, out, stderr := runCmdAt(t, environ, clock.Now, "keys", "retire", "--purpose", ks.Purpose, "--tenant", tn)
		if code != 0 {
			t.Fatalf("retire %s/%s: exit %d %s %s", tn, ks.Purpose, code, out, stderr)
		}
	}
	// Verification: one key per keyset, none older than the rotation; old data reads; the
	// compromised master key opens nothing.
	for _, ks := range keyInventory(t, environ, clock.Now) {
		if len(ks.Keys) != 1 {
			t.Errorf("keyset %s/%s keeps %d keys after retire", ks.TenantID, ks.Purpose, len(ks.Keys))
		}
	}
	m, _ = personStore(t, environ)
	if got, err := openPerson(t, m, tenant, person, ct); err != nil || got != "Amaka Obi" {
		t.Fatalf("old ciphertext after the runbook: %q %v", got, err)
	}
	m.Close()
	withOld := append(append([]string(nil), environ...), "TUTELA_MASTER_KEY_FILE="+oldKey)
	if code, _, stderr := runCmdAt(t, withOld, clock.Now, "keys", "list"); code == 0 || !strings.Contains(stderr, "master key") {
		t.Fatalf("the compromised master key still opens the vault: exit %d %s", code, stderr)
	}
	if code, out, stderr := runCmd(t, environ, "audit", "sequence"); code != 0 {
		t.Fatalf("audit sequence: %s %s", out, stderr)
	}
	if code, out, stderr := runCmd(t, environ, "audit", "verify"); code != 0 || !strings.Contains(out, "result:      OK") {
		t.Fatalf("audit verify after the runbook: %s %s", out, stderr)
	}
}

// TestRunbook_ClientSecretCompromise rehearses "Key compromise: a client secret": rotate with no
// overlap; the leaked secret stops at once, the new one works.
func TestRunbook_ClientSecretCompromise(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd(t, environ, "client", "create", "--tenant", "acme", "--name", "Portal", "--type", "web",
		"--redirect-uri", "https://portal.example.org/cb")
	id, leaked := clientIDRE.FindStringSubmatch(stdout), clientSecretRE.FindStringSubmatch(stdout)
	if code != 0 || id == nil || leaked == nil {
		t.Fatalf("client create: exit %d %q %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, environ, "client", "rotate-secret", "--tenant", "acme", "--client", id[1], "--overlap", "0s")
	fresh := clientSecretRE.FindStringSubmatch(stdout)
	if code != 0 || fresh == nil {
		t.Fatalf("rotate-secret: exit %d %q %s", code, stdout, stderr)
	}
	db := openDB(t, environ)
	tn := tenantID(t, &Main{DB: db}, "acme")
	ctx := context.Background()
	var oldOK, newOK bool
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if oldOK, err = tx.OIDCClients(tn).VerifySecret(ctx, id[1], tutela.NewSecret(leaked[1])); err != nil {
			return err
		}
		newOK, err = tx.OIDCClients(tn).VerifySecret(ctx, id[1], tutela.NewSecret(fresh[1]))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if oldOK || !newOK {
		t.Fatalf("after rotation with no overlap: leaked secret accepted %v, new secret accepted %v", oldOK, newOK)
	}
}

// TestRunbook_DatabaseRestore rehearses "Database restore": restore an encrypted backup into a
// fresh data directory holding the keys, then audit sequence and audit verify against the
// checkpoints published off the host up to the backup (size <= the N the restore prints). The
// source keeps running after the backup and publishes a checkpoint covering its
// compliance.backup_created record, which the backup does not hold: verifying against that one
// fails, as the runbook warns.
func TestRunbook_DatabaseRestore(t *testing.T) {
	t.Parallel()
	src := baseEnv(t)
	seedSource(t, src, sqliteDSN(src))
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	if code, out, stderr := runCmd(t, src, "backup", "create", file, "--recipient", rcpt); code != 0 {
		t.Fatalf("backup create: %s %s", out, stderr)
	}
	published := filepath.Join(dataDirOf(src), "checkpoints")

	dst := baseEnv(t)
	copyKeys(t, dataDirOf(src), dataDirOf(dst))
	code, out, stderr := runCmd(t, dst, "backup", "restore", file, "--identity", idFile, "--erasure-ledger", ledgerOf(src))
	if code != 0 {
		t.Fatalf("backup restore: %s %s", out, stderr)
	}
	sameData(t, dumpDB(t, sqliteDSN(src)), dumpDB(t, sqliteDSN(dst)))
	held := backupHoldsRE.FindStringSubmatch(out)
	if held == nil {
		t.Fatalf("the restore does not say how many entries the backup holds:\n%s", out)
	}
	n, err := strconv.ParseInt(held[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The source node runs on after the backup: its record of the backup is sequenced and a
	// checkpoint past the backup is published.
	if code, out, stderr := runCmd(t, src, "audit", "sequence"); code != 0 {
		t.Fatalf("audit sequence in the source: %s %s", out, stderr)
	}
	upToBackup := filepath.Join(t.TempDir(), "checkpoints-up-to-backup")
	if err := os.Mkdir(upToBackup, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(published)
	if err != nil {
		t.Fatal(err)
	}
	later := 0
	for _, ent := range ents {
		size, err := strconv.ParseInt(strings.TrimSuffix(ent.Name(), audit.CheckpointFileExt), 10, 64)
		if err != nil {
			t.Fatalf("unexpected file %s among the published checkpoints", ent.Name())
		}
		if size > n {
			later++
			continue
		}
		b, err := os.ReadFile(filepath.Join(published, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(upToBackup, ent.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if later == 0 {
		t.Fatal("no checkpoint was published after the backup: the rehearsal proves nothing")
	}
	if code, out, stderr := runCmd(t, dst, "audit", "sequence"); code != 0 {
		t.Fatalf("audit sequence: %s %s", out, stderr)
	}
	if code, out, stderr := runCmd(t, dst, "audit", "verify", "--checkpoints", upToBackup); code != 0 ||
		!strings.Contains(out, "result:      OK") {
		t.Fatalf("audit verify after restore: exit %d %s %s", code, out, stderr)
	}
	// What the runbook warns against: the checkpoints published after the backup.
	if code, out, stderr := runCmd(t, dst, "audit", "verify", "--checkpoints", published); code != 1 ||
		!strings.Contains(out+stderr, "checkpoint_mismatch") {
		t.Fatalf("verify against checkpoints published after the backup: exit %d %s %s", code, out, stderr)
	}
}

var backupHoldsRE = regexp.MustCompile(`audit log: the backup holds (\d+) entries`)

var firstBadRE = regexp.MustCompile(`first: index (\d+) event ([0-9a-f-]+)`)

// TestRunbook_AuditVerificationFailure rehearses "Audit verification failure": one changed row
// makes audit verify fail (exit 1) naming the entry, and the locate step exports exactly that
// entry for the investigation.
func TestRunbook_AuditVerificationFailure(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	seedSource(t, environ, sqliteDSN(environ))
	if code, out, stderr := runCmd(t, environ, "audit", "sequence"); code != 0 {
		t.Fatalf("audit sequence: %s %s", out, stderr)
	}
	db := openDB(t, environ)
	ctx := context.Background()
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`,
		`UPDATE audit_events SET canonical = replace(canonical, 'test.backup_2', 'test.backup_X') WHERE action = 'test.backup_2'`} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := runCmd(t, environ, "audit", "verify")
	bad := firstBadRE.FindStringSubmatch(out + stderr)
	if code != 1 || bad == nil {
		t.Fatalf("tampered log: exit %d, no entry named\n%s%s", code, out, stderr)
	}
	var wantID string
	if err := db.SQL().QueryRowContext(ctx, `SELECT id FROM audit_events WHERE action = 'test.backup_2'`).Scan(&wantID); err != nil {
		t.Fatal(err)
	}
	if bad[2] != wantID {
		t.Fatalf("verify names event %s, the changed one is %s", bad[2], wantID)
	}
	// Locate: export the entry named, for the incident record.
	bundle := filepath.Join(t.TempDir(), "entry.jsonl")
	if code, out, stderr := runCmd(t, environ, "audit", "export", "--from", bad[1], "--to", bad[1], bundle); code != 0 {
		t.Fatalf("audit export of the entry: %s %s", out, stderr)
	}
	b, err := os.ReadFile(bundle)
	if err != nil || !bytes.Contains(b, []byte(wantID)) {
		t.Fatalf("the exported bundle does not hold event %s: %v", wantID, err)
	}
}

var setupTokenRE = regexp.MustCompile(`(?m)^    (\S{20,})$`)

// TestRunbook_LostSuperAdmin rehearses "Lost super-admin": the host-only recovery makes a new
// super-admin with a one-time setup token (no password), audited with its reason; the token
// works once; bootstrap still refuses; a recovery without a reason or into an unknown tenant
// changes nothing.
func TestRunbook_LostSuperAdmin(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	for _, args := range [][]string{
		{"recover", "super-admin", "--tenant", "acme", "--email", "new-root@example.org", "--reason", "   "},
		{"recover", "super-admin", "--tenant", "nowhere", "--email", "new-root@example.org", "--reason", "lost"},
		{"recover", "super-admin", "--tenant", "acme", "--email", "root@example.org", "--reason", "same address"},
		{"recover", "super-admin", "--tenant", "acme", "--email", "new-root@example.org"},
	} {
		if code, out, _ := runCmd(t, environ, args...); code == 0 || setupTokenRE.MatchString(out) {
			t.Fatalf("%q: exit %d, printed a token: %s", args, code, out)
		}
	}
	if code, _, _ := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "other@example.org"); code == 0 {
		t.Fatal("bootstrap ran a second time")
	}
	code, out, stderr := runCmd(t, environ, "recover", "super-admin", "--tenant", "acme", "--email", "new-root@example.org",
		"--reason", "INC-42: the only super-admin left the organisation; her phone with the second factor is gone")
	tok := setupTokenRE.FindStringSubmatch(out)
	if code != 0 || tok == nil {
		t.Fatalf("recover: exit %d %s %s", code, out, stderr)
	}
	if strings.Contains(stderr, tok[1]) {
		t.Fatal("the setup token reached the log stream")
	}

	addr, _, stop := startServe(t, environ)
	setup := func() int {
		res, err := http.Post("http://"+addr+"/v1/auth/setup", "application/json",
			strings.NewReader(`{"token":"`+tok[1]+`","password":"violet quartz lantern 7 harbour"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if got := setup(); got/100 != 2 {
		t.Fatalf("setup with the recovery token: %d", got)
	}
	if got := setup(); got/100 == 2 {
		t.Fatal("the recovery token worked twice")
	}
	stop()

	m, _ := personStore(t, environ)
	db := m.DB
	ctx := context.Background()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for _, r := range recs {
		if r.Event.Action == "admin.super_admin_recovery" {
			found++
			if r.Event.Details["reason"] == nil || bytes.Contains(r.Canonical, []byte(tok[1])) {
				t.Fatalf("recovery event %+v: no reason, or it holds the token", r.Event.Details)
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d admin.super_admin_recovery events, want 1 (failed attempts change nothing)", found)
	}
	var holders int
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		holders, err = tx.CountRoleHolders(ctx, "super_admin")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if holders != 2 {
		t.Fatalf("%d super-admins, want the lost one and the recovered one", holders)
	}
}
