package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/config"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// servedOnce starts serve on environ, makes an audited call and stops it cleanly.
func servedOnce(t *testing.T, environ []string) {
	t.Helper()
	addr, logs, stop := startServe(t, environ)
	if res, err := http.Get("http://" + addr + "/v1/openapi.json"); err == nil {
		res.Body.Close()
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, logs)
	}
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRefuse(t *testing.T, environ []string, wants ...string) string {
	t.Helper()
	// A node that wrongly starts serves until the deadline and exits 0.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb syncBuffer
	code := run(ctx, []string{"serve"}, environ, &out, &errb)
	stderr := errb.String()
	if code != 1 {
		t.Fatalf("serve exit %d, want 1: %s", code, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Fatalf("refusal does not say %q:\n%s", w, stderr)
		}
	}
	return stderr
}

// Stopping serve runs a last sequencer round after the HTTP server drained: nothing recorded by
// the node stays outside the Merkle log while it is down. With an hour between rounds, only that
// final round can have sequenced the requests' events.
func TestServe_ShutdownSequencesEveryPendingEvent(t *testing.T) {
	t.Parallel()
	env := append(baseEnv(t), "TUTELA_AUDIT_CHECKPOINT_INTERVAL=1h")
	addr, logs, stop := startServe(t, env)
	for range 5 {
		res, err := http.Get("http://" + addr + "/v1/openapi.json") // audited as api.request
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, logs)
	}
	db, err := sqlstore.Open(context.Background(), filepath.Join(dataDirOf(env), "tutela.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := db.AuditPending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 0 {
		t.Fatalf("%d audit events left outside the log after a clean stop", p.Count)
	}
	if n, _ := db.AuditSource().Size(context.Background()); n < 5 {
		t.Fatalf("log size %d after 5 audited requests: %s", n, logs)
	}
}

