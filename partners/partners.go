// Package partners holds a tenant's partner organisations (issue 18): the services people are
// referred to. A partner's users hold only the partner role and see only what is shared with
// the partner (shares, with a purpose and an expiry); a partner's service accounts confirm the
// referrals sent to it; referrals send people only to the exact URLs the partner registered.
package partners

import (
	"time"
	"unicode/utf8"

	"tutela"
)

// Status of a partner.
type Status string

// Partner statuses. A disabled partner receives no new shares or referrals and its users and
// service accounts see nothing.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
)

// Limits.
const (
	MaxNameLen      = 200
	MaxRedirectURLs = 20
	MaxURLLen       = 2048
)

// Partner is a partner organisation of a tenant.
type Partner struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	Status   Status `json:"status"`
	// RedirectURLs are the exact URLs a referral may send a person to; a referral's target
	// must equal one of them byte for byte (CheckTarget).
	RedirectURLs []string  `json:"redirect_urls"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Validate checks a partner's name and URLs; the first problem is returned.
func (p *Partner) Validate() error {
	if p.Name == "" || utf8.RuneCountInString(p.Name) > MaxNameLen || !tutela.ValidText(p.Name) {
		return tutela.FieldErrorf("name", "name must be 1 to %d characters of text", MaxNameLen)
	}
	if p.Status != StatusActive && p.Status != StatusDisabled {
		return tutela.FieldErrorf("status", "status must be active or disabled")
	}
	if len(p.RedirectURLs) > MaxRedirectURLs {
		return tutela.FieldErrorf("redirect_urls", "at most %d redirect URLs", MaxRedirectURLs)
	}
	seen := map[string]bool{}
	for _, u := range p.RedirectURLs {
		if err := ValidRedirectURL(u); err != nil {
			return err
		}
		if seen[u] {
			return tutela.FieldErrorf("redirect_urls", "redirect URL %q is listed twice", u)
		}
		seen[u] = true
	}
	return nil
}

// ValidRedirectURL checks one allow-listed URL (tutela.HTTPSURLProblem: absolute https,
// written in the one form it is compared in).
func ValidRedirectURL(s string) error {
	if why := tutela.HTTPSURLProblem(s, MaxURLLen); why != "" {
		return tutela.FieldErrorf("redirect_urls", "redirect URL %q %s", truncate(s, 100), truncate(why, 140))
	}
	return nil
}

// CheckTarget reports whether target is one of p's allow-listed URLs, exactly: a URL that
// differs by scheme, host, port, user information, path (a trailing segment or slash), query
// or fragment is refused, never "close enough".
func (p *Partner) CheckTarget(target string) error {
	for _, u := range p.RedirectURLs {
		if u == target {
			return nil
		}
	}
	return tutela.FieldErrorf("target_url", "target_url is not one of the partner's registered redirect URLs")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
