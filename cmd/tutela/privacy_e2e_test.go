package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tutela/authz"
	"tutela/identity"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Issue 13's done-when, end to end through the product: a subject made over the API, a sealed
// export, a backup, an erasure over the API; then the database, the export, the audit log and
// the restored pre-erasure backup must each fail to give the subject's data back, while another
// subject survives and `audit verify` passes before and after the restore.

const e2eSchema = `{"fields":[
 {"name":"full_name","type":"name","classification":"YELLOW","purposes":["case_management"],"retention_days":365,"mask":"partial","searchable":true},
 {"name":"national_id","type":"national_id","classification":"RED","purposes":["case_management"],"retention_days":3650,"mask":"hashed","searchable":true},
 {"name":"notes","type":"text","classification":"RED","purposes":["case_management"],"retention_days":90,"mask":"hidden"}]}`

// The erased subject's values: distinctive, so any copy of them anywhere is found.
var erasedValues = map[string]string{"full_name": "Zebulon Quarrington-Vasquez", "national_id": "QX-771 904",
	"notes": "Sheltering at Kestrelmoor camp, block 7"}

var keptValues = map[string]string{"full_name": "Philippa Oyelaran-Marsh", "national_id": "PM-208 553",
	"notes": "Prefers calls after Thursday clinic"}

// apiClient calls a running serve as a service account.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func (c *apiClient) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (c *apiClient) must(want int, method, path, body string, v any) {
	c.t.Helper()
	code, b := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, code, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// serviceAccount creates, in environ's store, a RED-cleared service account that may manage,
// write, read, export and erase subjects (a data-protection pipeline), and returns its
// credentials. A service account needs no step-up: the erasure ledger names it as the actor.
// The tenant's register of purposes declares case_management, the purpose the pipeline reads
// for (every processing needs a declared lawful basis).
func serviceAccount(t *testing.T, m *Main, tenant string) (clientID, secret string) {
	t.Helper()
	sa := &sqlstore.ServiceAccount{TenantID: tenant, Name: "dpo-pipeline", Clearance: authz.Red}
	for _, a := range []authz.Action{authz.Create, authz.Read, authz.Delete, authz.Export, authz.Manage} {
		sa.Permissions = append(sa.Permissions, authz.Permission{Resource: authz.ResSubjects, Action: a, MaxClass: authz.Red})
	}
	ids := identity.New(identity.Deps{DB: m.DB}, identity.Config{})
	if err := m.DB.Update(context.Background(), func(tx *sqlstore.Tx) error {
		s, err := ids.CreateServiceAccountTx(context.Background(), tx, sa)
		if err != nil {
			return err
		}
		secret = s.Reveal()
		_, err = tx.Consent(tenant).PutPurpose(context.Background(), &privacy.Purpose{Name: "case_management",
			Description: "Running the case", LawfulBasis: privacy.BasisContract})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return sa.ClientID, secret
}

// login starts serve on environ and returns a client holding the service account's token.
func login(t *testing.T, environ []string, tenant, clientID, secret string) (*apiClient, func() int) {
	t.Helper()
	addr, logs, stop := startServe(t, environ)
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || json.Unmarshal(b, &tok) != nil {
		t.Fatalf("token: %d %s\n%s", res.StatusCode, b, logs)
	}
	return &apiClient{t: t, base: "http://" + addr + "/v1/tenants/" + tenant, token: tok.AccessToken}, stop
}

func createSubject(c *apiClient, values map[string]string) string {
	body, _ := json.Marshal(map[string]any{"values": values})
	var s struct{ ID string }
	c.must(201, "POST", "/subjects", string(body), &s)
	return s.ID
}

// readBack reads a subject for case management and compares every value.
func readBack(c *apiClient, id string, want map[string]string) {
	c.t.Helper()
	var got struct{ Values map[string]string }
	c.must(200, "GET", "/subjects/"+id+"?purpose=case_management", "", &got)
	for k, v := range want {
		if got.Values[k] != v {
			c.t.Fatalf("subject %s field %s = %q, want %q", id, k, got.Values[k], v)
		}
	}
}

// wantErased checks that every read of the subject answers "subject was erased".
func wantErased(c *apiClient, paths ...string) {
	c.t.Helper()
	for _, p := range paths {
		code, b := c.do("GET", p, "")
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) != nil || code != 404 || e.Error.Message != "subject was erased" {
			c.t.Fatalf("GET %s after erasure = %d %s", p, code, b)
		}
	}
}

// needles are the strings no byte of the database may hold: every value, and fragments an
// encoding or normalization would keep.
func needles() []string {
	var out []string
	for _, vals := range []map[string]string{erasedValues, keptValues} {
		for _, v := range vals {
			out = append(out, v)
		}
	}
	return append(out, "Quarrington", "Kestrelmoor", "QX771904", "Oyelaran", "PM208553", "Thursday clinic")
}

// rawRows reads every column of every row of every table as bytes ("" for NULL).
func rawRows(t *testing.T, db *sql.DB, dialect sqlstore.Dialect) map[string][][]byte {
	t.Helper()
	list := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if dialect == sqlstore.Postgres {
		list = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string][][]byte{}
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
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					out[tbl] = append(out[tbl], v)
				case string:
					out[tbl] = append(out[tbl], []byte(v))
				case nil:
				default:
					out[tbl] = append(out[tbl], fmt.Appendf(nil, "%v", v))
				}
			}
		}
		rows.Close()
	}
	return out
}

