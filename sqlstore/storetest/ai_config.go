package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
)

func testAIModelsPurposes(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aimod")
	p := k.provider(t, k.a, "openrouter")
	p2 := k.provider(t, k.a, "azure")
	// A provider that is not the tenant's, or not a provider at all, is refused on provider_id.
	for _, pid := range []string{tutela.NewID(), "nope", ""} {
		mustField(t, k.do(k.a, func(s sqlstore.AI) error { return s.PutModel(ctx, &ai.Model{Name: "m", ProviderID: pid}) }), "provider_id")
	}
	mustField(t, k.do(k.a, func(s sqlstore.AI) error {
		return s.PutModel(ctx, &ai.Model{Name: "bad name", ProviderID: p.ID})
	}), "name")
	mustField(t, k.do(k.a, func(s sqlstore.AI) error {
		return s.PutModel(ctx, &ai.Model{Name: "m", ProviderID: p.ID, Kind: "image"})
	}), "kind")
	if n := countRows(t, k.db, "ai_models"); n != 0 {
		t.Fatalf("%d models after refusals", n)
	}
	m := &ai.Model{Name: "gpt-4o-mini", ProviderID: p.ID}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.PutModel(ctx, m) })
	if m.Upstream != "gpt-4o-mini" || m.Kind != ai.KindChat || m.TenantID != k.a {
		t.Fatalf("model defaults %+v", m)
	}
	created := m.CreatedAt
	// Replacing keeps CreatedAt and changes the rest.
	k.clock.Add(time.Hour)
	k.must(t, k.a, func(s sqlstore.AI) error {
		return s.PutModel(ctx, &ai.Model{Name: "gpt-4o-mini", ProviderID: p2.ID, Upstream: "openai/gpt-4o-mini", Kind: ai.KindChat})
	})
	k.must(t, k.a, func(s sqlstore.AI) error {
		return s.PutModel(ctx, &ai.Model{Name: "text-embedding-3-small", ProviderID: p.ID, Kind: ai.KindEmbedding})
	})
	var got *ai.Model
	var models []*ai.Model
	k.must(t, k.a, func(s sqlstore.AI) (err error) {
		if got, err = s.Model(ctx, "gpt-4o-mini"); err != nil {
			return err
		}
		models, err = s.Models(ctx)
		return err
	})
	if got.ProviderID != p2.ID || got.Upstream != "openai/gpt-4o-mini" || !got.CreatedAt.Equal(created) {
		t.Fatalf("replaced model %+v (created %v)", got, created)
	}
	if len(models) != 2 || models[0].Name != "gpt-4o-mini" || models[1].Kind != ai.KindEmbedding {
		t.Fatalf("models %+v", models)
	}
	if ev := lastAIEvent(t, k.db, k.a, "ai.model_put"); ev.Event.TargetType != "ai_model" || ev.Event.TargetID != "text-embedding-3-small" {
		t.Fatalf("model event %+v", ev.Event)
	}
	// A purpose may list only existing models; the error names the missing one.
	err := k.do(k.a, func(s sqlstore.AI) error {
		return s.PutPurpose(ctx, &ai.Purpose{Purpose: "ai_triage", Models: []string{"gpt-4o-mini", "claude-3"}})
	})
	mustField(t, err, "models")
	if !strings.Contains(tutela.ErrorMessage(err), "claude-3") {
		t.Fatalf("error %q does not name the missing model", tutela.ErrorMessage(err))
	}
	for _, bad := range []ai.Purpose{
		{Purpose: "Bad", Models: []string{"gpt-4o-mini"}},
		{Purpose: "ai_triage"},
		{Purpose: "ai_triage", Models: []string{"gpt-4o-mini", "gpt-4o-mini"}},
		{Purpose: "ai_triage", Models: []string{"gpt-4o-mini"}, MaxOutputTokens: -1},
	} {
		if err := k.do(k.a, func(s sqlstore.AI) error { return s.PutPurpose(ctx, &bad) }); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("PutPurpose(%+v) = %v, want invalid", bad, err)
		}
	}
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { _, err := s.Purpose(ctx, "ai_triage"); return err }), tutela.ENOTFOUND)
	pur := &ai.Purpose{Purpose: "ai_triage", Models: []string{"gpt-4o-mini"}, MaxOutputTokens: 512}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.PutPurpose(ctx, pur) })
	var gp *ai.Purpose
	k.must(t, k.a, func(s sqlstore.AI) (err error) { gp, err = s.Purpose(ctx, "ai_triage"); return err })
	if fmt.Sprint(gp.Models) != "[gpt-4o-mini]" || gp.MaxOutputTokens != 512 || !gp.UpdatedAt.Equal(k.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("purpose %+v", gp)
	}
	// Replacing the purpose's entry.
	k.must(t, k.a, func(s sqlstore.AI) error {
		return s.PutPurpose(ctx, &ai.Purpose{Purpose: "ai_triage", Models: []string{"gpt-4o-mini", "text-embedding-3-small"}})
	})
	var ps []*ai.Purpose
	k.must(t, k.a, func(s sqlstore.AI) (err error) { ps, err = s.Purposes(ctx); return err })
	if len(ps) != 1 || len(ps[0].Models) != 2 || ps[0].MaxOutputTokens != 0 {
		t.Fatalf("purposes %+v", ps)
	}
	// A model a purpose lists cannot go; a provider a model uses cannot go.
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteModel(ctx, "text-embedding-3-small") }), tutela.ECONFLICT)
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) }), tutela.ECONFLICT)
	if n := countRows(t, k.db, "ai_models"); n != 2 {
		t.Fatalf("%d models after refused deletes", n)
	}
	// Once the purpose is gone, the model can go; then the provider.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeletePurpose(ctx, "ai_triage") })
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeletePurpose(ctx, "ai_triage") }), tutela.ENOTFOUND)
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteModel(ctx, "text-embedding-3-small") })
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteModel(ctx, "text-embedding-3-small") }), tutela.ENOTFOUND)
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) })
	for _, a := range []string{"ai.purpose_put", "ai.purpose_delete", "ai.model_delete", "ai.provider_delete"} {
		lastAIEvent(t, k.db, k.a, a)
	}
}

