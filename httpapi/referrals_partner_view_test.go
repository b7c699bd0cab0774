package httpapi_test

import (
	"strings"
	"testing"

	"tutela/sqlstore/sqltest"
)

// A partner reads where its referrals stand, never who was referred, for which purpose, why or
// by whom: the subject's ID, the purpose, the caseworker's justification and the tenant's notes
// stay with the tenant, in the list and in one referral alike.
func TestReferrals_PartnerSeesNoSubjectPurposeOrJustification(t *testing.T) {
	t.Parallel()
	re := newReferralEnv(t, sqltest.Dialects[0])
	re.grant(t)
	ref := re.create(t, "")
	token := tokenOf(ref.RedirectURL)
	if res := re.open(t, token); res.StatusCode != 303 {
		t.Fatalf("open: %d", res.StatusCode)
	}
	if res, b := re.confirm(t, re.partnerSA, token, "received", "intake booked"); res.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", res.StatusCode, b)
	}
	for _, path := range []string{re.base + "/referrals", re.base + "/referrals/" + ref.ID} {
		res, b := re.req(t, "GET", path, "", "", re.partnerSA)
		if res.StatusCode != 200 || !strings.Contains(string(b), ref.ID) {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		for _, hidden := range []string{re.ada, "outreach", "clinic appointment", `"created_by"`, `"subject_id"`} {
			if strings.Contains(string(b), hidden) {
				t.Fatalf("the partner's view of %s holds %q: %s", path, hidden, b)
			}
		}
	}
	// The tenant's own view keeps all of it.
	res, b := re.req(t, "GET", re.base+"/referrals/"+ref.ID, "", "", re.admin)
	if res.StatusCode != 200 || !strings.Contains(string(b), re.ada) || !strings.Contains(string(b), "clinic appointment") {
		t.Fatalf("tenant view: %d %s", res.StatusCode, b)
	}
}
