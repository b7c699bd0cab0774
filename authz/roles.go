package authz

// Resource types Tutela itself serves. Tenants' own resource types (e.g. "records",
// "beneficiaries") are free-form strings.
const (
	ResTenants         = "tenants"
	ResUsers           = "users"
	ResRoles           = "roles"
	ResSessions        = "sessions"
	ResAudit           = "audit"
	ResSecurityEvents  = "security_events"
	ResServiceAccounts = "service_accounts"
	ResAccessReviews   = "access_reviews"
	ResKeys            = "keys"
	ResConfig          = "config"
	ResRecords         = "records"
	// ResTokens is the token vault and minimization profiles: CREATE tokenizes (and applies a
	// profile), READ detokenizes at the field's classification with a purpose, MANAGE edits
	// profiles.
	ResTokens = "tokens"
	// ResSubjects are the people whose data a tenant holds (privacy vault, issue 13); a READ
	// is decided per field, at the field's classification.
	ResSubjects = "subjects"
	// ResConsents is the register of purposes (READ; MANAGE declares and changes purposes)
	// and subjects' consents, objections and restrictions (CREATE records, READ reads the
	// history, UPDATE places and lifts objections and restrictions). Issue 14.
	ResConsents = "consents"
	// ResDSR are data-subject requests (access, portability, rectification, erasure,
	// restriction, objection): CREATE, READ, UPDATE (verify, assign, submit), APPROVE
	// (execute), EXPORT (the access package). Issue 14.
	ResDSR = "dsr"
	// ResProcessing is the records of processing and the sub-processor register: READ and
	// EXPORT, MANAGE to change them. Issue 14.
	ResProcessing = "processing"
	// ResOIDCClients are the relying parties registered with the tenant's OpenID Provider:
	// CREATE (a step-up action: a confidential client is a credential), READ, UPDATE, DELETE,
	// MANAGE (rotate secrets and keys). Issue 15.
	ResOIDCClients = "oidc_clients"
	// ResAI is the AI privacy gateway (issue 16): CREATE runs an inference through it (per
	// subject named, a READ of subjects is decided too), READ reads the tenant's AI
	// configuration and usage (never a provider key), MANAGE changes providers, models,
	// purposes and limits and rotates provider keys (a step-up action).
	ResAI = "ai"
	// ResFiles are uploaded files (issue 17): CREATE uploads, READ lists and reads metadata and
	// issues a download link for oneself, EXPORT issues a link anyone holding it can use (a
	// step-up action), DELETE removes a file, MANAGE sets the tenant's file policy and asks
	// for a rescan. A file's classification bounds who may read it, as for records.
	ResFiles = "files"
	// ResApprovals are approval requests and their policies (issue 18): READ lists and reads
	// requests (a requester always reads their own), MANAGE sets a tenant's approval policies
	// (weakening an enabled one needs approval itself). Deciding is not a permission: it takes
	// one of the request's approver roles, a fresh second factor, and being another person than
	// the requester.
	ResApprovals = "approvals"
	// ResPartners are a tenant's partner organisations, their users and service accounts and
	// the URLs referrals may send people to: CREATE, READ, UPDATE, DELETE (disable).
	ResPartners = "partners"
	// ResShares are a subject's records shared with a partner, with a purpose and an expiry:
	// CREATE shares (a disclosure, step-up), READ lists shares, DELETE revokes one.
	ResShares = "shares"
	// ResReferrals are people sent to a partner's service through tracked redirects: CREATE
	// (the subject's consent for the purpose is checked), READ (lifecycle), UPDATE (the
	// partner's service account confirms receipt and outcome), DELETE (cancel).
	ResReferrals = "referrals"
	// ResWebhooks are the tenant's webhook endpoints (notifications through the durable queue):
	// CREATE, READ, DELETE.
	ResWebhooks = "webhooks"
	// ResCompliance is the compliance report (issue 19): READ answers it, deployment-wide
	// controls plus the caller's own tenant (every tenant for the platform), signed.
	ResCompliance = "compliance"
)

// RoleDef is a built-in role. Built-in roles cannot be changed or deleted; their permissions
// are defined here, in code, and documented in README.
type RoleDef struct {
	Key         string
	Name        string
	Clearance   Classification
	Platform    bool // platform-wide (super_admin); every other role is tenant-scoped
	Permissions []Permission
}

func perms(resource string, max Classification, actions ...Action) []Permission {
	out := make([]Permission, len(actions))
	for i, a := range actions {
		out[i] = Permission{Resource: resource, Action: a, MaxClass: max}
	}
	return out
}

