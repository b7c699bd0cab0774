package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tutela"
	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

func TestLogout_ConfirmThenSignsOut(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "https://app.example/cb")
		// Opening the page signs nobody out.
		res, body := e.get("/t/" + slug + "/logout")
		wantStatus(t, res, body, http.StatusOK)
		if len(e.sessions(e.user)) != 1 {
			t.Fatal("GET /logout ended the session")
		}
		res, _ = e.do(e.client, http.MethodPost, "/t/"+slug+"/logout", url.Values{"csrf": {e.csrf(e.client)}}, "Origin", "https://evil.example")
		wantStatus(t, res, "", http.StatusForbidden)
		if len(e.sessions(e.user)) != 1 {
			t.Fatal("a cross-site logout ended the session")
		}
		res, _ = e.post("/t/"+slug+"/logout", url.Values{})
		wantRedirect(t, res, "/t/"+slug+"/logged-out")
		if len(e.sessions(e.user)) != 0 {
			t.Fatal("the session survived the logout")
		}
		cleared := false
		for _, c := range res.Cookies() {
			cleared = cleared || c.Name == "__Host-tutela_session" && c.MaxAge < 0
		}
		if !cleared {
			t.Fatal("the session cookie was not deleted")
		}
		res, body = e.get("/t/" + slug + "/logged-out")
		wantStatus(t, res, body, http.StatusOK)
		// Signed out, the next request needs the password again.
		id = e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		res, body = e.get("/t/" + slug + "/login?id=" + id)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="password"`) {
			t.Fatal("SSO after logout")
		}
	})
}

func TestSSO_SessionOfAnotherTenantIsNotUsed(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	ctx := context.Background()
	other := &tutela.Tenant{Slug: "beta", Name: "Beta", Region: "eu"}
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, other) }); err != nil {
		t.Fatal(err)
	}
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	wantRedirect(t, e.signIn(id, "ann@example.org", userPW), "https://app.example/cb")
	e.flow.mu.Lock()
	e.flow.pending["b1"] = &oidc.Pending{ID: "b1", TenantID: other.ID, ClientID: "x", SkipConsent: true, RedirectHost: "b.example"}
	e.flow.mu.Unlock()
	res, body := e.get("/t/beta/login?id=b1")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="password"`) {
		t.Fatalf("acme's session answered beta's request: %d", res.StatusCode)
	}
}

var resetCodeRE = regexp.MustCompile(`\n    (\S+)\n`)

func TestForgotAndReset_SameAnswerThenNewPassword(t *testing.T) {
	eachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		e := newEnv(t, d, identity.Config{})
		_, known := e.post("/t/"+slug+"/forgot", url.Values{"email": {"ann@example.org"}})
		_, unknown := e.post("/t/"+slug+"/forgot", url.Values{"email": {"nobody@example.org"}})
		norm := func(s string) string {
			s = regexp.MustCompile(`nonce="[^"]+"`).ReplaceAllString(s, "")
			return strings.NewReplacer("ann@example.org", "X", "nobody@example.org", "X").Replace(s)
		}
		if norm(known) != norm(unknown) || !strings.Contains(known, "If this address belongs to an account") {
			t.Fatalf("forgot answers differ or say nothing:\n%s\n---\n%s", known, unknown)
		}
		if _, err := e.ids.Identity.Jobs.RunDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ids.Identity.Jobs.RunDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		msgs := e.ids.Mail.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%d e-mails, want 1 (to the known account)", len(msgs))
		}
		m := resetCodeRE.FindStringSubmatch(msgs[0].Text)
		if m == nil || !strings.Contains(msgs[0].Text, "/t/acme/reset") {
			t.Fatalf("no code in %q", msgs[0].Text)
		}
		const newPW = "copper lantern orchard 47 riverbank"
		res, body := e.post("/t/"+slug+"/reset", url.Values{"code": {m[1]}, "password": {newPW}, "confirm": {newPW + "x"}})
		wantStatus(t, res, body, http.StatusBadRequest)
		res, body = e.post("/t/"+slug+"/reset", url.Values{"code": {"not-the-code"}, "password": {newPW}, "confirm": {newPW}})
		wantStatus(t, res, body, http.StatusBadRequest)
		if !strings.Contains(body, "This code is not valid") {
			t.Fatalf("bad code page:\n%s", body)
		}
		res, body = e.post("/t/"+slug+"/reset", url.Values{"code": {m[1]}, "password": {newPW}, "confirm": {newPW}})
		wantStatus(t, res, body, http.StatusOK)
		id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
		wantRedirect(t, e.signIn(id, "ann@example.org", newPW), "https://app.example/cb")
	})
}

func TestBranding_ShownButNeverMarkup(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	ctx := context.Background()
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
		e.tenant.Name = `Acme "<b>Care</b>"`
		if err := tx.UpdateTenant(ctx, e.tenant); err != nil {
			return err
		}
		return tx.SetTenantBranding(ctx, e.tenant.ID, sqlstore.Branding{LogoURL: "https://cdn.example.org/a.png?x=1&y=\"2", PrimaryColor: "#1a4d8f"})
	}); err == nil {
		t.Fatal("a logo URL with a quote was stored")
	}
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.UpdateTenant(ctx, e.tenant); err != nil {
			return err
		}
		return tx.SetTenantBranding(ctx, e.tenant.ID, sqlstore.Branding{LogoURL: "https://cdn.example.org/a.png?x=1&y=2", PrimaryColor: "#1a4d8f"})
	}); err != nil {
		t.Fatal(err)
	}
	_, body := e.get("/t/" + slug + "/forgot")
	if strings.Contains(body, "<b>Care</b>") || !strings.Contains(body, "&lt;b&gt;Care&lt;/b&gt;") {
		t.Fatalf("the tenant's name reached the page as markup:\n%s", body)
	}
	if !strings.Contains(body, `src="https://cdn.example.org/a.png?x=1&amp;y=2"`) || !strings.Contains(body, "--primary:#1a4d8f") {
		t.Fatalf("branding not shown:\n%s", body)
	}
}
