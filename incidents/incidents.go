// Package incidents holds security incidents and the personal-data-breach clock (issue 19): the
// types, the rules (severity, status transitions, what may change when), the deadlines per legal
// framework and when their reminders fall, and the Art. 33(3) notification built from an
// incident. It is pure: no database, no HTTP. The store (sqlstore/incidents*.go) keeps incidents
// and sweeps the reminders; Open is the entry point for code that opens one inside a store
// transaction (the alerting engine, the HTTP API).
//
// Incidents are deployment-level: one may affect several tenants. A tenant sees an incident only
// through the tenant view (Incident.ForTenant), which keeps its own affected subjects and drops
// every other tenant's.
package incidents

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"tutela"
)

// Severity of an incident.
type Severity string

// Severities, lowest first.
const (
	Low      Severity = "low"
	Medium   Severity = "medium"
	High     Severity = "high"
	Critical Severity = "critical"
)

// Severities lists every severity, lowest first.
var Severities = []Severity{Low, Medium, High, Critical}

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool { return slices.Contains(Severities, s) }

// Status is where an incident is in its handling.
type Status string

// Statuses, in the order an incident normally moves through them.
const (
	StatusOpen          Status = "open"
	StatusInvestigating Status = "investigating"
	StatusContained     Status = "contained"
	StatusResolved      Status = "resolved"
	StatusClosed        Status = "closed"
)

// Statuses lists every status in order.
var Statuses = []Status{StatusOpen, StatusInvestigating, StatusContained, StatusResolved, StatusClosed}

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// transitions are the moves allowed from each status. Forward moves may skip a step (an incident
// contained as soon as it is found); contained and resolved may go back to investigating when
// the incident recurs or containment fails. Closed is final: a closed incident's record is what
// an auditor reads, so nothing reopens or edits it (open a new incident that refers to it).
var transitions = map[Status][]Status{
	StatusOpen:          {StatusInvestigating, StatusContained, StatusResolved},
	StatusInvestigating: {StatusContained, StatusResolved},
	StatusContained:     {StatusInvestigating, StatusResolved},
	StatusResolved:      {StatusInvestigating, StatusClosed},
	StatusClosed:        nil,
}

// CanMove reports whether an incident may move from one status to another.
func CanMove(from, to Status) bool { return slices.Contains(transitions[from], to) }

// Recipient of a notification.
type Recipient string

// Recipients.
const (
	// ToAuthority is the supervisory authority (GDPR Art. 33; NDPA s.40: the Commission).
	// Recording it for a framework stops that framework's reminders.
	ToAuthority Recipient = "authority"
	// ToSubjects is the data subjects (GDPR Art. 34; NDPA s.40(3)).
	ToSubjects Recipient = "subjects"
)

// Timeline entry kinds. Entries are append-only: the store has no update or delete for them.
const (
	KindNote          = "note"     // a person's note
	KindOpened        = "opened"   // the incident was opened
	KindStatus        = "status"   // its status changed
	KindSeverity      = "severity" // its severity changed
	KindConfirmed     = "breach_confirmed"
	KindAffected      = "affected"       // tenants or subjects were added
	KindNotification  = "notification"   // a notification was recorded
	KindReminder      = "reminder"       // a breach-clock reminder went out
	KindOverdue       = "overdue"        // a breach-clock deadline passed without the authority's notification
	KindSecurityEvent = "security_event" // a linked security event, at the event's time
	KindAuditEvent    = "audit_event"    // a linked audit event, at the event's time
)

// Limits on input.
const (
	MaxTitle        = 200   // characters
	MaxText         = 10000 // characters: description, consequences, measures, a timeline note
	MaxContact      = 500
	MaxReference    = 500
	MaxCategories   = 50
	MaxCategory     = 100
	MaxEvents       = 100 // linked events when opening
	MaxOwners       = 20
	MaxTenants      = 1000 // affected tenants per incident
	MaxSubjectsCall = 1000 // subject IDs added in one call
	MaxCount        = 1_000_000_000
)

