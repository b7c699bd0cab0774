package sqlstore

// The anonymized copy's inventory: every table of the schema is either written to the copy,
// with what each of its columns holds there, or deliberately left out, with the reason.
// TestAnonymize_EveryTableAndColumnClassified fails for a table or column that is neither, so a
// new table or column is decided on before it can reach (or silently miss) a staging copy.

// What a column of a written table holds in the copy.
const (
	anonCopied    = "copied as it is (configuration, no personal data)"
	anonNewID     = "a new random ID: a production ID would link the row back to a real person"
	anonMappedID  = "the copy's new ID of the same user or subject (or none)"
	anonSynthetic = "a synthetic value (privacy.Synthesizer) sealed under the copy's vault"
	anonCopyKey   = "made by the copy's own vault (new keys, new master key)"
	anonNow       = "the export's time: an original time would match the production audit event"
	anonExpiryDay = "whether it expires, from the export's time plus the remaining time rounded up to whole days (expired: the export's time)"
	anonReset     = "left at its default: credentials and sign-in state are set up in staging"
	anonDefault   = "left at its default: each account its own person, in no partner organisation (the links and partners are not copied)"
	anonSimulate  = "simulation: a staging copy sends no webhook and shares nothing with, or refers no one to, a partner"
	anonUnmerged  = "left at its default (not merged): subjects merged into another are not copied (Subjects.List leaves them out), and the merges are not copied"
	anonLegacy    = "empty, as for every user since migration 00018 (data in the sealed columns)"
)

var anonymizedTables = map[string]map[string]string{
	"tenants": {"id": anonCopied, "slug": anonCopied, "name": anonCopied, "data_region": anonCopied, "status": anonCopied,
		"created_at": anonNow, "session_idle_seconds": anonCopied, "session_absolute_seconds": anonCopied,
		"password_composition": anonCopied, "mfa_required_all": anonCopied, "require_private_key_jwt": anonCopied,
		"service_accounts_may_take_over": anonCopied, "branding": anonCopied, "mode": anonSimulate},
	"permissions": {"id": anonCopied, "resource_type": anonCopied, "action": anonCopied, "max_classification": anonCopied},
	"roles": {"id": anonCopied, "tenant_id": anonCopied, "key": anonCopied, "name": anonCopied, "builtin": anonCopied,
		"created_at": anonNow, "clearance": anonCopied, "description": anonCopied},
	"role_permissions": {"role_id": anonCopied, "permission_id": anonCopied},
	"field_policies":   {"role_id": anonCopied, "field": anonCopied, "mask": anonCopied},
	"subject_fields":   {"tenant_id": anonCopied, "name": anonCopied, "type": anonCopied, "classification": anonCopied, "purposes": anonCopied, "retention_days": anonCopied, "mask": anonCopied, "searchable": anonCopied, "created_at": anonNow, "updated_at": anonNow},
	"processing_purposes": {"tenant_id": anonCopied, "name": anonCopied, "description": anonCopied, "lawful_basis": anonCopied,
		"notice_id": anonCopied, "notice_version": anonCopied, "consent_min_version": anonCopied, "created_at": anonNow, "updated_at": anonNow},
	"minimization_profiles": {"tenant_id": anonCopied, "purpose": anonCopied, "rules": anonCopied, "updated_by": anonReset, "updated_at": anonNow},
	"users": {"id": anonNewID, "tenant_id": anonCopied, "email": anonLegacy, "email_norm": anonNewID, "display_name": anonLegacy,
		"status": anonCopied, "password_hash": anonReset, "token_version": anonReset, "created_at": anonNow, "updated_at": anonNow,
		"must_change_password": anonReset, "last_login_at": anonReset, "mfa_enrollment_code_required": anonReset,
		"email_digest": anonCopyKey, "email_sealed": anonSynthetic, "display_name_sealed": anonSynthetic,
		"person_id": anonDefault, "partner_id": anonDefault},
	"user_roles": {"tenant_id": anonCopied, "user_id": anonMappedID, "role_id": anonCopied, "granted_by": anonMappedID,
		"granted_at": anonNow, "expires_at": anonExpiryDay},
	"user_permissions": {"id": anonNewID, "tenant_id": anonCopied, "user_id": anonMappedID, "permission_id": anonCopied,
		"effect": anonCopied, "granted_by": anonMappedID, "granted_at": anonNow, "expires_at": anonExpiryDay},
	"person_keys": {"tenant_id": anonCopied, "person_id": anonNewID, "kind": anonCopied, "wrapped": anonCopyKey, "created_at": anonNow},
	"keysets": {"id": anonCopyKey, "tenant_id": anonCopied, "purpose": anonCopyKey, "kind": anonCopyKey, "version": anonCopyKey,
		"wrapped": anonCopyKey, "kek_uri": anonCopyKey, "key_info": anonCopyKey, "created_at": anonCopyKey, "rotated_at": anonCopyKey,
		"updated_at": anonCopyKey},
	"subjects": {"id": anonNewID, "tenant_id": anonCopied, "created_by": anonMappedID, "created_at": anonNow, "updated_at": anonNow,
		"retain_until": anonNow, "erased_at": anonReset, "merged_into": anonUnmerged, "merged_at": anonUnmerged},
	"subject_values": {"tenant_id": anonCopied, "subject_id": anonNewID, "field": anonCopied, "ciphertext": anonSynthetic,
		"updated_at": anonNow},
	"subject_index": {"tenant_id": anonCopied, "field": anonCopied, "key_id": anonCopyKey, "digest": anonCopyKey,
		"subject_id": anonNewID},
	// Only SettingEnvironment and SettingAnonymizedAt: a staging node records its own issuer,
	// audit verifier key and master key fingerprint.
	"deployment_settings": {"name": anonCopyKey, "value": anonCopyKey, "created_at": anonNow, "updated_at": anonNow},
	// One event, export.anonymized, naming the run; the production log is not copied.
	"audit_events": {"pos": anonCopyKey, "id": anonCopyKey, "time": anonNow, "tenant_id": anonCopyKey, "actor_type": anonCopyKey,
		"actor_id": anonCopyKey, "action": anonCopyKey, "target_type": anonCopyKey, "target_id": anonCopyKey, "outcome": anonCopyKey,
		"request_id": anonCopyKey, "canonical": anonCopyKey, "leaf_hash": anonCopyKey},
	// The copy's sequencer queue holds the copy's own events, queued as they are recorded.
	"audit_pending": {"pos": "the positions of the copy's own events, queued as the copy records them",
		"time": "the times of the copy's own events (PostgreSQL), queued with them"},
	"audit_event_ids": {"id": "the ids of the copy's own events (PostgreSQL), registered as the copy records them"},
}

