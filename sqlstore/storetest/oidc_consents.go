package storetest

import (
	"slices"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// OIDCConsentTests is the remembered-consent part of the suite (issue 15) and the tenant
// branding the hosted pages show.
var OIDCConsentTests = []Test{
	{"OIDCConsentGrantMergesAndCovers", testConsentGrantMerges},
	{"OIDCConsentScopedToTenantUserAndClient", testConsentScoping},
	{"OIDCConsentRevokeEndsClientSessions", testConsentRevoke},
	{"TenantBrandingValidatedAndStored", testTenantBranding},
}

// createOIDCClient registers an active client with tenantID (the store does not validate it).
func createOIDCClient(t *testing.T, db *sqlstore.DB, tenantID, name string) *sqlstore.OIDCClient {
	t.Helper()
	c := &sqlstore.OIDCClient{Name: name, AppType: sqlstore.AppWeb, AuthMethod: sqlstore.AuthNone,
		RedirectURIs: []string{"https://app.example/cb"}, Scopes: []string{"openid", "profile", "email"},
		GrantTypes: []string{"authorization_code"}, IDTokenAlg: "EdDSA", CreatedBy: "test"}
	update(t, db, func(tx *sqlstore.Tx) error { _, err := tx.OIDCClients(tenantID).Create(ctx, c); return err })
	return c
}

func covers(t *testing.T, db *sqlstore.DB, tenantID, userID, clientID string, scopes ...string) bool {
	t.Helper()
	var ok bool
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		ok, err = tx.OIDCConsents(tenantID).Covers(ctx, userID, clientID, scopes)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func testConsentGrantMerges(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "consent-a")
	u := createUser(t, db, tn.ID, "ann@example.org")
	c := createOIDCClient(t, db, tn.ID, "Portal")
	if covers(t, db, tn.ID, u.ID, c.ID, "openid") {
		t.Fatal("Covers before any grant")
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.OIDCConsents(tn.ID).Grant(ctx, u.ID, c.ID, []string{"openid", "profile"})
	})
	clock.Add(time.Minute)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.OIDCConsents(tn.ID).Grant(ctx, u.ID, c.ID, []string{"email", "openid"})
	})
	if !covers(t, db, tn.ID, u.ID, c.ID, "openid", "profile", "email") {
		t.Fatal("the second grant replaced the first instead of merging")
	}
	if covers(t, db, tn.ID, u.ID, c.ID, "openid", "offline_access") {
		t.Fatal("Covers a scope never granted")
	}
	var list []*sqlstore.OIDCConsent
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { list, err = tx.OIDCConsents(tn.ID).List(ctx, u.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ClientName != "Portal" || !slices.Equal(list[0].Scopes, []string{"email", "openid", "profile"}) ||
		!list[0].UpdatedAt.After(list[0].GrantedAt) {
		t.Fatalf("List = %+v", list)
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(tn.ID).Grant(ctx, u.ID, c.ID, nil) })
	mustCode(t, err, tutela.EINVALID)
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.OIDCConsents(tn.ID).Grant(ctx, u.ID, c.ID, []string{"openid\x00evil"})
	})
	mustCode(t, err, tutela.EINVALID)
}

func testConsentScoping(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "consent-sa"), createTenant(t, db, "consent-sb")
	ua, ub := createUser(t, db, a.ID, "a@example.org"), createUser(t, db, b.ID, "b@example.org")
	ca, cb := createOIDCClient(t, db, a.ID, "A app"), createOIDCClient(t, db, b.ID, "B app")
	// Another tenant's client or user cannot be named in a grant.
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(a.ID).Grant(ctx, ua.ID, cb.ID, []string{"openid"}) })
	mustCode(t, err, tutela.ENOTFOUND)
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(a.ID).Grant(ctx, ub.ID, ca.ID, []string{"openid"}) })
	mustCode(t, err, tutela.ENOTFOUND)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(a.ID).Grant(ctx, ua.ID, ca.ID, []string{"openid"}) })
	if covers(t, db, b.ID, ua.ID, ca.ID, "openid") {
		t.Fatal("consent visible from another tenant")
	}
	other := createUser(t, db, a.ID, "other@example.org")
	if covers(t, db, a.ID, other.ID, ca.ID, "openid") {
		t.Fatal("one user's consent covers another user")
	}
	ca2 := createOIDCClient(t, db, a.ID, "A second app")
	if covers(t, db, a.ID, ua.ID, ca2.ID, "openid") {
		t.Fatal("consent to one client covers another")
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(b.ID).Revoke(ctx, ua.ID, ca.ID) })
	mustCode(t, err, tutela.ENOTFOUND)
	if !covers(t, db, a.ID, ua.ID, ca.ID, "openid") {
		t.Fatal("a revoke from another tenant removed the consent")
	}
}

