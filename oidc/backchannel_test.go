package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"tutela"
	"tutela/clocktest"
	"tutela/jobs"
	"tutela/oidc"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// testSigner signs logout tokens as the provider does: the issuer's key, typ logout+jwt.
type testSigner struct{ key *ecdsa.PrivateKey }

func (s testSigner) SignLogoutToken(_ context.Context, claims map[string]any) (string, error) {
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(claims)
	jws, err := sg.Sign(b)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// testRP is a relying party's back-channel logout endpoint: it records what it receives and
// answers with the next scripted status (200 once the script runs out).
type testRP struct {
	srv *httptest.Server

	mu       sync.Mutex
	statuses []int
	tokens   []string
	contents []string
	diverted int // requests that followed a redirect
}

func newTestRP(t *testing.T, statuses ...int) *testRP {
	rp := &testRP{statuses: statuses}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bcl", func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		rp.tokens = append(rp.tokens, r.PostFormValue("logout_token"))
		rp.contents = append(rp.contents, r.Header.Get("Content-Type"))
		status := http.StatusOK
		if len(rp.statuses) > 0 {
			status, rp.statuses = rp.statuses[0], rp.statuses[1:]
		}
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		rp.diverted++
		rp.mu.Unlock()
	})
	rp.srv = httptest.NewTLSServer(mux)
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *testRP) received() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.tokens...)
}

type bclEnv struct {
	db     *sqlstore.DB
	clock  *clocktest.Clock
	q      *jobs.Queue
	signer testSigner
	tenant *tutela.Tenant
	user   *tutela.User
}

func newBCLEnv(t *testing.T, d sqlstore.Dialect, rp *testRP) *bclEnv {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock.Now})
	e := &bclEnv{db: db, clock: clock, q: jobs.New(db, nil, jobs.Options{}), signer: testSigner{newECKey(t)}}
	var client *http.Client
	if rp != nil {
		client = rp.srv.Client()
	}
	(&oidc.BackchannelLogout{DB: db, Queue: e.q, Signer: e.signer, PublicURL: "https://tutela.test/", HTTPClient: client}).Register()
	e.tenant, e.user = e.seed(t, "acme")
	return e
}

func (e *bclEnv) update(t *testing.T, fn func(tx *sqlstore.Tx) error) {
	t.Helper()
	if err := e.db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func (e *bclEnv) seed(t *testing.T, slug string) (*tutela.Tenant, *tutela.User) {
	tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
	u := &tutela.User{Email: "ana@" + slug + ".example", DisplayName: "Ana"}
	e.update(t, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(context.Background(), tn); err != nil {
			return err
		}
		return tx.Users(tn.ID).Create(context.Background(), u)
	})
	return tn, u
}

func (e *bclEnv) client(t *testing.T, tenantID, logoutURI string) *sqlstore.OIDCClient {
	t.Helper()
	c := &sqlstore.OIDCClient{Name: "Portal", AppType: sqlstore.AppWeb, AuthMethod: sqlstore.ClientSecretBasic,
		RedirectURIs: []string{"https://portal.example/cb"}, BackchannelLogoutURI: logoutURI, Scopes: []string{"openid"},
		GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256", CreatedBy: "test"}
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.OIDCClients(tenantID).Create(context.Background(), c)
		return err
	})
	return c
}

// signIn makes the user's Tutela session and a client session of clientID from it.
func (e *bclEnv) signIn(t *testing.T, clientID string) (parent, child string) {
	t.Helper()
	ctx := context.Background()
	e.update(t, func(tx *sqlstore.Tx) error {
		p := &sqlstore.Session{TenantID: e.tenant.ID, UserID: e.user.ID, AMR: []string{"pwd"},
			IdleTimeout: time.Hour, AbsoluteExpiry: tx.Now().Add(8 * time.Hour)}
		if err := tx.CreateSession(ctx, p, sqlstore.HashToken(tutela.NewID())); err != nil {
			return err
		}
		c := *p
		c.ClientID, c.ParentID, c.Scope = clientID, p.ID, "openid"
		if err := tx.CreateSession(ctx, &c, sqlstore.HashToken(tutela.NewID())); err != nil {
			return err
		}
		parent, child = p.ID, c.ID
		return nil
	})
	return parent, child
}

