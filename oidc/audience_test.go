package oidc_test

import (
	"context"
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"tutela/oidc/oidctest"
	"tutela/sqlstore"
)

// ASVS 10.3.1 and tenant isolation: a provider access token is refused by /v1, a /v1 token is
// refused by userinfo, a tenant's access token is refused by another tenant's userinfo, and a
// client of one tenant is unknown at another's authorize.
func TestAudience_ProviderAndAPITokensAndTenantsKeptApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := oidctest.New(t, sqlstore.SQLite, nil)
	tn, _ := e.Seed(t, "acme", "ana@example.org", pw)
	e.Seed(t, "beta", "bob@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{})
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	verifier := oauth2.GenerateVerifier()
	q := r.signIn(t, tn.ID, sess, []string{"pwd"}, oauth2.S256ChallengeOption(verifier))
	tok, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	get := func(u, bearer string) int {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		res, err := oidctest.NoRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := get(e.URL+"/t/acme/userinfo", tok.AccessToken); st != 200 {
		t.Fatalf("own userinfo: %d", st)
	}
	if st := get(e.URL+"/v1/auth/me", tok.AccessToken); st < 400 {
		t.Errorf("provider access token accepted by /v1: %d", st)
	}
	if st := get(e.URL+"/t/acme/userinfo", sess.Access); st < 400 {
		t.Errorf("/v1 access token accepted by userinfo: %d", st)
	}
	if st := get(e.URL+"/t/beta/userinfo", tok.AccessToken); st < 400 {
		t.Errorf("tenant acme's access token accepted by tenant beta's userinfo: %d", st)
	}
	authURL := r.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))
	res, err := oidctest.NoRedirects.Get(e.URL + "/t/beta/authorize" + authURL[len(e.URL+"/t/acme/authorize"):])
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusFound {
		t.Errorf("tenant acme's client accepted at tenant beta's authorize: Location %s", res.Header.Get("Location"))
	}
}
