package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/vault"
	"tutela/webhooks"
)

// WebhookTests are the webhook endpoints' part of the suite (issue 18): each tenant's own, their
// secrets sealed to their row and tenant and shown once, the cap, and the delivery notes.
var WebhookTests = []Test{
	{"WebhooksCreateListDelete", testWebhookCRUD},
	{"WebhooksValidateURLAndEvents", testWebhookValidation},
	{"WebhooksTenantIsolation", testWebhookIsolation},
	{"WebhooksCapPerTenantUnderConcurrency", testWebhookCap},
	{"WebhookSecretBoundToRowAndTenant", testWebhookSecretAAD},
	{"WebhookSecretNeverInAuditOrErrors", testWebhookSecretNotLeaked},
	{"WebhookSecretsRewrapAfterRotation", testWebhookRewrap},
	{"WebhookDeliveryNotesAndSimulation", testWebhookDeliveryNotes},
}

type webhookKit struct {
	db    *sqlstore.DB
	clock *fakeClock
	vault *vault.Vault
	a, b  string
}

func newWebhookKit(t *testing.T, open Opener, slug string) *webhookKit {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVaultAt(t, db, newKEK(t), clock.Now)
	db.SetVault(v)
	return &webhookKit{db: db, clock: clock, vault: v, a: createTenant(t, db, slug+"-a").ID, b: createTenant(t, db, slug+"-b").ID}
}

func (k *webhookKit) do(tenantID string, fn func(sqlstore.Webhooks) error) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return fn(tx.Webhooks(tenantID)) })
}

func (k *webhookKit) create(t *testing.T, tenantID, url string, events ...string) (*webhooks.Webhook, tutela.Secret) {
	t.Helper()
	w := &webhooks.Webhook{URL: url, Events: events, CreatedBy: "admin-user"}
	var secret tutela.Secret
	if err := k.do(tenantID, func(s sqlstore.Webhooks) (err error) { secret, err = s.Create(ctx, w); return }); err != nil {
		t.Fatal(err)
	}
	return w, secret
}

func (k *webhookKit) list(t *testing.T, tenantID string) []webhooks.Webhook {
	t.Helper()
	var out []webhooks.Webhook
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { out, err = tx.Webhooks(tenantID).List(ctx); return }); err != nil {
		t.Fatal(err)
	}
	return out
}

func (k *webhookKit) delivery(tenantID, id string) (*sqlstore.WebhookDelivery, error) {
	var d *sqlstore.WebhookDelivery
	err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { d, err = tx.Webhooks(tenantID).Delivery(ctx, id); return })
	return d, err
}

