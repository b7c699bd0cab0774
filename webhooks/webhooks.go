// Package webhooks holds a tenant's webhook endpoints (issue 18): the URLs that are told, by a
// signed HTTPS POST, when something the tenant's systems care about happens (an approval is
// requested or decided, a referral moves on). Delivery goes through the durable queue (package
// notify); this package holds the endpoint, its rules and the closed list of event types.
package webhooks

import (
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
)

// Event types an endpoint may subscribe to: a closed list, so a typo subscribes to nothing
// silently no more than it sends something unheard of. All is every type, present and future.
const (
	ApprovalRequested = "approval.requested"
	ApprovalApproved  = "approval.approved"
	ApprovalRejected  = "approval.rejected"
	ApprovalExpired   = "approval.expired"
	ApprovalCancelled = "approval.cancelled"
	ApprovalExecuted  = "approval.executed"
	ApprovalReminder  = "approval.reminder"
	ReferralCreated   = "referral.created"
	ReferralOpened    = "referral.opened"
	ReferralConfirmed = "referral.confirmed"
	ReferralClosed    = "referral.closed"
	// IncidentReminder and IncidentOverdue are the breach clock's (issue 19), sent to the
	// tenant of the incident's owners.
	IncidentReminder = "incident.reminder"
	IncidentOverdue  = "incident.overdue"
	All              = "*"
)

// EventTypes lists every event type (All aside).
var EventTypes = []string{ApprovalRequested, ApprovalApproved, ApprovalRejected, ApprovalExpired, ApprovalCancelled,
	ApprovalExecuted, ApprovalReminder, ReferralCreated, ReferralOpened, ReferralConfirmed, ReferralClosed,
	IncidentReminder, IncidentOverdue}

// KnownEvent reports whether t is one of EventTypes.
func KnownEvent(t string) bool { return slices.Contains(EventTypes, t) }

// Status of an endpoint. Only active endpoints are sent events.
type Status string

// Statuses.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
)

// Limits.
const (
	// MaxPerTenant bounds the endpoints of a tenant, and so the deliveries one event fans out to.
	MaxPerTenant = 20
	MaxURLLen    = 2048
)

// SecretPrefix starts every signing secret, so one found in a repository or a log is
// recognisable (and a secret scanner can match it).
const SecretPrefix = "whsec_"

// Webhook is one endpoint of a tenant. Its signing secret is not here: it is sealed in the store
// and shown once, when the endpoint is created.
type Webhook struct {
	ID             string    `json:"id"`
	TenantID       string    `json:"tenant_id"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Status         Status    `json:"status"`
	CreatedBy      string    `json:"created_by"`
	CreatedAt      time.Time `json:"created_at"`
	LastDeliveryAt time.Time `json:"last_delivery_at,omitzero"`
	// LastStatus is the outcome of the latest delivery attempt: the HTTP status the endpoint
	// answered ("200"), or why there was none ("unreachable", "timeout", "refused: not a public
	// address", "simulated"). Empty until the first attempt.
	LastStatus string `json:"last_status,omitempty"`
}

// Validate checks the endpoint's URL, events and status; the first problem is returned.
func (w *Webhook) Validate() error {
	if err := ValidURL(w.URL); err != nil {
		return err
	}
	if err := ValidEvents(w.Events); err != nil {
		return err
	}
	if w.Status != StatusActive && w.Status != StatusDisabled {
		return tutela.FieldErrorf("status", "status must be active or disabled")
	}
	return nil
}

// Subscribed reports whether the endpoint receives events of type t.
func (w *Webhook) Subscribed(t string) bool {
	return slices.Contains(w.Events, t) || slices.Contains(w.Events, All)
}

// ValidEvents checks a subscription: at least one type, each from EventTypes or All, none twice.
func ValidEvents(events []string) error {
	if len(events) == 0 {
		return tutela.FieldErrorf("events", `events must name at least one event type, or "*" for all`)
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e != All && !KnownEvent(e) {
			return tutela.FieldErrorf("events", "unknown event type %q; known: %s or \"*\"", truncate(e, 64),
				strings.Join(EventTypes, ", "))
		}
		if seen[e] {
			return tutela.FieldErrorf("events", "event type %q is listed twice", e)
		}
		seen[e] = true
	}
	return nil
}

// ValidURL checks an endpoint URL: absolute https with a host, no user information (a password
// in the URL would sit in the store and in every list), no fragment, in the form net/url writes
// it back in. The URL is not echoed in the error: it may hold a token (many receivers put
// one in the path). Whether the host is a public address is decided when delivering, on the
// address dialled (package egress): a name can resolve anywhere, at any time.
func ValidURL(s string) error {
	if why := tutela.HTTPSURLProblem(s, MaxURLLen); why != "" {
		if strings.HasPrefix(why, "is not in canonical form") {
			why = "is not in canonical form" // without the URL, which may hold a token
		}
		return tutela.FieldErrorf("url", "url %s", why)
	}
	return nil
}

// Origin is the scheme, host and port of an endpoint URL, without the path or query, which may
// hold a token: what the audit log and the logs name.
func Origin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// NewSecret returns a fresh signing secret: SecretPrefix and 32 random bytes in hex.
func NewSecret() tutela.Secret { return tutela.NewSecret(SecretPrefix + tutela.RandomToken(32)) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