// noPlaintext fails if any table (audit log, ledger and exports included) holds a value, and,
// for SQLite, if the database file or its WAL does after a checkpoint.
func noPlaintext(t *testing.T, m *Main, environ []string) {
	t.Helper()
	db := m.DB.SQL()
	tables := rawRows(t, db, m.DB.Dialect())
	for _, tbl := range []string{"audit_events", "erasures", "subjects", "person_keys"} {
		if len(tables[tbl]) == 0 {
			t.Fatalf("table %s is empty: the search proves nothing", tbl)
		}
	}
	for tbl, cells := range tables {
		for _, c := range cells {
			for _, n := range needles() {
				if bytes.Contains(c, []byte(n)) {
					t.Fatalf("table %s holds %q in plaintext", tbl, n)
				}
			}
		}
	}
	if m.DB.Dialect() != sqlstore.SQLite {
		return
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{sqliteDSN(environ), sqliteDSN(environ) + "-wal"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles() {
			if bytes.Contains(b, []byte(n)) {
				t.Fatalf("%s holds %q in plaintext", filepath.Base(f), n)
			}
		}
	}
}

// noKeyOpens fails if the export ciphertext opens with any wrapped key the database holds,
// under the erased subject's identity or the key owner's.
func noKeyOpens(t *testing.T, m *Main, tenant, subject string, b privacy.ExportBinding, ct []byte) {
	t.Helper()
	ctx := context.Background()
	rows, err := m.DB.SQL().QueryContext(ctx, `SELECT person_id, wrapped FROM person_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seal, n := privacy.NewSubjects(m.vault), 0
	for rows.Next() {
		var person string
		var w []byte
		if err := rows.Scan(&person, &w); err != nil {
			t.Fatal(err)
		}
		if person == subject {
			t.Fatal("the erased subject's key row is still there")
		}
		n++
		for _, as := range []string{subject, person} {
			if pt, err := seal.OpenExport(ctx, tenant, as, w, b, ct); err == nil {
				t.Fatalf("the erased subject's export opened with %s's key: %.40q", person, pt)
			}
		}
	}
	if n == 0 {
		t.Fatal("no person key left: the kept subject's key is gone too")
	}
	// And through the path the download takes: no stored key, so ErrErased.
	var wrapped []byte
	if err := m.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
		wrapped, err = tx.PersonKeys(tenant).Get(ctx, subject)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := seal.OpenExport(ctx, tenant, subject, wrapped, b, ct); !errors.Is(err, privacy.ErrErased) {
		t.Fatalf("export with the erased subject's stored key: %v, want ErrErased", err)
	}
}

func erasureEndToEnd(t *testing.T, src, dst []string) {
	seedSource(t, src, dsnOf(src))
	m, e := personStore(t, src)
	tenant := tenantID(t, m, "acme")
	clientID, secret := serviceAccount(t, m, tenant)

	// Before the backup: a schema, two subjects, a sealed export of the one to be erased.
	api, stop := login(t, src, tenant, clientID, secret)
	api.must(200, "PUT", "/subject-schema", e2eSchema, nil)
	gone, kept := createSubject(api, erasedValues), createSubject(api, keptValues)
	var x struct{ ID string }
	api.must(201, "POST", "/subjects/"+gone+"/exports", `{"purpose":"case_management"}`, &x)
	var doc struct{ Values map[string]string }
	api.must(200, "GET", "/subjects/"+gone+"/exports/"+x.ID, "", &doc)
	if doc.Values["national_id"] != erasedValues["national_id"] || doc.Values["notes"] != erasedValues["notes"] {
		t.Fatalf("export before erasure: %v", doc.Values)
	}
	// An attacker's copy of the stored export, taken before the erasure, with what it is bound to.
	var exportCT []byte
	bind := privacy.ExportBinding{ExportID: x.ID}
	if err := m.DB.SQL().QueryRowContext(e.ctx, `SELECT ciphertext, created_by_kind, created_by, purpose, classification
		FROM subject_exports WHERE id = $1`, x.ID).Scan(&exportCT, &bind.MakerKind, &bind.MakerID, &bind.Purpose, &bind.Class); err != nil {
		t.Fatal(err)
	}
	if err := m.DB.View(e.ctx, func(tx *sqlstore.Tx) error {
		w, err := tx.PersonKeys(tenant).Get(e.ctx, gone)
		if err != nil {
			return err
		}
		_, err = privacy.NewSubjects(m.vault).OpenExport(e.ctx, tenant, gone, w, bind, exportCT)
		return err
	}); err != nil {
		t.Fatalf("the copy does not open before the erasure, so its not opening after proves nothing: %v", err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "before-erasure.backup")
	createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	// A restored log verifies against the checkpoints published before its backup (docs/backup.md):
	// the ones published later cover events the restore rolls back.
	checkpointsAtBackup := filepath.Join(t.TempDir(), "checkpoints")
	if err := os.CopyFS(checkpointsAtBackup, os.DirFS(filepath.Join(dataDirOf(src), "checkpoints"))); err != nil {
		t.Fatal(err)
	}

	// The erasure, over the API, with its reason and legal basis.
	api, stop = login(t, src, tenant, clientID, secret)
	var er struct {
		PersonID, Reason, LegalBasis, ActorID string
	}
	api.must(200, "DELETE", "/subjects/"+gone, `{"reason":"data subject's request of 2026-03-02","legal_basis":"GDPR Art. 17(1)(a)"}`, &er)
	wantErased(api, "/subjects/"+gone+"?purpose=case_management", "/subjects/"+gone+"/exports/"+x.ID)
	readBack(api, kept, keptValues)
	var ledger struct {
		Erasures []struct {
			PersonID   string `json:"person_id"`
			ActorType  string `json:"actor_type"`
			Reason     string `json:"reason"`
			LegalBasis string `json:"legal_basis"`
		}
	}
	api.must(200, "GET", "/erasures", "", &ledger)
	if len(ledger.Erasures) != 1 || ledger.Erasures[0].PersonID != gone || ledger.Erasures[0].ActorType != "service_account" ||
		ledger.Erasures[0].LegalBasis != "GDPR Art. 17(1)(a)" {
		t.Fatalf("erasure ledger: %+v", ledger.Erasures)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	if err := publishErasures(e, m); err != nil {
		t.Fatal(err)
	}

	// The source: the log verifies; no table, the audit log's included, holds a value; the
	// copied export opens with nothing left.
	verifyAudit(t, src, filepath.Join(dataDirOf(src), "checkpoints"))
	noPlaintext(t, m, src)
	noKeyOpens(t, m, tenant, gone, bind, exportCT)

	// The backup taken before the erasure, restored into a fresh data directory with the
	// published ledger: the subject stays erased, the other one reads.
	copyKeys(t, dataDirOf(src), dataDirOf(dst))
	out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src)})
	if err != nil || !strings.Contains(out, "1 erasures, 1 re-applied") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	verifyAudit(t, dst, checkpointsAtBackup)
	rm, _ := personStore(t, dst)
	var n int
	if err := rm.DB.SQL().QueryRowContext(e.ctx, `SELECT count(*) FROM subject_exports WHERE subject_id = $1`, gone).Scan(&n); err != nil || n != 0 {
		t.Fatalf("restored export rows of the erased subject: %d (%v)", n, err)
	}
	noKeyOpens(t, rm, tenant, gone, bind, exportCT)
	var rec *sqlstore.SubjectRecord
	if err := rm.DB.View(e.ctx, func(tx *sqlstore.Tx) (err error) {
		rec, err = tx.Subjects(tenant).Get(e.ctx, gone)
		return err
	}); err == nil {
		if _, err = privacy.NewSubjects(rm.vault).Open(e.ctx, tenant, &rec.Stored, []string{"full_name"}); !errors.Is(err, privacy.ErrErased) {
			t.Fatalf("restored erased subject opens: %v", err)
		}
	} else if !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("restored erased subject: %v", err)
	}
	api, stop = login(t, dst, tenant, clientID, secret)
	wantErased(api, "/subjects/"+gone+"?purpose=case_management", "/subjects/"+gone+"/exports/"+x.ID)
	readBack(api, kept, keptValues)
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	noPlaintext(t, rm, dst)
	verifyAudit(t, dst, filepath.Join(dataDirOf(dst), "checkpoints"))
}

// dsnOf is environ's database: its TUTELA_DATABASE_URL, else the SQLite file.
func dsnOf(environ []string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "TUTELA_DATABASE_URL="); ok {
			return v
		}
	}
	return sqliteDSN(environ)
}

// A fixed issuer: serve restarts on another port, and PostgreSQL deployments pin the issuer.
const e2eIssuer = "TUTELA_AUTH_ISSUER=https://id.example.org"

func TestPrivacy_ErasedSubjectUnreadableEverywhereSQLite(t *testing.T) {
	t.Parallel()
	erasureEndToEnd(t, append(baseEnv(t), e2eIssuer), append(baseEnv(t), e2eIssuer))
}

func TestPrivacy_ErasedSubjectUnreadableEverywherePostgres(t *testing.T) {
	t.Parallel()
	src := append(baseEnv(t), e2eIssuer, "TUTELA_DATABASE_URL="+sqltest.PostgresURL(t))
	dst := append(baseEnv(t), e2eIssuer, "TUTELA_DATABASE_URL="+sqltest.PostgresURL(t))
	if code, _, stderr := runCmd(t, dst, "migrate", "up"); code != 0 {
		t.Fatal(stderr)
	}
	erasureEndToEnd(t, src, dst)
}
