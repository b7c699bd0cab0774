package web_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"tutela"
	"tutela/clocktest"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/oidc"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/web"
)

const (
	slug   = "acme"
	userPW = "amber falcon meadow 93 tidewater"
)

// fakeFlow stands in for the OpenID Provider: it holds pending requests and records how each
// ended.
type fakeFlow struct {
	mu        sync.Mutex
	db        *sqlstore.DB
	pending   map[string]*oidc.Pending
	completed map[string]completion
	denied    map[string]string
}

// completion is what a request was completed with: the user and session the pages passed,
// and the session's amr and latest authentication as the provider reads them from the store.
type completion struct {
	oidc.Authenticated
	AMR      []string
	AuthTime time.Time
}

func (f *fakeFlow) Pending(_ context.Context, tenantID, id string) (*oidc.Pending, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pd, ok := f.pending[id]
	if !ok || pd.TenantID != tenantID {
		return nil, tutela.Errorf(tutela.ENOTFOUND, "authorization request not found")
	}
	c := *pd
	return &c, nil
}

func (f *fakeFlow) Complete(ctx context.Context, tenantID, id string, a oidc.Authenticated) (string, error) {
	if _, err := f.Pending(ctx, tenantID, id); err != nil {
		return "", err
	}
	c := completion{Authenticated: a}
	if err := f.db.View(ctx, func(tx *sqlstore.Tx) error {
		s, err := tx.SessionByID(ctx, a.SessionID)
		if err != nil {
			return err
		}
		c.AMR, c.AuthTime = s.AMR, s.CreatedAt
		for _, u := range []*time.Time{s.StepUpAt, s.ReauthAt} {
			if u != nil && u.After(c.AuthTime) {
				c.AuthTime = *u
			}
		}
		return nil
	}); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pending, id)
	f.completed[id] = c
	return "https://app.example/cb?code=c-" + id, nil
}

func (f *fakeFlow) Deny(ctx context.Context, tenantID, id, reason string) (string, error) {
	if _, err := f.Pending(ctx, tenantID, id); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pending, id)
	f.denied[id] = reason
	return "https://app.example/cb?error=" + reason, nil
}

type env struct {
	t      *testing.T
	db     *sqlstore.DB
	clock  *clocktest.Clock
	ids    *identitytest.Env
	flow   *fakeFlow
	srv    *httptest.Server
	client *http.Client
	tenant *tutela.Tenant
	user   *tutela.User
	// clientID is the registered relying party's client_id.
	clientID string
}

func newEnv(t *testing.T, d sqlstore.Dialect, cfg identity.Config) *env {
	t.Helper()
	c := clocktest.New(time.Now().UTC().Truncate(time.Second))
	db := sqltest.Open(t, d, sqlstore.Options{Clock: c.Now})
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = 48 * time.Hour
		cfg.SessionAbsolute = 72 * time.Hour
	}
	e := &env{t: t, db: db, clock: c, ids: identitytest.New(t, db, c.Now, cfg),
		flow: &fakeFlow{db: db, pending: map[string]*oidc.Pending{}, completed: map[string]completion{}, denied: map[string]string{}}}
	ctx := context.Background()
	e.tenant = &tutela.Tenant{Slug: slug, Name: "Acme Care", Region: "eu"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, e.tenant); err != nil {
			return err
		}
		c := &sqlstore.OIDCClient{Name: "Patient Portal", AppType: sqlstore.AppWeb,
			AuthMethod: sqlstore.AuthNone, RedirectURIs: []string{"https://app.example/cb"}, Scopes: []string{"openid", "profile", "email"},
			GrantTypes: []string{"authorization_code"}, IDTokenAlg: "EdDSA", CreatedBy: "test"}
		_, err := tx.OIDCClients(e.tenant.ID).Create(ctx, c)
		e.clientID = c.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.user = e.ids.SeedUser(t, db, e.tenant.ID, "ann@example.org", userPW)
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	web.New(web.Deps{DB: db, Identity: e.ids.Identity, Flow: e.flow, Clock: c.Now, PublicURL: e.srv.URL, TLS: true,
		CSRFKey: []byte(strings.Repeat("k", 32))}).Routes(mux)
	e.client = e.newBrowser()
	return e
}

