package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
	"tutela/vault"
)

// AITests is the AI gateway's part of the suite (issue 16): providers, their sealed API keys
// and rotation, models, purposes, settings and the usage limits, each scoped to its tenant.
var AITests = []Test{
	{"AIProvidersCreateUpdateValidate", testAIProviders},
	{"AIProvidersCapPerTenant", testAIProviderCap},
	{"AITenantIsolation", testAIIsolation},
	{"AIMalformedIDsAreNotFound", testAIMalformedIDs},
	{"AIKeyRotationKeepsTwoNewestFirst", testAIKeyRotation},
	{"AIKeyConcurrentRotationsKeepTwo", testAIKeyConcurrentRotation},
	{"AIKeyBoundToItsRowAndTenant", testAIKeyAAD},
	{"AIKeyNeverInAuditOrErrors", testAIKeyNotLeaked},
	{"AIKeysRewrapAfterRotation", testAIKeysRewrap},
	{"AIModelsAndPurposes", testAIModelsPurposes},
	{"AIModelsCapPerTenant", testAIModelCap},
	{"AISettingsDefaultsAndPut", testAISettings},
	{"AIAdmitRateAndBudgets", testAIAdmit},
	{"AIAdmitRefusalCountsNothing", testAIAdmitRefusalCountsNothing},
	{"AIAdmitConcurrentNeverOverAdmits", testAIAdmitConcurrent},
}

// aiKit is a store with a vault and two tenants.
type aiKit struct {
	db    *sqlstore.DB
	clock *fakeClock
	vault *vault.Vault
	a, b  string
}

func newAIKit(t *testing.T, open Opener, slug string) *aiKit {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVaultAt(t, db, newKEK(t), clock.Now)
	db.SetVault(v)
	return &aiKit{db: db, clock: clock, vault: v, a: createTenant(t, db, slug+"-a").ID, b: createTenant(t, db, slug+"-b").ID}
}

// do runs fn on tenant's AI store in a write transaction and returns its error (the
// transaction rolls back when there is one).
func (k *aiKit) do(tenantID string, fn func(sqlstore.AI) error) error {
	return k.db.Update(ctx, func(tx *sqlstore.Tx) error { return fn(tx.AI(tenantID)) })
}

func (k *aiKit) must(t *testing.T, tenantID string, fn func(sqlstore.AI) error) {
	t.Helper()
	if err := k.do(tenantID, fn); err != nil {
		t.Fatal(err)
	}
}

func (k *aiKit) provider(t *testing.T, tenantID, name string) *ai.Provider {
	t.Helper()
	p := &ai.Provider{Name: name, BaseURL: "https://" + name + ".example.org/v1"}
	k.must(t, tenantID, func(s sqlstore.AI) error { return s.CreateProvider(ctx, p) })
	return p
}

func (k *aiKit) addKey(t *testing.T, tenantID, providerID, key string) *ai.KeyInfo {
	t.Helper()
	var info *ai.KeyInfo
	k.must(t, tenantID, func(s sqlstore.AI) (err error) {
		info, err = s.AddKey(ctx, providerID, tutela.NewSecret(key), "admin@example.org")
		return err
	})
	return info
}

