package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
)

// privacy records prints the same record as the API, as JSON or as formula-safe CSV; privacy
// subprocessors the register; an unknown tenant is an error, never an empty record.
func TestPrivacyRecords_JSONAndCSV(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	ctx := context.Background()
	db := openDB(t, environ)
	tn := tenantID(t, &Main{DB: db}, "acme")
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Consent(tn).PutPurpose(ctx, &privacy.Purpose{Name: "case_management", Description: "Case files",
			LawfulBasis: privacy.BasisContract}); err != nil {
			return err
		}
		if err := tx.SubjectSchema(tn).Put(ctx, privacy.Schema{{Name: "national_id", Type: privacy.FieldNationalID,
			Classification: authz.Red, Purposes: []string{"case_management"}, RetentionDays: 3650, Mask: authz.MaskHashed}}); err != nil {
			return err
		}
		return tx.Processing(tn).AddSubprocessor(ctx, &privacy.Subprocessor{Name: "=HYPERLINK(\"x\")", Service: "Hosting",
			Locations: []string{"DE"}, ContractRef: "DPA-1"})
	}); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runCmd(t, environ, "privacy", "records", "--tenant", "acme")
	var rop privacy.RecordsOfProcessing
	if code != 0 || json.Unmarshal([]byte(out), &rop) != nil {
		t.Fatalf("records json: %d %q %q", code, out, stderr)
	}
	if rop.TenantSlug != "acme" || len(rop.Purposes) != 1 || rop.Purposes[0].RetentionDays != 3650 || len(rop.Subprocessors) != 1 ||
		len(rop.Gaps) != 3 || rop.Gaps[0].Kind != privacy.GapNoController {
		t.Fatalf("record = %+v", rop)
	}

	code, out, stderr = runCmd(t, environ, "privacy", "records", "--tenant", tn, "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 2 || rows[1][0] != "case_management" || rows[1][6] != "national_id" ||
		!strings.Contains(rows[1][17], "red_without_security_measures") {
		t.Fatalf("records csv: %d %q %q %v", code, out, stderr, err)
	}

	code, out, stderr = runCmd(t, environ, "privacy", "subprocessors", "--tenant", "acme", "--format", "csv")
	rows, err = csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 2 || rows[1][1] != `'=HYPERLINK("x")` {
		t.Fatalf("subprocessors csv: %d %q %q %v", code, out, stderr, err)
	}

	for _, args := range [][]string{{"privacy", "records", "--tenant", "nope"}, {"privacy", "records", "--tenant", "acme", "--format", "xml"}} {
		if code, out, _ := runCmd(t, environ, args...); code == 0 || out != "" {
			t.Errorf("%v: exit %d, output %q; want a failure and no record", args, code, out)
		}
	}
}