// Incident is one security incident. JSON is the platform's view; ForTenant gives a tenant's.
type Incident struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"` // what happened: the nature of the breach (Art. 33(3)(a))
	Severity    Severity `json:"severity"`
	Status      Status   `json:"status"`
	// PersonalDataBreach is set when the incident is confirmed to be a personal-data breach;
	// ConfirmedAt is when the controller became aware of it, which starts the breach clock.
	PersonalDataBreach bool      `json:"personal_data_breach"`
	DetectedAt         time.Time `json:"detected_at"`
	ConfirmedAt        time.Time `json:"confirmed_at,omitzero"`
	// Frameworks whose authority deadlines apply (keys of Frameworks); default gdpr.
	Frameworks []string `json:"frameworks"`
	// Owners are the users (IDs) reminded of the breach clock; none: every super-admin.
	Owners []string `json:"owners,omitempty"`
	// What Art. 33(3) asks for beyond the description and the counts.
	DataCategories    []string         `json:"data_categories"`    // categories of personal data records
	SubjectCategories []string         `json:"subject_categories"` // categories of data subjects
	Contact           string           `json:"contact"`            // the DPO or other contact point (b)
	Consequences      string           `json:"consequences"`       // likely consequences (c)
	Measures          string           `json:"measures"`           // measures taken or proposed (d)
	Tenants           []AffectedTenant `json:"affected_tenants"`
	Timeline          []Entry          `json:"timeline,omitempty"`
	Notifications     []Notification   `json:"notifications,omitempty"`
	CreatedBy         string           `json:"created_by,omitempty"`
	CreatedAt         time.Time        `json:"created_at"`
	UpdatedAt         time.Time        `json:"updated_at"`
	ClosedAt          time.Time        `json:"closed_at,omitzero"`
}

// AffectedTenant is one tenant an incident affects, with the approximate numbers of its subjects
// and records concerned and the IDs of the subjects known to be (never their data).
type AffectedTenant struct {
	TenantID       string   `json:"tenant_id"`
	SubjectsApprox int      `json:"subjects_approx"`
	RecordsApprox  int      `json:"records_approx"`
	SubjectIDs     []string `json:"subject_ids,omitempty"`
	SubjectsListed int      `json:"subjects_listed"`
}

// Subjects is the number of subjects concerned: the estimate, or the listed ones if more.
func (a AffectedTenant) Subjects() int { return max(a.SubjectsApprox, a.SubjectsListed) }

// Entry is one timeline entry. TenantID, when set, scopes it to that tenant (an event of the
// tenant): other tenants never see it. Ref is the linked event's ID.
type Entry struct {
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"` // user ID, "system", or "monitor"
	Kind     string    `json:"kind"`
	Text     string    `json:"text"`
	TenantID string    `json:"tenant_id,omitempty"`
	Ref      string    `json:"ref,omitempty"`
}

// Notification is one notification made about the incident.
type Notification struct {
	ID        string    `json:"id"`
	Recipient Recipient `json:"recipient"`
	Framework string    `json:"framework"`
	TenantID  string    `json:"tenant_id,omitempty"` // the controller tenant it was made for, if one
	To        string    `json:"to"`                  // who was notified: the authority's name, "all affected subjects", …
	MadeAt    time.Time `json:"made_at"`
	Reference string    `json:"reference"` // the authority's case number, the letter's reference
	// SubjectsNotified is how many subjects a notification to subjects reached.
	SubjectsNotified int       `json:"subjects_notified,omitempty"`
	RecordedBy       string    `json:"recorded_by,omitempty"`
	RecordedAt       time.Time `json:"recorded_at"`
}

// EventKind names the log an event linked to an incident comes from.
type EventKind string

// Event kinds.
const (
	SecurityEvent EventKind = "security_event"
	AuditEvent    EventKind = "audit_event"
)

// EventRef names one event to link. An empty Kind looks the ID up among the security events
// first, then in the audit log.
type EventRef struct {
	Kind EventKind `json:"kind"`
	ID   string    `json:"id"`
}