func (k *aiKit) keys(t *testing.T, tenantID, providerID string) []ai.Key {
	t.Helper()
	var keys []ai.Key
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		keys, err = tx.AI(tenantID).Keys(ctx, providerID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func (k *aiKit) get(t *testing.T, tenantID, providerID string) *ai.Provider {
	t.Helper()
	var p *ai.Provider
	if err := k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		p, err = tx.AI(tenantID).Provider(ctx, providerID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// aiActions lists the actions of the tenant's audit events, oldest first.
func aiActions(t *testing.T, db *sqlstore.DB, tenantID string) []sqlstore.AuditRecord {
	t.Helper()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tenantID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(recs)
	return recs
}

func lastAIEvent(t *testing.T, db *sqlstore.DB, tenantID, action string) sqlstore.AuditRecord {
	t.Helper()
	recs := aiActions(t, db, tenantID)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event.Action == action {
			return recs[i]
		}
	}
	t.Fatalf("no %s event", action)
	return sqlstore.AuditRecord{}
}

func testAIProviders(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiprov")
	p := k.provider(t, k.a, "openrouter")
	if !tutela.ValidID(p.ID) || p.TenantID != k.a || p.AuthStyle != ai.AuthBearer || p.TimeoutSeconds != ai.DefaultTimeoutSeconds ||
		!p.CreatedAt.Equal(k.clock.Now().Truncate(time.Microsecond)) || len(p.Keys) != 0 {
		t.Fatalf("created %+v", p)
	}
	if ev := lastAIEvent(t, k.db, k.a, "ai.provider_create"); ev.Event.TargetType != "ai_provider" || ev.Event.TargetID != p.ID ||
		ev.Event.Details["name"] != "openrouter" {
		t.Fatalf("create event %+v", ev.Event)
	}
	got := k.get(t, k.a, p.ID)
	if got.Name != p.Name || got.BaseURL != p.BaseURL || got.AuthStyle != p.AuthStyle || got.MaxRetries != 0 ||
		!got.CreatedAt.Equal(p.CreatedAt) || got.Keys == nil {
		t.Fatalf("read back %+v, created %+v", got, p)
	}
	// A duplicate name is a conflict on name, even from another case of the same request.
	err := k.do(k.a, func(s sqlstore.AI) error {
		return s.CreateProvider(ctx, &ai.Provider{Name: "openrouter", BaseURL: "https://other.example.org"})
	})
	mustCode(t, err, tutela.ECONFLICT)
	// Bad input is refused and stores nothing.
	for _, bad := range []struct {
		p     ai.Provider
		field string
	}{
		{ai.Provider{Name: "Upper", BaseURL: "https://x.example.org"}, "name"},
		{ai.Provider{Name: "x", BaseURL: "http://x.example.org"}, "base_url"},
		{ai.Provider{Name: "x", BaseURL: "https://user:pw@x.example.org"}, "base_url"},
		{ai.Provider{Name: "x", BaseURL: "https://x.example.org", AuthStyle: "basic"}, "auth_style"},
		{ai.Provider{Name: "x", BaseURL: "https://x.example.org", TimeoutSeconds: 601}, "timeout_seconds"},
		{ai.Provider{Name: "x", BaseURL: "https://x.example.org", MaxRetries: 6}, "max_retries"},
	} {
		mustField(t, k.do(k.a, func(s sqlstore.AI) error { return s.CreateProvider(ctx, &bad.p) }), bad.field)
	}
	if n := countRows(t, k.db, "ai_providers"); n != 1 {
		t.Fatalf("%d providers after refusals, want 1", n)
	}
	// Update: every mutable field, and the event names what changed.
	k.clock.Add(time.Minute)
	local := k.provider(t, k.a, "local")
	upd := &ai.Provider{ID: p.ID, Name: "openrouter-eu", BaseURL: "http://127.0.0.1:11434/v1", AuthStyle: ai.AuthNone,
		TimeoutSeconds: 120, MaxRetries: 5, Disabled: true}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, upd) })
	got = k.get(t, k.a, p.ID)
	if got.Name != "openrouter-eu" || got.BaseURL != upd.BaseURL || got.AuthStyle != ai.AuthNone || got.TimeoutSeconds != 120 ||
		got.MaxRetries != 5 || !got.Disabled || !got.CreatedAt.Equal(p.CreatedAt) || !got.UpdatedAt.After(p.UpdatedAt) {
		t.Fatalf("after update %+v", got)
	}
	ev := lastAIEvent(t, k.db, k.a, "ai.provider_update")
	if fmt.Sprint(ev.Event.Details["changed"]) != "[name base_url auth_style timeout_seconds max_retries disabled]" {
		t.Fatalf("update event details %v", ev.Event.Details)
	}
	// Renaming to another provider's name is a conflict; keeping one's own name is not.
	upd.Name = local.Name
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, upd) }), tutela.ECONFLICT)
	upd.Name = "openrouter-eu"
	upd.BaseURL = "https://openrouter.ai/api/v1"
	k.must(t, k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, upd) })
	// An invalid update changes nothing.
	bad := *upd
	bad.BaseURL = "ftp://x.example.org"
	mustField(t, k.do(k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, &bad) }), "base_url")
	if got := k.get(t, k.a, p.ID); got.BaseURL != "https://openrouter.ai/api/v1" {
		t.Fatalf("base_url after refused update: %s", got.BaseURL)
	}
	// Providers lists by name.
	var list []*ai.Provider
	k.must(t, k.a, func(s sqlstore.AI) (err error) { list, err = s.Providers(ctx); return err })
	if len(list) != 2 || list[0].Name != "local" || list[1].Name != "openrouter-eu" {
		t.Fatalf("providers %+v", list)
	}
	// Deleting the provider deletes it; a second delete is not found.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, local.ID) })
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, local.ID) }), tutela.ENOTFOUND)
	if ev := lastAIEvent(t, k.db, k.a, "ai.provider_delete"); ev.Event.TargetID != local.ID {
		t.Fatalf("delete event %+v", ev.Event)
	}
}

