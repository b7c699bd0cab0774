package compliance

// Mapping is where one control answers each framework: SOC 2 Trust Services Criteria, ISO/IEC
// 27001:2022 Annex A, HIPAA Security Rule sections (§164.312 technical safeguards, §164.308
// where the safeguard is administrative), GDPR articles and Nigeria Data Protection Act 2023
// sections. It is guidance for the auditor, not a legal opinion.
type Mapping struct {
	SOC2  []string `json:"soc2"`
	ISO   []string `json:"iso27001"`
	HIPAA []string `json:"hipaa"`
	GDPR  []string `json:"gdpr"`
	NDPA  []string `json:"ndpa"`
}

// Def is a control of the catalogue: its identity, the question it answers, whether it is
// answered once for the deployment or for each tenant, and its framework mapping.
type Def struct {
	ID        string
	Title     string
	PerTenant bool
	Map       Mapping
}

// Control IDs.
const (
	CtlEncryptionAtRest  = "encryption-at-rest"
	CtlKeyManagement     = "key-management"
	CtlTLS               = "tls-listener"
	CtlDatabaseTLS       = "database-tls"
	CtlMFARoles          = "mfa-roles"
	CtlServiceAccountMFA = "service-account-authentication"
	CtlSessions          = "session-timeouts"
	CtlPasswords         = "password-policy"
	CtlLockout           = "lockout"
	CtlAuditIntegrity    = "audit-integrity"
	CtlAccessReviews     = "access-reviews"
	CtlResidency         = "data-residency"
	CtlDSR               = "data-subject-requests"
	CtlConsent           = "consent"
	CtlSubprocessors     = "subprocessors"
	CtlBackups           = "backups"
	CtlSecureDefaults    = "secure-defaults"
)

