// Package approvals is the maker-checker engine (issue 18): a high-impact call made where the
// tenant's policy for its action is enabled does not run; it becomes a request (the exact
// parameters, a written justification) that other people decide (approve or reject with a
// comment, each with a fresh second factor), N of them out of everyone holding an approver role.
// Once approved, the requester makes the same call again naming the request; it runs only if
// its parameters are exactly the approved ones (their MAC under the tenant's approvals PRF keyset
// matches), before the request expires, once.
//
// Nobody decides their own request: not through the account that made it, not through a second
// account of the same person (users.person_id), not through a service account they created
// (service accounts do not decide at all: they have no second factor). One decision per person.
package approvals

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"tutela"
)

// Actions that a policy may put behind approval. The parameters each binds are listed in
// docs/approvals.md.
const (
	ActionRoleGrant       = "role.grant"         // a role or grant that hands over accounts (admin roles)
	ActionSubjectExport   = "subject.export"     // a subject's record exported in clear
	ActionErasure         = "dsr.erasure"        // executing an erasure request
	ActionKeyRotation     = "keys.rotate"        // rotating a keyset (platform)
	ActionTenantPromotion = "tenant.promote"     // simulation → provisioning
	ActionCreditTopUp     = "ai.budget_increase" // raising a tenant's AI token budget
	ActionSubjectMerge    = "subject.merge"      // merging two subjects that are one person
	ActionPolicyChange    = "approvals.policy"   // weakening an enabled approval policy
)

// Actions lists every action a policy may name.
var Actions = []string{ActionRoleGrant, ActionSubjectExport, ActionErasure, ActionKeyRotation,
	ActionTenantPromotion, ActionCreditTopUp, ActionSubjectMerge, ActionPolicyChange}

// State is where a request is in its life.
type State string

// Request states. Pending → approved (N approvals) or rejected (one rejection) or expired or
// cancelled (by its requester); approved → executed (once) or expired.
const (
	StatePending   State = "pending"
	StateApproved  State = "approved"
	StateRejected  State = "rejected"
	StateExpired   State = "expired"
	StateCancelled State = "cancelled"
	StateExecuted  State = "executed"
)

// Verdicts of a decision.
const (
	Approve = "approve"
	Reject  = "reject"
)

// Limits of a policy.
const (
	MaxRequired = 5
	MinTTL      = 10 * time.Minute
	MaxTTL      = 30 * 24 * time.Hour
)

// roleKeyRE is the form of a role key (sqlstore's rule).
var roleKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)

// Policy is a tenant's rule for one action.
type Policy struct {
	Action        string        `json:"action"`
	Enabled       bool          `json:"enabled"`
	ApproverRoles []string      `json:"approver_roles"`
	Required      int           `json:"required"` // N: approvals needed, from distinct people
	TTL           time.Duration `json:"-"`        // from the request to its expiry (decisions and execution)
	UpdatedAt     time.Time     `json:"updated_at,omitzero"`
	UpdatedBy     string        `json:"updated_by,omitempty"`
}

// MarshalJSON writes TTL as ttl_seconds.
func (p Policy) MarshalJSON() ([]byte, error) {
	type plain Policy
	return json.Marshal(struct {
		plain
		TTLSeconds int64 `json:"ttl_seconds"`
	}{plain(p), int64(p.TTL / time.Second)})
}

// DefaultPolicy is the policy of action in a tenant that has not set one: merging subjects
// always needs one approval (a merge moves a person's consents and tokens); every other action
// is off until the tenant turns it on, since a tenant with a single administrator could
// otherwise do none of them.
func DefaultPolicy(action string) Policy {
	return Policy{Action: action, Enabled: action == ActionSubjectMerge, ApproverRoles: []string{"program_admin"},
		Required: 1, TTL: 72 * time.Hour}
}

// Validate checks a policy; every problem is reported.
func (p Policy) Validate() error {
	var errs []error
	if !slices.Contains(Actions, p.Action) {
		errs = append(errs, tutela.FieldErrorf("action", "action must be one of %v", Actions))
	}
	if len(p.ApproverRoles) == 0 || len(p.ApproverRoles) > 10 {
		errs = append(errs, tutela.FieldErrorf("approver_roles", "approver_roles must name 1 to 10 roles"))
	}
	for _, r := range p.ApproverRoles {
		if !roleKeyRE.MatchString(r) {
			errs = append(errs, tutela.FieldErrorf("approver_roles", "approver_roles holds an invalid role key"))
			break
		}
	}
	if p.Required < 1 || p.Required > MaxRequired {
		errs = append(errs, tutela.FieldErrorf("required", "required must be 1 to %d", MaxRequired))
	}
	if p.TTL < MinTTL || p.TTL > MaxTTL {
		errs = append(errs, tutela.FieldErrorf("ttl_seconds", "ttl_seconds must be %d to %d", int(MinTTL/time.Second), int(MaxTTL/time.Second)))
	}
	// The first problem is the error's code and message; errors.Join keeps the rest.
	return errors.Join(errs...)
}