// audit verify reports events waiting outside the log; it fails when they were left behind (old,
// and no sequencer alive), and passes when a live sequencer's heartbeat vouches for them.
func TestAuditVerify_PendingEventsReportedAndStaleOnesFail(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "migrate", "up"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	if out, err := auditRun(t, environ, auditSequenceCmd{}); err != nil {
		t.Fatalf("sequence: %s %v", out, err)
	}
	out, err := auditRun(t, environ, auditVerifyCmd{})
	if err != nil || !strings.Contains(out, "pending:     0 events") {
		t.Fatalf("verify of a drained log: %v\n%s", err, out)
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(dataDirOf(environ), "tutela.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := range 3 {
		ev := audit.Event{ActorType: audit.ActorSystem, Action: "test.left_behind", Outcome: audit.OutcomeSuccess, Time: old.Add(time.Duration(i) * time.Second)}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
	// Each verification records its result (an audited operation for the compliance report); a
	// verification that passed with no node running sequences its own record (sequenceIfIdle),
	// so only the 3 left behind wait outside the log.
	out, err = auditRun(t, environ, auditVerifyCmd{})
	if err == nil || !strings.Contains(err.Error(), "first: pending events: "+audit.KindUnsequenced) ||
		!strings.Contains(out, "pending:     3 events waiting to be sequenced, the oldest from "+old.Format(time.RFC3339)) {
		t.Fatalf("events left outside the log with no sequencer: err %v\n%s", err, out)
	}
	// A live node's heartbeat (its interval makes "now" well inside the grace): not a failure.
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO audit_sequencer (id, beat_at, interval_ms) VALUES (1, $1, $2)`,
		time.Now().UTC(), time.Hour.Milliseconds()); err != nil {
		t.Fatal(err)
	}
	out, err = auditRun(t, environ, auditVerifyCmd{})
	// The failed verification's record (not sequenced: a failed log is left as found) is the 4th.
	if err != nil || !strings.Contains(out, "pending:     4 events") || !strings.Contains(out, "will append them") {
		t.Fatalf("pending events with a live sequencer: err %v\n%s", err, out)
	}
}

// A master.key lost from beside a database that holds keys sealed under it is not replaced: the
// start stops before writing, saying what to restore.
func TestServe_MissingMasterKeyBesideDatabaseRefused(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, env)
	keyPath := filepath.Join(dataDirOf(env), vault.MasterKeyFile)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, env, keyPath+" is missing", "restore the master.key that was used with this database", "TUTELA_MASTER_KEY_FILE")
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("a new master.key was created beside the existing database")
	}
}

// Another master key beside the database: the message names the key file and the fix, not the
// vault's "wrapped by local:, configured KEK is local:".
func TestServe_WrongMasterKeyNamesFileAndFix(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, env)
	keyPath := filepath.Join(dataDirOf(env), vault.MasterKeyFile)
	if err := vault.WriteFileAtomic(keyPath, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, env, keyPath+" does not open the keysets in the database",
		"restore the master.key that was used with this database", "TUTELA_MASTER_KEY_FILE")
}

// An empty database file beside an existing key is a lost database, not a new deployment.
func TestServe_EmptyDatabaseBesideKeyRefused(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, env)
	dbPath := filepath.Join(dataDirOf(env), "tutela.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Truncate(dbPath+suffix, 0)
	}
	mustRefuse(t, env, dbPath+" is empty (0 bytes)", "restore tutela.db from a backup")
	if fi, err := os.Stat(dbPath); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty database was written to: %v %v", fi, err)
	}
}

// A missing database beside an existing audit.key (which is only ever created once the database
// exists) is a lost database too: refused, nothing created, with the restore and the deliberate
// fresh start both named. A fresh start that stopped before the audit key existed still starts.
func TestServe_MissingDatabaseBesideAuditKeyRefused(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, env)
	dir := dataDirOf(env)
	dbPath := filepath.Join(dir, "tutela.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	mustRefuse(t, env, dbPath+" is missing but "+filepath.Join(dir, audit.KeyFile)+" is there",
		"restore tutela.db from a backup", "to start a new deployment on purpose, remove master.key and audit.key")
	if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
		t.Fatalf("a new database was created beside the old keys: %v", err)
	}
	// Only a master key (a first start that stopped before the audit key, or a key put in place
	// by hand): a new deployment, as before.
	if err := os.Remove(filepath.Join(dir, audit.KeyFile)); err != nil {
		t.Fatal(err)
	}
	servedOnce(t, env)
}

// A missing audit.key for a log that is already signed is not silently replaced; another key
// (here a plaintext key file of a different key pair) is refused too.
func TestServe_MissingOrOtherAuditKeyRefused(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	servedOnce(t, env)
	keyPath := filepath.Join(dataDirOf(env), audit.KeyFile)
	vkey, err := audit.ReadVerifierKey(keyPath, AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	saved := fileBytes(t, keyPath)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, env, keyPath+" is missing", vkey, "copy audit.key from another node")
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("a new audit.key was created for a signed log")
	}
	skey, otherV, err := audit.GenerateKey(AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(skey+"\n"+otherV+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, env, keyPath+" holds the verifier key "+otherV, "signed with "+vkey)
	// The right file back: the node starts again.
	if err := vault.WriteFileAtomic(keyPath, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	servedOnce(t, env)
}

// The data directory must be writable; the error names it, the uid and the fix instead of
// SQLite's "unable to open database file (14)". The tests run as root, whom file modes do not
// stop, so they use paths that refuse root too: a directory below a regular file, and sysfs.
func TestServe_UnwritableDataDirNamedWithFix(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"TUTELA_DATA_DIR=" + filepath.Join(file, "data"), "TUTELA_HTTP_ADDR=127.0.0.1:0"}
	mustRefuse(t, env, "data directory "+filepath.Join(file, "data")+" cannot be created", "TUTELA_DATA_DIR")

	ro := t.TempDir()
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		ro = "/sys" // refuses new files even to root
	}
	if f, err := os.CreateTemp(ro, "probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("no directory here refuses writes")
	}
	env = []string{"TUTELA_DATA_DIR=" + ro, "TUTELA_HTTP_ADDR=127.0.0.1:0"}
	mustRefuse(t, env, "data directory "+ro+" is not writable by uid", "TUTELA_DATA_DIR")
}

// Two nodes on one PostgreSQL database must share the master key, the audit key and the issuer.
// The database records the issuer and the audit verifier key at first start; a node that
// disagrees refuses to start and names the setting or file, and nodes that agree both run.
func TestServe_TwoNodesOnePostgresMustAgree(t *testing.T) {
	t.Parallel()
	dsn := sqltest.PostgresURL(t)
	master := "TUTELA_MASTER_KEY=" + "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	node := func(extra ...string) []string {
		return append(append(baseEnv(t), "TUTELA_DATABASE_URL="+dsn), extra...)
	}
	issuer := "TUTELA_AUTH_ISSUER=https://id.example.org"
	a := node(master, issuer)
	_, logsA, stopA := startServe(t, a)

	// The second node's own data directory has no audit.key: not silently a second log key.
	b := node(master, issuer)
	mustRefuse(t, b, audit.KeyFile+" is missing", "copy audit.key from another node")
	if err := os.MkdirAll(dataDirOf(b), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDirOf(b), audit.KeyFile), fileBytes(t, filepath.Join(dataDirOf(a), audit.KeyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Default issuer (its own address) on the second node: refused, naming auth.issuer.
	bDefault := append([]string{}, b[:len(b)-1]...)
	mustRefuse(t, bDefault, "auth.issuer is not set", `"https://id.example.org"`, "TUTELA_AUTH_ISSUER")
	// Another master key: named, with the fix.
	bKey := append(append([]string{}, b[:len(b)-2]...), "TUTELA_MASTER_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", issuer)
	mustRefuse(t, bKey, "TUTELA_MASTER_KEY", "does not open the keysets in the database")
	// Everything shared: both serve at once.
	_, logsB, stopB := startServe(t, b)
	if code := stopB(); code != 0 {
		t.Fatalf("node B exit %d: %s", code, logsB)
	}
	if code := stopA(); code != 0 {
		t.Fatalf("node A exit %d: %s", code, logsA)
	}
}

// Two nodes starting at the same moment on an empty database, each with a fresh data directory:
// the first to record its audit key wins and the other refuses; never two keys signing one log.
func TestServe_TwoNodesRacingOnEmptyPostgresAgreeOnOneAuditKey(t *testing.T) {
	t.Parallel()
	dsn := sqltest.PostgresURL(t)
	envs := make([][]string, 2)
	for i := range envs {
		envs[i] = append(baseEnv(t), "TUTELA_DATABASE_URL="+dsn, "TUTELA_AUTH_ISSUER=https://id.example.org",
			"TUTELA_MASTER_KEY=q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code int
		logs *syncBuffer
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	for _, env := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logs := &syncBuffer{}
			results <- result{run(ctx, []string{"serve"}, env, &syncBuffer{}, logs), logs}
		}()
	}
	// The loser exits on its own; then stop the winner.
	var first result
	select {
	case first = <-results:
	case <-time.After(60 * time.Second):
		cancel()
		wg.Wait()
		t.Fatal("both nodes started with their own audit keys on one log")
	}
	cancel()
	wg.Wait()
	second := <-results
	refused := 0
	for _, r := range []result{first, second} {
		// Refused as a second key for the log, whether it got as far as creating its own key.
		if r.code == 1 && strings.Contains(r.logs.String(), "this database's audit log is") {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("want exactly one node refused for its audit key; exits %d, %d:\n%s\n----\n%s",
			first.code, second.code, first.logs, second.logs)
	}
}

// The issuer recorded at first start is kept against a node configured otherwise, and replaced
// only by a deliberate --accept-issuer-change, which is audited.
func TestAgreeIssuer_RefusesOtherAndAcceptsDeliberateChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqltest.PostgresURL(t), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	m := &Main{Config: config.Default(), DB: db, Logger: newLogger(config.Default(), &logs)}
	m.Config.Auth.Issuer = "https://id.example.org"
	if err := m.agreeIssuer(ctx, "https://id.example.org"); err != nil {
		t.Fatal(err)
	}
	err = m.agreeIssuer(ctx, "https://login.example.org")
	if err == nil || !strings.Contains(err.Error(), `auth.issuer is "https://login.example.org"`) ||
		!strings.Contains(err.Error(), `this deployment issues tokens as "https://id.example.org"`) {
		t.Fatalf("other issuer: %v", err)
	}
	m.acceptIssuerChange = true
	if err := m.agreeIssuer(ctx, "https://login.example.org"); err != nil {
		t.Fatal(err)
	}
	m.acceptIssuerChange = false
	if err := m.agreeIssuer(ctx, "https://login.example.org"); err != nil {
		t.Fatalf("after the deliberate change: %v", err)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "deployment.issuer_change"})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["from"] != "https://id.example.org" {
		t.Fatalf("issuer change not audited: %v %+v", err, recs)
	}
}

// The master key's fingerprint is recorded at first start and a node with another master key is
// refused on either store, naming the key's origin and the fix; the recorded value is neither
// the key nor the field-masking key derived from it. A deliberate replacement (kek-rewrap with
// --from-master-key-file) records the new key, audited, and the old one is refused from then on.
func TestAgreeMasterKey_OtherKeyRefusedOnBothStores(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		node := func(key string) *Main {
			k, err := vault.ParseMasterKey(key)
			if err != nil {
				t.Fatal(err)
			}
			return &Main{Config: config.Default(), DB: db, MasterKey: k, Logger: newLogger(config.Default(), &syncBuffer{})}
		}
		a := node("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
		b := node("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		b.masterKeyPath = "/srv/tutela/master.key"
		if err := a.agreeMasterKey(ctx); err != nil {
			t.Fatal(err)
		}
		recorded, err := db.Setting(ctx, sqlstore.SettingMasterKeyFingerprint)
		if err != nil || !strings.HasPrefix(recorded, "hkdf-sha256:") {
			t.Fatalf("recorded fingerprint %q, %v", recorded, err)
		}
		maskKey, err := hkdf.Key(sha256.New, a.MasterKey.Bytes(), nil, "tutela field masking v1", 32)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range [][]byte{a.MasterKey.Bytes(), maskKey} {
			if strings.Contains(recorded, hex.EncodeToString(secret)[:16]) || strings.Contains(recorded, base64.StdEncoding.EncodeToString(secret)[:16]) {
				t.Fatalf("the recorded fingerprint %q shows key material", recorded)
			}
		}
		err = b.agreeMasterKey(ctx)
		if err == nil || !strings.Contains(err.Error(), "/srv/tutela/master.key is not this deployment's master key") ||
			!strings.Contains(err.Error(), "the database records "+recorded) || !strings.Contains(err.Error(), "TUTELA_MASTER_KEY") ||
			!strings.Contains(err.Error(), "copy master.key from another node") {
			t.Fatalf("other master key: %v", err)
		}
		if got, _ := db.Setting(ctx, sqlstore.SettingMasterKeyFingerprint); got != recorded {
			t.Fatal("a refused node changed the recorded fingerprint")
		}
		if err := a.agreeMasterKey(ctx); err != nil {
			t.Fatalf("the first node again: %v", err)
		}

		// A replacement must start from the recorded key: a node holding another key cannot take
		// the record over by naming itself as the old one.
		c := node("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=")
		if err := recordMasterKeyChange(ctx, db, b.MasterKey, c.MasterKey); err == nil ||
			!strings.Contains(err.Error(), "is not the one this deployment records") {
			t.Fatalf("a change from an unrecorded key: %v", err)
		}
		if got, _ := db.Setting(ctx, sqlstore.SettingMasterKeyFingerprint); got != recorded {
			t.Fatal("a refused change replaced the recorded fingerprint")
		}
		if err := recordMasterKeyChange(ctx, db, a.MasterKey, b.MasterKey); err != nil {
			t.Fatal(err)
		}
		if err := b.agreeMasterKey(ctx); err != nil {
			t.Fatalf("after the deliberate change: %v", err)
		}
		if err := a.agreeMasterKey(ctx); err == nil {
			t.Fatal("the replaced master key still starts")
		}
		recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "deployment.master_key_change"})
		if err != nil || len(recs) != 1 || recs[0].Event.Details["from"] != recorded {
			t.Fatalf("master key change not audited: %v %+v", err, recs)
		}
	})
}

// softHSM makes a throwaway SoftHSM2 token holding a non-extractable AES KEK and returns the
// environment that selects it; it skips without SoftHSM2 unless CI=true. SoftHSM reads its
// configuration from the process environment, so the caller cannot run in parallel.
func softHSM(t *testing.T) []string {
	t.Helper()
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	util, err := exec.LookPath("softhsm2-util")
	if _, serr := os.Stat(module); err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("SoftHSM2 missing (apt-get install softhsm2); CI=true forbids skipping")
		}
		t.Skip("SoftHSM2 not installed (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	const pin = "123456"
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "tutela-test", "--pin", pin, "--so-pin", "654321").CombinedOutput(); err != nil {
		t.Fatalf("init token: %v: %s", err, out)
	}
	if err := vault.GeneratePKCS11Key(module, "tutela-test", "tutela-kek", tutela.NewSecret(pin)); err != nil {
		t.Fatal(err)
	}
	return []string{"TUTELA_VAULT_KEK_URI=pkcs11:token=tutela-test;object=tutela-kek", "TUTELA_VAULT_PKCS11_MODULE=" + module,
		"TUTELA_HSM_PIN=" + pin}
}

// With the keysets under an HSM KEK another master key opens them, so the vault cannot notice
// it; the recorded fingerprint does: a second node on the same PostgreSQL with another
// TUTELA_MASTER_KEY, and a single SQLite node whose master.key was swapped, are refused, and
// the right key starts again.
func TestServe_HSMKEKOtherMasterKeyRefused(t *testing.T) {
	hsm := softHSM(t)
	t.Run("postgres", func(t *testing.T) {
		dsn := sqltest.PostgresURL(t)
		node := func(key string) []string {
			return append(append(baseEnv(t), hsm...), "TUTELA_DATABASE_URL="+dsn, "TUTELA_AUTH_ISSUER=https://id.example.org",
				"TUTELA_MASTER_KEY="+key)
		}
		// One process can hold the PKCS#11 module once (CKR_CRYPTOKI_ALREADY_INITIALIZED), so the
		// nodes take turns here; the recorded fingerprint is what the second node meets either way.
		a := node("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
		servedOnce(t, a)
		b := node("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		if err := os.MkdirAll(dataDirOf(b), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDirOf(b), audit.KeyFile), fileBytes(t, filepath.Join(dataDirOf(a), audit.KeyFile)), 0o600); err != nil {
			t.Fatal(err)
		}
		mustRefuse(t, b, "the master key from TUTELA_MASTER_KEY(_FILE) is not this deployment's master key",
			"copy master.key from another node")
		servedOnce(t, a)
	})
	t.Run("sqlite", func(t *testing.T) {
		env := append(baseEnv(t), hsm...)
		servedOnce(t, env)
		keyPath := filepath.Join(dataDirOf(env), vault.MasterKeyFile)
		saved := fileBytes(t, keyPath)
		if err := vault.WriteFileAtomic(keyPath, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		mustRefuse(t, env, keyPath+" is not this deployment's master key", "restore it from your backup")
		if err := vault.WriteFileAtomic(keyPath, saved, 0o600); err != nil {
			t.Fatal(err)
		}
		servedOnce(t, env)
	})
}

// An event whose queue entry was deleted (the runtime role may delete from the sequencer's
// queue) waits for no sequencer: audit verify fails naming it, whatever the heartbeat says, and
// `tutela audit sequence` queues it again, records that, and appends it.
func TestAuditVerify_UnqueuedEventFailsAndSequenceRequeues(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "migrate", "up"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	if out, err := auditRun(t, environ, auditSequenceCmd{}); err != nil {
		t.Fatalf("sequence: %s %v", out, err)
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(dataDirOf(environ), "tutela.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev := audit.Event{ActorType: audit.ActorSystem, Action: "test.unqueued", Outcome: audit.OutcomeSuccess}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, ev) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `DELETE FROM audit_pending`); err != nil {
		t.Fatal(err)
	}
	// A live node's heartbeat does not excuse it: no sequencer will ever append it.
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO audit_sequencer (id, beat_at, interval_ms) VALUES (1, $1, $2)`,
		time.Now().UTC(), time.Hour.Milliseconds()); err != nil {
		t.Fatal(err)
	}
	out, err := auditRun(t, environ, auditVerifyCmd{})
	if err == nil || !strings.Contains(err.Error(), "first: pending events: "+audit.KindUnsequenced) ||
		!strings.Contains(out, "1 events recorded but neither in the log nor queued") {
		t.Fatalf("unqueued event: err %v\n%s", err, out)
	}
	if out, err := auditRun(t, environ, auditSequenceCmd{}); err != nil {
		t.Fatalf("sequence: %s %v", out, err)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "test.unqueued"})
	if err != nil || len(recs) != 1 || recs[0].Index < 0 {
		t.Fatalf("the unqueued event was not appended: %+v, %v", recs, err)
	}
	if n, _, err := db.AuditUnqueued(ctx); err != nil || n != 0 {
		t.Fatalf("after audit sequence: %d unqueued, %v", n, err)
	}
	if out, err := auditRun(t, environ, auditVerifyCmd{}); err != nil {
		t.Fatalf("verify after requeue: %v\n%s", err, out)
	}
}
