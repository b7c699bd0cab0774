package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tutela/compliance"
	"tutela/sqlstore/sqltest"
)

type reportEnvelope struct {
	Report compliance.Report `json:"report"`
}

// complianceJSON runs `tutela compliance report --format json` and decodes it.
func complianceJSON(t *testing.T, environ []string, extra ...string) (compliance.Report, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.json")
	args := append([]string{"compliance", "report", "--format", "json", "--out", file}, extra...)
	if code, _, stderr := runCmd(t, environ, args...); code != 0 {
		t.Fatalf("compliance report: %s", stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var env reportEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	return env.Report, file
}

func evidence(t *testing.T, r compliance.Report, id, item string) (compliance.Status, string) {
	t.Helper()
	for _, c := range r.Controls {
		if c.ID == id && c.Tenant == "" {
			for _, e := range c.Evidence {
				if e.Item == item {
					return c.Status, e.Value
				}
			}
		}
	}
	t.Fatalf("no evidence %q in %s", item, id)
	return "", ""
}

// The "done when": recorded backup and verification evidence appears in the report. A
// store without them shows gaps that say nothing is recorded; `audit verify`, `backup create` and
// `backup test` each record their run (a failed restore test too), and the report then cites them.
func TestCompliance_RecordedOperationsAppearInTheReport(t *testing.T) {
	t.Parallel()
	for _, dialect := range sqltest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			src, dsn := baseEnv(t), ""
			if dialect == "postgres" {
				dsn = sqltest.PostgresURL(t)
				src = append(src, "TUTELA_DATABASE_URL="+dsn)
			} else {
				dsn = sqliteDSN(src)
			}
			seedSource(t, src, dsn)

			r, _ := complianceJSON(t, src)
			if st, v := evidence(t, r, compliance.CtlBackups, "last encrypted backup"); st != compliance.Gap || v != "none recorded" {
				t.Fatalf("before any backup: %s %q", st, v)
			}
			if _, v := evidence(t, r, compliance.CtlAuditIntegrity, "last verification"); v != "none recorded" {
				t.Fatalf("before any verification: %q", v)
			}

			if out, err := auditRun(t, src, auditVerifyCmd{}); err != nil {
				t.Fatalf("audit verify: %v\n%s", err, out)
			}
			rcpt, idFile := ageKey(t)
			file := filepath.Join(t.TempDir(), "tutela.backup")
			createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
			out, err := auditRun(t, src, backupTestCmd{File: file, Identity: idFile})
			if err != nil || !strings.Contains(out, "restore test passed (recorded)") {
				t.Fatalf("backup test: %v\n%s", err, out)
			}

			r, _ = complianceJSON(t, src)
			st, v := evidence(t, r, compliance.CtlBackups, "last encrypted backup")
			if !strings.Contains(v, "success at ") || !strings.Contains(v, "sha256="+fileSum(t, file)) || !strings.Contains(v, "recipients=1") {
				t.Errorf("backup evidence = %q", v)
			}
			if _, v := evidence(t, r, compliance.CtlBackups, "last restore test"); !strings.Contains(v, "success at ") ||
				!strings.Contains(v, "sha256="+fileSum(t, file)) {
				t.Errorf("restore test evidence = %q", v)
			}
			// SQLite's restore test loads and opens the database; PostgreSQL's only decrypts and
			// checks hashes and row counts, which the evidence says and the answer reflects.
			wantSt, loaded := compliance.Met, "loaded=true"
			if dialect == "postgres" {
				wantSt, loaded = compliance.Partial, "loaded=false"
			}
			if _, v := evidence(t, r, compliance.CtlBackups, "last restore test"); !strings.Contains(v, loaded) {
				t.Errorf("restore test evidence = %q, want %s", v, loaded)
			}
			if st != wantSt {
				t.Errorf("backups = %s, want %s once both are recorded", st, wantSt)
			}
			if _, v := evidence(t, r, compliance.CtlAuditIntegrity, "last verification"); !strings.Contains(v, "success at ") ||
				!strings.Contains(v, "failures=0") {
				t.Errorf("verification evidence = %q", v)
			}

			// A restore test with the wrong identity fails, and the failure is what the report shows.
			_, otherID := ageKey(t)
			if _, err := auditRun(t, src, backupTestCmd{File: file, Identity: otherID}); err == nil {
				t.Fatal("a restore test with the wrong identity passed")
			}
			r, _ = complianceJSON(t, src)
			if st, v := evidence(t, r, compliance.CtlBackups, "last restore test"); st != compliance.Gap || !strings.Contains(v, "failure at ") {
				t.Errorf("after a failed restore test: %s %q", st, v)
			}
		})
	}
}

