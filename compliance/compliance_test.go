package compliance_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/compliance"
	"tutela/config"
	"tutela/vault"
)

var now = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func newSigner(t testing.TB) (*audit.Signer, string) {
	t.Helper()
	skey, vkey, err := audit.GenerateKey("tutela/audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// state is a tenant with an operator holding a factor, and recent operations of every kind.
func state() compliance.State {
	op := func(kind string, age time.Duration) *compliance.Operation {
		return &compliance.Operation{Kind: kind, Outcome: compliance.OutcomeSuccess, RecordedAt: now.Add(-age),
			Details: map[string]any{"file": "b.age"}}
	}
	return compliance.State{
		Keysets:     []compliance.Keyset{{Purpose: "totp", Kind: "aead", Version: 1, Keys: 1, KEKURI: "local:", CreatedAt: now.Add(-time.Hour)}},
		Checkpoint:  &compliance.CheckpointInfo{Size: 10, CreatedAt: now},
		AuditVerify: op(compliance.OpAuditVerify, time.Hour), Backup: op(compliance.OpBackup, time.Hour),
		RestoreTest: op(compliance.OpRestoreTest, time.Hour),
		Tenants: []compliance.Tenant{{ID: "t1", Slug: "acme", Name: "Acme Health", Region: "eu", Mode: "provisioning",
			Roles:    []compliance.RoleCoverage{{Key: "operator", Holders: 2}, {Key: "auditor"}},
			Reviews:  compliance.ReviewStats{LastClosed: now.Add(-24 * time.Hour)},
			Purposes: []compliance.Purpose{{Name: "care", Description: "Providing care", LawfulBasis: "consent", Granted: 3}},
			Fields:   []compliance.Field{{Name: "diagnosis", Classification: "RED", RetentionDays: 365}},
			Subjects: 4}},
	}
}

func find(t *testing.T, r *compliance.Report, id, tenant string) compliance.Control {
	t.Helper()
	for _, c := range r.Controls {
		if c.ID == id && c.Tenant == tenant {
			return c
		}
	}
	t.Fatalf("no control %s for %q", id, tenant)
	return compliance.Control{}
}

// The "done when": MFA off for a role is a gap naming the setting that closes it;
// turning it on makes the control met.
func TestBuild_MFAOffForRoleIsGapNamingTheSetting(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Auth.MFAAllUsers = false
	cfg.Auth.MFARoles = []string{"super_admin", "program_admin"}
	c := find(t, compliance.Build(cfg, compliance.Runtime{}, state(), false, now), compliance.CtlMFARoles, "acme")
	if c.Status != compliance.Gap {
		t.Fatalf("status = %s, want gap", c.Status)
	}
	closeText := strings.Join(c.Close, "\n")
	for _, want := range []string{"role operator", "auth.mfa_roles", "TUTELA_AUTH_MFA_ROLES=super_admin,program_admin,operator",
		`PATCH /v1/tenants/acme {"mfa_required_all": true}`} {
		if !strings.Contains(closeText, want) {
			t.Errorf("close %q lacks %q", closeText, want)
		}
	}
	if strings.Contains(closeText, "role auditor") {
		t.Errorf("a role with no holders is named as a gap: %q", closeText)
	}

	cfg.Auth.MFARoles = append(cfg.Auth.MFARoles, "operator")
	if c := find(t, compliance.Build(cfg, compliance.Runtime{}, state(), false, now), compliance.CtlMFARoles, "acme"); c.Status != compliance.Met || len(c.Close) != 0 {
		t.Fatalf("with operator in auth.mfa_roles: status %s close %v, want met", c.Status, c.Close)
	}
	// The tenant's own switch closes it too.
	cfg.Auth.MFARoles = []string{"super_admin"}
	st := state()
	st.Tenants[0].MFARequiredAll = true
	if c := find(t, compliance.Build(cfg, compliance.Runtime{}, st, false, now), compliance.CtlMFARoles, "acme"); c.Status != compliance.Met {
		t.Fatalf("with mfa_required_all: status %s, want met", c.Status)
	}
	// Required but a holder has no factor: partial, saying how many.
	st.Tenants[0].Roles[0].WithoutFactor = 1
	if c := find(t, compliance.Build(cfg, compliance.Runtime{}, st, false, now), compliance.CtlMFARoles, "acme"); c.Status != compliance.Partial ||
		!strings.Contains(strings.Join(c.Close, " "), "1 holder(s)") {
		t.Fatalf("a holder without a factor: status %s close %v, want partial naming 1 holder", c.Status, c.Close)
	}
}

// Other configuration changes move other answers, each with the setting that closes them.
func TestBuild_AnswersFollowConfiguration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		edit    func(*config.Config, *compliance.State)
		id      string
		tenant  string
		want    compliance.Status
		closing string
	}{
		{"defaults: idle 15m", func(*config.Config, *compliance.State) {}, compliance.CtlSessions, "acme", compliance.Met, ""},
		{"idle 2h", func(c *config.Config, _ *compliance.State) { c.Auth.SessionIdle = 2 * time.Hour }, compliance.CtlSessions, "acme",
			compliance.Gap, `PATCH /v1/tenants/acme {"session_idle_seconds": 1800}`},
		{"tenant override 10m wins", func(c *config.Config, s *compliance.State) {
			c.Auth.SessionIdle = 2 * time.Hour
			s.Tenants[0].SessionIdle = 10 * time.Minute
		}, compliance.CtlSessions, "acme", compliance.Met, ""},
		{"no breach source", func(c *config.Config, _ *compliance.State) { c.Auth.Breach.BuiltinList = false }, compliance.CtlPasswords, "",
			compliance.Gap, "auth.breach.builtin_list"},
		{"local KEK", func(*config.Config, *compliance.State) {}, compliance.CtlKeyManagement, "", compliance.Partial, "vault.kek_uri"},
		// The vault reads "local" as the local KEK too; the report must not call it a KMS.
		{"local KEK written without its colon", func(c *config.Config, _ *compliance.State) { c.Vault.KEKURI = "local" },
			compliance.CtlKeyManagement, "", compliance.Partial, "vault.kek_uri"},
		{"HSM KEK", func(c *config.Config, _ *compliance.State) { c.Vault.KEKURI = "pkcs11:token=t;object=kek" }, compliance.CtlKeyManagement, "",
			compliance.Met, ""},
		{"keyset under an old KEK", func(c *config.Config, _ *compliance.State) { c.Vault.KEKURI = "pkcs11:token=t;object=kek" },
			compliance.CtlEncryptionAtRest, "", compliance.Gap, "tutela keys kek-rewrap"},
		{"SQLite: no database link", func(*config.Config, *compliance.State) {}, compliance.CtlDatabaseTLS, "", compliance.NotApplicable, ""},
		{"database sslmode=require", func(c *config.Config, _ *compliance.State) {
			c.Database.URL = "postgres://db.internal/tutela?sslmode=require"
		}, compliance.CtlDatabaseTLS, "", compliance.Partial, "sslmode=verify-full"},
		{"database verify-full", func(c *config.Config, _ *compliance.State) {
			c.Database.URL = "postgres://db.internal/tutela?sslmode=verify-full"
		}, compliance.CtlDatabaseTLS, "", compliance.Met, ""},
		{"no witness", func(*config.Config, *compliance.State) {}, compliance.CtlAuditIntegrity, "", compliance.Partial, "audit.checkpoint_url"},
		{"witness", func(c *config.Config, _ *compliance.State) { c.Audit.CheckpointURL = "https://witness.example/add" },
			compliance.CtlAuditIntegrity, "", compliance.Met, ""},
		{"log shipped instead of a witness", func(c *config.Config, s *compliance.State) {
			c.Audit.Ship = []string{"archive=https://archive.example/in"}
			c.ShipSecrets = map[string]tutela.Secret{"archive": tutela.NewSecret("whsec_x")}
			s.Shipping = []compliance.Shipping{{Destination: "archive", Shipped: 40, ShippedAt: now}}
		}, compliance.CtlAuditIntegrity, "", compliance.Met, ""},
		{"log shipping failing", func(c *config.Config, s *compliance.State) {
			c.Audit.Ship = []string{"archive=https://archive.example/in"}
			c.ShipSecrets = map[string]tutela.Secret{"archive": tutela.NewSecret("whsec_x")}
			s.Shipping = []compliance.Shipping{{Destination: "archive", Shipped: 40, Failures: 3, LastError: "unreachable: https://archive.example: connection refused"}}
		}, compliance.CtlAuditIntegrity, "", compliance.Partial, "tutela audit shipping"},
		{"SQLite commits not fsynced", func(c *config.Config, _ *compliance.State) {
			c.Audit.CheckpointURL = "https://witness.example/add"
			c.Database.SQLiteSynchronous = "normal"
		}, compliance.CtlAuditIntegrity, "", compliance.Partial, "database.sqlite_synchronous to full"},
		{"PostgreSQL ignores the SQLite setting", func(c *config.Config, _ *compliance.State) {
			c.Audit.CheckpointURL = "https://witness.example/add"
			c.Database.URL = "postgres://db.internal/tutela?sslmode=verify-full"
			c.Database.SQLiteSynchronous = "normal"
		}, compliance.CtlAuditIntegrity, "", compliance.Met, ""},
		{"last verification failed", func(c *config.Config, s *compliance.State) {
			c.Audit.CheckpointURL = "https://witness.example/add"
			s.AuditVerify.Outcome = compliance.OutcomeFailure
		}, compliance.CtlAuditIntegrity, "", compliance.Gap, "docs/RUNBOOKS.md#audit-verification-failure"},
		{"never verified", func(c *config.Config, s *compliance.State) { s.AuditVerify = nil }, compliance.CtlAuditIntegrity, "",
			compliance.Gap, "no verification recorded"},
		{"no backup", func(c *config.Config, s *compliance.State) { s.Backup = nil }, compliance.CtlBackups, "", compliance.Gap, "no backup recorded"},
		{"no restore test", func(c *config.Config, s *compliance.State) { s.RestoreTest = nil }, compliance.CtlBackups, "", compliance.Gap,
			"no restore test recorded"},
		{"old backup", func(c *config.Config, s *compliance.State) { s.Backup.RecordedAt = now.Add(-30 * 24 * time.Hour) }, compliance.CtlBackups, "",
			compliance.Partial, "older than 7 days"},
		{"overdue DSR", func(c *config.Config, s *compliance.State) { s.Tenants[0].DSR.Overdue = 2 }, compliance.CtlDSR, "acme", compliance.Gap,
			"POST /v1/tenants/acme/dsr/{id}/approve"},
		{"node unbound", func(*config.Config, *compliance.State) {}, compliance.CtlResidency, "acme", compliance.Partial, "TUTELA_RESIDENCY_REGION=eu"},
		{"node bound", func(c *config.Config, _ *compliance.State) { c.Residency.Region = "eu" }, compliance.CtlResidency, "acme", compliance.Met, ""},
		{"secret-only service account", func(c *config.Config, s *compliance.State) {
			s.Tenants[0].ServiceAccounts = []compliance.ServiceAccount{{Name: "etl", ActiveSecrets: 1}}
		}, compliance.CtlServiceAccountMFA, "acme", compliance.Partial, `{"require_private_key_jwt": true}`},
		{"private_key_jwt required", func(c *config.Config, s *compliance.State) {
			s.Tenants[0].ServiceAccounts = []compliance.ServiceAccount{{Name: "etl", Keys: 1}}
			s.Tenants[0].RequirePrivateKeyJWT = true
		}, compliance.CtlServiceAccountMFA, "acme", compliance.Met, ""},
		{"AI provider not declared", func(c *config.Config, s *compliance.State) {
			s.Tenants[0].AIProviders = []compliance.Endpoint{{Name: "openai", Host: "api.openai.com"}}
		}, compliance.CtlSubprocessors, "acme", compliance.Gap, "POST /v1/tenants/acme/subprocessors"},
		{"never reviewed", func(c *config.Config, s *compliance.State) { s.Tenants[0].Reviews.LastClosed = time.Time{} }, compliance.CtlAccessReviews,
			"acme", compliance.Gap, "POST /v1/tenants/acme/access-reviews"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, st := config.Default(), state()
			tc.edit(cfg, &st)
			c := find(t, compliance.Build(cfg, compliance.Runtime{}, st, false, now), tc.id, tc.tenant)
			if c.Status != tc.want {
				t.Fatalf("status = %s, want %s (close %v)", c.Status, tc.want, c.Close)
			}
			if tc.closing != "" && !strings.Contains(strings.Join(c.Close, "\n"), tc.closing) {
				t.Fatalf("close %v lacks %q", c.Close, tc.closing)
			}
			if c.Status == compliance.Met && len(c.Close) != 0 {
				t.Fatalf("a met control says what would close it: %v", c.Close)
			}
		})
	}
}