// notAnonymizedTables are the tables the copy leaves empty, and why.
var notAnonymizedTables = map[string]string{ // #nosec G101 -- table names and reasons, no credential
	"sessions":                    "credentials: staging users sign in there",
	"refresh_tokens":              "credentials",
	"user_tokens":                 "credentials (reset and setup codes)",
	"password_history":            "credentials (old password hashes)",
	"mfa_factors":                 "credentials (TOTP seeds, passkeys)",
	"mfa_recovery_codes":          "credentials",
	"webauthn_ceremonies":         "credentials (in-flight passkey ceremonies)",
	"auth_throttle":               "sign-in history: counters keyed by real addresses and accounts",
	"rate_windows":                "request counts keyed by real client addresses; they expire within seconds anyway",
	"login_history":               "sign-in history of real people (IPs, user agents)",
	"security_events":             "history of real people (IPs, details)",
	"signing_keys":                "keys: a staging node makes its own token signing keys",
	"service_accounts":            "integration clients hold credentials; staging registers its own",
	"service_account_secrets":     "credentials",
	"service_account_permissions": "belongs to service accounts, not copied",
	"service_account_keys":        "credentials (client public keys)",
	"client_assertion_jtis":       "credentials (replay cache)",
	"audit_log":                   "the audit log starts fresh in the copy",
	"audit_hashes":                "the audit log starts fresh in the copy",
	"audit_checkpoints":           "the audit log starts fresh in the copy",
	"audit_prunes":                "the audit log starts fresh in the copy",
	"audit_prune_gate":            "the audit log starts fresh in the copy",
	"audit_sequencer":             "a staging node's own sequencer heartbeat",
	"audit_ship_cursors":          "shipping progress of production's log to production's receivers: a staging copy's log starts fresh and ships to its own",
	"monitor_cursor":              "the copy's audit log starts fresh, so its monitoring cursor does too",
	"auth_epochs":                 "change counters of production's authentication state; the copy's own writes start its own",
	"monitor_windows":             "alert windows over production audit events",
	"access_reviews":              "review history of real people",
	"access_review_items":         "review history of real people (sealed copies of e-mails and names, decisions)",
	"jobs":                        "queued work for real people (sealed mail payloads)",
	"erasures":                    "the erasure ledger names real people's IDs and reasons",
	"subject_holds":               "legal holds: free-text reasons may name the person",
	"subject_merges":              "identity merges link real people's records, with free-text justifications",
	"subject_merge_saved":         "values, digests, tokens and file keys sealed under production keys, kept for unmerging",
	"subject_exports":             "exports hold real values sealed under production keys",
	"tokens":                      "tokens are pseudonyms derived under production keys: they would link back",
	"token_values":                "values sealed under production keys",
	"consent_records":             "real people's consent history (who consented to what, when, evidence): staging records its own",
	"consent_state":               "real people's current consents",
	"subject_objections":          "real people's objections",
	"subject_restrictions":        "real people's restrictions",
	"processing_controllers":      "the controller's and DPO's contact details name real people; staging declares its own",
	"processing_records":          "production's compliance declarations, not needed to exercise staging",
	"subprocessors":               "production's sub-processor register, not needed to exercise staging",
	"oidc_clients":                "relying parties hold credentials and production redirect URIs; staging registers its own",
	"oidc_client_secrets":         "credentials",
	"oidc_client_keys":            "credentials (client public keys)",
	"oidc_auth_requests":          "in-flight sign-ins of real people",
	"oidc_pushed_requests":        "in-flight sign-ins of real people (login hints)",
	"oidc_consents":               "real people's consent to applications, which staging's own clients do not have",
	"oidc_dpop_proofs":            "credentials (replay cache)",
	"spent_challenges":            "credentials (passkey replay cache)",
	"dsr_requests":                "data-subject requests of real people",
	"dsr_steps":                   "the handling history of real people's requests",
	"dsr_texts":                   "real people's own words, sealed under production keys",
	"dsr_packages":                "access packages hold real values sealed under production keys",
	"ai_providers":                "production's AI endpoints: a staging copy must not send inferences there; staging registers its own",
	"ai_provider_keys":            "credentials (provider API keys)",
	"ai_models":                   "belongs to the providers, not copied",
	"ai_purposes":                 "names the models, not copied",
	"ai_settings":                 "production's AI limits and detectors, set with the gateway staging configures",
	"ai_usage":                    "production's metering",
	"file_policies":               "production's upload rules, set with the blob store and scanner staging configures",
	"files":                       "real people's documents: data keys sealed under production keys, blobs not copied",
	"file_links":                  "download links to production's files",
	"partners":                    "real organisations real people are referred to, with their URLs; staging registers its own",
	"approval_policies":           "production's maker-checker rules name production's roles; staging sets its own",
	"approval_requests":           "real people's pending and past requests, MACs under production keys",
	"approval_decisions":          "real people's decisions and comments",
	"webhooks":                    "production's receivers and their signing secrets: a staging copy must not send events there; staging registers its own",
	"referrals":                   "which real person was sent to which partner, why, and what came of it",
	"referral_events":             "the lifecycle of production's referrals of real people",
	"partner_shares":              "real disclosures of real people to real partners; staging shares nothing",
	"compliance_evidence":         "production's operations evidence (audit verifications, backups, restore tests): staging records its own",
	"incidents":                   "production's security incidents and breach clocks: staging must not remind production's owners; it opens its own",
	"incident_tenants":            "which production tenants a real incident affected",
	"incident_subjects":           "which real people a breach concerned",
	"incident_timeline":           "the handling history of production's incidents, linked to production's events",
	"incident_notifications":      "real notifications to real authorities and people",
}