// OpenRequest is what opening an incident takes. Actor is who opens it: a user ID, or a name
// such as "monitor" for an automatic opening (no principal).
type OpenRequest struct {
	Title       string
	Description string
	Severity    Severity
	DetectedAt  time.Time // zero: the earliest linked event's time, else now
	Frameworks  []string
	Owners      []string
	Events      []EventRef
	Actor       string
}

// Validate checks r and fills its defaults (severity medium, framework gdpr).
func (r *OpenRequest) Validate(now time.Time) error {
	if err := CheckTitle(r.Title); err != nil {
		return err
	}
	if err := CheckText("description", r.Description, true); err != nil {
		return err
	}
	if r.Severity == "" {
		r.Severity = Medium
	}
	if !r.Severity.Valid() {
		return tutela.FieldErrorf("severity", "severity must be one of low, medium, high, critical")
	}
	if !r.DetectedAt.IsZero() && r.DetectedAt.After(now) {
		return tutela.FieldErrorf("detected_at", "detected_at cannot be in the future")
	}
	if len(r.Frameworks) == 0 {
		r.Frameworks = []string{DefaultFramework}
	}
	if err := CheckFrameworks(r.Frameworks); err != nil {
		return err
	}
	if err := CheckOwners(r.Owners); err != nil {
		return err
	}
	if len(r.Events) > MaxEvents {
		return tutela.FieldErrorf("event_ids", "at most %d events per incident when opening", MaxEvents)
	}
	seen := map[EventRef]bool{}
	for _, e := range r.Events {
		if e.Kind != "" && e.Kind != SecurityEvent && e.Kind != AuditEvent {
			return tutela.FieldErrorf("event_ids", "an event's kind must be security_event or audit_event (or empty: either)")
		}
		if e.ID == "" || len(e.ID) > 64 || !tutela.ValidText(e.ID) {
			return tutela.FieldErrorf("event_ids", "an event ID must be 1 to 64 characters")
		}
		if seen[e] {
			return tutela.FieldErrorf("event_ids", "event %s is listed twice", e.ID)
		}
		seen[e] = true
	}
	if r.Actor == "" || len(r.Actor) > 64 || !tutela.ValidText(r.Actor) {
		return tutela.FieldErrorf("actor", "the opener must be named (a user ID or a component such as monitor)")
	}
	return nil
}

// CheckTitle is the title rule: 1 to MaxTitle characters of one-line text.
func CheckTitle(s string) error {
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > MaxTitle || !tutela.ValidText(s) {
		return tutela.FieldErrorf("title", "title must be 1 to %d characters of text on one line", MaxTitle)
	}
	return nil
}

// CheckText is the rule for the long free-text fields (description, consequences, measures,
// notes): at most MaxText characters, no NUL; required ones not blank.
func CheckText(field, s string, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return tutela.FieldErrorf(field, "%s is required", field)
	}
	if utf8.RuneCountInString(s) > MaxText || !tutela.ValidFreeText(s) {
		return tutela.FieldErrorf(field, "%s must be at most %d characters of text", field, MaxText)
	}
	return nil
}

// CheckLine is the rule for short one-line fields (contact, reference, to).
func CheckLine(field, s string, maxLen int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return tutela.FieldErrorf(field, "%s is required", field)
	}
	if utf8.RuneCountInString(s) > maxLen || !tutela.ValidText(s) {
		return tutela.FieldErrorf(field, "%s must be at most %d characters of text on one line", field, maxLen)
	}
	return nil
}

// CheckCategories checks a list of categories (of data, of subjects).
func CheckCategories(field string, cs []string) error {
	if len(cs) > MaxCategories {
		return tutela.FieldErrorf(field, "at most %d %s", MaxCategories, field)
	}
	for i, c := range cs {
		if err := CheckLine(field, c, MaxCategory, true); err != nil {
			return err
		}
		if slices.Contains(cs[:i], c) {
			return tutela.FieldErrorf(field, "%q is listed twice", c)
		}
	}
	return nil
}