func testWebhookCRUD(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whcrud")
	w, secret := k.create(t, k.a, "https://hooks.example.org/in/T0K3N?x=1", webhooks.ApprovalRequested, webhooks.ApprovalApproved)
	if !tutela.ValidID(w.ID) || w.TenantID != k.a || w.Status != webhooks.StatusActive || !w.CreatedAt.Equal(k.clock.Now().Truncate(time.Microsecond)) ||
		!strings.HasPrefix(secret.Reveal(), webhooks.SecretPrefix) || len(secret.Reveal()) != len(webhooks.SecretPrefix)+64 {
		t.Fatalf("created %+v (secret of %d bytes)", w, len(secret.Reveal()))
	}
	k.clock.Add(time.Second)
	w2, secret2 := k.create(t, k.a, "https://other.example.org/hook", webhooks.All)
	if secret2.Equal(secret) {
		t.Fatal("two webhooks got the same secret")
	}
	list := k.list(t, k.a)
	if len(list) != 2 || list[0].ID != w.ID || list[1].ID != w2.ID || !slices.Equal(list[0].Events, w.Events) ||
		list[0].URL != w.URL || list[0].CreatedBy != "admin-user" || !list[0].LastDeliveryAt.IsZero() || list[0].LastStatus != "" {
		t.Fatalf("list %+v", list)
	}
	// The delivery job opens the secret the creator was shown.
	d, err := k.delivery(k.a, w.ID)
	if err != nil || !d.Secret.Equal(secret) || d.Simulated || d.Webhook.ID != w.ID {
		t.Fatalf("delivery: %v", err)
	}
	// Subscribers: by type, "*" for every type.
	var subs []string
	_ = k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		subs, err = tx.Webhooks(k.a).Subscribers(ctx, webhooks.ApprovalApproved)
		return
	})
	if !slices.Equal(subs, []string{w.ID, w2.ID}) {
		t.Fatalf("subscribers of approved: %v", subs)
	}
	_ = k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		subs, err = tx.Webhooks(k.a).Subscribers(ctx, webhooks.ReferralClosed)
		return
	})
	if !slices.Equal(subs, []string{w2.ID}) {
		t.Fatalf("subscribers of referral.closed: %v", subs)
	}
	// The audit log names the URL's origin, not its path or query (a token may sit there).
	ev := lastAIEvent(t, k.db, k.a, "webhook.created")
	if ev.Event.TargetID != w2.ID || ev.Event.Details["origin"] != "https://other.example.org" {
		t.Fatalf("created event %+v", ev.Event)
	}
	k.must(t, k.a, func(s sqlstore.Webhooks) error { return s.Delete(ctx, w.ID) })
	if list := k.list(t, k.a); len(list) != 1 || list[0].ID != w2.ID {
		t.Fatalf("after delete: %+v", list)
	}
	mustCode(t, k.do(k.a, func(s sqlstore.Webhooks) error { return s.Delete(ctx, w.ID) }), tutela.ENOTFOUND)
	if _, err := k.delivery(k.a, w.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("delivery of a deleted webhook: %v", err)
	}
	for _, r := range aiActions(t, k.db, k.a) {
		if bytes.Contains(r.Canonical, []byte("T0K3N")) {
			t.Fatalf("%s event holds the URL's path", r.Event.Action)
		}
	}
	if ev := lastAIEvent(t, k.db, k.a, "webhook.deleted"); ev.Event.TargetID != w.ID || ev.Event.Details["origin"] != "https://hooks.example.org" {
		t.Fatalf("deleted event %+v", ev.Event)
	}
}

func (k *webhookKit) must(t *testing.T, tenantID string, fn func(sqlstore.Webhooks) error) {
	t.Helper()
	if err := k.do(tenantID, fn); err != nil {
		t.Fatal(err)
	}
}

func testWebhookValidation(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whval")
	for _, c := range []struct {
		url    string
		events []string
		field  string
	}{
		{"http://hooks.example.org/in", []string{"*"}, "url"},
		{"https://user:pass@hooks.example.org/in", []string{"*"}, "url"},
		{"https://hooks.example.org/in#frag", []string{"*"}, "url"},
		{"https://Hooks.Example.org/in", []string{"*"}, "url"},
		{"https:hooks.example.org", []string{"*"}, "url"},
		{"https:///in", []string{"*"}, "url"},
		{"https://hooks.example.org/a b", []string{"*"}, "url"},
		{"", []string{"*"}, "url"},
		{"https://hooks.example.org/" + strings.Repeat("a", webhooks.MaxURLLen), []string{"*"}, "url"},
		{"https://hooks.example.org/in", nil, "events"},
		{"https://hooks.example.org/in", []string{"approval.requested", "approval.requested"}, "events"},
		{"https://hooks.example.org/in", []string{"approval.*"}, "events"},
		{"https://hooks.example.org/in", []string{"Approval.Requested"}, "events"},
	} {
		err := k.do(k.a, func(s sqlstore.Webhooks) error {
			_, err := s.Create(ctx, &webhooks.Webhook{URL: c.url, Events: c.events})
			return err
		})
		if tutela.ErrorCode(err) != tutela.EINVALID || fieldOf(err) != c.field {
			t.Errorf("Create(%q, %v) = %v, want invalid %s", c.url, c.events, err, c.field)
		}
	}
	if n := countRows(t, k.db, "webhooks"); n != 0 {
		t.Fatalf("%d refused webhooks stored", n)
	}
	// A status given by the caller is ignored: a webhook is created active.
	w := &webhooks.Webhook{URL: "https://hooks.example.org/in", Events: []string{"*"}, Status: "disabled"}
	k.must(t, k.a, func(s sqlstore.Webhooks) error { _, err := s.Create(ctx, w); return err })
	if w.Status != webhooks.StatusActive {
		t.Fatalf("status %q", w.Status)
	}
}