func testAIProviderCap(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aicap")
	k.must(t, k.a, func(s sqlstore.AI) error {
		for i := range ai.MaxProvidersPerTenant {
			if err := s.CreateProvider(ctx, &ai.Provider{Name: fmt.Sprintf("p%d", i), BaseURL: "https://x.example.org"}); err != nil {
				return err
			}
		}
		return nil
	})
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error {
		return s.CreateProvider(ctx, &ai.Provider{Name: "one-more", BaseURL: "https://x.example.org"})
	}), tutela.ECONFLICT)
	// The cap is per tenant.
	k.provider(t, k.b, "one-more")
	// A tenant that does not exist cannot have providers.
	mustCode(t, k.do(tutela.NewID(), func(s sqlstore.AI) error {
		return s.CreateProvider(ctx, &ai.Provider{Name: "ghost", BaseURL: "https://x.example.org"})
	}), tutela.ENOTFOUND)
}

// Tenant B can neither see, change, delete nor use anything of tenant A's, and its own objects
// may share A's names.
func testAIIsolation(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiiso")
	p := k.provider(t, k.a, "shared-name")
	key := k.addKey(t, k.a, p.ID, "sk-tenant-a-secret-0123456789")
	k.must(t, k.a, func(s sqlstore.AI) error {
		if err := s.PutModel(ctx, &ai.Model{Name: "gpt-4o-mini", ProviderID: p.ID}); err != nil {
			return err
		}
		return s.PutPurpose(ctx, &ai.Purpose{Purpose: "ai_triage", Models: []string{"gpt-4o-mini"}})
	})
	for name, fn := range map[string]func(sqlstore.AI) error{
		"Provider": func(s sqlstore.AI) error { _, err := s.Provider(ctx, p.ID); return err },
		"UpdateProvider": func(s sqlstore.AI) error {
			return s.UpdateProvider(ctx, &ai.Provider{ID: p.ID, Name: "x", BaseURL: "https://x.example.org"})
		},
		"DeleteProvider": func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) },
		"AddKey": func(s sqlstore.AI) error {
			_, err := s.AddKey(ctx, p.ID, tutela.NewSecret("sk-tenant-b-0123456789"), "")
			return err
		},
		"DeleteKey":     func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, key.ID) },
		"Keys":          func(s sqlstore.AI) error { _, err := s.Keys(ctx, p.ID); return err },
		"Model":         func(s sqlstore.AI) error { _, err := s.Model(ctx, "gpt-4o-mini"); return err },
		"DeleteModel":   func(s sqlstore.AI) error { return s.DeleteModel(ctx, "gpt-4o-mini") },
		"Purpose":       func(s sqlstore.AI) error { _, err := s.Purpose(ctx, "ai_triage"); return err },
		"DeletePurpose": func(s sqlstore.AI) error { return s.DeletePurpose(ctx, "ai_triage") },
	} {
		if err := k.do(k.b, fn); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("tenant B %s on A's object: %v, want not_found", name, err)
		}
	}
	// B cannot point its model at A's provider, nor list A's model in its purpose.
	mustField(t, k.do(k.b, func(s sqlstore.AI) error {
		return s.PutModel(ctx, &ai.Model{Name: "gpt-4o-mini", ProviderID: p.ID})
	}), "provider_id")
	mustField(t, k.do(k.b, func(s sqlstore.AI) error {
		return s.PutPurpose(ctx, &ai.Purpose{Purpose: "ai_triage", Models: []string{"gpt-4o-mini"}})
	}), "models")
	_ = k.db.View(ctx, func(tx *sqlstore.Tx) error {
		s := tx.AI(k.b)
		ps, err1 := s.Providers(ctx)
		ms, err2 := s.Models(ctx)
		us, err3 := s.Purposes(ctx)
		if err := errors.Join(err1, err2, err3); err != nil || len(ps)+len(ms)+len(us) != 0 {
			t.Errorf("tenant B lists %d providers, %d models, %d purposes (%v); want none", len(ps), len(ms), len(us), err)
		}
		return nil
	})
	// A's objects are untouched by B's attempts, and B may reuse A's names.
	if got := k.get(t, k.a, p.ID); got.Name != "shared-name" || len(got.Keys) != 1 {
		t.Fatalf("A's provider after B's attempts: %+v", got)
	}
	if keys := k.keys(t, k.a, p.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-tenant-a-secret-0123456789" {
		t.Fatalf("A's keys after B's attempts: %d", len(keys))
	}
	pb := k.provider(t, k.b, "shared-name")
	k.addKey(t, k.b, pb.ID, "sk-tenant-b-0123456789")
	if keys := k.keys(t, k.b, pb.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-tenant-b-0123456789" {
		t.Fatalf("B's own keys: %d", len(keys))
	}
	// Usage is counted per tenant.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.Admit(ctx, &ai.Settings{}) })
	var ub *sqlstore.AIUsage
	k.must(t, k.b, func(s sqlstore.AI) (err error) { ub, err = s.Usage(ctx); return err })
	if ub.MinuteRequests != 0 || ub.DayRequests != 0 {
		t.Fatalf("tenant B's usage %+v counts A's request", ub)
	}
}

