package oidc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"tutela"
	"tutela/authz"
	"tutela/oidc"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// idClaims are the ID token claims these tests look at.
type idClaims struct {
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	SID      string   `json:"sid"`
	Nonce    string   `json:"nonce"`
}

// verifyID checks an ID token with go-oidc, accepting only algs, and returns its claims.
func (r *rp) verifyID(t *testing.T, raw string, algs ...string) (*gooidc.IDToken, idClaims, error) {
	t.Helper()
	var c idClaims
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.conf.ClientID, SupportedSigningAlgs: algs}).Verify(context.Background(), raw)
	if err == nil {
		err = idt.Claims(&c)
	}
	return idt, c, err
}

// RFC 9470 and OIDC Core §3.1.2.1: acr_values asking for a second factor and max_age bounding
// the authentication's age are enforced where the sign-in completes the request, and the ID
// token says what was done.
func TestComplete_ACRValuesAndMaxAge(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			now := f.e.Clock.Now()
			v := oauth2.GenerateVerifier()
			authURL := func(opts ...oauth2.AuthCodeOption) string {
				return f.rp.conf.AuthCodeURL("st4te", append(opts, oauth2.S256ChallengeOption(v))...)
			}
			signedIn := oidc.Authenticated{UserID: f.u.ID, SessionID: f.sess.ID}

			id := f.e.Authorize(t, authURL(oauth2.SetAuthURLParam("acr_values", authz.ACRMFA)))
			if p, err := f.e.Provider.Pending(ctx, f.tn.ID, id); err != nil || !p.RequireMFA {
				t.Fatalf("pending %+v %v", p, err)
			}
			// The provider reads the session: a password-only one does not satisfy acr mfa,
			// whatever the caller says.
			if _, err := f.e.Provider.Complete(ctx, f.tn.ID, id, signedIn); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("password only for acr mfa: %v", err)
			}
			f.e.Clock.Add(10 * time.Second)
			f.e.StepUp(t, f.sess.ID, "otp")
			q := f.complete(t, id, signedIn)
			_, tok := f.rp.exchange(t, q.Get("code"), v)
			_, c, err := f.rp.verifyID(t, str(tok, "id_token"))
			if err != nil {
				t.Fatal(err)
			}
			if c.ACR != authz.ACRMFA || !slices.Equal(c.AMR, []string{"pwd", "otp"}) || c.AuthTime != now.Add(10*time.Second).Unix() {
				t.Fatalf("ID token %+v", c)
			}

			// A password-only session of another sign-in is the password class.
			other := f.e.SignIn(t, "acme", "ana@example.org", pw)
			id = f.e.Authorize(t, authURL())
			q = f.complete(t, id, oidc.Authenticated{UserID: f.u.ID, SessionID: other.ID})
			_, tok = f.rp.exchange(t, q.Get("code"), v)
			if _, c, err = f.rp.verifyID(t, str(tok, "id_token")); err != nil || c.ACR != authz.ACRPassword {
				t.Fatalf("ID token %+v %v", c, err)
			}

			// max_age counts at the time of the request: a sign-in 2 minutes old is too old for
			// max_age=60, one after the request began is fresh however long the pages take.
			f.e.Clock.Add(2 * time.Minute)
			id = f.e.Authorize(t, authURL(oauth2.SetAuthURLParam("max_age", "60")))
			if _, err := f.e.Provider.Complete(ctx, f.tn.ID, id, oidc.Authenticated{UserID: f.u.ID, SessionID: other.ID}); tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Fatalf("authentication 2 minutes old for max_age=60: %v", err)
			}
			fresh := f.e.SignIn(t, "acme", "ana@example.org", pw)
			signedAt := f.e.Clock.Now()
			f.e.Clock.Add(5 * time.Minute) // a slow consent page
			q = f.complete(t, id, oidc.Authenticated{UserID: f.u.ID, SessionID: fresh.ID})
			_, tok = f.rp.exchange(t, q.Get("code"), v)
			if _, c, err = f.rp.verifyID(t, str(tok, "id_token")); err != nil || c.AuthTime != signedAt.Unix() {
				t.Fatalf("ID token %+v %v", c, err)
			}
		})
	}
}

