package storetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/partners"
	"tutela/referrals"
	"tutela/sqlstore"
)

// ReferralTests is the referrals part of the conformance suite (issue 18): what a referral
// must pass before it is stored, its single-use link, the partner's confirmations, and the
// lifecycle read back with its events and audit trail.
var ReferralTests = []Test{
	{"ReferralCreateRefusalsStoreNothing", testReferralCreateRefusals},
	{"ReferralLifecycleQueryableWithEventsAndAudit", testReferralLifecycle},
	{"ReferralOpensAndConfirmsOnceUnderConcurrency", testReferralOpenOnceConcurrent},
	{"ReferralConfirmRefusals", testReferralConfirmRefusals},
	{"ReferralExpiryReadAndListed", testReferralExpiry},
	{"ReferralCancel", testReferralCancel},
	{"ReferralOpenNeedsPartnerAndURLStillAllowed", testReferralOpenPartnerChanged},
	{"ReferralTenantIsolation", testReferralTenantIsolation},
	{"ReferralSubjectErasureClearsTextsAndCancels", testReferralSubjectErasure},
}

const referralTarget = "https://clinic.example.org/intake?lang=en"

// referralKit is a consent kit with a partner (one redirect URL), a subject who consented to
// outreach, and a service account of the partner.
type referralKit struct {
	*consentKit
	partner *partners.Partner
	subject string
	sa      string
}

func newReferralKit(t *testing.T, open Opener, slug string) *referralKit {
	t.Helper()
	k := &referralKit{consentKit: newConsentKit(t, open, slug)}
	k.partner = k.addPartner(t, k.tenant.ID, "Clinic", referralTarget)
	k.subject = k.consentKit.subject(t, k.tenant.ID)
	if err := k.record(k.tenant.ID, grant(k.subject, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	k.sa = k.partnerAccount(t, k.tenant.ID, k.partner.ID, "clinic-sa")
	return k
}

func (k *referralKit) addPartner(t *testing.T, tenantID, name string, urls ...string) *partners.Partner {
	t.Helper()
	p := &partners.Partner{Name: name, RedirectURLs: urls}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Partners(tenantID).Create(ctx, p) })
	return p
}

