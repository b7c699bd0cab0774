package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/privacy"
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
	{"AIKeysStayWithTheirHostAndAreDistinct", testAIKeysGuarded},
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
	k := &aiKit{db: db, clock: clock, vault: v, a: createTenant(t, db, slug+"-a").ID, b: createTenant(t, db, slug+"-b").ID}
	// Only a purpose in the register may use the gateway; both tenants declare ai_triage.
	for _, tn := range []string{k.a, k.b} {
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Consent(tn).PutPurpose(ctx, &privacy.Purpose{Name: "ai_triage", Description: "Triage with a model",
				LawfulBasis: privacy.BasisContract})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return k
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
		"Provider":         func(s sqlstore.AI) error { _, err := s.Provider(ctx, p.ID); return err },
		"ProviderSettings": func(s sqlstore.AI) error { _, err := s.ProviderSettings(ctx, p.ID); return err },
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
		mustCode(t, k.do(tn, func(s sqlstore.AI) error { _, err := s.ProviderSettings(ctx, p.ID); return err }), tutela.ENOTFOUND)
		mustCode(t, k.do(tn, func(s sqlstore.AI) error { return s.Admit(ctx, &ai.Settings{}) }), tutela.ENOTFOUND)
		mustCode(t, k.do(tn, func(s sqlstore.AI) error { return s.PutSettings(ctx, &ai.Settings{}) }), tutela.ENOTFOUND)
	}
}
