package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"tutela"
)

// Branding is how a tenant's hosted pages look: a name, a logo and two colours. It is data, never
// markup: every field is validated here and the pages only ever place it through html/template's
// escaping, so no branding value can become HTML, script or style.
type Branding struct {
	DisplayName string `json:"display_name,omitempty"`
	// LogoURL is an https URL (an image the browser loads, allowed by the pages' img-src);
	// data: URLs are refused, so no SVG with script can be smuggled in through it.
	LogoURL string `json:"logo_url,omitempty"`
	// PrimaryColor and AccentColor are #rrggbb, each with a contrast of at least 4.5:1 against
	// white (WCAG 2.2 AA 1.4.3): the pages draw white text on them.
	PrimaryColor string `json:"primary_color,omitempty"`
	AccentColor  string `json:"accent_color,omitempty"`
}

var hexColorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// MinBrandContrast is the contrast ratio a brand colour needs against white (WCAG AA, normal text).
const MinBrandContrast = 4.5

// ContrastWithWhite is the WCAG 2.x contrast ratio of the #rrggbb colour c against white; 0
// when c is not such a colour.
func ContrastWithWhite(c string) float64 {
	if !hexColorRE.MatchString(c) {
		return 0
	}
	lin := func(hex string) float64 {
		v, _ := strconv.ParseUint(hex, 16, 8)
		s := float64(v) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(c[1:3]) + 0.7152*lin(c[3:5]) + 0.0722*lin(c[5:7])
	return 1.05 / (l + 0.05)
}

// Validate reports the first field that breaks the rules, as a field error.
func (b Branding) Validate() error {
	if b.DisplayName != "" {
		if utf8.RuneCountInString(b.DisplayName) > 100 || strings.TrimSpace(b.DisplayName) == "" {
			return tutela.FieldErrorf("branding.display_name", "display_name must be 1-100 characters")
		}
		if !tutela.ValidText(b.DisplayName) || strings.ContainsAny(b.DisplayName, "<>") {
			return tutela.FieldErrorf("branding.display_name", "display_name must be plain text (no control characters, no markup)")
		}
	}
	if b.LogoURL != "" {
		u, err := url.Parse(b.LogoURL)
		if err != nil || len(b.LogoURL) > 2048 || u.Scheme != "https" || u.Host == "" || u.User != nil ||
			u.Fragment != "" || strings.ContainsAny(b.LogoURL, " \"'<>\\") {
			return tutela.FieldErrorf("branding.logo_url", "logo_url must be an https URL (at most 2048 characters, no credentials)")
		}
	}
	for _, c := range []struct{ field, v string }{{"primary_color", b.PrimaryColor}, {"accent_color", b.AccentColor}} {
		if c.v == "" {
			continue
		}
		if !hexColorRE.MatchString(c.v) {
			return tutela.FieldErrorf("branding."+c.field, "%s must be a colour #rrggbb", c.field)
		}
		if ContrastWithWhite(c.v) < MinBrandContrast {
			return tutela.FieldErrorf("branding."+c.field, "%s has a contrast of %.2f:1 against white; WCAG AA needs at least 4.5:1 (choose a darker colour)",
				c.field, ContrastWithWhite(c.v))
		}
	}
	return nil
}

// TenantBranding returns the tenant's branding (zero when none is set). A stored value that no
// longer validates is dropped rather than shown.
func (tx *Tx) TenantBranding(ctx context.Context, tenantID string) (Branding, error) {
	if !tutela.ValidID(tenantID) {
		return Branding{}, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	var raw string
	err := tx.queryRow(ctx, `SELECT branding FROM tenants WHERE id = $1`, tenantID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return Branding{}, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if err != nil {
		return Branding{}, err
	}
	var b Branding
	if raw == "" || json.Unmarshal([]byte(raw), &b) != nil || b.Validate() != nil {
		return Branding{}, nil
	}
	return b, nil
}

// SetTenantBranding validates b and saves it as the tenant's branding (the zero value removes it).
func (tx *Tx) SetTenantBranding(ctx context.Context, tenantID string, b Branding) error {
	if err := b.Validate(); err != nil {
		return err
	}
	raw := ""
	if b != (Branding{}) {
		j, err := json.Marshal(b)
		if err != nil {
			return err
		}
		raw = string(j)
	}
	res, err := tx.exec(ctx, `UPDATE tenants SET branding = $1 WHERE id = $2`, raw, tenantID)
	if err := affectedOne(res, err, "tenant not found"); err != nil {
		return err
	}
	return tx.Record(ctx, "tenant.branding", tenantID, "tenant", tenantID, "", map[string]any{
		"display_name": b.DisplayName != "", "logo": b.LogoURL != "", "primary_color": b.PrimaryColor, "accent_color": b.AccentColor})
}