func (e *bclEnv) runDue(t *testing.T) int {
	t.Helper()
	n, err := e.q.RunDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// verifyLogoutToken checks a logout token as a relying party must (§2.6): signature by the
// issuer's key, typ, iss, aud, iat/exp, jti, the event, sub and sid, and no nonce.
func verifyLogoutToken(t *testing.T, e *bclEnv, tok, clientID, sid string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" {
		t.Fatalf("typ %v", typ)
	}
	if _, err := jws.Verify(&newECKey(t).PublicKey); err == nil {
		t.Fatal("logout token verifies with another key")
	}
	payload, err := jws.Verify(&e.signer.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	now := float64(e.clock.Now().Unix())
	events, _ := c["events"].(map[string]any)
	ev, ok := events[oidc.BackchannelLogoutEvent].(map[string]any)
	switch {
	case c["iss"] != "https://tutela.test/t/acme", c["aud"] != clientID, c["sub"] != e.user.ID, c["sid"] != sid:
		t.Fatalf("claims %v", c)
	case c["iat"] != now || c["exp"] != now+oidc.LogoutTokenTTL.Seconds():
		t.Fatalf("iat %v exp %v, now %v", c["iat"], c["exp"], now)
	case c["jti"] == nil || c["jti"] == "":
		t.Fatalf("no jti: %v", c)
	case !ok || len(ev) != 0 || len(events) != 1:
		t.Fatalf("events %v", c["events"])
	case c["nonce"] != nil:
		t.Fatal("a logout token must not carry a nonce")
	}
	return c
}

func TestBackchannelLogout_DeliveredAndRetriedAfter500(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			rp := newTestRP(t, http.StatusInternalServerError, http.StatusNoContent)
			e := newBCLEnv(t, d, rp)
			c := e.client(t, e.tenant.ID, rp.srv.URL+"/bcl")
			parent, _ := e.signIn(t, c.ID)
			if n := e.runDue(t); n != 0 {
				t.Fatalf("%d jobs before any sign-out", n)
			}
			// Signing out of Tutela ends the client session, which queues its logout.
			e.update(t, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(context.Background(), parent, "logout") })
			if n := e.runDue(t); n != 1 || len(rp.received()) != 1 {
				t.Fatalf("ran %d, delivered %d; want one attempt", n, len(rp.received()))
			}
			first := verifyLogoutToken(t, e, rp.received()[0], c.ID, parent)
			// The 500 is retried after the queue's backoff, not before.
			e.clock.Add(jobs.Backoff(1) - time.Second)
			if n := e.runDue(t); n != 0 {
				t.Fatalf("retried %d before the backoff", n)
			}
			e.clock.Add(time.Second)
			if n := e.runDue(t); n != 1 || len(rp.received()) != 2 {
				t.Fatalf("ran %d, delivered %d; want the retry", n, len(rp.received()))
			}
			second := verifyLogoutToken(t, e, rp.received()[1], c.ID, parent)
			if first["jti"] == second["jti"] {
				t.Fatal("a retry reused the jti")
			}
			// 204 is done: nothing more is sent.
			e.clock.Add(time.Hour)
			if n := e.runDue(t); n != 0 || len(rp.received()) != 2 {
				t.Fatalf("after success: ran %d, delivered %d", n, len(rp.received()))
			}
			if rp.contents[0] != "application/x-www-form-urlencoded" {
				t.Fatalf("content type %q", rp.contents[0])
			}
		})
	}
}