func testConsentRevoke(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "consent-r")
	u := createUser(t, db, tn.ID, "rev@example.org")
	c, other := createOIDCClient(t, db, tn.ID, "Portal"), createOIDCClient(t, db, tn.ID, "Other")
	newSession := func(clientID string) *sqlstore.Session {
		s := &sqlstore.Session{TenantID: tn.ID, UserID: u.ID, AMR: []string{"pwd"}, IdleTimeout: time.Hour,
			AbsoluteExpiry: clock.Now().Add(12 * time.Hour), ClientID: clientID}
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.RandomToken(32)))
		})
		return s
	}
	browser, mine, theirs := newSession(""), newSession(c.ID), newSession(other.ID)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(tn.ID).Grant(ctx, u.ID, c.ID, []string{"openid"}) })
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(tn.ID).Revoke(ctx, u.ID, c.ID) })
	if covers(t, db, tn.ID, u.ID, c.ID, "openid") {
		t.Fatal("consent remembered after Revoke")
	}
	state := func(s *sqlstore.Session) bool {
		var got *sqlstore.Session
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.SessionByID(ctx, s.ID); return err }); err != nil {
			t.Fatal(err)
		}
		return got.Active(clock.Now())
	}
	if state(mine) {
		t.Fatal("the client's session survived the revoked consent")
	}
	if !state(browser) || !state(theirs) {
		t.Fatal("Revoke ended a session of another client or the browser's own")
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCConsents(tn.ID).Revoke(ctx, u.ID, c.ID) })
	mustCode(t, err, tutela.ENOTFOUND)
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, r := range recs {
		events = append(events, r.Event.Action)
	}
	for _, want := range []string{"oidc.consent.grant", "oidc.consent.revoke"} {
		if !slices.Contains(events, want) {
			t.Errorf("no %s audit event in %v", want, events)
		}
	}
}

func testTenantBranding(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "brand")
	good := sqlstore.Branding{DisplayName: "Clinique du Lac", LogoURL: "https://cdn.example.org/logo.png",
		PrimaryColor: "#1a4d8f", AccentColor: "#8a1538"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.SetTenantBranding(ctx, tn.ID, good) })
	var got sqlstore.Branding
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.TenantBranding(ctx, tn.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if got != good {
		t.Fatalf("TenantBranding = %+v, want %+v", got, good)
	}
	for name, b := range map[string]sqlstore.Branding{
		"low contrast":    {PrimaryColor: "#ffff00"},
		"short hex":       {PrimaryColor: "#fff"},
		"css injection":   {AccentColor: "red;background:url(x)"},
		"html name":       {DisplayName: "<script>alert(1)</script>"},
		"control in name": {DisplayName: "a\u202eb"},
		"data logo":       {LogoURL: "data:image/svg+xml,<svg onload=alert(1)>"},
		"http logo":       {LogoURL: "http://cdn.example.org/logo.png"},
		"javascript logo": {LogoURL: "javascript:alert(1)"},
		"userinfo logo":   {LogoURL: "https://user:pw@cdn.example.org/logo.png"},
	} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.SetTenantBranding(ctx, tn.ID, b) })
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: SetTenantBranding = %v, want invalid", name, err)
		}
	}
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.TenantBranding(ctx, tn.ID); return err }); err != nil || got != good {
		t.Fatalf("a refused branding changed the stored one: %+v, %v", got, err)
	}
}
