package privacy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// Data-subject requests (issue 14; GDPR Art. 12, 15-22; Nigeria NDPA; South Africa POPIA). A
// request moves received → verified (identity) → in_progress (assigned) → submitted (by the
// assignee) → completed (approved by another person and executed), or → rejected with a reason
// (failed verification, or Art. 12(5)). An erasure an active legal hold refuses is blocked, and
// stays open until a new approval executes it. Nothing executes before the requester's identity
// is verified.

// DSRKind is what the subject asks for.
type DSRKind string

const (
	DSRAccess        DSRKind = "access"        // Art. 15
	DSRPortability   DSRKind = "portability"   // Art. 20
	DSRRectification DSRKind = "rectification" // Art. 16
	DSRErasure       DSRKind = "erasure"       // Art. 17
	DSRRestriction   DSRKind = "restriction"   // Art. 18
	DSRObjection     DSRKind = "objection"     // Art. 21
)

// DSRKinds lists every kind.
var DSRKinds = []DSRKind{DSRAccess, DSRPortability, DSRRectification, DSRErasure, DSRRestriction, DSRObjection}

// Valid reports whether k is a known kind.
func (k DSRKind) Valid() bool { return slices.Contains(DSRKinds, k) }

// Packaged reports whether executing k builds the subject's package (access, portability).
func (k DSRKind) Packaged() bool { return k == DSRAccess || k == DSRPortability }

// DSR statuses.
const (
	DSRReceived   = "received"
	DSRVerified   = "verified"
	DSRInProgress = "in_progress"
	DSRSubmitted  = "submitted"
	DSRBlocked    = "blocked"
	DSRCompleted  = "completed"
	DSRRejected   = "rejected"
)

// DSRStatuses lists every status.
var DSRStatuses = []string{DSRReceived, DSRVerified, DSRInProgress, DSRSubmitted, DSRBlocked, DSRCompleted, DSRRejected}

// DSRClosed reports whether a request in status is finished: no step, reminder or overdue
// notice applies to it any more.
func DSRClosed(status string) bool { return status == DSRCompleted || status == DSRRejected }

// Identity verification results and the methods a caseworker may record.
const (
	VerificationPending  = "pending"
	VerificationVerified = "verified"
	VerificationFailed   = "failed"
)

// VerificationMethods are how a caseworker checked the requester is the subject (or acts for
// them).
var VerificationMethods = []string{"in_person_document", "document_copy", "knowledge_questions", "known_contact_channel",
	"authenticated_account", "legal_representative"}

// DSRPolicy is the deadline configuration: each jurisdiction's period in days (GDPR Art. 12(3):
// one month; NDPA and POPIA: 30 days by default here), the jurisdiction a request without one
// falls under, when reminders go out before the due date, how long a download link lives and how
// far a request may be extended (Art. 12(3): by two further months).
type DSRPolicy struct {
	Periods             map[string]int
	DefaultJurisdiction string
	Reminders           []time.Duration
	DownloadTTL         time.Duration
	MaxExtensionDays    int
}

// Bounds of the policy.
const (
	DefaultDSRPeriodDays   = 30
	MaxDSRPeriodDays       = 365
	DefaultDSRDownloadTTL  = time.Hour
	MaxDSRDownloadTTL      = 72 * time.Hour
	MinDSRDownloadTTL      = time.Minute
	DefaultDSRMaxExtension = 60
)

// DefaultDSRPolicy is the policy with nothing configured.
func DefaultDSRPolicy() DSRPolicy {
	return DSRPolicy{
		Periods:             map[string]int{"gdpr": DefaultDSRPeriodDays, "ndpa": DefaultDSRPeriodDays, "popia": DefaultDSRPeriodDays},
		DefaultJurisdiction: "gdpr",
		Reminders:           []time.Duration{7 * 24 * time.Hour, 24 * time.Hour},
		DownloadTTL:         DefaultDSRDownloadTTL,
		MaxExtensionDays:    DefaultDSRMaxExtension,
	}
}

var jurisdictionRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,31}$`)

// ValidJurisdiction reports whether s has a jurisdiction's form (a lower-case key).
func ValidJurisdiction(s string) bool { return jurisdictionRE.MatchString(s) }

// Problems lists every problem of the policy (empty: valid).
func (p DSRPolicy) Problems() []string {
	var out []string
	for _, j := range slices.Sorted(maps.Keys(p.Periods)) {
		if !ValidJurisdiction(j) {
			out = append(out, fmt.Sprintf("jurisdiction %q must be 2-32 lower-case letters, digits or underscores", j))
		}
		if d := p.Periods[j]; d < 1 || d > MaxDSRPeriodDays {
			out = append(out, fmt.Sprintf("jurisdiction %s: period must be 1 to %d days, not %d", j, MaxDSRPeriodDays, d))
		}
	}
	if _, ok := p.Periods[p.DefaultJurisdiction]; !ok {
		out = append(out, fmt.Sprintf("default jurisdiction %q has no period", p.DefaultJurisdiction))
	}
	for _, r := range p.Reminders {
		if r <= 0 || r > MaxDSRPeriodDays*24*time.Hour {
			out = append(out, fmt.Sprintf("reminder offset %s must be positive and at most %d days", r, MaxDSRPeriodDays))
		}
	}
	if p.DownloadTTL < MinDSRDownloadTTL || p.DownloadTTL > MaxDSRDownloadTTL {
		out = append(out, fmt.Sprintf("download link lifetime must be %s to %s, not %s", MinDSRDownloadTTL, MaxDSRDownloadTTL, p.DownloadTTL))
	}
	if p.MaxExtensionDays < 0 || p.MaxExtensionDays > MaxDSRPeriodDays {
		out = append(out, fmt.Sprintf("maximum extension must be 0 to %d days", MaxDSRPeriodDays))
	}
	return out
}

// Jurisdiction resolves a request's jurisdiction: j when the policy knows it, the default when
// j is empty; an unknown one is refused (its deadline would be a guess).
func (p DSRPolicy) Jurisdiction(j string) (string, error) {
	if j == "" {
		j = p.DefaultJurisdiction
	}
	if _, ok := p.Periods[j]; !ok {
		known := slices.Sorted(maps.Keys(p.Periods))
		return "", tutela.FieldErrorf("jurisdiction", "jurisdiction must be one of %s", strings.Join(known, ", "))
	}
	return j, nil
}

// Due is when a request of jurisdiction j received at received must be answered.
func (p DSRPolicy) Due(j string, received time.Time) time.Time {
	return received.AddDate(0, 0, p.Periods[j])
}

// ParseDSRPeriods reads "jurisdiction=days" entries (config dsr.periods).
func ParseDSRPeriods(entries []string) (map[string]int, error) {
	out := map[string]int{}
	for _, e := range entries {
		j, d, ok := strings.Cut(strings.TrimSpace(e), "=")
		n, err := strconv.Atoi(strings.TrimSpace(d))
		if !ok || err != nil {
			return nil, fmt.Errorf("%q must be jurisdiction=days, e.g. gdpr=30", e)
		}
		out[strings.TrimSpace(j)] = n
	}
	return out, nil
}

// ParseDSRDuration reads an offset as a Go duration or a number of days ("7d").
func ParseDSRDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// MaxDSRText bounds what the subject wrote (sealed under their key).
const MaxDSRText = 4000

// ValidDSRText reports whether s is acceptable request text: printable, new lines allowed.
func ValidDSRText(s string) bool { return validText(s, MaxDSRText) }

// DSRTextField is the person-key field a request's text is sealed as: bound to the request, so
// text moved to another request does not open.
func DSRTextField(dsrID string) string { return "dsr_texts:" + dsrID }

// DSRPackageField is the person-key field a request's package is sealed as.
func DSRPackageField(dsrID, packageID string) string {
	return "dsr_packages:" + dsrID + ":" + packageID
}
