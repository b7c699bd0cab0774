package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"tutela"
	"tutela/authz"
	"tutela/oidc/oidctest"
	"tutela/sqlstore"
	"tutela/web/webtest"
)

// Issue 15's browser journeys: the hosted pages driven in Debian's Chromium by a real relying
// party (go-oidc + x/oauth2, code flow with PKCE S256), with axe-core run inside every page the
// journey shows and the page's console checked for script errors and CSP refusals.

const browserPW = "amber falcon meadow 93 tidewater"

// browserEnv is a whole Tutela (provider, API, hosted pages) on http://localhost, a relying
// party on 127.0.0.1 and one headless Chromium.
type browserEnv struct {
	e      *oidctest.Env
	b      *webtest.Browser
	tenant *tutela.Tenant
	rp     *browserRP
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	b := webtest.Start(t)
	e := oidctest.New(t, sqlstore.SQLite, oidctest.WebPages)
	tn, _ := e.Seed(t, "acme", "owner@example.org", browserPW)
	return &browserEnv{e: e, b: b, tenant: tn, rp: newBrowserRP(t, e, tn.ID)}
}

// browserRP is the relying party: /start sends the browser to the provider with a fresh state,
// nonce and PKCE verifier; /callback exchanges the code, verifies the ID token and shows who
// signed in.
type browserRP struct {
	srv      *httptest.Server
	conf     oauth2.Config
	verifier *gooidc.IDTokenVerifier

	mu      sync.Mutex
	pending map[string]rpPending // by state
	signed  []rpSignIn
}

type rpPending struct{ verifier, nonce string }

// rpSignIn is what the relying party learnt from one completed sign-in.
type rpSignIn struct {
	Subject string
	ACR     string
	AMR     []string
}

func newBrowserRP(t *testing.T, e *oidctest.Env, tenantID string) *browserRP {
	t.Helper()
	r := &browserRP{pending: map[string]rpPending{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", r.start)
	mux.HandleFunc("GET /callback", r.callback)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	cl, secret := e.Client(t, tenantID, sqlstore.OIDCClient{Name: "Clinic Portal",
		RedirectURIs: []string{r.srv.URL + "/callback"}})
	p, err := gooidc.NewProvider(context.Background(), e.URL+"/t/acme")
	if err != nil {
		t.Fatal(err)
	}
	r.verifier = p.Verifier(&gooidc.Config{ClientID: cl.ID, Now: e.Clock.Now,
		SupportedSigningAlgs: []string{"EdDSA", "ES256", "RS256"}})
	r.conf = oauth2.Config{ClientID: cl.ID, ClientSecret: secret, Endpoint: p.Endpoint(),
		RedirectURL: r.srv.URL + "/callback", Scopes: []string{"openid", "profile", "email"}}
	return r
}

// startURL is where a journey begins; acr asks for a second factor (RFC 9470 acr_values).
func (r *browserRP) startURL(acr string) string {
	return r.srv.URL + "/start?" + url.Values{"acr": {acr}}.Encode()
}

func (r *browserRP) start(w http.ResponseWriter, req *http.Request) {
	state, nonce, verifier := tutela.RandomToken(16), tutela.RandomToken(16), oauth2.GenerateVerifier()
	r.mu.Lock()
	r.pending[state] = rpPending{verifier: verifier, nonce: nonce}
	r.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)}
	if acr := req.URL.Query().Get("acr"); acr != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", acr))
	}
	http.Redirect(w, req, r.conf.AuthCodeURL(state, opts...), http.StatusFound)
}

