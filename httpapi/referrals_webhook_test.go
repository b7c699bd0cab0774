package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/webhooks"
)

// Each step of a referral is queued for the tenant's subscribed webhooks in the step's own
// transaction, naming the referral, the partner and the state, never the person or the purpose.
func TestReferrals_EachStepQueuedForTheTenantsWebhooks(t *testing.T) {
	t.Parallel()
	re := newReferralEnv(t, sqltest.Dialects[0])
	ctx := context.Background()
	if err := re.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Webhooks(re.tenant.ID).Create(ctx, &webhooks.Webhook{URL: "https://hooks.example.org/tutela",
			Events: []string{webhooks.ReferralCreated, webhooks.ReferralOpened, webhooks.ReferralConfirmed, webhooks.ReferralClosed}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	re.grant(t)
	ref := re.create(t, "")
	token := tokenOf(ref.RedirectURL)
	if res := re.open(t, token); res.StatusCode != 303 {
		t.Fatalf("open: %d", res.StatusCode)
	}
	if res, b := re.confirm(t, re.partnerSA, token, "received", ""); res.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", res.StatusCode, b)
	}
	if res, b := re.confirm(t, re.partnerSA, token, "completed", "seen on Tuesday"); res.StatusCode != 200 {
		t.Fatalf("close: %d %s", res.StatusCode, b)
	}
	rows, err := re.db.SQL().QueryContext(ctx, `SELECT payload FROM jobs WHERE kind = 'notify.webhook' ORDER BY created_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var types []string
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{re.ada, "Lovelace", "outreach", "clinic appointment", "Tuesday", token} {
			if strings.Contains(string(p), leak) {
				t.Fatalf("a webhook payload carries %q: %s", leak, p)
			}
		}
		if !strings.Contains(string(p), ref.ID) {
			t.Fatalf("a webhook payload does not name the referral: %s", p)
		}
		for _, ty := range []string{webhooks.ReferralCreated, webhooks.ReferralOpened, webhooks.ReferralConfirmed, webhooks.ReferralClosed} {
			if strings.Contains(string(p), `"`+ty+`"`) {
				types = append(types, ty)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(types)
	want := []string{webhooks.ReferralClosed, webhooks.ReferralConfirmed, webhooks.ReferralCreated, webhooks.ReferralOpened}
	if !slices.Equal(types, want) {
		t.Fatalf("queued webhook events %v, want %v", types, want)
	}
}
