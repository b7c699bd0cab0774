package partners

import (
	"time"

	"tutela"
)

// Share limits.
const (
	// MaxJustificationLen bounds a share's or a revocation's justification, in characters.
	MaxJustificationLen = 1000
)

// Share discloses one subject's record to one partner, for one purpose, until ExpiresAt or an
// earlier revocation. A partner's users and service accounts see the subject only while a share
// of their partner is Active, only for its purpose and only at GREEN.
type Share struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"tenant_id"`
	PartnerID     string     `json:"partner_id"`
	SubjectID     string     `json:"subject_id"`
	Purpose       string     `json:"purpose"`
	ExpiresAt     time.Time  `json:"expires_at"`
	CreatedBy     string     `json:"created_by"`
	CreatedAt     time.Time  `json:"created_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	Justification string     `json:"justification"`
}

// Active reports whether the share discloses the subject at now: not revoked and not expired
// (an expiry equal to now has passed). The partner's own status is checked apart.
func (s *Share) Active(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// ValidJustification checks a share's or a revocation's written justification: required, at
// most MaxJustificationLen characters, text without control characters.
func ValidJustification(j string) error {
	if !tutela.ValidJustification(j, MaxJustificationLen) {
		return tutela.FieldErrorf("justification", "justification is required: 1 to %d characters saying why", MaxJustificationLen)
	}
	return nil
}

// CheckExpiry refuses an expiry that is not after now or more than a calendar year after it:
// a disclosure to a partner is reviewed at least once a year (a new share, a new
// justification), never open-ended.
func CheckExpiry(expires, now time.Time) error {
	if !expires.After(now) {
		return tutela.FieldErrorf("expires_at", "expires_at must be in the future")
	}
	if expires.After(now.AddDate(1, 0, 0)) {
		return tutela.FieldErrorf("expires_at", "a share lasts at most a year: expires_at must be within a year from now")
	}
	return nil
}