// Catalogue is the one table of controls and their framework mapping; docs/compliance.md
// shows it (TestCatalogue_DocumentedInDocs keeps the two in step).
var Catalogue = []Def{
	{CtlEncryptionAtRest, "Personal data and secrets are encrypted at rest under rotated keys", false, Mapping{
		SOC2: []string{"CC6.1", "CC6.7"}, ISO: []string{"A.8.24", "A.5.33"},
		HIPAA: []string{"164.312(a)(2)(iv)", "164.312(c)(1)"}, GDPR: []string{"Art. 25", "Art. 32(1)(a)"}, NDPA: []string{"s. 24(1)(f)", "s. 39"}}},
	{CtlKeyManagement, "The key-encryption key is held apart from the data", false, Mapping{
		SOC2: []string{"CC6.1"}, ISO: []string{"A.8.24"},
		HIPAA: []string{"164.312(a)(2)(iv)"}, GDPR: []string{"Art. 32(1)(a)"}, NDPA: []string{"s. 39"}}},
	{CtlTLS, "Clients reach the service over TLS", false, Mapping{
		SOC2: []string{"CC6.7"}, ISO: []string{"A.8.20", "A.8.24"},
		HIPAA: []string{"164.312(e)(1)", "164.312(e)(2)(ii)"}, GDPR: []string{"Art. 32(1)(a)"}, NDPA: []string{"s. 39"}}},
	{CtlDatabaseTLS, "The database link is encrypted and authenticated", false, Mapping{
		SOC2: []string{"CC6.7"}, ISO: []string{"A.8.20", "A.8.24"},
		HIPAA: []string{"164.312(e)(1)", "164.312(e)(2)(ii)"}, GDPR: []string{"Art. 32(1)(a)"}, NDPA: []string{"s. 39"}}},
	{CtlMFARoles, "Every role's holders must use a second factor", true, Mapping{
		SOC2: []string{"CC6.1", "CC6.2"}, ISO: []string{"A.8.5", "A.5.17"},
		HIPAA: []string{"164.312(a)(1)", "164.312(d)"}, GDPR: []string{"Art. 32(1)(b)"}, NDPA: []string{"s. 39"}}},
	{CtlServiceAccountMFA, "Service accounts authenticate with keys, not shared secrets", true, Mapping{
		SOC2: []string{"CC6.1"}, ISO: []string{"A.8.5", "A.5.17"},
		HIPAA: []string{"164.312(d)"}, GDPR: []string{"Art. 32(1)(b)"}, NDPA: []string{"s. 39"}}},
	{CtlSessions, "Sessions end after inactivity and after a maximum lifetime", true, Mapping{
		SOC2: []string{"CC6.1"}, ISO: []string{"A.8.5"},
		HIPAA: []string{"164.312(a)(2)(iii)"}, GDPR: []string{"Art. 32(1)(b)"}, NDPA: []string{"s. 39"}}},
	{CtlPasswords, "Passwords follow NIST SP 800-63B and breached passwords are refused", false, Mapping{
		SOC2: []string{"CC6.1"}, ISO: []string{"A.5.17", "A.8.5"},
		HIPAA: []string{"164.312(d)", "164.308(a)(5)(ii)(D)"}, GDPR: []string{"Art. 32(1)(b)"}, NDPA: []string{"s. 39"}}},
	{CtlLockout, "Repeated failed sign-ins are throttled and locked out", false, Mapping{
		SOC2: []string{"CC6.1", "CC7.2"}, ISO: []string{"A.8.5", "A.8.16"},
		HIPAA: []string{"164.312(d)", "164.308(a)(5)(ii)(C)"}, GDPR: []string{"Art. 32(1)(b)"}, NDPA: []string{"s. 39"}}},
	{CtlAuditIntegrity, "The audit log is tamper-evident, verified and published off the host", false, Mapping{
		SOC2: []string{"CC7.2", "CC7.3"}, ISO: []string{"A.8.15", "A.8.17"},
		HIPAA: []string{"164.312(b)", "164.312(c)(1)", "164.312(c)(2)"}, GDPR: []string{"Art. 30", "Art. 33(5)"}, NDPA: []string{"s. 39", "s. 40"}}},
	{CtlAccessReviews, "Access rights are reviewed regularly and findings acted on", true, Mapping{
		SOC2: []string{"CC6.2", "CC6.3"}, ISO: []string{"A.5.15", "A.5.18"},
		HIPAA: []string{"164.312(a)(1)", "164.308(a)(4)(ii)(C)"}, GDPR: []string{"Art. 32(1)(d)"}, NDPA: []string{"s. 39"}}},
	{CtlResidency, "Each tenant's data stays in its declared region", true, Mapping{
		SOC2: []string{"CC6.1"}, ISO: []string{"A.5.34", "A.5.31"},
		HIPAA: []string{}, GDPR: []string{"Art. 30(1)(e)", "Art. 44"}, NDPA: []string{"s. 41", "s. 43"}}},
	{CtlDSR, "Data-subject requests are answered within their deadlines", true, Mapping{
		SOC2: []string{"P5.1", "P5.2"}, ISO: []string{"A.5.34"},
		HIPAA: []string{}, GDPR: []string{"Art. 12(3)", "Art. 15-22"}, NDPA: []string{"s. 34", "s. 35", "s. 36", "s. 38"}}},
	{CtlConsent, "Processing on consent has a notice and recorded consents", true, Mapping{
		SOC2: []string{"P2.1", "P3.2"}, ISO: []string{"A.5.34"},
		HIPAA: []string{}, GDPR: []string{"Art. 6(1)(a)", "Art. 7", "Art. 25"}, NDPA: []string{"s. 25", "s. 26"}}},
	{CtlSubprocessors, "Every recipient of personal data is declared in the sub-processor register", true, Mapping{
		SOC2: []string{"CC9.2"}, ISO: []string{"A.5.19", "A.5.20", "A.5.21"},
		HIPAA: []string{"164.308(b)(1)"}, GDPR: []string{"Art. 28", "Art. 30(1)(d)"}, NDPA: []string{"s. 29"}}},
	{CtlBackups, "Encrypted backups are taken and restores are tested", false, Mapping{
		SOC2: []string{"CC7.5", "A1.2", "A1.3"}, ISO: []string{"A.8.13"},
		HIPAA: []string{"164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(B)", "164.312(a)(2)(ii)"}, GDPR: []string{"Art. 32(1)(c)"}, NDPA: []string{"s. 39"}}},
	{CtlSecureDefaults, "The configuration keeps Tutela's default protections", false, Mapping{
		SOC2: []string{"CC7.1", "CC8.1"}, ISO: []string{"A.8.9"},
		HIPAA: []string{"164.312(a)(1)"}, GDPR: []string{"Art. 25"}, NDPA: []string{"s. 24"}}},
}

// def returns the catalogue entry of id; every ID used is in the catalogue (a test checks).
func def(id string) Def {
	for _, d := range Catalogue {
		if d.ID == id {
			return d
		}
	}
	return Def{ID: id, Title: id}
}