func testWebhookIsolation(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whiso")
	w, _ := k.create(t, k.a, "https://hooks.example.org/a", webhooks.All)
	if list := k.list(t, k.b); len(list) != 0 {
		t.Fatalf("tenant B lists A's webhooks: %+v", list)
	}
	for _, id := range []string{w.ID, tutela.NewID(), "' OR 1=1 --", ""} {
		mustCode(t, k.do(k.b, func(s sqlstore.Webhooks) error { _, err := s.Get(ctx, id); return err }), tutela.ENOTFOUND)
		mustCode(t, k.do(k.b, func(s sqlstore.Webhooks) error { return s.Delete(ctx, id) }), tutela.ENOTFOUND)
		if _, err := k.delivery(k.b, id); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Fatalf("B opens delivery of %q: %v", id, err)
		}
	}
	var subs []string
	_ = k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		subs, err = tx.Webhooks(k.b).Subscribers(ctx, webhooks.ApprovalRequested)
		return
	})
	if len(subs) != 0 {
		t.Fatalf("B's subscribers include A's: %v", subs)
	}
	// B's note of a delivery to A's webhook changes nothing and records nothing.
	k.must(t, k.b, func(s sqlstore.Webhooks) error {
		return s.RecordDelivery(ctx, w.ID, sqlstore.WebhookAttempt{EventID: "e", EventType: webhooks.ApprovalRequested,
			Outcome: sqlstore.DeliveryDone, Status: "200"})
	})
	if got := k.list(t, k.a)[0]; got.LastStatus != "" || countAction(aiActions(t, k.db, k.b), "webhook.delivered") != 0 {
		t.Fatalf("A's webhook after B's note: %+v", got)
	}
	if len(k.list(t, k.a)) != 1 {
		t.Fatal("B deleted A's webhook")
	}
}