// Weakens reports whether replacing old with p makes the action easier to perform: turning it
// off, fewer approvals, more approver roles, or a longer life. Weakening an enabled policy needs
// approval itself (ActionPolicyChange, decided under old).
func (p Policy) Weakens(old Policy) bool {
	if !old.Enabled {
		return false
	}
	if !p.Enabled || p.Required < old.Required || p.TTL > old.TTL {
		return true
	}
	for _, r := range p.ApproverRoles {
		if !slices.Contains(old.ApproverRoles, r) {
			return true
		}
	}
	return false
}

// Request is one call waiting for, or holding, approval.
type Request struct {
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id"`
	Action     string `json:"action"`
	TargetType string `json:"target_type"`
	TargetID   string `json:"target_id"`
	// Params are the call's parameters in canonical form (Canonical); what approvers see and
	// what the approved call must repeat exactly.
	Params        json.RawMessage `json:"params"`
	Justification string          `json:"justification"`
	RequestedBy   string          `json:"requested_by"`
	RequesterKind string          `json:"requester_kind"` // tutela.PrincipalUser or PrincipalServiceAccount
	// RequesterPerson is the person behind the requester: a user's person, or the person who
	// created the requesting service account. Never shown: it links accounts.
	RequesterPerson string     `json:"-"`
	State           State      `json:"state"`
	ApproverRoles   []string   `json:"approver_roles"`
	Required        int        `json:"required"`
	Approvals       int        `json:"approvals"`
	CreatedAt       time.Time  `json:"created_at"`
	ExpiresAt       time.Time  `json:"expires_at"`
	DecidedAt       *time.Time `json:"decided_at,omitempty"`
	ExecutedAt      *time.Time `json:"executed_at,omitempty"`
	Decisions       []Decision `json:"decisions,omitempty"`
	// KeyID and ParamsMAC bind the parameters to the request (MACInput under the tenant's
	// approvals PRF keyset, key KeyID). Never shown.
	KeyID     uint32 `json:"-"`
	ParamsMAC []byte `json:"-"`
}

// Decision is one person's verdict on a request.
type Decision struct {
	ID        string    `json:"id"`
	RequestID string    `json:"request_id"`
	DecidedBy string    `json:"decided_by"`
	Verdict   string    `json:"verdict"`
	Comment   string    `json:"comment"`
	DecidedAt time.Time `json:"decided_at"`
}

// Canonical encodes params so that equal parameters give equal bytes however they were built:
// JSON with object keys sorted, no insignificant space, numbers as written.
func Canonical(params any) (json.RawMessage, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("approvals: parameters: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("approvals: parameters: %w", err)
	}
	// encoding/json writes map keys sorted and json.Number as its text.
	return json.Marshal(v)
}

// MACSize is the length of a request's params_mac (HMAC-SHA256).
const MACSize = 32

// macLabel separates this MAC's inputs from every other use of a PRF keyset.
const macLabel = "tutela approval v1\x00"

// MACInput is what a request's params_mac is computed over: a domain label, then the tenant,
// the request's ID, the action, the target type and ID and the canonical parameters, each
// prefixed with its length (4 bytes, big-endian) so that no two different tuples encode alike
// ("a|bc" and "ab|c"). Binding the tenant and the request's ID keeps a MAC from being moved to
// another request or tenant; binding action and target keeps an approval for one call from
// running another.
func MACInput(tenantID, requestID, action, targetType, targetID string, params []byte) []byte {
	fields := [][]byte{[]byte(tenantID), []byte(requestID), []byte(action), []byte(targetType), []byte(targetID), params}
	n := len(macLabel)
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, macLabel...)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f))) // #nosec G115 -- a length prefix of a request field; bodies are capped far below 4 GiB
		b = append(b, f...)
	}
	return b
}

// Reasons an approval named in a call does not allow it (tutela.EAPPROVAL's Reason).
const (
	ReasonUnknown      = "unknown"       // no such request in this tenant (or a malformed ID)
	ReasonPending      = "pending"       // not yet approved
	ReasonRejected     = "rejected"      // someone rejected it
	ReasonExpired      = "expired"       // its time ran out
	ReasonCancelled    = "cancelled"     // its requester withdrew it
	ReasonExecuted     = "executed"      // it already ran (approvals are single-use)
	ReasonNotRequester = "not_requester" // only the principal who asked may run it
	ReasonMismatch     = "mismatch"      // the call's action, target or parameters differ from the approved ones
	ReasonTampered     = "tampered"      // the stored request no longer matches its MAC
)

// Refusal is the error for an approval that does not allow a call.
func Refusal(reason, message string) error {
	return &tutela.Error{Code: tutela.EAPPROVAL, Reason: reason, Message: message}
}

// StateReason is the refusal reason for running a request in state st (not approved).
func StateReason(st State) string {
	switch st {
	case StatePending:
		return ReasonPending
	case StateRejected:
		return ReasonRejected
	case StateExpired:
		return ReasonExpired
	case StateCancelled:
		return ReasonCancelled
	case StateExecuted:
		return ReasonExecuted
	}
	return ReasonUnknown
}

// MaxJustification is the longest justification or decision comment, in characters.
const MaxJustification = 2000

// ValidText reports whether s is an acceptable justification or comment: 1 to
// MaxJustification characters of free text (tutela.ValidFreeText), not only spaces.
func ValidText(s string) bool {
	return tutela.ValidJustification(s, MaxJustification)
}
