package tutela

import (
	"context"
	"regexp"
)

// regionRE is a data region code: a two-letter jurisdiction, then up to two qualifiers ("eu",
// "eu-west", "ch-geneva-1"). The region decides where a tenant's personal data may live, so it
// is a code that deployment and audit tooling can match exactly, not free text.
var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]{1,16}){0,2}$`)

// ValidRegionCode reports whether s is a data region code. It is the one rule for tenants'
// data_region and a node's residency.region.
func ValidRegionCode(s string) bool { return regionRE.MatchString(s) }

// ResidencyRefusal is a tenant the store refused because its data region is not the node's. It
// holds IDs and region codes only.
type ResidencyRefusal struct {
	TenantID     string
	TenantRegion string
	NodeRegion   string
}

// NoteResidencyRefusal keeps the request's first residency refusal in its metadata (if any), so
// the HTTP layer records it after the refused transaction has rolled back.
func NoteResidencyRefusal(ctx context.Context, r ResidencyRefusal) {
	if m := RequestMetaFrom(ctx); m != nil && m.Residency == nil {
		m.Residency = &r
	}
}