// CheckFrameworks checks a list of framework keys.
func CheckFrameworks(fs []string) error {
	if len(fs) == 0 {
		return tutela.FieldErrorf("frameworks", "at least one framework")
	}
	for i, f := range fs {
		if _, ok := Frameworks[f]; !ok {
			return tutela.FieldErrorf("frameworks", "unknown framework %q; known: %s", truncate(f, 32), strings.Join(FrameworkKeys(), ", "))
		}
		if slices.Contains(fs[:i], f) {
			return tutela.FieldErrorf("frameworks", "framework %q is listed twice", f)
		}
	}
	return nil
}

// CheckOwners checks a list of owner user IDs.
func CheckOwners(ids []string) error {
	if len(ids) > MaxOwners {
		return tutela.FieldErrorf("owners", "at most %d owners", MaxOwners)
	}
	for i, id := range ids {
		if !tutela.ValidID(id) {
			return tutela.FieldErrorf("owners", "an owner must be a user ID")
		}
		if slices.Contains(ids[:i], id) {
			return tutela.FieldErrorf("owners", "owner %s is listed twice", id)
		}
	}
	return nil
}

// CheckNotification checks a notification to record and fills its defaults.
func (n *Notification) Check(inc *Incident, now time.Time) error {
	if n.Recipient != ToAuthority && n.Recipient != ToSubjects {
		return tutela.FieldErrorf("recipient", "recipient must be authority or subjects")
	}
	if n.Framework == "" && len(inc.Frameworks) == 1 {
		n.Framework = inc.Frameworks[0]
	}
	if !slices.Contains(inc.Frameworks, n.Framework) {
		return tutela.FieldErrorf("framework", "framework must be one of the incident's: %s", strings.Join(inc.Frameworks, ", "))
	}
	if n.TenantID != "" && !slices.ContainsFunc(inc.Tenants, func(a AffectedTenant) bool { return a.TenantID == n.TenantID }) {
		return tutela.FieldErrorf("tenant_id", "tenant_id must be one of the affected tenants")
	}
	if err := CheckLine("to", n.To, MaxReference, true); err != nil {
		return err
	}
	if err := CheckLine("reference", n.Reference, MaxReference, false); err != nil {
		return err
	}
	if n.MadeAt.IsZero() {
		n.MadeAt = now
	}
	if n.MadeAt.After(now) {
		return tutela.FieldErrorf("made_at", "made_at cannot be in the future")
	}
	if n.MadeAt.Before(inc.DetectedAt) {
		return tutela.FieldErrorf("made_at", "made_at cannot be before the incident was detected")
	}
	if n.SubjectsNotified < 0 || n.SubjectsNotified > MaxCount || (n.Recipient == ToAuthority && n.SubjectsNotified != 0) {
		return tutela.FieldErrorf("subjects_notified", "subjects_notified is a count of subjects, for a notification to subjects")
	}
	if n.Recipient == ToAuthority && !inc.PersonalDataBreach {
		return tutela.Errorf(tutela.ECONFLICT, "confirm the incident as a personal-data breach before recording the authority's notification")
	}
	return nil
}

// ForTenant is the incident as tenantID's readers see it: only their own affected-tenant entry
// (its subject IDs only when withSubjects), timeline entries and notifications that are
// deployment-wide or theirs, and no owners or creator (people of the platform's tenant).
func (inc *Incident) ForTenant(tenantID string, withSubjects bool) *Incident {
	out := *inc
	out.Owners, out.CreatedBy = nil, ""
	out.Tenants = []AffectedTenant{}
	for _, a := range inc.Tenants {
		if a.TenantID == tenantID {
			if !withSubjects {
				a.SubjectIDs = nil
			}
			out.Tenants = append(out.Tenants, a)
		}
	}
	out.Timeline = []Entry{}
	for _, e := range inc.Timeline {
		if e.TenantID == "" || e.TenantID == tenantID {
			if tutela.ValidID(e.Actor) {
				e.Actor = "platform" // a platform user's ID is not the tenant's to know
			}
			out.Timeline = append(out.Timeline, e)
		}
	}
	out.Notifications = []Notification{}
	for _, n := range inc.Notifications {
		if n.TenantID == "" || n.TenantID == tenantID {
			n.RecordedBy = ""
			out.Notifications = append(out.Notifications, n)
		}
	}
	return &out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
