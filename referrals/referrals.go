// Package referrals holds tracked referrals (issue 18): a tenant sends a subject to one of its
// partner organisations through a signed, expiring redirect to one of the partner's exact
// allow-listed URLs. The URL carries only the referral's token (its ID, key ID, expiry and a
// MAC: no personal data); the person following it is sent on once; the partner confirms
// receipt and outcome through the API as its own service account. The lifecycle (created,
// opened, confirmed, closed, or cancelled, or expired) is stored with an event per step.
package referrals

import (
	"net/url"
	"time"
	"unicode/utf8"

	"tutela"
)

// State is a referral's place in its lifecycle.
type State string

// States. created → opened (the person followed the link, once) → confirmed (the partner
// received them) → closed (the partner reports completed or declined; also straight from
// opened). cancelled ends it from any open state; expired is how a referral not closed or
// cancelled reads once its expiry has passed.
const (
	StateCreated   State = "created"
	StateOpened    State = "opened"
	StateConfirmed State = "confirmed"
	StateClosed    State = "closed"
	StateCancelled State = "cancelled"
	StateExpired   State = "expired"
)

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	switch s {
	case StateCreated, StateOpened, StateConfirmed, StateClosed, StateCancelled, StateExpired:
		return true
	}
	return false
}

// Live reports whether a referral in state s may still move on (and so expire).
func (s State) Live() bool { return s == StateCreated || s == StateOpened || s == StateConfirmed }

// Status is what a partner reports about a referral it received.
type Status string

// Partner statuses: received confirms the person arrived; completed and declined close the
// referral with its outcome.
const (
	StatusReceived  Status = "received"
	StatusCompleted Status = "completed"
	StatusDeclined  Status = "declined"
)

// Next is the state a partner's status moves a referral to; "" for an unknown status.
func (s Status) Next() State {
	switch s {
	case StatusReceived:
		return StateConfirmed
	case StatusCompleted, StatusDeclined:
		return StateClosed
	}
	return ""
}

// Limits.
const (
	DefaultTTL          = 7 * 24 * time.Hour
	MinTTL              = time.Minute
	MaxTTL              = 30 * 24 * time.Hour
	MaxJustificationLen = 1000 // characters
	MaxOutcomeLen       = 500  // characters
)

// Referral is one subject sent to one partner for one purpose.
type Referral struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	PartnerID string `json:"partner_id"`
	SubjectID string `json:"subject_id,omitempty"` // omitted in a partner's view (PartnerView)
	Purpose   string `json:"purpose,omitempty"`
	// TargetURL is the partner's allow-listed URL the person is sent to, exactly as registered.
	TargetURL string `json:"target_url"`
	// KeyID is the referrals key the token was signed with; retiring it ends the token.
	KeyID uint32 `json:"key_id"`
	// State as read at the time of reading: a live referral past ExpiresAt reads expired.
	State         State      `json:"state"`
	Outcome       string     `json:"outcome"`
	Justification string     `json:"justification,omitempty"`
	CreatedBy     string     `json:"created_by,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	OpenedAt      *time.Time `json:"opened_at,omitempty"`
	ConfirmedAt   *time.Time `json:"confirmed_at,omitempty"`
	ConfirmedBy   string     `json:"confirmed_by,omitempty"`
	ClosedAt      *time.Time `json:"closed_at,omitempty"`
	ClosedBy      string     `json:"closed_by,omitempty"`
	// Events are the referral's transitions, oldest first (read with the referral alone).
	Events []Event `json:"events,omitempty"`
}

// Event is one transition of a referral.
type Event struct {
	ID    string    `json:"id"`
	State State     `json:"state"`
	Actor string    `json:"actor"` // a user, a partner's service account, "" for the person following the link
	At    time.Time `json:"at"`
	Note  string    `json:"note,omitempty"`
}

// PartnerView is r as the partner it was sent to reads it: where the referral stands and what
// the partner itself reported, never who was referred (the subject's ID), for which of the
// tenant's purposes, why (the caseworker's justification) or by whom, nor the notes and actors
// of the tenant's own steps.
func (r Referral) PartnerView() Referral {
	r.SubjectID, r.Purpose, r.Justification, r.CreatedBy = "", "", "", ""
	ev := make([]Event, len(r.Events))
	for i, e := range r.Events {
		if e.State != StateConfirmed && e.State != StateClosed {
			e.Actor, e.Note = "", ""
		}
		ev[i] = e
	}
	r.Events = ev
	return r
}

// StateAt is the referral's state at now: a referral still live past its expiry is expired.
func (r *Referral) StateAt(now time.Time) State {
	if r.State.Live() && !now.Before(r.ExpiresAt) {
		return StateExpired
	}
	return r.State
}

// ValidJustification checks the written reason a referral is made or cancelled for: required,
// free text (tutela.ValidFreeText), at most MaxJustificationLen characters.
func ValidJustification(s string) error {
	if !tutela.ValidJustification(s, MaxJustificationLen) {
		return tutela.FieldErrorf("justification", "justification is required: 1 to %d characters of text", MaxJustificationLen)
	}
	return nil
}

// ValidOutcome checks a partner's outcome: free text of at most MaxOutcomeLen characters.
func ValidOutcome(s string) error {
	if utf8.RuneCountInString(s) > MaxOutcomeLen || !tutela.ValidFreeText(s) {
		return tutela.FieldErrorf("outcome", "outcome must be at most %d characters of text", MaxOutcomeLen)
	}
	return nil
}

// Destination is where a person following a referral is sent: target with referral=<token>
// added to its query. An existing query is kept as written, the parameter appended after it,
// so the partner's own parameters reach it unchanged.
func Destination(target, token string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", tutela.Errorf(tutela.EINTERNAL, "the referral's target URL does not parse")
	}
	param := "referral=" + url.QueryEscape(token)
	if u.RawQuery == "" {
		u.RawQuery = param
	} else {
		u.RawQuery += "&" + param
	}
	u.ForceQuery = false
	return u.String(), nil
}
