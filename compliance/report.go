// Package compliance answers a security questionnaire from Tutela's live configuration and
// state (issue 19): each control of the catalogue with its status, the evidence read now and
// where it was read, what would close a gap, and its mapping to SOC 2, ISO/IEC 27001:2022,
// HIPAA, GDPR and the Nigeria Data Protection Act. The report is rendered as JSON or as one
// self-contained HTML file, both signed with the audit log's key (sign.go), and fills the
// document templates of docs/compliance/templates.
//
// Build is pure: the store reads State (sqlstore), the caller passes the configuration, and
// nothing is invented: what Tutela has not recorded is a gap that says so.
package compliance

import (
	"time"

	"tutela/config"
)

// Format names this report's schema in its JSON and HTML.
const Format = "tutela-compliance-report/v1"

// Status is a control's answer.
type Status string

// Statuses.
const (
	Met           Status = "met"
	Gap           Status = "gap"
	Partial       Status = "partial"
	NotApplicable Status = "not_applicable"
)

// Evidence is one value read to answer a control, and where it was read: a configuration key,
// a table, or the latest recorded event.
type Evidence struct {
	Item   string `json:"item"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Control is one answered control.
type Control struct {
	ID         string     `json:"id"`
	Title      string     `json:"title"`
	Tenant     string     `json:"tenant,omitempty"` // slug; empty: deployment-wide
	Status     Status     `json:"status"`
	Summary    string     `json:"summary"`
	Evidence   []Evidence `json:"evidence"`
	Close      []string   `json:"close,omitempty"` // for a gap or partial: what would close it
	Frameworks Mapping    `json:"frameworks"`
}

// Runtime is what the running deployment knows beyond its configuration and store.
type Runtime struct {
	Version string
	// MasterKeySource says where a local: KEK's master key comes from: "file" (data_dir's
	// master.key), "environment" (TUTELA_MASTER_KEY[_FILE]) or "" when unknown.
	MasterKeySource string
	// AuditVerifierKey is the public key checkpoints and this report are signed with.
	AuditVerifierKey string
	// Environment is the deployment marker (production, staging, ...); "" when unmarked.
	Environment string
}

// Scope is what the report covers.
type Scope struct {
	// Platform is true for a super-admin's report (every tenant of the deployment).
	Platform bool     `json:"platform"`
	Tenants  []string `json:"tenants"` // slugs
}

// Deployment describes the deployment the report is about.
type Deployment struct {
	Version          string `json:"version"`
	Environment      string `json:"environment"`
	Issuer           string `json:"issuer"`
	Store            string `json:"store"`
	NodeRegion       string `json:"node_region"`
	AuditVerifierKey string `json:"audit_verifier_key"`
}

// Subprocessor is a recipient of data derived from configuration or state, never typed in.
type Subprocessor struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Host    string `json:"host"`
	Source  string `json:"source"`
	Tenant  string `json:"tenant,omitempty"` // slug; empty: every tenant
}

// TenantProfile is what the document templates need of a tenant.
type TenantProfile struct {
	Slug       string         `json:"slug"`
	Name       string         `json:"name"`
	Region     string         `json:"data_region"`
	Mode       string         `json:"mode"`
	Purposes   []PurposeInfo  `json:"purposes"`
	Fields     []FieldInfo    `json:"fields"`
	Declared   []DeclaredInfo `json:"declared_subprocessors"`
	Subjects   int            `json:"subjects"`
	DSRTotal   int            `json:"dsr_total"`
	DSROverdue int            `json:"dsr_overdue"`
}

// PurposeInfo, FieldInfo and DeclaredInfo are TenantProfile's rows.
type (
	PurposeInfo struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		LawfulBasis string `json:"lawful_basis"`
	}
	FieldInfo struct {
		Name           string `json:"name"`
		Classification string `json:"classification"`
		RetentionDays  int    `json:"retention_days"`
	}
	DeclaredInfo struct {
		Name      string `json:"name"`
		Service   string `json:"service"`
		Locations string `json:"locations"`
		Safeguard string `json:"transfer_safeguard"`
	}
)

// Report is the whole answer.
type Report struct {
	Format        string          `json:"format"`
	GeneratedAt   time.Time       `json:"generated_at"`
	Deployment    Deployment      `json:"deployment"`
	Scope         Scope           `json:"scope"`
	Summary       map[Status]int  `json:"summary"`
	Controls      []Control       `json:"controls"`
	Subprocessors []Subprocessor  `json:"subprocessors"`
	Tenants       []TenantProfile `json:"tenants"`
}

// Build answers every control of the catalogue from cfg, rt and st at now. platform says the
// report covers the whole deployment (a super-admin's) rather than the tenants in st only.
func Build(cfg *config.Config, rt Runtime, st State, platform bool, now time.Time) *Report {
	now = now.UTC().Truncate(time.Second)
	b := &builder{cfg: cfg, rt: rt, st: st, now: now}
	r := &Report{Format: Format, GeneratedAt: now, Scope: Scope{Platform: platform, Tenants: []string{}},
		Summary: map[Status]int{Met: 0, Gap: 0, Partial: 0, NotApplicable: 0}}
	r.Deployment = Deployment{Version: rt.Version, Environment: orText(rt.Environment, "unmarked"),
		Issuer: orText(cfg.Auth.Issuer, "the listener's own URL (auth.issuer unset)"), Store: storeKind(cfg),
		NodeRegion: orText(cfg.Residency.Region, "any (residency.region unset)"), AuditVerifierKey: rt.AuditVerifierKey}
	r.Controls = append(r.Controls, b.encryptionAtRest(), b.keyManagement(), b.tlsListener(), b.databaseTLS(),
		b.passwords(), b.lockout(), b.auditIntegrity(), b.backups(), b.secureDefaults())
	r.Subprocessors = b.deploymentSubprocessors()
	for _, t := range st.Tenants {
		r.Scope.Tenants = append(r.Scope.Tenants, t.Slug)
		r.Controls = append(r.Controls, b.mfaRoles(t), b.serviceAccounts(t), b.sessions(t), b.accessReviews(t),
			b.residency(t), b.dsr(t), b.consent(t), b.subprocessors(t))
		for _, s := range b.tenantSubprocessors(t) {
			if s.Tenant != "" {
				r.Subprocessors = append(r.Subprocessors, s)
			}
		}
		r.Tenants = append(r.Tenants, profile(t))
	}
	for i := range r.Controls {
		c := &r.Controls[i]
		d := def(c.ID)
		c.Title, c.Frameworks = d.Title, d.Map
		if c.Evidence == nil {
			c.Evidence = []Evidence{}
		}
		r.Summary[c.Status]++
	}
	if r.Tenants == nil {
		r.Tenants = []TenantProfile{}
	}
	return r
}

func profile(t Tenant) TenantProfile {
	p := TenantProfile{Slug: t.Slug, Name: t.Name, Region: t.Region, Mode: t.Mode, Subjects: t.Subjects,
		DSRTotal: t.DSR.Total, DSROverdue: t.DSR.Overdue, Purposes: []PurposeInfo{}, Fields: []FieldInfo{}, Declared: []DeclaredInfo{}}
	for _, x := range t.Purposes {
		p.Purposes = append(p.Purposes, PurposeInfo{x.Name, x.Description, x.LawfulBasis})
	}
	for _, x := range t.Fields {
		p.Fields = append(p.Fields, FieldInfo(x))
	}
	for _, x := range t.Declared {
		p.Declared = append(p.Declared, DeclaredInfo(x))
	}
	return p
}

func storeKind(cfg *config.Config) string {
	if cfg.Database.URL == "" {
		return "SQLite (embedded, data_dir)"
	}
	return "PostgreSQL"
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// Count is how many controls have status s.
func (r *Report) Count(s string) int { return r.Summary[Status(s)] }