// partnerAccount makes a service account and links it to partnerID directly (the partner
// service-account endpoint is another change's).
func (k *referralKit) partnerAccount(t *testing.T, tenantID, partnerID, name string) string {
	t.Helper()
	sa := &sqlstore.ServiceAccount{TenantID: tenantID, Name: name}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.CreateServiceAccount(ctx, sa, []byte("hash")) })
	if partnerID != "" {
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE service_accounts SET partner_id = $1 WHERE id = $2`, partnerID, sa.ID); err != nil {
			t.Fatal(err)
		}
	}
	return sa.ID
}

func (k *referralKit) draft() *referrals.Referral {
	return &referrals.Referral{ID: tutela.NewID(), PartnerID: k.partner.ID, SubjectID: k.subject, Purpose: "outreach",
		TargetURL: referralTarget, KeyID: 7, Justification: "needs a clinic appointment", CreatedBy: "caseworker-1",
		ExpiresAt: k.clock.Now().Add(referrals.DefaultTTL).Truncate(time.Second)}
}

func (k *referralKit) create(t *testing.T, tenantID string, r *referrals.Referral) *referrals.Referral {
	t.Helper()
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Referrals(tenantID).Create(ctx, r) })
	return r
}

func claims(r *referrals.Referral) referrals.Claims {
	return referrals.Claims{ReferralID: r.ID, KeyID: r.KeyID, ExpiresAt: r.ExpiresAt}
}

func (k *referralKit) open(r *referrals.Referral) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.OpenReferral(ctx, r.ID, r.KeyID, r.ExpiresAt)
		return err
	})
}

func (k *referralKit) confirm(tenantID string, c referrals.Claims, sa, partner string, st referrals.Status, outcome string) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Referrals(tenantID).Confirm(ctx, c, sa, partner, st, outcome)
		return err
	})
}

func (k *referralKit) get(t *testing.T, tenantID, id string) *referrals.Referral {
	t.Helper()
	var r *referrals.Referral
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { r, err = tx.Referrals(tenantID).Get(ctx, id); return err })
	return r
}

func referralAudit(t *testing.T, db *sqlstore.DB, id string) []audit.Event {
	t.Helper()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TargetType: "referral", TargetID: id, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, r := range recs {
		out = append(out, r.Event)
	}
	slices.Reverse(out)
	return out
}

func testReferralCreateRefusals(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	other := k.addTenant(t, "other")
	othersPartner := k.addPartner(t, other.ID, "Elsewhere", referralTarget)
	disabled := k.addPartner(t, tn, "Closed clinic", referralTarget)
	st := partners.StatusDisabled
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(tn).Update(ctx, disabled.ID, sqlstore.PartnerUpdate{Status: &st})
		return err
	})
	noConsent := k.consentKit.subject(t, tn)
	restricted := k.consentKit.subject(t, tn)
	if err := k.record(tn, grant(restricted, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	k.consent(t, tn, func(c sqlstore.Consent) error { return c.Restrict(ctx, restricted, "") })

	try := func(mod func(r *referrals.Referral)) error {
		r := k.draft()
		mod(r)
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Referrals(tn).Create(ctx, r) })
	}
	mustCode(t, try(func(r *referrals.Referral) { r.PartnerID = tutela.NewID() }), tutela.ENOTFOUND)
	mustCode(t, try(func(r *referrals.Referral) { r.PartnerID = othersPartner.ID }), tutela.ENOTFOUND)
	mustCode(t, try(func(r *referrals.Referral) { r.PartnerID = disabled.ID }), tutela.ECONFLICT)
	// Exactly the registered URL, never one that would reach the same place or somewhere near.
	for _, target := range []string{
		"http://clinic.example.org/intake?lang=en",               // another scheme
		"https://clinic.example.org:8443/intake?lang=en",         // another port
		"https://clinic.example.org:443/intake?lang=en",          // the default port, spelled out
		"https://user@clinic.example.org/intake?lang=en",         // user information
		"https://clinic.example.org@evil.example/intake",         // user information naming the host
		"https://clinic.example.org/intake/more?lang=en",         // a trailing path
		"https://clinic.example.org/intake/?lang=en",             // a trailing slash
		"https://clinic.example.org/intake?lang=fr",              // another query
		"https://clinic.example.org/intake?lang=en&x=1",          // an added parameter
		"https://clinic.example.org/intake",                      // the query left out
		"https://clinic.example.org/intake?lang=en#top",          // a fragment
		"https://Clinic.example.org/intake?lang=en",              // the host's case
		"https://clinic.example.org/%69ntake?lang=en",            // percent-encoding
		"https://clinic.example.org.evil.example/intake?lang=en", // a suffix on the host
		" https://clinic.example.org/intake?lang=en",             // white space
		"",
	} {
		mustField(t, try(func(r *referrals.Referral) { r.TargetURL = target }), "target_url")
	}
	mustCode(t, try(func(r *referrals.Referral) { r.SubjectID = tutela.NewID() }), tutela.ENOTFOUND)
	mustCode(t, try(func(r *referrals.Referral) { r.SubjectID = noConsent }), tutela.ECONSENTREQUIRED)
	mustCode(t, try(func(r *referrals.Referral) { r.SubjectID = restricted }), tutela.ERESTRICTED)
	mustField(t, try(func(r *referrals.Referral) { r.Purpose = "undeclared" }), "purpose")
	mustField(t, try(func(r *referrals.Referral) { r.Justification = "" }), "justification")
	mustField(t, try(func(r *referrals.Referral) { r.Justification = "bad\x00" }), "justification")
	mustField(t, try(func(r *referrals.Referral) { r.ExpiresAt = k.clock.Now() }), "ttl_seconds")
	mustField(t, try(func(r *referrals.Referral) { r.ExpiresAt = k.clock.Now().Add(referrals.MaxTTL + time.Hour) }), "ttl_seconds")
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'simulation' WHERE id = $1`, tn); err != nil {
		t.Fatal(err)
	}
	mustCode(t, try(func(*referrals.Referral) {}), tutela.ECONFLICT)

	if n := countRows(t, k.db, "referrals"); n != 0 {
		t.Fatalf("%d referrals stored by refused creations", n)
	}
	if n := countRows(t, k.db, "referral_events"); n != 0 {
		t.Fatalf("%d referral events stored by refused creations", n)
	}
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'provisioning' WHERE id = $1`, tn); err != nil {
		t.Fatal(err)
	}
	if err := try(func(*referrals.Referral) {}); err != nil {
		t.Fatalf("the same referral once provisioning: %v", err)
	}
}

func testReferralLifecycle(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	r := k.create(t, tn, k.draft())
	if r.State != referrals.StateCreated || r.TenantID != tn || !r.CreatedAt.Equal(k.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("created = %+v", r)
	}
	k.clock.Add(time.Minute)
	if err := k.open(r); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(time.Minute)
	if err := k.confirm(tn, claims(r), k.sa, k.partner.ID, referrals.StatusReceived, "arrived"); err != nil {
		t.Fatal(err)
	}
	k.clock.Add(time.Minute)
	if err := k.confirm(tn, claims(r), k.sa, k.partner.ID, referrals.StatusCompleted, "treated"); err != nil {
		t.Fatal(err)
	}
	got := k.get(t, tn, r.ID)
	if got.State != referrals.StateClosed || got.Outcome != "treated" || got.OpenedAt == nil || got.ConfirmedAt == nil ||
		got.ClosedAt == nil || got.ConfirmedBy != k.sa || got.ClosedBy != k.sa || got.Justification != "needs a clinic appointment" {
		t.Fatalf("closed referral = %+v", got)
	}
	var states []referrals.State
	for _, e := range got.Events {
		states = append(states, e.State)
	}
	if want := []referrals.State{referrals.StateCreated, referrals.StateOpened, referrals.StateConfirmed, referrals.StateClosed}; !slices.Equal(states, want) {
		t.Fatalf("events = %v, want %v", states, want)
	}
	if got.Events[0].Actor != "caseworker-1" || got.Events[1].Actor != "" || got.Events[2].Actor != k.sa ||
		got.Events[2].Note != "arrived" || got.Events[3].Note != "treated" {
		t.Fatalf("events = %+v", got.Events)
	}
	var actions []string
	for _, e := range referralAudit(t, k.db, r.ID) {
		actions = append(actions, e.Action)
		if e.Details["justification"] != "needs a clinic appointment" {
			t.Errorf("%s: justification = %v", e.Action, e.Details["justification"])
		}
		if _, ok := e.Details["outcome"]; ok {
			t.Errorf("%s carries the partner's outcome text", e.Action)
		}
	}
	if want := []string{"referral.created", "referral.opened", "referral.confirmed", "referral.closed"}; !slices.Equal(actions, want) {
		t.Fatalf("audit = %v, want %v", actions, want)
	}
	// Queryable by state, subject and partner.
	list := func(f sqlstore.ReferralFilter) int {
		var out []referrals.Referral
		update(t, k.db, func(tx *sqlstore.Tx) (err error) { out, err = tx.Referrals(tn).List(ctx, f); return err })
		return len(out)
	}
	if n := list(sqlstore.ReferralFilter{State: referrals.StateClosed, SubjectID: k.subject, PartnerID: k.partner.ID}); n != 1 {
		t.Fatalf("closed for subject and partner: %d", n)
	}
	if n := list(sqlstore.ReferralFilter{State: referrals.StateOpened}); n != 0 {
		t.Fatalf("opened: %d", n)
	}
	if n := list(sqlstore.ReferralFilter{SubjectID: tutela.NewID()}); n != 0 {
		t.Fatalf("another subject: %d", n)
	}
	mustField(t, k.db.View(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Referrals(tn).List(ctx, sqlstore.ReferralFilter{State: "gone"})
		return err
	}), "state")

	// Straight from opened to closed (declined) is a lifecycle too.
	r2 := k.create(t, tn, k.draft())
	if err := k.open(r2); err != nil {
		t.Fatal(err)
	}
	if err := k.confirm(tn, claims(r2), k.sa, k.partner.ID, referrals.StatusDeclined, "no capacity"); err != nil {
		t.Fatal(err)
	}
	if got := k.get(t, tn, r2.ID); got.State != referrals.StateClosed || got.ConfirmedAt != nil {
		t.Fatalf("declined = %+v", got)
	}
}

func testReferralOpenOnceConcurrent(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	r := k.create(t, k.tenant.ID, k.draft())
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = k.open(r) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch tutela.ErrorCode(err) {
		case "":
			won++
		case tutela.ELINKGONE:
		default:
			t.Fatalf("open: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d opens won, want exactly 1", won)
	}
	// A replay later is gone too, and nothing more was recorded.
	mustCode(t, k.open(r), tutela.ELINKGONE)
	if got := k.get(t, k.tenant.ID, r.ID); len(got.Events) != 2 {
		t.Fatalf("events = %+v", got.Events)
	}
	// Concurrent confirmations of one transition: exactly one is recorded, the rest conflict.
	for i := range n {
		wg.Go(func() { errs[i] = k.confirm(k.tenant.ID, claims(r), k.sa, k.partner.ID, referrals.StatusReceived, "") })
	}
	wg.Wait()
	won = 0
	for _, err := range errs {
		switch tutela.ErrorCode(err) {
		case "":
			won++
		case tutela.ECONFLICT:
		default:
			t.Fatalf("confirm: %v", err)
		}
	}
	if got := k.get(t, k.tenant.ID, r.ID); won != 1 || len(got.Events) != 3 {
		t.Fatalf("%d confirmations won, events %+v", won, got.Events)
	}
}

func testReferralConfirmRefusals(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	rival := k.addPartner(t, tn, "Rival clinic", referralTarget)
	rivalSA := k.partnerAccount(t, tn, rival.ID, "rival-sa")
	r := k.create(t, tn, k.draft())
	c := claims(r)

	mustCode(t, k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ECONFLICT) // never opened
	if err := k.open(r); err != nil {
		t.Fatal(err)
	}
	mustCode(t, k.confirm(tn, c, rivalSA, rival.ID, referrals.StatusReceived, ""), tutela.ENOTFOUND) // another partner
	mustCode(t, k.confirm(tn, c, k.sa, "", referrals.StatusReceived, ""), tutela.ENOTFOUND)          // no partner
	other := k.addTenant(t, "other")
	mustCode(t, k.confirm(other.ID, c, k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ENOTFOUND) // another tenant
	wrongKey, wrongExp := c, c
	wrongKey.KeyID++
	wrongExp.ExpiresAt = wrongExp.ExpiresAt.Add(time.Second)
	mustCode(t, k.confirm(tn, wrongKey, k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ENOTFOUND)
	mustCode(t, k.confirm(tn, wrongExp, k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ENOTFOUND)
	mustField(t, k.confirm(tn, c, k.sa, k.partner.ID, "lost", ""), "status")
	long := make([]rune, referrals.MaxOutcomeLen+1)
	for i := range long {
		long[i] = 'é'
	}
	mustField(t, k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusReceived, string(long)), "outcome")

	if err := k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusReceived, "here"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusReceived, "here"), tutela.ECONFLICT) // replay
	if err := k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusCompleted, "done"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusCompleted, "done"), tutela.ECONFLICT) // replay
	mustCode(t, k.confirm(tn, c, k.sa, k.partner.ID, referrals.StatusDeclined, "no"), tutela.ECONFLICT)
	if got := k.get(t, tn, r.ID); got.Outcome != "done" || len(got.Events) != 4 {
		t.Fatalf("after replays: %+v", got)
	}

	// A disabled partner's account confirms nothing.
	r2 := k.create(t, tn, k.draft())
	if err := k.open(r2); err != nil {
		t.Fatal(err)
	}
	st := partners.StatusDisabled
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(tn).Update(ctx, k.partner.ID, sqlstore.PartnerUpdate{Status: &st})
		return err
	})
	mustCode(t, k.confirm(tn, claims(r2), k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ENOTFOUND)

	// The partner a service account acts for, as its policy names it.
	plainSA := k.partnerAccount(t, tn, "", "plain")
	err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
		if p, err := tx.ServiceAccountPolicy(ctx, tn, k.sa); err != nil || p.Partner != k.partner.ID {
			t.Errorf("partner of the account = %+v, %v", p, err)
		}
		if p, err := tx.ServiceAccountPolicy(ctx, tn, plainSA); err != nil || p.Partner != "" {
			t.Errorf("partner of the plain account = %+v, %v", p, err)
		}
		_, err := tx.ServiceAccountPolicy(ctx, other.ID, k.sa)
		mustCode(t, err, tutela.ENOTFOUND)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testReferralExpiry(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	short := k.draft()
	short.ExpiresAt = k.clock.Now().Add(time.Hour).Truncate(time.Second)
	k.create(t, tn, short)
	opened := k.draft()
	opened.ExpiresAt = short.ExpiresAt
	k.create(t, tn, opened)
	if err := k.open(opened); err != nil {
		t.Fatal(err)
	}
	long := k.create(t, tn, k.draft())
	k.clock.Set(short.ExpiresAt) // expiry is exclusive: at ExpiresAt it is over

	for _, r := range []*referrals.Referral{short, opened} {
		if got := k.get(t, tn, r.ID); got.State != referrals.StateExpired {
			t.Fatalf("%s past expiry reads %s", r.ID, got.State)
		}
	}
	mustCode(t, k.open(short), tutela.ELINKGONE)
	mustCode(t, k.confirm(tn, claims(opened), k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ELINKGONE)
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Referrals(tn).Cancel(ctx, short.ID, "admin", "too late")
		return err
	}), tutela.ECONFLICT)
	ids := func(st referrals.State) []string {
		var out []referrals.Referral
		update(t, k.db, func(tx *sqlstore.Tx) (err error) {
			out, err = tx.Referrals(tn).List(ctx, sqlstore.ReferralFilter{State: st})
			return err
		})
		var ids []string
		for _, r := range out {
			if r.State != st {
				t.Errorf("listed under %s reads %s", st, r.State)
			}
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{short.ID, opened.ID}
	slices.Sort(want)
	if got := ids(referrals.StateExpired); !slices.Equal(got, want) {
		t.Fatalf("expired = %v, want %v", got, want)
	}
	if got := ids(referrals.StateCreated); !slices.Equal(got, []string{long.ID}) {
		t.Fatalf("created = %v, want only the unexpired one", got)
	}
	if got := ids(referrals.StateOpened); len(got) != 0 {
		t.Fatalf("opened = %v, want none (the opened one expired)", got)
	}
}

func testReferralCancel(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	r := k.create(t, tn, k.draft())
	if err := k.open(r); err != nil {
		t.Fatal(err)
	}
	cancel := func(justification string) error {
		return k.db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Referrals(tn).Cancel(ctx, r.ID, "admin-1", justification)
			return err
		})
	}
	mustField(t, cancel(""), "justification")
	if err := cancel("sent to the wrong clinic"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, cancel("again"), tutela.ECONFLICT)
	mustCode(t, k.confirm(tn, claims(r), k.sa, k.partner.ID, referrals.StatusReceived, ""), tutela.ELINKGONE)
	got := k.get(t, tn, r.ID)
	if got.State != referrals.StateCancelled || got.ClosedBy != "admin-1" || got.Events[len(got.Events)-1].Note != "sent to the wrong clinic" {
		t.Fatalf("cancelled = %+v", got)
	}
	events := referralAudit(t, k.db, r.ID)
	last := events[len(events)-1]
	if last.Action != "referral.cancelled" || last.Details["justification"] != "sent to the wrong clinic" {
		t.Fatalf("last audit event = %+v", last)
	}
	// A cancelled link does not open.
	r2 := k.create(t, tn, k.draft())
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Referrals(tn).Cancel(ctx, r2.ID, "admin-1", "duplicate")
		return err
	})
	mustCode(t, k.open(r2), tutela.ELINKGONE)

	// A withdrawal of the consent the referral was made under ends it: its link no longer opens.
	r3 := k.create(t, tn, k.draft())
	if err := k.record(tn, withdrawal(k.subject, "outreach")); err != nil {
		t.Fatal(err)
	}
	mustCode(t, k.open(r3), tutela.ELINKGONE)
	if got := k.get(t, tn, r3.ID); got.State != referrals.StateCreated || len(got.Events) != 1 {
		t.Fatalf("after a refused open: %+v", got)
	}
}

func testReferralTenantIsolation(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	r := k.create(t, k.tenant.ID, k.draft())
	other := k.addTenant(t, "other")
	err := k.db.View(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Referrals(other.ID).Get(ctx, r.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("another tenant's Get = %v", err)
		}
		if l, err := tx.Referrals(other.ID).List(ctx, sqlstore.ReferralFilter{}); err != nil || len(l) != 0 {
			t.Errorf("another tenant's List = %v, %v", l, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Referrals(other.ID).Cancel(ctx, r.ID, "x", "not mine")
		return err
	}), tutela.ENOTFOUND)
	// The subject of one tenant cannot be referred from another, even to a partner there.
	k.declare(t, other.ID)
	p := k.addPartner(t, other.ID, "Clinic", referralTarget)
	d := k.draft()
	d.PartnerID = p.ID
	mustCode(t, k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Referrals(other.ID).Create(ctx, d) }), tutela.ENOTFOUND)
}

func testReferralOpenPartnerChanged(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	withdrawn, disabled := k.create(t, tn, k.draft()), k.create(t, tn, k.draft())
	urls := []string{"https://clinic.example.org/other"}
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(tn).Update(ctx, k.partner.ID, sqlstore.PartnerUpdate{RedirectURLs: &urls})
		return err
	})
	mustCode(t, k.open(withdrawn), tutela.ELINKGONE)
	urls = []string{referralTarget}
	st := partners.StatusDisabled
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(tn).Update(ctx, k.partner.ID, sqlstore.PartnerUpdate{RedirectURLs: &urls, Status: &st})
		return err
	})
	mustCode(t, k.open(disabled), tutela.ELINKGONE)
	st = partners.StatusActive
	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Partners(tn).Update(ctx, k.partner.ID, sqlstore.PartnerUpdate{Status: &st})
		return err
	})
	if err := k.open(disabled); err != nil {
		t.Fatalf("once the partner is active again with the URL: %v", err)
	}
}

// Erasing a subject reaches their referrals: the justification, the partner's outcome and the
// events' notes are gone, a live referral is cancelled (its link opens nothing, its partner
// confirms nothing), and another subject's referral is untouched.
func testReferralSubjectErasure(t *testing.T, open Opener) {
	k := newReferralKit(t, open, "acme")
	tn := k.tenant.ID
	closed := k.create(t, tn, k.draft())
	if err := k.open(closed); err != nil {
		t.Fatal(err)
	}
	if err := k.confirm(tn, claims(closed), k.sa, k.partner.ID, referrals.StatusCompleted, "seen by Dr Okafor on Tuesday"); err != nil {
		t.Fatal(err)
	}
	live := k.create(t, tn, k.draft())
	other := k.consentKit.subject(t, tn)
	if err := k.record(tn, grant(other, "outreach", 2)); err != nil {
		t.Fatal(err)
	}
	kept := k.draft()
	kept.SubjectID = other
	k.create(t, tn, kept)

	update(t, k.db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(tn).Erase(ctx, k.subject, "the subject asked", "GDPR Art. 17(1)(a)", sqlstore.ErasureRequest)
		return err
	})
	for _, id := range []string{closed.ID, live.ID} {
		r := k.get(t, tn, id)
		if r.Justification != sqlstore.ErasedPlaceholder || strings.Contains(r.Outcome, "Okafor") {
			t.Fatalf("referral %s kept its texts: %q / %q", id, r.Justification, r.Outcome)
		}
		for _, e := range r.Events {
			if e.Note != "" && e.Note != sqlstore.ErasedPlaceholder {
				t.Fatalf("an event kept its note: %+v", e)
			}
		}
	}
	if r := k.get(t, tn, closed.ID); r.State != referrals.StateClosed || r.Outcome != sqlstore.ErasedPlaceholder {
		t.Fatalf("closed referral = %s %q", r.State, r.Outcome)
	}
	if r := k.get(t, tn, live.ID); r.State != referrals.StateCancelled {
		t.Fatalf("live referral of an erased subject is %s", r.State)
	}
	if err := k.open(live); err == nil {
		t.Fatal("the erased subject's referral link opened")
	}
	if r := k.get(t, tn, kept.ID); r.Justification != "needs a clinic appointment" || r.State != referrals.StateCreated {
		t.Fatalf("another subject's referral changed: %+v", r)
	}
}