func testAIModelCap(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aimcap")
	p := k.provider(t, k.a, "p")
	k.must(t, k.a, func(s sqlstore.AI) error {
		for i := range ai.MaxModelsPerTenant {
			if err := s.PutModel(ctx, &ai.Model{Name: fmt.Sprintf("m%d", i), ProviderID: p.ID}); err != nil {
				return err
			}
		}
		return nil
	})
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.PutModel(ctx, &ai.Model{Name: "one-more", ProviderID: p.ID}) }), tutela.ECONFLICT)
	// At the cap, an existing model can still be replaced.
	k.must(t, k.a, func(s sqlstore.AI) error {
		return s.PutModel(ctx, &ai.Model{Name: "m0", ProviderID: p.ID, Upstream: "other"})
	})
}

func testAISettings(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiset")
	var st *ai.Settings
	k.must(t, k.a, func(s sqlstore.AI) (err error) { st, err = s.Settings(ctx); return err })
	if st.RequestsPerMinute != 0 || st.TokensPerDay != 0 || st.TokensPerMonth != 0 || st.IDCountries == nil || len(st.IDCountries) != 0 {
		t.Fatalf("default settings %+v", st)
	}
	put := &ai.Settings{RequestsPerMinute: 60, TokensPerDay: 1_000_000, TokensPerMonth: 20_000_000, IDCountries: []string{"ch", "JO"}}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.PutSettings(ctx, put) })
	for _, bad := range []struct {
		st    ai.Settings
		field string
	}{
		{ai.Settings{RequestsPerMinute: -1}, "requests_per_minute"},
		{ai.Settings{TokensPerDay: -1}, "tokens_per_day"},
		{ai.Settings{IDCountries: []string{"CHE"}}, "id_countries"},
		{ai.Settings{IDCountries: []string{"ch", "CH"}}, "id_countries"},
	} {
		mustField(t, k.do(k.a, func(s sqlstore.AI) error { return s.PutSettings(ctx, &bad.st) }), bad.field)
	}
	k.must(t, k.a, func(s sqlstore.AI) (err error) { st, err = s.Settings(ctx); return err })
	if st.RequestsPerMinute != 60 || st.TokensPerDay != 1_000_000 || st.TokensPerMonth != 20_000_000 ||
		fmt.Sprint(st.IDCountries) != "[CH JO]" || !st.UpdatedAt.Equal(k.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("settings after put and refused puts: %+v", st)
	}
	ev := lastAIEvent(t, k.db, k.a, "ai.settings_put")
	if ev.Event.TargetType != "ai_settings" || fmt.Sprint(ev.Event.Details["id_countries"]) != "[CH JO]" {
		t.Fatalf("settings event %+v", ev.Event)
	}
	// Tenant B still has the defaults.
	k.must(t, k.b, func(s sqlstore.AI) (err error) { st, err = s.Settings(ctx); return err })
	if st.RequestsPerMinute != 0 {
		t.Fatalf("tenant B sees A's settings: %+v", st)
	}
}