var rpPage = template.Must(template.New("rp").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Clinic Portal</title></head><body><main><h1 id="result">{{.Result}}</h1>
{{with .SignIn}}<p>Subject <span id="subject">{{.Subject}}</span></p>{{end}}</main></body></html>`))

func (r *browserRP) callback(w http.ResponseWriter, req *http.Request) {
	show := func(status int, result string, s *rpSignIn) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_ = rpPage.Execute(w, struct {
			Result string
			SignIn *rpSignIn
		}{result, s})
	}
	q := req.URL.Query()
	r.mu.Lock()
	pd, ok := r.pending[q.Get("state")]
	delete(r.pending, q.Get("state"))
	r.mu.Unlock()
	switch {
	case !ok:
		show(http.StatusBadRequest, "unknown state", nil)
		return
	case q.Get("error") != "":
		show(http.StatusForbidden, "refused: "+q.Get("error"), nil)
		return
	}
	tok, err := r.conf.Exchange(req.Context(), q.Get("code"), oauth2.VerifierOption(pd.verifier))
	if err != nil {
		show(http.StatusBadGateway, "code exchange failed: "+err.Error(), nil)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(req.Context(), raw)
	if err != nil || idt.Nonce != pd.nonce {
		show(http.StatusBadGateway, fmt.Sprintf("ID token refused: %v", err), nil)
		return
	}
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		show(http.StatusBadGateway, "claims: "+err.Error(), nil)
		return
	}
	s := rpSignIn{Subject: idt.Subject, ACR: claims.ACR, AMR: claims.AMR}
	r.mu.Lock()
	r.signed = append(r.signed, s)
	r.mu.Unlock()
	show(http.StatusOK, "Signed in", &s)
}

func (r *browserRP) all() []rpSignIn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.signed)
}

func (r *browserRP) last(t *testing.T) rpSignIn {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.signed) == 0 {
		t.Fatal("the relying party saw no sign-in")
	}
	return r.signed[len(r.signed)-1]
}

// clickGuard bounds the wait for the page a click leads to (a guard against hanging, not a
// measurement).
const clickGuard = 30 * time.Second

// journey drives one tab through the pages.
type journey struct {
	t   *testing.T
	tab *webtest.Tab
}

func (be *browserEnv) journey(t *testing.T) *journey {
	return &journey{t: t, tab: be.b.NewTab(t)}
}

// open loads u, following redirects, and checks the page the browser lands on (see at).
func (j *journey) open(u, path, marker, screenshot string) {
	j.t.Helper()
	res, err := chromedp.Run(j.tab.Ctx, chromedp.NavigateResponse(u))
	if err != nil {
		j.t.Fatalf("open %s: %v", u, err)
	}
	j.at(res, path, marker, screenshot)
}

// click clicks sel, which navigates (a submit button, a link, or a passkey button whose script
// posts the form), and checks the page the browser lands on.
func (j *journey) click(sel, path, marker, screenshot string) {
	j.t.Helper()
	// A click that navigates nowhere (a passkey ceremony the page gave up on) would block until
	// the tab's deadline; this guard ends it sooner with what the page shows.
	ctx, cancel := context.WithTimeout(j.tab.Ctx, clickGuard)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		body, _ := chromedp.Run(j.tab.Ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		j.t.Fatalf("click %s: %v; console %q; page:\n%s", sel, err, j.tab.ConsoleErrors(), body)
	}
	j.at(res, path, marker, screenshot)
}

// at checks one step of a journey: the document answered 200 at path and shows marker; axe
// finds no serious or critical violation; the console has no error (a script refused by the
// CSP shows there); and the screenshot is taken when named.
func (j *journey) at(res *network.Response, path, marker, screenshot string) {
	j.t.Helper()
	loc, err := chromedp.Run(j.tab.Ctx, chromedp.Location())
	if err != nil {
		j.t.Fatal(err)
	}
	body, _ := chromedp.Run(j.tab.Ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if u, err := url.Parse(loc); err != nil || u.Path != path || res == nil || res.Status != http.StatusOK {
		status := int64(0)
		if res != nil {
			status = res.Status
		}
		j.t.Fatalf("at %s (status %d), want %s with 200:\n%s", loc, status, path, body)
	}
	wctx, cancel := context.WithTimeout(j.tab.Ctx, clickGuard)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(marker))); err != nil {
		j.t.Fatalf("%s: %s not shown: %v\n%s", path, marker, err, body)
	}
	webtest.CheckAccessible(j.t, j.tab.Ctx, path)
	if errs := j.tab.ConsoleErrors(); len(errs) != 0 {
		j.t.Errorf("%s: console errors: %q", path, errs)
	}
	if screenshot != "" {
		if p, err := webtest.Screenshot(j.tab.Ctx, screenshot); err != nil {
			j.t.Error(err)
		} else {
			j.t.Logf("screenshot %s", p)
		}
	}
}

// fill types into the form fields named by id.
func (j *journey) fill(fields map[string]string) {
	j.t.Helper()
	for id, v := range fields {
		if err := chromedp.Do(j.tab.Ctx, chromedp.SendKeys(chromedp.ID(id), v)); err != nil {
			j.t.Fatalf("type into #%s: %v", id, err)
		}
	}
}

// arrive waits until the browser, driven by the page's own script rather than a click, has
// landed on path, then checks that page like at does.
func (j *journey) arrive(path, marker, screenshot string) {
	j.t.Helper()
	ctx, cancel := context.WithTimeout(j.tab.Ctx, clickGuard)
	defer cancel()
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if u, perr := url.Parse(loc); err == nil && perr == nil && u.Path == path {
			break
		}
		if err := chromedp.Do(ctx, chromedp.Sleep(50*time.Millisecond)); err != nil {
			body, _ := chromedp.Run(j.tab.Ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			j.t.Fatalf("never reached %s (at %s): %v; console %q; page:\n%s", path, loc, err, j.tab.ConsoleErrors(), body)
		}
	}
	if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		j.t.Fatal(err)
	}
	// The document's own status, as the Navigation Timing entry records it.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`performance.getEntriesByType("navigation")[0].responseStatus`))
	if err != nil {
		j.t.Fatal(err)
	}
	j.at(&network.Response{Status: status}, path, marker, screenshot)
}

// browserAPI calls the /v1 API with an access token and decodes the JSON answer into v (when
// not nil).
func browserAPI(t *testing.T, e *oidctest.Env, access, method, path string, body any, want int, v any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func TestBrowser_Journeys(t *testing.T) {
	t.Parallel() // its own server, store and browser: it overlaps the package's other tests
	be := newBrowserEnv(t)
	e := be.e

	// 1. A full sign-in with a TOTP second factor enrolled over the API, from the relying
	// party's link to its callback: sign-in page, second-factor page, consent, back.
	t.Run("SignInWithTOTP", func(t *testing.T) {
		_, u := e.Seed(t, "acme", "ana@example.org", browserPW)
		sess := e.SignIn(t, "acme", "ana@example.org", browserPW)
		var enrol struct {
			FactorID string `json:"factor_id"`
			Secret   string `json:"secret"`
		}
		browserAPI(t, e, sess.Access, "POST", "/v1/auth/mfa/totp", nil, http.StatusCreated, &enrol)
		browserAPI(t, e, sess.Access, "POST", "/v1/auth/mfa/totp/confirm",
			map[string]string{"factor_id": enrol.FactorID, "code": totpCode(t, enrol.Secret, e.Clock.Now())}, http.StatusNoContent, nil)
		e.Clock.Add(30 * time.Second) // the confirming code is spent; the next step's is fresh

		j := be.journey(t)
		j.open(be.rp.startURL(""), "/t/acme/login", "#email", "signin-en")
		j.fill(map[string]string{"email": "ana@example.org", "password": browserPW})
		j.click("#submit", "/t/acme/mfa", "#code", "mfa-totp")
		j.fill(map[string]string{"code": totpCode(t, enrol.Secret, e.Clock.Now())})
		j.click("#submit", "/t/acme/consent", "#allow", "consent")
		j.click("#allow", "/callback", "#subject", "")
		got := be.rp.last(t)
		if got.Subject != u.ID || !slices.Contains(got.AMR, "otp") || got.ACR != authz.ACRMFA {
			t.Errorf("relying party got %+v, want %s signed in with otp, acr %s", got, u.ID, authz.ACRMFA)
		}
	})

	// 2. A passkey: enrolled on the hosted enrolment page when the relying party asks for a
	// second factor the user lacks, then used for a fresh sign-in after signing out. The
	// DevTools virtual authenticator answers navigator.credentials as a platform passkey would.
	t.Run("PasskeyEnrolAndSignIn", func(t *testing.T) {
		_, u := e.Seed(t, "acme", "bea@example.org", browserPW)
		j := be.journey(t)
		authn, err := webtest.AddPasskeyAuthenticator(j.tab.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		j.open(be.rp.startURL(authz.ACRMFA), "/t/acme/login", "#email", "")
		j.fill(map[string]string{"email": "bea@example.org", "password": browserPW})
		j.click("#submit", "/t/acme/enroll", "#passkey-button", "enroll")
		j.click("#passkey-button", "/t/acme/enroll", "#recovery-codes", "")
		if creds, err := webtest.Credentials(j.tab.Ctx, authn); err != nil || len(creds) != 1 {
			t.Fatalf("authenticator holds %d credentials (%v), want the one just registered", len(creds), err)
		}
		// The session signed in with a password only: the request's acr_values make it prove
		// the new passkey before going on.
		j.click("#continue", "/t/acme/mfa", "#passkey-button", "")
		j.click("#passkey-button", "/t/acme/consent", "#allow", "")
		j.click("#allow", "/callback", "#subject", "")
		if got := be.rp.last(t); got.Subject != u.ID || !slices.Contains(got.AMR, "hwk") || got.ACR != authz.ACRMFA {
			t.Fatalf("after enrolment the relying party got %+v, want %s with hwk and acr %s", got, u.ID, authz.ACRMFA)
		}

		creds, err := webtest.Credentials(j.tab.Ctx, authn)
		if err != nil || len(creds) != 1 {
			t.Fatalf("authenticator: %+v, %v", creds, err)
		}
		countBefore := creds[0].SignCount

		// Sign out, then sign in with the passkey alone: the sign-in page offers it through
		// conditional mediation (the e-mail field's autofill), the authenticator answers, and the
		// page posts the assertion. Consent is remembered: straight back to the application.
		j.open(e.URL+"/t/acme/logout", "/t/acme/logout", "#submit", "")
		j.click("#submit", "/t/acme/logged-out", "h1", "")
		signedBefore := len(be.rp.all())
		// The sign-in page posts the passkey on its own as soon as it loads: no check of it
		// here, it would race the script.
		if err := chromedp.Do(j.tab.Ctx, chromedp.Navigate(be.rp.startURL(""))); err != nil {
			t.Fatal(err)
		}
		j.arrive("/callback", "#subject", "")
		if n := len(be.rp.all()); n != signedBefore+1 {
			t.Fatalf("relying party saw %d new sign-ins, want 1", n-signedBefore)
		}
		if got := be.rp.last(t); got.Subject != u.ID || !slices.Contains(got.AMR, "hwk") || slices.Contains(got.AMR, "pwd") {
			t.Fatalf("passkey sign-in: relying party got %+v, want %s with hwk and no password", got, u.ID)
		}
		// The authenticator signed once more: the sign-in used it, not a leftover session.
		if creds, err = webtest.Credentials(j.tab.Ctx, authn); err != nil || len(creds) != 1 || creds[0].SignCount <= countBefore {
			t.Errorf("authenticator after the passkey sign-in: %+v (count before %v), %v", creds, countBefore, err)
		}
	})

	// 3. Session revocation from the account page: a second session (another device, signed in
	// over the API) is listed, revoked with its button, and is then refused by the API.
	t.Run("AccountRevokesOtherSession", func(t *testing.T) {
		_, u := e.Seed(t, "acme", "cai@example.org", browserPW)
		other := e.SignIn(t, "acme", "cai@example.org", browserPW)
		j := be.journey(t)
		j.open(e.URL+"/t/acme/account", "/t/acme/account/login", "#email", "")
		j.fill(map[string]string{"email": "cai@example.org", "password": browserPW})
		row := fmt.Sprintf(`li[data-session-id="%s"]`, other.ID)
		j.click("#submit", "/t/acme/account", row, "account")
		j.click("#revoke-"+other.ID, "/t/acme/account", "#sessions", "")
		if err := chromedp.Do(j.tab.Ctx, chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
			t.Errorf("revoked session still listed: %v", err)
		}
		// The revoked session's token is refused; a fresh session of the same user lists the
		// browser's session but not the revoked one.
		browserAPI(t, e, other.Access, "GET", "/v1/auth/sessions", nil, http.StatusUnauthorized, nil)
		var list struct {
			Sessions []struct {
				ID     string `json:"id"`
				UserID string `json:"user_id"`
			} `json:"sessions"`
		}
		browserAPI(t, e, e.SignIn(t, "acme", "cai@example.org", browserPW).Access, "GET", "/v1/auth/sessions", nil, http.StatusOK, &list)
		if len(list.Sessions) != 2 || slices.ContainsFunc(list.Sessions, func(s struct {
			ID     string `json:"id"`
			UserID string `json:"user_id"`
		}) bool {
			return s.ID == other.ID || s.UserID != u.ID
		}) {
			t.Errorf("sessions after the revocation: %+v, want the browser's and the new one, not %s", list.Sessions, other.ID)
		}
	})

	// 4. The Arabic sign-in page, chosen with the language switch, is laid out right to left:
	// the document says so and the browser computes it for the form.
	t.Run("ArabicRightToLeft", func(t *testing.T) {
		j := be.journey(t)
		j.open(be.rp.startURL(""), "/t/acme/login", "#email", "")
		j.click(`nav.languages a[href*="lang=ar"]`, "/t/acme/login", `html[lang="ar"] #email`, "signin-ar")
		type layout struct{ Lang, Dir, Form, Input, Label string }
		got, err := chromedp.Run(j.tab.Ctx, chromedp.Evaluate[layout](`({
			Lang: document.documentElement.lang, Dir: document.documentElement.dir,
			Form: getComputedStyle(document.querySelector("form")).direction,
			Input: getComputedStyle(document.getElementById("email")).direction,
			Label: document.querySelector('label[for="email"]').textContent})`))
		if err != nil {
			t.Fatal(err)
		}
		if got.Lang != "ar" || got.Dir != "rtl" || got.Form != "rtl" || got.Input != "rtl" {
			t.Errorf("Arabic page: %+v, want lang ar and rtl throughout", got)
		}
		if !strings.ContainsFunc(got.Label, func(r rune) bool { return unicode.Is(unicode.Arabic, r) }) {
			t.Errorf("label of #email is %q, want Arabic text", got.Label)
		}
	})
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