// A malformed ID or name is not found (never a database error, never a 500).
func testAIMalformedIDs(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aibad")
	p := k.provider(t, k.a, "p")
	for _, id := range []string{"", "not-a-uuid", "' OR 1=1 --", strings.Repeat("a", 10_000), tutela.NewID()} {
		for name, fn := range map[string]func(sqlstore.AI) error{
			"Provider": func(s sqlstore.AI) error { _, err := s.Provider(ctx, id); return err },
			"UpdateProvider": func(s sqlstore.AI) error {
				return s.UpdateProvider(ctx, &ai.Provider{ID: id, Name: "x", BaseURL: "https://x.example.org"})
			},
			"DeleteProvider": func(s sqlstore.AI) error { return s.DeleteProvider(ctx, id) },
			"AddKey": func(s sqlstore.AI) error {
				_, err := s.AddKey(ctx, id, tutela.NewSecret("sk-0123456789abcdef"), "")
				return err
			},
			"Keys":          func(s sqlstore.AI) error { _, err := s.Keys(ctx, id); return err },
			"DeleteKey":     func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, id) },
			"Model":         func(s sqlstore.AI) error { _, err := s.Model(ctx, id); return err },
			"DeleteModel":   func(s sqlstore.AI) error { return s.DeleteModel(ctx, id) },
			"Purpose":       func(s sqlstore.AI) error { _, err := s.Purpose(ctx, id); return err },
			"DeletePurpose": func(s sqlstore.AI) error { return s.DeletePurpose(ctx, id) },
		} {
			if err := k.do(k.a, fn); tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Errorf("%s(%.20q): %v, want not_found", name, id, err)
			}
		}
	}
	// A malformed tenant is not found either.
	for _, tn := range []string{"", "x"} {
		mustCode(t, k.do(tn, func(s sqlstore.AI) error { _, err := s.Provider(ctx, p.ID); return err }), tutela.ENOTFOUND)
		mustCode(t, k.do(tn, func(s sqlstore.AI) error { return s.Admit(ctx, &ai.Settings{}) }), tutela.ENOTFOUND)
		mustCode(t, k.do(tn, func(s sqlstore.AI) error { return s.PutSettings(ctx, &ai.Settings{}) }), tutela.ENOTFOUND)
	}
}