// Recorded operations appear as evidence with their time, outcome and details.
func TestBuild_RecordedOperationsAreEvidence(t *testing.T) {
	t.Parallel()
	st := state()
	st.Backup.Details = map[string]any{"sha256": "abc123", "recipients": 2}
	c := find(t, compliance.Build(config.Default(), compliance.Runtime{}, st, false, now), compliance.CtlBackups, "")
	var got string
	for _, e := range c.Evidence {
		if e.Item == "last encrypted backup" {
			got = e.Value + " | " + e.Source
		}
	}
	for _, want := range []string{"success at 2026-12-07T08:00:00Z", "sha256=abc123", "recipients=2", "compliance_evidence"} {
		if !strings.Contains(got, want) {
			t.Errorf("backup evidence %q lacks %q", got, want)
		}
	}
	if c.Status != compliance.Met {
		t.Errorf("status = %s, want met", c.Status)
	}
}

// Every control ID of the catalogue is answered, each mapped to every framework but HIPAA where
// the Security Rule has no counterpart, and the catalogue is the table docs/compliance.md shows.
func TestCatalogue_EveryControlAnsweredMappedAndDocumented(t *testing.T) {
	t.Parallel()
	r := compliance.Build(config.Default(), compliance.Runtime{}, state(), false, now)
	doc, err := os.ReadFile("../docs/compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range compliance.Catalogue {
		if !slices.ContainsFunc(r.Controls, func(c compliance.Control) bool { return c.ID == d.ID }) {
			t.Errorf("control %s is never answered", d.ID)
		}
		if len(d.Map.SOC2) == 0 || len(d.Map.ISO) == 0 || len(d.Map.GDPR) == 0 || len(d.Map.NDPA) == 0 {
			t.Errorf("control %s lacks a mapping: %+v", d.ID, d.Map)
		}
		row := "| `" + d.ID + "` | " + d.Title + " | " + strings.Join(d.Map.SOC2, ", ") + " | " + strings.Join(d.Map.ISO, ", ") + " | " +
			strings.Join(d.Map.HIPAA, ", ") + " | " + strings.Join(d.Map.GDPR, ", ") + " | " + strings.Join(d.Map.NDPA, ", ") + " |"
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/compliance.md lacks the row\n%s", row)
		}
	}
	for _, c := range r.Controls {
		if c.Title == c.ID || c.Title == "" {
			t.Errorf("control %s is not in the catalogue", c.ID)
		}
	}
}