// OIDC RP-Initiated Logout 1.0: with an id_token_hint the sign-in session it names ends (and
// every application's session made from it); the browser goes to a registered
// post_logout_redirect_uri only. A forged hint or an unregistered URI changes nothing.
func TestEndSession_LogsOutToRegisteredURIOnly(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			const back = "http://127.0.0.1:9/logged-out"
			c := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{PostLogoutRedirectURIs: []string{back}})
			code, v := c.code(t, f)
			_, tok := c.exchange(t, code, v)
			idt := str(tok, "id_token")
			if _, claims, err := c.verifyID(t, idt); err != nil || claims.SID != f.sess.ID {
				t.Fatalf("ID token sid %+v %v", claims, err)
			}
			endSession := f.iss + "/end_session"
			sessionActive := func() bool {
				t.Helper()
				var s *sqlstore.Session
				err := f.e.DB.View(ctx, func(tx *sqlstore.Tx) (err error) {
					s, err = tx.SessionByID(ctx, f.sess.ID)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return s.Active(f.e.Clock.Now())
			}

			parts := strings.Split(idt, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 1
			forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
			for name, q := range map[string]url.Values{
				"unregistered post_logout_redirect_uri": {"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://evil.example/"}},
				"registered URI with a suffix":          {"id_token_hint": {idt}, "post_logout_redirect_uri": {back + "/evil"}},
				"forged id_token_hint":                  {"id_token_hint": {forged}, "post_logout_redirect_uri": {back}},
			} {
				status, loc := get(t, endSession+"?"+q.Encode())
				if status != http.StatusBadRequest || strings.HasPrefix(loc, "https://evil.example") || strings.HasPrefix(loc, back) {
					t.Fatalf("%s: %d %q", name, status, loc)
				}
				if !sessionActive() {
					t.Fatalf("%s ended the session", name)
				}
			}

			status, loc := get(t, endSession+"?"+url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {back},
				"state": {"bye"}}.Encode())
			if status != http.StatusFound || loc != back+"?state=bye" {
				t.Fatalf("logout: %d %q", status, loc)
			}
			if sessionActive() {
				t.Fatal("the browser session outlived the logout")
			}
			if ui, rf := c.tokensWork(t, str(tok, "access_token"), str(tok, "refresh_token")); ui || rf {
				t.Fatalf("the application's session outlived the logout: userinfo %v refresh %v", ui, rf)
			}
		})
	}
}

// The ID token is signed with the algorithm the client registered (EdDSA by default, ES256,
// RS256 for relying parties that only speak RSA), and a relying party that accepts only that
// algorithm verifies it with go-oidc; the JWKS publishes a key of each.
func TestIDToken_SignedWithTheClientsAlgorithm(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, d)
			for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
				c := newRP(t, f.e, "acme", f.tn.ID, sqlstore.OIDCClient{IDTokenAlg: alg})
				code, v := c.code(t, f)
				_, tok := c.exchange(t, code, v)
				raw := str(tok, "id_token")
				if got := headerAlg(t, raw); got != alg {
					t.Fatalf("%s client: ID token alg %s", alg, got)
				}
				_, claims, err := c.verifyID(t, raw, alg)
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				// OP-IDToken-kid; OP-nonce-NoReq-code: no nonce asked, none given.
				if kidOf(t, raw) == "" || claims.Nonce != "" {
					t.Fatalf("%s: kid %q nonce %q", alg, kidOf(t, raw), claims.Nonce)
				}
				other := "ES256"
				if alg == "ES256" {
					other = "RS256"
				}
				if _, _, err := c.verifyID(t, raw, other); err == nil {
					t.Fatalf("%s token accepted by a verifier that allows only %s", alg, other)
				}
			}
			res, err := http.Get(f.iss + "/keys")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var jwks struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.NewDecoder(res.Body).Decode(&jwks); err != nil {
				t.Fatal(err)
			}
			algs := map[string]bool{}
			for _, k := range jwks.Keys {
				algs[k["alg"].(string)] = true
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
					if _, ok := k[private]; ok {
						t.Fatalf("JWKS key %v has private member %s", k["kid"], private)
					}
				}
			}
			if !algs["EdDSA"] || !algs["ES256"] || !algs["RS256"] || len(algs) != 3 {
				t.Fatalf("JWKS algorithms %v", algs)
			}
		})
	}
}

func headerAlg(t *testing.T, jwt string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Alg
}