func TestBackchannelLogout_RedirectNotFollowed(t *testing.T) {
	t.Parallel()
	rp := newTestRP(t, http.StatusFound, http.StatusFound)
	e := newBCLEnv(t, sqlstore.SQLite, rp)
	c := e.client(t, e.tenant.ID, rp.srv.URL+"/bcl")
	parent, _ := e.signIn(t, c.ID)
	e.update(t, func(tx *sqlstore.Tx) error {
		_, err := tx.Users(e.tenant.ID).RevokeSessions(context.Background(), e.user.ID, "", "", "password_change")
		return err
	})
	e.runDue(t)
	e.clock.Add(jobs.Backoff(1))
	e.runDue(t)
	if got := len(rp.received()); got != 2 || rp.diverted != 0 {
		t.Fatalf("delivered %d, followed %d redirects; want 2 attempts and none followed", got, rp.diverted)
	}
	verifyLogoutToken(t, e, rp.received()[1], c.ID, parent)
}

// No job for a client without a back-channel URI, nor for a client ID of another tenant.
func TestBackchannelLogout_OnlyClientsWithAURIInTheTenant(t *testing.T) {
	t.Parallel()
	rp := newTestRP(t)
	e := newBCLEnv(t, sqlstore.SQLite, rp)
	quiet := e.client(t, e.tenant.ID, "")
	parent, _ := e.signIn(t, quiet.ID)
	e.update(t, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(context.Background(), parent, "logout") })
	other, _ := e.seed(t, "other")
	foreign := e.client(t, other.ID, rp.srv.URL+"/bcl")
	e.update(t, func(tx *sqlstore.Tx) error {
		return oidc.EnqueueBackchannelLogout(context.Background(), tx, e.q, e.tenant.ID, foreign.ID, e.user.ID, "sid-1")
	})
	if n := e.runDue(t); n != 0 || len(rp.received()) != 0 {
		t.Fatalf("ran %d, delivered %d; want nothing", n, len(rp.received()))
	}
	// The same call for the client's own tenant is delivered.
	e.update(t, func(tx *sqlstore.Tx) error {
		return oidc.EnqueueBackchannelLogout(context.Background(), tx, e.q, other.ID, foreign.ID, e.user.ID, "sid-1")
	})
	if n := e.runDue(t); n != 1 || len(rp.received()) != 1 {
		t.Fatalf("ran %d, delivered %d; want one", n, len(rp.received()))
	}
}

// A job whose transaction rolls back never runs: the logout exists exactly when the
// revocation does.
func TestBackchannelLogout_EnqueuedWithTheRevocationOnly(t *testing.T) {
	t.Parallel()
	rp := newTestRP(t)
	e := newBCLEnv(t, sqlstore.SQLite, rp)
	c := e.client(t, e.tenant.ID, rp.srv.URL+"/bcl")
	parent, _ := e.signIn(t, c.ID)
	err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		if err := tx.RevokeSessionByID(context.Background(), parent, "logout"); err != nil {
			return err
		}
		return tutela.Errorf(tutela.ECONFLICT, "something later failed")
	})
	if tutela.ErrorCode(err) != tutela.ECONFLICT {
		t.Fatal(err)
	}
	if n := e.runDue(t); n != 0 || len(rp.received()) != 0 {
		t.Fatalf("rolled-back revocation delivered %d", len(rp.received()))
	}
}

// A URI that is not https is never sent a token (registration refuses one; this guards a
// store that holds one anyway).
func TestBackchannelLogout_PlainHTTPURINotSent(t *testing.T) {
	t.Parallel()
	var hits int
	var mu sync.Mutex
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { mu.Lock(); hits++; mu.Unlock() }))
	t.Cleanup(plain.Close)
	e := newBCLEnv(t, sqlstore.SQLite, nil)
	c := e.client(t, e.tenant.ID, plain.URL+"/bcl")
	parent, _ := e.signIn(t, c.ID)
	e.update(t, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(context.Background(), parent, "logout") })
	if n := e.runDue(t); n != 1 {
		t.Fatalf("ran %d", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Fatalf("plain http endpoint received %d logout tokens", hits)
	}
}