func signedHTML(t *testing.T) ([]byte, string) {
	t.Helper()
	signer, vkey := newSigner(t)
	r := compliance.Build(config.Default(), compliance.Runtime{AuditVerifierKey: vkey, Version: "test"}, state(), false, now)
	page, err := compliance.RenderHTML(r)
	if err != nil {
		t.Fatal(err)
	}
	file, err := compliance.SignHTML(page, signer, now)
	if err != nil {
		t.Fatal(err)
	}
	return file, vkey
}

// The "done when": a report signature check fails after one byte is edited, wherever
// the byte is (start, middle, an evidence value, inside the signature line, the last byte).
func TestVerify_HTMLFailsAfterAnyOneByteEdit(t *testing.T) {
	t.Parallel()
	file, vkey := signedHTML(t)
	v, err := compliance.Verify(file, vkey)
	if err != nil {
		t.Fatalf("unedited file: %v", err)
	}
	if v.Kind != "html" || !v.SignedAt.Equal(now) {
		t.Fatalf("verified %+v", v)
	}
	sig := bytes.LastIndex(file, []byte("<!-- tutela-compliance-signature "))
	offsets := []int{0, 1, len(file) / 3, len(file) / 2, bytes.Index(file, []byte("tenant acme")), bytes.Index(file, []byte("auth.session_idle")),
		sig - 1, sig, sig + 5, sig + 40, sig + 60, len(file) - 6, len(file) - 2, len(file) - 1}
	for _, off := range offsets {
		edited := bytes.Clone(file)
		edited[off] ^= 0x01
		_, err := compliance.Verify(edited, vkey)
		var ve *compliance.VerifyError
		if !errors.As(err, &ve) {
			t.Errorf("offset %d (of %d): Verify = %v, want a VerifyError", off, len(file), err)
			continue
		}
		t.Logf("offset %d: %s", off, ve.Check)
	}
	// Appending or truncating fails too.
	for _, edited := range [][]byte{append(bytes.Clone(file), '\n'), file[:len(file)-1], append([]byte(" "), file...)} {
		if _, err := compliance.Verify(edited, vkey); err == nil {
			t.Error("a file with a byte added or removed verified")
		}
	}
	// A body edit is named as such.
	edited := bytes.Clone(file)
	edited[bytes.Index(file, []byte("tenant acme"))] = 'X'
	var ve *compliance.VerifyError
	if _, err := compliance.Verify(edited, vkey); !errors.As(err, &ve) || ve.Check != "digest" {
		t.Errorf("body edit: %v, want the digest check to fail", err)
	}
}