func concat(ps ...[]Permission) []Permission {
	var out []Permission
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

// Built-in role keys.
const (
	RoleSuperAdmin   = "super_admin"
	RoleProgramAdmin = "program_admin"
	RoleOperator     = "operator"
	RoleAuditor      = "auditor"
	RolePartner      = "partner"
)

// BuiltinRoles are the roles every deployment has.
var BuiltinRoles = []RoleDef{
	{Key: RoleSuperAdmin, Name: "Super administrator", Clearance: Red, Platform: true,
		Permissions: perms(Any, "", Actions...)},
	{Key: RoleProgramAdmin, Name: "Programme administrator", Clearance: Yellow,
		Permissions: concat(
			perms(ResTenants, "", Read, Update),
			perms(ResUsers, "", Create, Read, Update, Delete, Manage),
			perms(ResRoles, "", Create, Read, Update, Delete, Manage),
			perms(ResSessions, "", Read, Manage),
			perms(ResServiceAccounts, "", Create, Read, Update, Delete, Manage),
			perms(ResAccessReviews, "", Create, Read, Review, Export, Manage),
			perms(ResAudit, "", Read, Export),
			perms(ResSecurityEvents, "", Read),
			perms(ResRecords, Yellow, Create, Read, Update, Delete, Publish, Approve, Review, Export, Import),
			perms(ResTokens, Yellow, Create, Read, Manage),
			perms(ResSubjects, Yellow, Create, Read, Update, Delete, Export, Manage),
			perms(ResConsents, Yellow, Create, Read, Update, Manage),
			perms(ResDSR, Yellow, Create, Read, Update, Approve, Export),
			perms(ResProcessing, "", Read, Export, Manage),
			perms(ResOIDCClients, "", Create, Read, Update, Delete, Manage),
			perms(ResAI, "", Create, Read, Manage),
			perms(ResFiles, Yellow, Create, Read, Export, Delete, Manage),
			perms(ResApprovals, "", Read, Manage),
			perms(ResPartners, "", Create, Read, Update, Delete),
			perms(ResShares, Yellow, Create, Read, Delete),
			perms(ResReferrals, Yellow, Create, Read, Update, Delete),
			perms(ResWebhooks, "", Create, Read, Delete),
		)},
	{Key: RoleOperator, Name: "Operator", Clearance: Yellow,
		Permissions: concat(
			perms(ResUsers, "", Read),
			perms(ResRecords, Yellow, Create, Read, Update, Publish, Review, Import),
			perms(ResTokens, Yellow, Create),
			perms(ResSubjects, Yellow, Create, Read, Update),
			perms(ResConsents, Yellow, Create, Read),
			perms(ResDSR, Yellow, Create, Read, Update),
			perms(ResAI, "", Create),
			perms(ResFiles, Yellow, Create, Read),
			perms(ResApprovals, "", Read),
			perms(ResPartners, "", Read),
			perms(ResShares, Yellow, Read),
			perms(ResReferrals, Yellow, Create, Read),
		)},
	{Key: RoleAuditor, Name: "Auditor", Clearance: Green,
		Permissions: concat(
			perms(ResAudit, "", Read, Export),
			perms(ResSecurityEvents, "", Read),
			perms(ResUsers, "", Read),
			perms(ResRoles, "", Read),
			perms(ResSessions, "", Read),
			perms(ResAccessReviews, "", Read, Review, Export),
			perms(ResRecords, Green, Read),
			perms(ResConsents, Green, Read),
			perms(ResDSR, Green, Read),
			perms(ResProcessing, "", Read, Export),
			perms(ResOIDCClients, "", Read),
			perms(ResAI, "", Read),
			perms(ResApprovals, "", Read),
			perms(ResPartners, "", Read),
			perms(ResShares, Green, Read),
			perms(ResReferrals, Green, Read),
			perms(ResWebhooks, "", Read),
			perms(ResCompliance, "", Read),
		)},
	{Key: RolePartner, Name: "Partner organisation", Clearance: Green,
		// Only what is explicitly shared with the user's partner organisation: subjects through
		// an unexpired share, at GREEN and for the share's purpose (Tutela checks the share);
		// records a resource server serves carry the partner's ID (its check); the referrals
		// sent to the partner.
		Permissions: concat(
			perms(ResRecords, Green, Read),
			perms(ResSubjects, Green, Read),
			perms(ResReferrals, Green, Read, Update),
		)},
}

// Builtin returns the built-in role with key, if any.
func Builtin(key string) (RoleDef, bool) {
	for _, r := range BuiltinRoles {
		if r.Key == key {
			return r, true
		}
	}
	return RoleDef{}, false
}

// FieldClass is the classification of one classified field and the mask shown to a principal
// whose clearance is one level below it (two or more levels below: hidden).
type FieldClass struct {
	Class Classification
	Mask  Mask
}

// FieldClasses are the classified fields of Tutela's own responses ("resource.field").
var FieldClasses = map[string]FieldClass{
	"users.email":         {Yellow, MaskPartial},
	"sessions.ip":         {Yellow, MaskHashed},
	"sessions.user_agent": {Yellow, MaskRedacted},
	"security_events.ip":  {Yellow, MaskHashed},
	"login_history.ip":    {Yellow, MaskHashed},
	// The audit log holds the same network data as sessions and security events; reading it
	// must not be a way around their masks (ASVS 5.0 8.2.3).
	"audit_events.source_ip":  {Yellow, MaskHashed},
	"audit_events.user_agent": {Yellow, MaskRedacted},
}

// MasksFor derives a principal's field masks from their clearance, then applies explicit
// per-role field policies (overrides win).
func MasksFor(clearance Classification, overrides map[string]Mask) map[string]Mask {
	out := map[string]Mask{}
	for field, fc := range FieldClasses {
		switch diff := fc.Class.Rank() - clearance.Rank(); {
		case diff == 1:
			out[field] = fc.Mask
		case diff >= 2:
			out[field] = MaskHidden
		}
	}
	for f, m := range overrides {
		out[f] = m
	}
	return out
}