func keyIDs(keys []ai.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

// Adding a key is rotation: the new key is primary, the one before is the fallback, and the one
// before that is deleted in the same transaction.
func testAIKeyRotation(t *testing.T, open Opener) {
	k := newAIKit(t, open, "airot")
	p := k.provider(t, k.a, "openai")
	other := k.provider(t, k.a, "other")
	k.addKey(t, k.a, other.ID, "sk-other-provider-000000")
	secrets := []string{"sk-first-key-1111111111", "sk-second-key-2222222222", "sk-third-key-3333333333"}
	var infos []*ai.KeyInfo
	for i, s := range secrets {
		infos = append(infos, k.addKey(t, k.a, p.ID, s))
		if i == 1 {
			continue // the third is added in the same clock tick as the second: the order still holds
		}
		k.clock.Add(time.Second)
	}
	if infos[0].Hint != "…1111" || infos[0].CreatedBy != "admin@example.org" || !tutela.ValidID(infos[0].ID) {
		t.Fatalf("key info %+v", infos[0])
	}
	keys := k.keys(t, k.a, p.ID)
	if len(keys) != 2 || keys[0].ID != infos[2].ID || keys[1].ID != infos[1].ID ||
		keys[0].Secret.Reveal() != secrets[2] || keys[1].Secret.Reveal() != secrets[1] {
		t.Fatalf("keys after three adds: %v, want [%s %s]", keyIDs(keys), infos[2].ID, infos[1].ID)
	}
	got := k.get(t, k.a, p.ID)
	if len(got.Keys) != 2 || got.Keys[0].ID != infos[2].ID || got.Keys[0].Hint != "…3333" || got.Keys[1].ID != infos[1].ID {
		t.Fatalf("provider's key infos %+v", got.Keys)
	}
	// The oldest key's row is gone, not just hidden, and its retirement is audited.
	var n int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM ai_provider_keys WHERE id = $1`, infos[0].ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("retired key rows: %d, %v", n, err)
	}
	ev := lastAIEvent(t, k.db, k.a, "ai.key_retire")
	if ev.Event.TargetID != p.ID || ev.Event.Details["key_id"] != infos[0].ID || ev.Event.Details["reason"] != "rotated" {
		t.Fatalf("retire event %+v", ev.Event)
	}
	// The other provider's key is untouched by this provider's rotations.
	if keys := k.keys(t, k.a, other.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-other-provider-000000" {
		t.Fatalf("other provider's keys: %v", keyIDs(keys))
	}
	// DeleteKey ends the overlap early; a second delete, or a key of another provider, is not found.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, infos[2].ID) })
	if keys := k.keys(t, k.a, p.ID); len(keys) != 1 || keys[0].ID != infos[1].ID {
		t.Fatalf("after delete: %v", keyIDs(keys))
	}
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, infos[2].ID) }), tutela.ENOTFOUND)
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, infos[0].ID) }), tutela.ENOTFOUND)
	otherKey := k.get(t, k.a, other.ID).Keys[0].ID
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, otherKey) }), tutela.ENOTFOUND)
	if ev := lastAIEvent(t, k.db, k.a, "ai.key_retire"); ev.Event.Details["key_id"] != infos[2].ID || ev.Event.Details["reason"] != "deleted" {
		t.Fatalf("delete event %+v", ev.Event)
	}
	// Deleting the provider deletes its last key.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) })
	if n := countRows(t, k.db, "ai_provider_keys"); n != 1 {
		t.Fatalf("%d key rows after deleting the provider, want 1 (the other provider's)", n)
	}
}

// Parallel rotations of one provider (on PostgreSQL, truly concurrent) still leave exactly
// ai.MaxActiveKeys keys, each opening.
func testAIKeyConcurrentRotation(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiconrot")
	p := k.provider(t, k.a, "openai")
	k.addKey(t, k.a, p.ID, "sk-first-key-before-the-rush") // makes the keyset outside the rush
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			err := k.do(k.a, func(s sqlstore.AI) error {
				_, err := s.AddKey(ctx, p.ID, tutela.NewSecret(fmt.Sprintf("sk-parallel-key-%04d", i)), "")
				return err
			})
			if err != nil {
				t.Errorf("AddKey %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	keys := k.keys(t, k.a, p.ID)
	if len(keys) != ai.MaxActiveKeys || countRows(t, k.db, "ai_provider_keys") != ai.MaxActiveKeys {
		t.Fatalf("%d keys after parallel rotations, want %d", len(keys), ai.MaxActiveKeys)
	}
	for _, key := range keys {
		if !strings.HasPrefix(key.Secret.Reveal(), "sk-parallel-key-") {
			t.Fatalf("kept key %s is not one of the last rotations", key.ID)
		}
	}
	if recs := aiActions(t, k.db, k.a); countAction(recs, "ai.key_add") != 13 || countAction(recs, "ai.key_retire") != 11 {
		t.Fatalf("%d adds and %d retirements audited, want 13 and 11", countAction(recs, "ai.key_add"), countAction(recs, "ai.key_retire"))
	}
}

func countAction(recs []sqlstore.AuditRecord, action string) int {
	n := 0
	for _, r := range recs {
		if r.Event.Action == action {
			n++
		}
	}
	return n
}

// A sealed key opens only in its own row, under its own tenant's keyset: a ciphertext copied
// into another key's row (of another provider, or of another tenant) does not open there.
func testAIKeyAAD(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiaad")
	p1, p2 := k.provider(t, k.a, "one"), k.provider(t, k.a, "two")
	pb := k.provider(t, k.b, "one")
	k1 := k.addKey(t, k.a, p1.ID, "sk-provider-one-11111111")
	k2 := k.addKey(t, k.a, p2.ID, "sk-provider-two-22222222")
	kb := k.addKey(t, k.b, pb.ID, "sk-tenant-b-key-33333333")
	sealed := func(id string) []byte {
		var ct []byte
		if err := k.db.SQL().QueryRowContext(ctx, `SELECT ciphertext FROM ai_provider_keys WHERE id = $1`, id).Scan(&ct); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, []byte("sk-provider")) || bytes.Contains(ct, []byte("sk-tenant")) {
			t.Fatalf("key %s stored in clear", id)
		}
		return ct
	}
	set := func(id string, ct []byte) {
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE ai_provider_keys SET ciphertext = $1 WHERE id = $2`, ct, id); err != nil {
			t.Fatal(err)
		}
	}
	c1, c2, cb := sealed(k1.ID), sealed(k2.ID), sealed(kb.ID)
	set(k2.ID, c1) // provider one's key into provider two's row
	if err := k.do(k.a, func(s sqlstore.AI) error { _, err := s.Keys(ctx, p2.ID); return err }); err == nil {
		t.Fatal("a ciphertext moved to another provider's row opened")
	} else if strings.Contains(err.Error(), "sk-provider") {
		t.Fatalf("error reveals a key: %v", err)
	}
	set(k2.ID, c2)
	set(kb.ID, c1) // tenant A's key into tenant B's row
	if err := k.do(k.b, func(s sqlstore.AI) error { _, err := s.Keys(ctx, pb.ID); return err }); err == nil {
		t.Fatal("tenant A's ciphertext opened in tenant B's row")
	}
	set(kb.ID, cb)
	// Restored, every key opens again: the failures above were the moves, not the store.
	if keys := k.keys(t, k.a, p2.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-provider-two-22222222" {
		t.Fatalf("restored key: %v", keyIDs(keys))
	}
	if keys := k.keys(t, k.b, pb.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-tenant-b-key-33333333" {
		t.Fatalf("restored key of B: %v", keyIDs(keys))
	}
	// A flipped bit does not open either.
	bad := slices.Clone(c1)
	bad[len(bad)-1] ^= 1
	set(k1.ID, bad)
	if err := k.do(k.a, func(s sqlstore.AI) error { _, err := s.Keys(ctx, p1.ID); return err }); err == nil {
		t.Fatal("a tampered ciphertext opened")
	}
}

