package compliance

// purposeData says which data each keyset purpose protects (docs/crypto.md), so the report's
// encryption evidence names the data and not only the keyset. TestPurposeData_EveryVaultPurpose
// keeps it in step with vault.Purposes.
var purposeData = map[string]string{
	"signing_keys":    "access-token signing keys",
	"totp":            "TOTP seeds",
	"audit_key":       "the audit signing key",
	"personal_data":   "personal data with no person key (sign-in IPs and user agents, tenant-held token values)",
	"jobs":            "queued job payloads (e-mails with reset codes and addresses)",
	"lookup":          "equality lookups on encrypted columns",
	"password_pepper": "the password pepper (HMAC before argon2id)",
	"person_keys":     "each person's data key, which encrypts their personal data fields",
	"blind_index":     "blind indexes for exact-value search",
	"tokens":          "pseudonymous tokens of field values",
	"ai_keys":         "AI providers' API keys",
	"files":           "data keys and names of stored files",
	"file_links":      "download-link signatures",
	"approvals":       "approval requests' parameter MACs",
	"webhooks":        "webhook signing secrets",
	"referrals":       "referral redirect token signatures",
}

// PurposeData is what the keysets of purpose protect ("" for an unknown purpose).
func PurposeData(purpose string) string { return purposeData[purpose] }