// A tenant has at most webhooks.MaxPerTenant endpoints, also when they are created at once.
func testWebhookCap(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whcap")
	k.create(t, k.a, "https://hooks.example.org/first", webhooks.All) // makes the keyset outside the rush
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for i := range webhooks.MaxPerTenant + 5 {
		wg.Go(func() {
			err := k.do(k.a, func(s sqlstore.Webhooks) error {
				_, err := s.Create(ctx, &webhooks.Webhook{URL: fmt.Sprintf("https://hooks.example.org/%d", i), Events: []string{"*"}})
				return err
			})
			switch tutela.ErrorCode(err) {
			case "":
			case tutela.ECONFLICT:
				mu.Lock()
				refused++
				mu.Unlock()
			default:
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := len(k.list(t, k.a)); n != webhooks.MaxPerTenant || refused != 6 {
		t.Fatalf("%d webhooks, %d refused; want %d and 6", n, refused, webhooks.MaxPerTenant)
	}
	// The cap is per tenant.
	k.create(t, k.b, "https://hooks.example.org/b", webhooks.All)
}

// A sealed secret opens only in its own row, under its own tenant's keyset.
func testWebhookSecretAAD(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whaad")
	w1, s1 := k.create(t, k.a, "https://hooks.example.org/1", webhooks.All)
	w2, s2 := k.create(t, k.a, "https://hooks.example.org/2", webhooks.All)
	wb, sb := k.create(t, k.b, "https://hooks.example.org/b", webhooks.All)
	sealed := func(id string) []byte {
		var ct []byte
		if err := k.db.SQL().QueryRowContext(ctx, `SELECT secret_sealed FROM webhooks WHERE id = $1`, id).Scan(&ct); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, []byte(webhooks.SecretPrefix)) {
			t.Fatalf("secret of %s stored in clear", id)
		}
		return ct
	}
	set := func(id string, ct []byte) {
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE webhooks SET secret_sealed = $1 WHERE id = $2`, ct, id); err != nil {
			t.Fatal(err)
		}
	}
	c1, c2, cb := sealed(w1.ID), sealed(w2.ID), sealed(wb.ID)
	set(w2.ID, c1)
	if _, err := k.delivery(k.a, w2.ID); err == nil {
		t.Fatal("a secret moved to another webhook's row opened")
	} else if strings.Contains(err.Error(), s1.Reveal()) {
		t.Fatal("the error reveals the secret")
	}
	set(w2.ID, c2)
	set(wb.ID, c1)
	if _, err := k.delivery(k.b, wb.ID); err == nil {
		t.Fatal("tenant A's secret opened in tenant B's row")
	}
	set(wb.ID, cb)
	bad := slices.Clone(c1)
	bad[len(bad)-1] ^= 1
	set(w1.ID, bad)
	if _, err := k.delivery(k.a, w1.ID); err == nil {
		t.Fatal("a tampered secret opened")
	}
	set(w1.ID, c1)
	for _, c := range []struct {
		tenant, id string
		want       tutela.Secret
	}{{k.a, w1.ID, s1}, {k.a, w2.ID, s2}, {k.b, wb.ID, sb}} {
		if d, err := k.delivery(c.tenant, c.id); err != nil || !d.Secret.Equal(c.want) {
			t.Fatalf("restored secret of %s: %v", c.id, err)
		}
	}
}

// The secret is in no audit event, no list, no error.
func testWebhookSecretNotLeaked(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whleak")
	w, secret := k.create(t, k.a, "https://hooks.example.org/in", webhooks.All)
	hexPart := strings.TrimPrefix(secret.Reveal(), webhooks.SecretPrefix)
	k.must(t, k.a, func(s sqlstore.Webhooks) error {
		return s.RecordDelivery(ctx, w.ID, sqlstore.WebhookAttempt{EventID: tutela.NewID(), EventType: webhooks.ApprovalRequested,
			Outcome: sqlstore.DeliveryFailed, Status: "500"})
	})
	errs := []error{
		k.do(k.b, func(s sqlstore.Webhooks) error { return s.Delete(ctx, w.ID) }),
		k.do(k.a, func(s sqlstore.Webhooks) error {
			_, err := s.Create(ctx, &webhooks.Webhook{URL: "http://x.example.org", Events: []string{"*"}})
			return err
		}),
	}
	k.must(t, k.a, func(s sqlstore.Webhooks) error { return s.Delete(ctx, w.ID) })
	recs := aiActions(t, k.db, "")
	for _, r := range recs {
		if bytes.Contains(r.Canonical, []byte(hexPart)) {
			t.Fatalf("%s event holds the secret", r.Event.Action)
		}
	}
	for _, err := range errs {
		if err == nil || strings.Contains(err.Error()+tutela.ErrorMessage(err), hexPart) {
			t.Fatalf("error %v", err)
		}
	}
	if n := countAction(recs, "webhook.created") + countAction(recs, "webhook.delivery_failed") + countAction(recs, "webhook.deleted"); n != 3 {
		t.Fatalf("%d webhook events, want created, delivery_failed and deleted", n)
	}
}

func testWebhookRewrap(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whwrap")
	w1, s1 := k.create(t, k.a, "https://hooks.example.org/1", webhooks.All)
	w2, s2 := k.create(t, k.a, "https://hooks.example.org/2", webhooks.All)
	wb, sb := k.create(t, k.b, "https://hooks.example.org/b", webhooks.All)
	if _, err := k.vault.Rotate(ctx, k.a, vault.PurposeWebhooks); err != nil {
		t.Fatal(err)
	}
	settle(k.clock, k.vault)
	src := sqlstore.WebhookSecretsSource(k.db)
	if n, err := k.vault.Outdated(ctx, src, k.a, vault.PurposeWebhooks); err != nil || n != 2 {
		t.Fatalf("Outdated = %d, %v; want 2", n, err)
	}
	if pr, err := k.vault.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 1}); err != nil || pr.Rewrapped != 2 {
		t.Fatalf("rewrap: %+v, %v; want 2 rewrapped", pr, err)
	}
	if _, err := k.vault.Retire(ctx, k.a, vault.PurposeWebhooks); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tenant, id string
		want       tutela.Secret
	}{{k.a, w1.ID, s1}, {k.a, w2.ID, s2}, {k.b, wb.ID, sb}} {
		if d, err := k.delivery(c.tenant, c.id); err != nil || !d.Secret.Equal(c.want) {
			t.Fatalf("secret of %s after rewrap and retire: %v", c.id, err)
		}
	}
}

// RecordDelivery notes the latest attempt on the webhook and audits it; a webhook gone since
// records nothing; Simulated follows the tenant's mode.
func testWebhookDeliveryNotes(t *testing.T, open Opener) {
	k := newWebhookKit(t, open, "whnote")
	w, _ := k.create(t, k.a, "https://hooks.example.org/in", webhooks.All)
	eventID := tutela.NewID()
	k.clock.Add(time.Minute)
	for _, a := range []sqlstore.WebhookAttempt{
		{EventID: eventID, EventType: webhooks.ApprovalRequested, Outcome: sqlstore.DeliveryFailed, Status: "timeout"},
		{EventID: eventID, EventType: webhooks.ApprovalRequested, Outcome: sqlstore.DeliveryDone, Status: "204"},
	} {
		k.must(t, k.a, func(s sqlstore.Webhooks) error { return s.RecordDelivery(ctx, w.ID, a) })
	}
	got := k.list(t, k.a)[0]
	if got.LastStatus != "204" || !got.LastDeliveryAt.Equal(k.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("after two attempts %+v", got)
	}
	ev := lastAIEvent(t, k.db, k.a, "webhook.delivered")
	if ev.Event.TargetID != w.ID || ev.Event.Details["event_id"] != eventID || ev.Event.Details["status"] != "204" ||
		ev.Event.Details["event_type"] != webhooks.ApprovalRequested {
		t.Fatalf("delivered event %+v", ev.Event)
	}
	if ev := lastAIEvent(t, k.db, k.a, "webhook.delivery_failed"); ev.Event.Outcome != "failure" || ev.Event.Details["status"] != "timeout" {
		t.Fatalf("failed event %+v", ev.Event)
	}
	for _, bad := range []sqlstore.WebhookAttempt{{Outcome: "maybe", Status: "200"}, {Outcome: sqlstore.DeliveryDone, Status: "200\n"}} {
		mustCode(t, k.do(k.a, func(s sqlstore.Webhooks) error { return s.RecordDelivery(ctx, w.ID, bad) }), tutela.EINVALID)
	}
	k.must(t, k.a, func(s sqlstore.Webhooks) error { return s.Delete(ctx, w.ID) })
	before := len(aiActions(t, k.db, k.a))
	k.must(t, k.a, func(s sqlstore.Webhooks) error {
		return s.RecordDelivery(ctx, w.ID, sqlstore.WebhookAttempt{Outcome: sqlstore.DeliveryDone, Status: "200"})
	})
	if n := len(aiActions(t, k.db, k.a)); n != before {
		t.Fatal("a note on a deleted webhook was audited")
	}
	simulated := func(tenantID string) bool {
		var sim bool
		if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) { sim, err = tx.Webhooks(tenantID).Simulated(ctx); return }); err != nil {
			t.Fatal(err)
		}
		return sim
	}
	if simulated(k.a) {
		t.Fatal("a provisioning tenant is simulated")
	}
	if _, err := k.db.SQL().ExecContext(ctx, `UPDATE tenants SET mode = 'simulation' WHERE id = $1`, k.a); err != nil {
		t.Fatal(err)
	}
	if !simulated(k.a) || simulated(k.b) {
		t.Fatal("simulation does not follow the tenant's mode")
	}
	w2, _ := k.create(t, k.a, "https://hooks.example.org/sim", webhooks.All)
	if d, err := k.delivery(k.a, w2.ID); err != nil || !d.Simulated {
		t.Fatalf("delivery of a simulation tenant: %v", err)
	}
	mustCode(t, k.db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Webhooks(tutela.NewID()).Simulated(ctx); return err }), tutela.ENOTFOUND)
}
