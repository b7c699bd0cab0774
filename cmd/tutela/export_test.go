package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/storetest"
)

// seedProduction writes a tenant, a user and a subject through the production vault and
// returns their personal values.
func seedProduction(t *testing.T, environ []string) []string {
	t.Helper()
	ctx := context.Background()
	m, v, err := openKeys(&env{ctx: ctx, environ: environ, stdout: io.Discard, stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	schema := privacy.Schema{
		{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"aid"}, RetentionDays: 365,
			Mask: authz.MaskPartial, Searchable: true},
		{Name: "date_of_birth", Type: privacy.FieldDate, Classification: authz.Red, Purposes: []string{"aid"}, RetentionDays: 365,
			Mask: authz.MaskRedacted},
	}
	tn := &tutela.Tenant{Slug: "relief", Name: "Relief", Region: "eu-west"}
	u := &tutela.User{Email: "Henrietta.Vasquez@Example.org", DisplayName: "Henrietta Vasquez"}
	values := map[string]string{"full_name": "Bartholomew Okonkwo", "date_of_birth": "1958-11-04"}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		return tx.SubjectSchema(tn.ID).Put(ctx, schema)
	}); err != nil {
		t.Fatal(err)
	}
	sealed, err := privacy.NewSubjects(v).SealNew(ctx, tn.ID, schema, values)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		_, err := tx.Subjects(tn.ID).Create(ctx, sealed)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return []string{u.Email, u.DisplayName, values["full_name"], values["date_of_birth"]}
}

func TestExportAnonymize_RefusesWithoutFlagOrOverExistingFiles(t *testing.T) {
	environ := baseEnv(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "staging.db")
	if code, _, stderr := runCmd(t, environ, "export", "--out", out); code != 1 || !strings.Contains(stderr, "--anonymize") {
		t.Fatalf("without --anonymize: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused export wrote a file")
	}
	// An existing file is never overwritten, nor an existing key file beside it.
	if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, environ, "export", "--anonymize", "--out", out); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("existing --out: exit %d, %s", code, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatal("existing --out was changed")
	}
	out2 := filepath.Join(dir, "staging2.db")
	if err := os.WriteFile(out2+".master-key", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, environ, "export", "--anonymize", "--out", out2); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("existing key file: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Fatal("refused export left a database")
	}
	// The production master key is refused as the copy's key, and nothing is left behind.
	seedProduction(t, environ)
	out3 := filepath.Join(dir, "staging3.db")
	prodKey := filepath.Join(dataDirOf(environ), "master.key")
	code, _, stderr := runCmd(t, environ, "export", "--anonymize", "--out", out3, "--master-key", prodKey)
	if code != 1 || !strings.Contains(stderr, "production master key") {
		t.Fatalf("production key: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(out3); err == nil {
		t.Fatal("refused export left a database")
	}
	if _, err := os.Stat(prodKey); err != nil {
		t.Fatalf("the production key file is gone: %v", err)
	}
}

// The copy opens with its own key as a staging data directory (the CLI path serve uses), holds
// no production value, and the production key does not open it.
func TestExportAnonymize_StagingOpensCopyWithItsOwnKeyOnly(t *testing.T) {
	environ := baseEnv(t)
	originals := seedProduction(t, environ)
	// Production has its platform super-admin; the copy must not carry that grant, or staging
	// could never bootstrap its own (copied users have no password).
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "relief", "--email", "Root.Admin@Example.org"); code != 0 {
		t.Fatalf("production bootstrap: exit %d: %s", code, stderr)
	}
	originals = append(originals, "Root.Admin@Example.org")
	out := filepath.Join(t.TempDir(), "copy", "staging.db")
	code, stdout, stderr := runCmd(t, environ, "export", "--anonymize", "--out", out)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "2 user(s)") || !strings.Contains(stdout, "1 subject(s) with 2 value(s)") {
		t.Errorf("summary: %s", stdout)
	}
	for _, p := range []string{out, out + ".master-key"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", p, err)
		}
	}
	for _, o := range originals {
		if strings.Contains(stdout+stderr, o) {
			t.Errorf("the command printed an original value")
		}
	}
	// The source's audit log records the run.
	prod := openDB(t, environ)
	evs, _, err := prod.AuditEvents(context.Background(), sqlstore.AuditFilter{Action: "export.anonymize"})
	if err != nil || len(evs) != 1 || !strings.Contains(stdout, evs[0].Event.TargetID) {
		t.Fatalf("export.anonymize in the source: %d events (%v)", len(evs), err)
	}
	prod.Close()

	staging := filepath.Join(t.TempDir(), "staging")
	if err := os.MkdirAll(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	install := func(key string) []string {
		for from, to := range map[string]string{out: "tutela.db", key: "master.key"} {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(staging, to), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return []string{"TUTELA_DATA_DIR=" + staging, "TUTELA_HTTP_ADDR=127.0.0.1:0", "TUTELA_METRICS_ADDR=127.0.0.1:0"}
	}
	// The production key does not open the copy.
	stagingEnv := install(filepath.Join(dataDirOf(environ), "master.key"))
	if code, _, stderr := runCmd(t, stagingEnv, "keys", "list"); code == 0 || !strings.Contains(stderr, "does not open the keysets") {
		t.Fatalf("the production master key and the copy: exit %d, %s", code, stderr)
	}
	stagingEnv = install(out + ".master-key")
	if code, _, stderr := runCmd(t, stagingEnv, "keys", "list"); code != 0 {
		t.Fatalf("staging with the copy's key: exit %d: %s", code, stderr)
	}
	// Staging makes its own administrator.
	if code, _, stderr := runCmd(t, stagingEnv, "bootstrap", "--tenant", "relief", "--email", "staging@example.org"); code != 0 {
		t.Fatalf("staging bootstrap on the copy: exit %d: %s", code, stderr)
	}
	// A staging node serves it.
	addr, logs, stop := startServe(t, stagingEnv)
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("staging readyz: %v %v: %s", res, err, logs)
	}
	res.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("staging serve exit %d: %s", code, logs)
	}
	m, v, err := openKeys(&env{ctx: context.Background(), environ: stagingEnv, stdout: io.Discard, stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := storetest.ReadCopy(t, m.DB, v)
	if len(c.Users) != 3 || len(c.IDs) != 4 { // two copied, one made by the staging bootstrap
		t.Fatalf("copy holds %d users, IDs %v", len(c.Users), c.IDs)
	}
	storetest.AssertNoOriginal(t, m.DB, filepath.Join(staging, "tutela.db"), originals, c)
	if env, _ := m.DB.Setting(context.Background(), sqlstore.SettingEnvironment); env != sqlstore.EnvironmentStaging {
		t.Errorf("deployment.environment = %q", env)
	}
}
