// Package authz decides who may do what: role-based access control with explicit denies,
// expiring grants, data classification and field masking. It is pure — no database, no HTTP —
// so the same Decide runs in the server and, from a policy snapshot, in resource servers.
package authz

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is one of the permission_action enum values.
type Action string

// The permission_action enum (names from the customer's data model).
const (
	Create  Action = "CREATE"
	Read    Action = "READ"
	Update  Action = "UPDATE"
	Delete  Action = "DELETE"
	Publish Action = "PUBLISH"
	Approve Action = "APPROVE"
	Review  Action = "REVIEW"
	Export  Action = "EXPORT"
	Import  Action = "IMPORT"
	Manage  Action = "MANAGE"
)

// Actions lists every action.
var Actions = []Action{Create, Read, Update, Delete, Publish, Approve, Review, Export, Import, Manage}

// Valid reports whether a is a known action.
func (a Action) Valid() bool { return slices.Contains(Actions, a) }

// Classification is a data sensitivity level: GREEN < YELLOW < RED.
type Classification string

// Levels.
const (
	Green  Classification = "GREEN"
	Yellow Classification = "YELLOW"
	Red    Classification = "RED"
)

// Rank orders levels; an unknown or empty level ranks as GREEN.
func (c Classification) Rank() int {
	switch c {
	case Yellow:
		return 1
	case Red:
		return 2
	}
	return 0
}

// Valid reports whether c is a known level (empty is not).
func (c Classification) Valid() bool { return c == Green || c == Yellow || c == Red }

// Any matches every resource type in a permission.
const Any = "*"

// Permission is (resource type, action, optional maximum classification).
type Permission struct {
	Resource string         `json:"resource"`
	Action   Action         `json:"action"`
	MaxClass Classification `json:"max_classification,omitempty"` // "" = no limit
}

func (p Permission) String() string {
	s := p.Resource + ":" + string(p.Action)
	if p.MaxClass != "" {
		s += "≤" + string(p.MaxClass)
	}
	return s
}

// covers reports whether p applies to a request for action on resource at class.
func (p Permission) covers(action Action, resource string, class Classification) bool {
	if p.Action != action || (p.Resource != Any && p.Resource != resource) {
		return false
	}
	return p.MaxClass == "" || class.Rank() <= p.MaxClass.Rank()
}

// Effect of a grant.
type Effect string

// Effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// Grant is one permission given (or denied) to a principal, through a role or directly.
type Grant struct {
	Permission
	Effect  Effect    `json:"effect"`
	Source  string    `json:"source"` // "role:<key>" or "user"
	Expires time.Time `json:"expires,omitzero"`
}

// Policy is everything Decide needs about one principal: their grants and clearance. A
// snapshot of it can be shipped to resource servers.
type Policy struct {
	TenantID  string         `json:"tenant_id"`
	Subject   string         `json:"subject"`
	Roles     []string       `json:"roles"`
	Clearance Classification `json:"clearance"`
	Grants    []Grant        `json:"grants"`
	// Masks maps "resource.field" to the mask this principal sees; missing means full.
	Masks map[string]Mask `json:"masks,omitempty"`
	// Partner is the partner organisation the principal belongs to (issue 18), "" for the
	// tenant's own people and accounts. A partner's principal sees subjects only through the
	// partner's active shares; the store enforces it once the caller scopes its transaction.
	// Published in policy snapshots, so a resource server deciding locally learns it too.
	Partner string `json:"partner_id,omitempty"`
}

// Request is one question: may the principal do action on a resource of this type and
// classification?
type Request struct {
	Action   Action         `json:"action"`
	Resource string         `json:"resource"`
	Class    Classification `json:"classification,omitempty"`
	// Purpose is the stated reason for reading RED data; it goes into the audit event.
	Purpose string `json:"purpose,omitempty"`
	// StepUpAt is when the principal last proved a second factor (zero: never in this session).
	StepUpAt time.Time `json:"-"`
}

// Obligations are conditions attached to an allow.
type Obligations struct {
	Mask            map[string]Mask `json:"mask,omitempty"`
	StepUpRequired  bool            `json:"step_up_required,omitempty"`
	PurposeRequired bool            `json:"purpose_required,omitempty"`
	// Partner, when set, is the partner organisation the principal acts for: the resource
	// server must serve it only what it has shared with that partner (records carrying the
	// partner's ID). Tutela enforces it itself for subjects.
	Partner string `json:"partner_id,omitempty"`
}

// Decision is Decide's answer, with the reason a person can read.
type Decision struct {
	Allow       bool        `json:"allow"`
	Reason      string      `json:"reason"`
	Matched     string      `json:"matched,omitempty"` // the grant or deny that decided
	Obligations Obligations `json:"obligations"`
}

// SensitiveActions need a recent second factor (step-up) once MFA is in place.
var SensitiveActions = []Action{Export, Delete, Manage, Approve}

// Sensitive reports whether action on resource needs a recent second factor: the
// SensitiveActions on anything, and creating a service account. A new service account is a
// credential that acts without a second factor and outlives its creator's password, so minting
// one is as sensitive as adding a secret or key to an existing one (MANAGE); otherwise an
// administrator whose step-up has lapsed could mint one holding DELETE or MANAGE and act through
// it (issue 12). Adding a webhook opens a channel that carries the tenant's events out of
// Tutela, so it is as sensitive (issue 18).
func Sensitive(action Action, resource string) bool {
	return slices.Contains(SensitiveActions, action) ||
		(action == Create && (resource == ResServiceAccounts || resource == ResOIDCClients || resource == ResWebhooks))
}

