package httpapi_test

import (
	"context"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

func TestTenantBranding_PatchValidatedNeverMarkup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	ana := e.login(t, "acme", "ana@example.org", pw, "")
	stored := func() sqlstore.Branding {
		t.Helper()
		var b sqlstore.Branding
		if err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
			b, err = tx.TenantBranding(context.Background(), tn.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := `{"branding":{"display_name":"Clinique du Lac","logo_url":"https://cdn.example.org/logo.png","primary_color":"#1a4d8f","accent_color":"#8a1538"}}`
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, good, "", root.AccessToken); res.StatusCode != 200 {
		t.Fatalf("branding: %d %s", res.StatusCode, b)
	}
	want := sqlstore.Branding{DisplayName: "Clinique du Lac", LogoURL: "https://cdn.example.org/logo.png", PrimaryColor: "#1a4d8f", AccentColor: "#8a1538"}
	if got := stored(); got != want {
		t.Fatalf("stored %+v", got)
	}
	for name, c := range map[string]struct{ body, field string }{
		"low contrast":  {`{"branding":{"primary_color":"#f0e68c"}}`, "branding.primary_color"},
		"not a colour":  {`{"branding":{"accent_color":"red; background:url(//evil)"}}`, "branding.accent_color"},
		"markup name":   {`{"branding":{"display_name":"<img src=x onerror=alert(1)>"}}`, "branding.display_name"},
		"data: logo":    {`{"branding":{"logo_url":"data:image/svg+xml;base64,PHN2Zz4="}}`, "branding.logo_url"},
		"script logo":   {`{"branding":{"logo_url":"javascript:alert(1)"}}`, "branding.logo_url"},
		"unknown field": {`{"branding":{"css":"body{display:none}"}}`, ""},
	} {
		res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, c.body, "", root.AccessToken)
		eb := wantError(t, res, b, 400, tutela.EINVALID)
		if c.field != "" && eb.Error.Field != c.field {
			t.Errorf("%s: field %q, want %q", name, eb.Error.Field, c.field)
		}
		if got := stored(); got != want {
			t.Fatalf("%s: a refused branding changed the stored one: %+v", name, got)
		}
	}
	// A user without tenants UPDATE cannot change it.
	res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"branding":{}}`, "", ana.AccessToken)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	// An empty object removes it.
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"branding":{}}`, "", root.AccessToken); res.StatusCode != 200 {
		t.Fatalf("clear branding: %d %s", res.StatusCode, b)
	}
	if got := stored(); got != (sqlstore.Branding{}) {
		t.Fatalf("branding not removed: %+v", got)
	}
}