// The key's text is in no audit event and no error, whichever way the key goes through the
// store; bad keys are refused without echoing them and store nothing.
func testAIKeyNotLeaked(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aileak")
	p := k.provider(t, k.a, "openai")
	keys := []string{"sk-live-AAAAAAAAAAAAAAAAAAAAAAAA", "sk-live-BBBBBBBBBBBBBBBBBBBBBBBB", "sk-live-CCCCCCCCCCCCCCCCCCCCCCCC"}
	for _, s := range keys {
		k.addKey(t, k.a, p.ID, s)
		k.clock.Add(time.Second)
	}
	info := k.get(t, k.a, p.ID).Keys[0]
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, info.ID) })
	var errs []error
	for _, bad := range []string{"", "sk with space DDDDDDDDDDDDDD", "sk-\x00-EEEEEEEEEEEEEEEEE", "sk-é-FFFFFFFFFFFFFFFFF",
		strings.Repeat("G", ai.MaxKeyBytes+1)} {
		err := k.do(k.a, func(s sqlstore.AI) error {
			_, err := s.AddKey(ctx, p.ID, tutela.NewSecret(bad), "")
			return err
		})
		mustField(t, err, "key")
		errs = append(errs, err)
		keys = append(keys, bad)
	}
	// AddKey on an unknown or foreign provider fails without the key too.
	errs = append(errs, k.do(k.b, func(s sqlstore.AI) error {
		_, err := s.AddKey(ctx, p.ID, tutela.NewSecret("sk-live-HHHHHHHHHHHHHHHHHHHHHHHH"), "")
		return err
	}))
	keys = append(keys, "sk-live-HHHHHHHHHHHHHHHHHHHHHHHH")
	if n := countRows(t, k.db, "ai_provider_keys"); n != 1 {
		t.Fatalf("%d key rows, want 1 (refused keys stored?)", n)
	}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) })
	recs := aiActions(t, k.db, "")
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.Event.Action]++
		for _, s := range keys {
			if len(s) > 4 && bytes.Contains(r.Canonical, []byte(s[4:])) {
				t.Fatalf("%s event holds a key: %s", r.Event.Action, r.Canonical)
			}
		}
	}
	for _, err := range errs {
		for _, s := range keys {
			if len(s) > 4 && strings.Contains(err.Error()+tutela.ErrorMessage(err), s[4:]) {
				t.Fatalf("error %v holds a key", err)
			}
		}
	}
	// Every key row's audit trail is there: three adds, two retirements (one rotation, one
	// delete), and the provider's deletion naming the last key's ID.
	if seen["ai.key_add"] != 3 || seen["ai.key_retire"] != 2 || seen["ai.provider_delete"] != 1 {
		t.Fatalf("audit actions %v", seen)
	}
	// A raw look at the table too: no stored event holds a key.
	rows, err := k.db.SQL().QueryContext(ctx, `SELECT canonical FROM audit_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var c []byte
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		n++
		for _, s := range keys {
			if len(s) > 4 && bytes.Contains(c, []byte(s[4:])) {
				t.Fatalf("a stored audit event holds a key: %s", c)
			}
		}
	}
	if err := rows.Err(); err != nil || n < len(recs) {
		t.Fatalf("read %d stored events (%v), want at least %d", n, err, len(recs))
	}
}

// Rotating the tenant's ai_keys keyset, then rewrapping (AIKeysSource, as `tutela keys rewrap`
// lists it) and retiring the old key: every API key still opens.
func testAIKeysRewrap(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiwrap")
	p := k.provider(t, k.a, "openai")
	k.addKey(t, k.a, p.ID, "sk-before-rotation-000001")
	k.clock.Add(time.Second)
	k.addKey(t, k.a, p.ID, "sk-before-rotation-000002")
	pb := k.provider(t, k.b, "openai")
	k.addKey(t, k.b, pb.ID, "sk-tenant-b-untouched-0003")
	if _, err := k.vault.Rotate(ctx, k.a, vault.PurposeAIKeys); err != nil {
		t.Fatal(err)
	}
	settle(k.clock, k.vault)
	src := sqlstore.AIKeysSource(k.db)
	if n, err := k.vault.Outdated(ctx, src, k.a, vault.PurposeAIKeys); err != nil || n != 2 {
		t.Fatalf("Outdated = %d, %v; want 2", n, err)
	}
	pr, err := k.vault.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 1})
	if err != nil || pr.Rewrapped != 2 {
		t.Fatalf("rewrap: %+v, %v; want 2 rewrapped", pr, err)
	}
	if _, err := k.vault.Retire(ctx, k.a, vault.PurposeAIKeys); err != nil {
		t.Fatal(err)
	}
	keys := k.keys(t, k.a, p.ID)
	if len(keys) != 2 || keys[0].Secret.Reveal() != "sk-before-rotation-000002" || keys[1].Secret.Reveal() != "sk-before-rotation-000001" {
		t.Fatalf("keys after rewrap and retire: %v", keyIDs(keys))
	}
	if keys := k.keys(t, k.b, pb.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-tenant-b-untouched-0003" {
		t.Fatalf("tenant B's key after A's rotation: %v", keyIDs(keys))
	}
}