// `tutela compliance verify` accepts the report as written and names the failed check after an
// edit; `compliance templates` writes every document for every tenant with nothing missing; a
// report for one tenant covers that tenant only.
func TestCompliance_VerifyTemplatesAndTenantScope(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	seedSource(t, environ, sqliteDSN(environ))
	html := filepath.Join(t.TempDir(), "report.html")
	if code, _, stderr := runCmd(t, environ, "compliance", "report", "--format", "html", "--out", html); code != 0 {
		t.Fatalf("html report: %s", stderr)
	}
	code, out, stderr := runCmd(t, environ, "compliance", "verify", html)
	if code != 0 || !strings.Contains(out, "result:  OK") || !strings.Contains(out, "kind:    html") {
		t.Fatalf("verify: %d %s %s", code, out, stderr)
	}
	b, _ := os.ReadFile(html)
	for _, off := range []int{10, len(b) / 2, len(b) - 20} {
		edited := append([]byte(nil), b...)
		edited[off] ^= 0x20
		path := filepath.Join(t.TempDir(), "edited.html")
		if err := os.WriteFile(path, edited, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCmd(t, environ, "compliance", "verify", path)
		if code != 1 || !strings.Contains(out, "result: FAILED (") {
			t.Errorf("offset %d: verify exit %d: %s", off, code, out)
		}
	}

	r, jsonFile := complianceJSON(t, environ, "--tenant", "acme")
	if strings.Join(r.Scope.Tenants, ",") != "acme" || r.Scope.Platform {
		t.Fatalf("--tenant acme scope = %+v", r.Scope)
	}
	if code, out, _ := runCmd(t, environ, "compliance", "verify", jsonFile); code != 0 || !strings.Contains(out, "kind:    json") {
		t.Fatalf("verify json: %d %s", code, out)
	}

	dir := t.TempDir()
	if code, _, stderr := runCmd(t, environ, "compliance", "templates", "--out", dir); code != 0 {
		t.Fatalf("templates: %s", stderr)
	}
	for _, name := range []string{"dpa.md", "baa.md", "subprocessors.md", "records-of-processing.md"} {
		doc, err := os.ReadFile(filepath.Join(dir, "acme", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(string(doc), "<no value>") || !strings.Contains(string(doc), "acme") {
			t.Errorf("%s is incomplete:\n%s", name, doc)
		}
	}
	if code, _, _ := runCmd(t, environ, "compliance", "report", "--tenant", "no-such-tenant"); code == 0 {
		t.Error("a report for an unknown tenant succeeded")
	}
}

// A restore records itself in the restored database, so the report there shows the last
// restore; the backup's own record (made in the source after its snapshot) is not in it.
func TestCompliance_RestoreRecordsItselfInTheRestoredDatabase(t *testing.T) {
	t.Parallel()
	src := baseEnv(t)
	seedSource(t, src, sqliteDSN(src))
	rcpt, idFile := ageKey(t)
	file := filepath.Join(t.TempDir(), "tutela.backup")
	createBackup(t, src, backupCreateCmd{File: file, Recipient: []string{rcpt}})
	dst := baseEnv(t)
	copyKeys(t, dataDirOf(src), dataDirOf(dst))
	if out, err := auditRun(t, dst, backupRestoreCmd{File: file, Identity: idFile, ErasureLedger: ledgerOf(src)}); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	r, _ := complianceJSON(t, dst)
	if _, v := evidence(t, r, compliance.CtlBackups, "last restore"); !strings.Contains(v, "success at ") ||
		!strings.Contains(v, "file=tutela.backup") || !strings.Contains(v, "migration=") {
		t.Errorf("last restore = %q", v)
	}
	if _, v := evidence(t, r, compliance.CtlBackups, "last encrypted backup"); v != "none recorded" {
		t.Errorf("the restored database cites a backup it cannot know of: %q", v)
	}
}