// StepUpWindow is how recent a second factor must be for a sensitive action.
const StepUpWindow = 5 * time.Minute

// Step-up as Tutela's server and its Go SDK both answer it, so the two cannot drift apart.
const (
	// ACRMFA is the acr of a session whose user proved a second factor; ACRPassword of one that
	// proved only the password.
	ACRMFA      = "urn:tutela:acr:mfa"
	ACRPassword = "urn:tutela:acr:pwd" // #nosec G101 -- an ACR URN naming a method, not a credential
	// StepUpReason is the message of a refusal for want of a fresh second factor.
	StepUpReason = "this action needs a second factor verified in the last 5 minutes: POST /v1/auth/step-up"
	// StepUpChallenge is the RFC 9470 WWW-Authenticate challenge that goes with it (max_age is
	// StepUpWindow in seconds).
	StepUpChallenge = `Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required", ` +
		`acr_values="` + ACRMFA + `", max_age=300`
)

// SecondFactorAMR reports whether an amr value (RFC 8176; "rcv" is a recovery code) is one Tutela
// records for a proved second factor.
func SecondFactorAMR(m string) bool { return m == "otp" || m == "hwk" || m == "rcv" || m == "mfa" }

// Decide evaluates r against p at now. Deny by default; an unexpired explicit deny beats any
// grant; the principal's clearance caps the classification they can touch; RED reads need a
// stated purpose.
func Decide(p *Policy, r Request, now time.Time) Decision {
	if !r.Action.Valid() {
		return Decision{Reason: fmt.Sprintf("unknown action %q", r.Action)}
	}
	if r.Resource == "" || r.Resource == Any {
		return Decision{Reason: "a resource type is required"}
	}
	class := r.Class
	if class == "" {
		class = Green
	}
	if !class.Valid() {
		return Decision{Reason: fmt.Sprintf("unknown classification %q", r.Class)}
	}
	var allow *Grant
	for i := range p.Grants {
		g := &p.Grants[i]
		if !g.Expires.IsZero() && !now.Before(g.Expires) {
			continue
		}
		if !g.covers(r.Action, r.Resource, class) {
			continue
		}
		if g.Effect == Deny {
			return Decision{Reason: "explicitly denied by " + g.Source + " (" + g.String() + ")", Matched: g.Source + " deny " + g.String()}
		}
		if allow == nil {
			allow = g
		}
	}
	if allow == nil {
		return Decision{Reason: fmt.Sprintf("no role or grant allows %s on %s at %s (deny by default)", r.Action, r.Resource, class)}
	}
	if class.Rank() > p.Clearance.Rank() {
		return Decision{Reason: fmt.Sprintf("%s data needs %s clearance; principal has %s", class, class, p.Clearance),
			Matched: allow.Source + " " + allow.String()}
	}
	d := Decision{Allow: true, Reason: "allowed by " + allow.Source + " (" + allow.String() + ")", Matched: allow.Source + " " + allow.String()}
	if class == Red && r.Action == Read {
		d.Obligations.PurposeRequired = true
		if strings.TrimSpace(r.Purpose) == "" {
			return Decision{Reason: "reading RED data needs a stated purpose", Matched: d.Matched,
				Obligations: Obligations{PurposeRequired: true}}
		}
	}
	if class == Red || Sensitive(r.Action, r.Resource) {
		d.Obligations.StepUpRequired = r.StepUpAt.IsZero() || now.Sub(r.StepUpAt) > StepUpWindow
	}
	d.Obligations.Mask = p.masksFor(r.Resource)
	d.Obligations.Partner = p.Partner
	return d
}

func (p *Policy) masksFor(resource string) map[string]Mask {
	var out map[string]Mask
	for k, m := range p.Masks {
		res, field, ok := strings.Cut(k, ".")
		if ok && res == resource && m != MaskFull {
			if out == nil {
				out = map[string]Mask{}
			}
			out[field] = m
		}
	}
	return out
}

// Holds reports whether the policy allows perm at its own classification (or GREEN), ignoring
// step-up and purpose: the test for "you cannot grant what you do not hold".
func (p *Policy) Holds(perm Permission, now time.Time) bool {
	class := perm.MaxClass
	if class == "" {
		class = Red // an unlimited permission can only be granted by someone holding it unlimited
	}
	for _, g := range p.Grants {
		if g.Effect == Deny && (g.Expires.IsZero() || now.Before(g.Expires)) && g.covers(perm.Action, perm.Resource, class) {
			return false
		}
	}
	for _, g := range p.Grants {
		if g.Effect != Allow || (!g.Expires.IsZero() && !now.Before(g.Expires)) {
			continue
		}
		if g.Action != perm.Action || (g.Resource != Any && g.Resource != perm.Resource) {
			continue
		}
		if g.MaxClass == "" || (perm.MaxClass != "" && perm.MaxClass.Rank() <= g.MaxClass.Rank()) {
			return true
		}
	}
	return false
}
