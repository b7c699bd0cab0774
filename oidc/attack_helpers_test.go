package oidc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"tutela"
	"tutela/oidc"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
)

// fixture is one running Tutela with tenant acme, its user ana signed in (the browser
// session the hosted pages would have), and a confidential web client.
type fixture struct {
	e    *oidctest.Env
	tn   *tutela.Tenant
	u    *tutela.User
	sess *oidctest.Session
	rp   *rp
	// iss is the tenant's issuer.
	iss string
}

func newFixture(t *testing.T, d sqlstore.Dialect) *fixture {
	t.Helper()
	e := oidctest.New(t, d, nil)
	tn, u := e.Seed(t, "acme", "ana@example.org", pw)
	r := newRP(t, e, "acme", tn.ID, sqlstore.OIDCClient{})
	sess := e.SignIn(t, "acme", "ana@example.org", pw)
	return &fixture{e: e, tn: tn, u: u, sess: sess, rp: r, iss: e.URL + "/t/acme"}
}

// params is a valid authorization request of r with a PKCE S256 challenge of verifier.
func (r *rp) params(verifier string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {r.conf.ClientID}, "redirect_uri": {r.conf.RedirectURL},
		"scope": {"openid profile offline_access"}, "state": {"st4te"}, "nonce": {"n0nce"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
}

// code runs the flow to the authorization response and returns its code and the verifier.
func (r *rp) code(t *testing.T, f *fixture, amr ...string) (code, verifier string) {
	t.Helper()
	if amr == nil {
		amr = []string{"pwd"}
	}
	verifier = oauth2.GenerateVerifier()
	q := r.signIn(t, f.tn.ID, f.sess, amr, oauth2.S256ChallengeOption(verifier))
	if len(q.Get("code")) != 43 {
		t.Fatalf("no code: %v", q)
	}
	return q.Get("code"), verifier
}

// exchange redeems code at the tenant's token endpoint as r.
func (r *rp) exchange(t *testing.T, code, verifier string) (int, map[string]any) {
	t.Helper()
	return r.post(t, r.provider.Endpoint().TokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {r.conf.RedirectURL}, "code_verifier": {verifier}})
}

// post sends form to endpoint authenticated as r: client_secret_basic, or client_id alone
// for a public client.
func (r *rp) post(t *testing.T, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	return postAs(t, endpoint, r.conf.ClientID, r.conf.ClientSecret, form)
}

func postAs(t *testing.T, endpoint, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	if secret == "" {
		form.Set("client_id", id)
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	res, err := oidctest.NoRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := map[string]any{}
	if len(body) > 0 && json.Unmarshal(body, &out) != nil {
		out["raw"] = string(body)
	}
	return res.StatusCode, out
}

// get requests u without following redirects and returns the status and Location.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := oidctest.NoRedirects.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

// authorizeResponse parses the parameters of an authorization response redirect (query,
// or fragment for the implicit flow's response modes).
func authorizeResponse(t *testing.T, loc string) (*url.URL, url.Values) {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if fq, err := url.ParseQuery(u.Fragment); err == nil {
		for k, v := range fq {
			q[k] = append(q[k], v...)
		}
	}
	return u, q
}

// complete finishes authorization request id for f's user, as the hosted pages do, and
// returns the authorization response parameters.
func (f *fixture) complete(t *testing.T, id string, a oidc.Authenticated) url.Values {
	t.Helper()
	cb, err := f.e.Provider.Complete(context.Background(), f.tn.ID, id, a)
	if err != nil {
		t.Fatal(err)
	}
	_, q := authorizeResponse(t, cb)
	return q
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }

// kidOf is the key ID in a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil || hdr.Kid == "" {
		t.Fatalf("JWT header %s: %v", h, err)
	}
	return hdr.Kid
}

// str reads a string member of a JSON answer.
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