func TestVerify_JSONFailsAfterAnyOneByteEdit(t *testing.T) {
	t.Parallel()
	signer, vkey := newSigner(t)
	r := compliance.Build(config.Default(), compliance.Runtime{AuditVerifierKey: vkey}, state(), false, now)
	file, err := compliance.SignJSON(r, signer, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := compliance.Verify(file, vkey); err != nil {
		t.Fatalf("unedited: %v", err)
	}
	var env struct {
		Report compliance.Report `json:"report"`
	}
	if err := json.Unmarshal(file, &env); err != nil || len(env.Report.Controls) == 0 {
		t.Fatalf("envelope does not hold the report: %v", err)
	}
	sig := bytes.Index(file, []byte(`"signature":"`))
	for _, off := range []int{0, 5, sig + 20, sig + 100, bytes.Index(file, []byte(`"report":`)) - 1, len(file) / 2, len(file) - 3, len(file) - 2, len(file) - 1} {
		edited := bytes.Clone(file)
		edited[off] ^= 0x01
		if _, err := compliance.Verify(edited, vkey); err == nil {
			t.Errorf("offset %d (of %d): edited JSON verified", off, len(file))
		}
	}
}

// Another key, or a genuine audit checkpoint passed off as a report signature, is refused.
func TestVerify_RefusesOtherKeyAndCheckpointSignatures(t *testing.T) {
	t.Parallel()
	file, _ := signedHTML(t)
	_, otherKey := newSigner(t)
	var ve *compliance.VerifyError
	if _, err := compliance.Verify(file, otherKey); !errors.As(err, &ve) || ve.Check != "signature" {
		t.Fatalf("other key: %v, want the signature check to fail", err)
	}
	signer, vkey := newSigner(t)
	page := []byte("<html>forged</html>")
	cp, err := signer.Sign(audit.Checkpoint{Origin: "tutela/audit", Size: 1, Time: now})
	if err != nil {
		t.Fatal(err)
	}
	forged := append(bytes.Clone(page), []byte("<!-- tutela-compliance-signature "+b64(cp)+" -->\n")...)
	if _, err := compliance.Verify(forged, vkey); !errors.As(err, &ve) || ve.Check != "signature" {
		t.Fatalf("checkpoint as report signature: %v, want refused", err)
	}
}

// The HTML is one self-contained file: no script, nothing loaded from anywhere, a CSP that
// forbids loading anything, and values escaped.
func TestRenderHTML_SelfContainedAndEscaped(t *testing.T) {
	t.Parallel()
	st := state()
	st.Tenants[0].Name = `<script>alert(1)</script>`
	st.Tenants[0].Purposes[0].Name = `"><img src=x>`
	page, err := compliance.RenderHTML(compliance.Build(config.Default(), compliance.Runtime{}, st, false, now))
	if err != nil {
		t.Fatal(err)
	}
	low := strings.ToLower(string(page))
	for _, bad := range []string{"<script", "<img", "<iframe", "<object", "<link", "src=\"", "href=\"", "url(", "@import"} {
		if strings.Contains(low, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.Contains(string(page), `<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;sha256-`) &&
		!strings.Contains(string(page), `content="default-src 'none'; style-src 'sha256-`) {
		t.Errorf("no CSP meta forbidding loads")
	}
}

// Templates render for every tenant with no missing value, and carry the report's facts.
func TestRenderTemplates_NoMissingValues(t *testing.T) {
	t.Parallel()
	st := state()
	st.Tenants = append(st.Tenants, compliance.Tenant{ID: "t2", Slug: "empty", Name: "Empty Org", Region: "ng", Mode: "simulation"})
	cfg := config.Default()
	cfg.SMTP.Addr = "smtp.relay.example:587"
	docs, err := compliance.RenderTemplates(compliance.Build(cfg, compliance.Runtime{AuditVerifierKey: "tutela/audit+abc+def"}, st, true, now))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"acme/dpa.md", "acme/baa.md", "acme/subprocessors.md", "acme/records-of-processing.md", "empty/dpa.md"} {
		doc, ok := docs[name]
		if !ok {
			t.Fatalf("no %s among %d documents", name, len(docs))
		}
		if bytes.Contains(doc, []byte("<no value>")) || bytes.Contains(doc, []byte("{{")) {
			t.Errorf("%s has a missing value", name)
		}
	}
	for name, want := range map[string][]string{
		"acme/dpa.md":                   {"Acme Health", "**care** (consent): Providing care", "`diagnosis`: classification RED, kept 365 days", "smtp.relay.example"},
		"acme/records-of-processing.md": {"| care | consent | Providing care |", "`eu`"},
		"acme/subprocessors.md":         {"| smtp.relay.example | SMTP relay", "none declared"},
		"acme/baa.md":                   {"§164.312(a)(2)(iv)", "Acme Health"},
		"empty/dpa.md":                  {"No purpose is declared yet"},
	} {
		for _, w := range want {
			if !bytes.Contains(docs[name], []byte(w)) {
				t.Errorf("%s lacks %q", name, w)
			}
		}
	}
}

// Every keyset purpose says which data it protects.
func TestPurposeData_EveryVaultPurpose(t *testing.T) {
	t.Parallel()
	for _, p := range vault.Purposes {
		if compliance.PurposeData(p) == "" {
			t.Errorf("purpose %s: no description of the data it protects (compliance/purposes.go)", p)
		}
	}
}

// Exhaustively: flipping any one bit of any byte of a signed HTML or JSON report fails
// verification.
func TestVerify_EveryByteOfTheFileIsCovered(t *testing.T) {
	t.Parallel()
	signer, vkey := newSigner(t)
	r := compliance.Build(config.Default(), compliance.Runtime{AuditVerifierKey: vkey}, compliance.State{}, true, now)
	page, err := compliance.RenderHTML(r)
	if err != nil {
		t.Fatal(err)
	}
	html, err := compliance.SignHTML(page, signer, now)
	if err != nil {
		t.Fatal(err)
	}
	js, err := compliance.SignJSON(r, signer, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string][]byte{"html": html, "json": js} {
		if _, err := compliance.Verify(file, vkey); err != nil {
			t.Fatalf("%s unedited: %v", name, err)
		}
		edited := bytes.Clone(file)
		for off := range edited {
			edited[off] ^= 0x01
			if _, err := compliance.Verify(edited, vkey); err == nil {
				t.Fatalf("%s: flipping a bit at offset %d of %d still verifies", name, off, len(file))
			}
			edited[off] ^= 0x01
		}
	}
}
