package storetest

import (
	"bytes"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// OIDCPARTests is the pushed authorization requests' part of the suite (RFC 9126): a
// request_uri is random, stored as a hash, used once, by the client that pushed it only, and
// not after it expires.
var OIDCPARTests = []Test{
	{"PARRoundTripOnce", testPARRoundTrip},
	{"PAROnlyPushingClientInItsTenant", testPARScope},
	{"PARExpiredNotFound", testPARExpired},
	{"PARRefusesBadRequests", testPARRefuse},
	{"PARStoresOnlyHash", testPARHashOnly},
}

func push(db *sqlstore.DB, tenantID, clientID string, p url.Values, ttl time.Duration) (uri string, err error) {
	err = db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		uri, err = tx.PushAuthRequest(ctx, tenantID, clientID, p, ttl)
		return err
	})
	return uri, err
}

func take(db *sqlstore.DB, tenantID, clientID, uri string) (p url.Values, err error) {
	err = db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		p, err = tx.TakePushedRequest(ctx, tenantID, clientID, uri)
		return err
	})
	return p, err
}

var parParams = url.Values{"response_type": {"code"}, "scope": {"openid profile"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
	"redirect_uri": {"https://app.example/cb"}, "claims": {`{"id_token":{"acr":null}}`, "second value"}}

func testPARRoundTrip(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "par-a")
	c := createOIDCClient(t, db, tn.ID, "App")
	uri, err := push(db, tn.ID, c.ID, parParams, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	handle, ok := strings.CutPrefix(uri, sqlstore.PushedRequestURIPrefix)
	if !ok || len(handle) != 43 || strings.Trim(handle, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Fatalf("request_uri %q: want the prefix and 43 base64url characters", uri)
	}
	if again, _ := push(db, tn.ID, c.ID, parParams, time.Minute); again == uri {
		t.Fatal("two pushes got the same request_uri")
	}
	got, err := take(db, tn.ID, c.ID, uri)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, parParams) {
		t.Fatalf("took %v, want %v", got, parParams)
	}
	_, err = take(db, tn.ID, c.ID, uri)
	mustCode(t, err, tutela.ENOTFOUND)
}

func testPARScope(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	a, b := createTenant(t, db, "par-a"), createTenant(t, db, "par-b")
	ca, ca2, cb := createOIDCClient(t, db, a.ID, "App"), createOIDCClient(t, db, a.ID, "App"), createOIDCClient(t, db, b.ID, "App")
	// A client of another tenant cannot push under this one.
	_, err := push(db, a.ID, cb.ID, parParams, time.Minute)
	mustCode(t, err, tutela.ENOTFOUND)
	uri, err := push(db, a.ID, ca.ID, parParams, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Another client of the tenant, the same client ID under another tenant: not found, and
	// the attempts do not use the request up.
	_, err = take(db, a.ID, ca2.ID, uri)
	mustCode(t, err, tutela.ENOTFOUND)
	_, err = take(db, b.ID, ca.ID, uri)
	mustCode(t, err, tutela.ENOTFOUND)
	_, err = take(db, b.ID, cb.ID, uri)
	mustCode(t, err, tutela.ENOTFOUND)
	if _, err := take(db, a.ID, ca.ID, uri); err != nil {
		t.Fatalf("the pushing client: %v", err)
	}
	// A disabled client cannot push.
	if _, err := db.SQL().ExecContext(ctx, `UPDATE oidc_clients SET status = 'disabled' WHERE id = $1`, ca2.ID); err != nil {
		t.Fatal(err)
	}
	_, err = push(db, a.ID, ca2.ID, parParams, time.Minute)
	mustCode(t, err, tutela.ENOTFOUND)
}

func testPARExpired(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "par-a")
	c := createOIDCClient(t, db, tn.ID, "App")
	live, err := push(db, tn.ID, c.ID, parParams, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := push(db, tn.ID, c.ID, parParams, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(60*time.Second - time.Microsecond)
	if _, err := take(db, tn.ID, c.ID, live); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err = take(db, tn.ID, c.ID, expired)
	mustCode(t, err, tutela.ENOTFOUND)
	// The sweep removes expired ones only: the one just refused and a short-lived one.
	keep, err := push(db, tn.ID, c.ID, parParams, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(db, tn.ID, c.ID, parParams, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	var n int64
	update(t, db, func(tx *sqlstore.Tx) (err error) { n, err = tx.SweepPushedRequests(ctx); return err })
	if n != 2 {
		t.Fatalf("swept %d, want the 2 expired", n)
	}
	if _, err := take(db, tn.ID, c.ID, keep); err != nil {
		t.Fatalf("the live request after the sweep: %v", err)
	}
}

func testPARRefuse(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "par-a")
	c := createOIDCClient(t, db, tn.ID, "App")
	for _, tc := range []struct {
		name     string
		tenant   string
		client   string
		params   url.Values
		ttl      time.Duration
		wantCode string
	}{
		{"zero ttl", tn.ID, c.ID, parParams, 0, tutela.EINVALID},
		{"ttl too long", tn.ID, c.ID, parParams, sqlstore.MaxPushedRequestTTL + time.Second, tutela.EINVALID},
		{"request_uri pushed", tn.ID, c.ID, url.Values{"request_uri": {"urn:x"}}, time.Minute, tutela.EINVALID},
		{"oversized", tn.ID, c.ID, url.Values{"state": {string(bytes.Repeat([]byte("s"), 40<<10))}}, time.Minute, tutela.EINVALID},
		{"unknown client", tn.ID, "nope", parParams, time.Minute, tutela.ENOTFOUND},
		{"bad tenant", "x", c.ID, parParams, time.Minute, tutela.ENOTFOUND},
	} {
		_, err := push(db, tc.tenant, tc.client, tc.params, tc.ttl)
		if tutela.ErrorCode(err) != tc.wantCode {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.wantCode)
		}
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM oidc_pushed_requests`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused pushes stored %d rows (%v)", n, err)
	}
	for _, uri := range []string{"", "urn:ietf:params:oauth:request_uri:", "https://evil.example/req",
		sqlstore.PushedRequestURIPrefix + strings.Repeat("a", 43), sqlstore.PushedRequestURIPrefix + strings.Repeat("a", 500)} {
		_, err := take(db, tn.ID, c.ID, uri)
		mustCode(t, err, tutela.ENOTFOUND)
	}
}

func testPARHashOnly(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "par-a")
	c := createOIDCClient(t, db, tn.ID, "App")
	uri, err := push(db, tn.ID, c.ID, parParams, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var h []byte
	if err := db.SQL().QueryRowContext(ctx, `SELECT handle_hash FROM oidc_pushed_requests`).Scan(&h); err != nil {
		t.Fatal(err)
	}
	handle := strings.TrimPrefix(uri, sqlstore.PushedRequestURIPrefix)
	if !bytes.Equal(h, sqlstore.HashToken(uri)) || bytes.Contains(h, []byte(handle)) {
		t.Fatalf("stored %x, want SHA-256 of the request_uri", h)
	}
}