// newBrowser is a client with its own cookies that never follows redirects (tests look at them).
func (e *env) newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	// srv.Client() is one shared client: copy it, so each browser has its own cookies.
	return &http.Client{Transport: e.srv.Client().Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// request adds a pending authorization request and returns its ID.
func (e *env) request(mod func(*oidc.Pending)) string {
	id := tutela.NewID()
	pd := &oidc.Pending{ID: id, TenantID: e.tenant.ID, ClientID: e.clientID, ClientName: "Patient Portal",
		RedirectHost: "app.example", Scopes: []string{"openid", "profile", "email"}}
	if mod != nil {
		mod(pd)
	}
	e.flow.mu.Lock()
	e.flow.pending[id] = pd
	e.flow.mu.Unlock()
	return id
}

func (e *env) do(c *http.Client, method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (e *env) get(path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	return e.do(e.client, http.MethodGet, path, nil, hdr...)
}

// post sends a form with the browser's CSRF token (fetched from a page first).
func (e *env) post(path string, form url.Values, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", e.csrf(e.client))
	}
	return e.do(e.client, http.MethodPost, path, form, hdr...)
}

func (e *env) csrf(c *http.Client) string {
	e.t.Helper()
	_, body := e.do(c, http.MethodGet, "/t/"+slug+"/forgot", nil)
	v := field(body, "csrf")
	if v == "" {
		e.t.Fatalf("no csrf token on the page:\n%s", body)
	}
	return v
}

var inputRE = regexp.MustCompile(`<input[^>]*>`)

// field returns the value of the input named name in the page.
func field(body, name string) string {
	for _, in := range inputRE.FindAllString(body, -1) {
		if strings.Contains(in, `name="`+name+`"`) {
			if m := regexp.MustCompile(`value="([^"]*)"`).FindStringSubmatch(in); m != nil {
				return html.UnescapeString(m[1])
			}
		}
	}
	return ""
}

func wantRedirect(t *testing.T, res *http.Response, prefix string) string {
	t.Helper()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, prefix) {
		t.Fatalf("status %d Location %q, want a redirect to %s", res.StatusCode, loc, prefix)
	}
	return loc
}

func wantStatus(t *testing.T, res *http.Response, body string, status int) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("status %d, want %d:\n%s", res.StatusCode, status, body)
	}
}

// signIn signs the browser in through the pages for request id and returns where it went next.
func (e *env) signIn(id, email, pw string) *http.Response {
	e.t.Helper()
	res, _ := e.post("/t/"+slug+"/login", url.Values{"id": {id}, "email": {email}, "password": {pw}})
	return res
}

// enrolTOTP gives the user an active authenticator app factor and returns its secret.
func (e *env) enrolTOTP(u *tutela.User) string {
	e.t.Helper()
	ctx := context.Background()
	m := e.ids.Identity.MFA
	en, err := m.BeginTOTP(ctx, u.TenantID, u.ID, u.Email, "Acme")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.ConfirmTOTP(ctx, u.TenantID, u.ID, en.FactorID, e.totp(en.Secret.Reveal()), nil); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Add(30 * time.Second) // the confirming code's step is spent
	return en.Secret.Reveal()
}

func (e *env) totp(secret string) string {
	e.t.Helper()
	code, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

func (e *env) sessions(u *tutela.User) []*sqlstore.Session {
	e.t.Helper()
	var out []*sqlstore.Session
	ctx := context.Background()
	if err := e.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		ss, err := tx.Users(u.TenantID).Sessions(ctx, u.ID)
		for _, s := range ss {
			if s.Active(e.clock.Now()) {
				out = append(out, s)
			}
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}
