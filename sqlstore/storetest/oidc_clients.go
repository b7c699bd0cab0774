package storetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"tutela"
	"tutela/sqlstore"
)

// OIDCClientTests is the OpenID client registry part of the suite: tenant isolation, listing,
// update, status, deletion, secret rotation with overlap, revocation and client keys.
var OIDCClientTests = []Test{
	{"OIDCClientsTenantIsolation", testOIDCClientsIsolation},
	{"OIDCClientsListUpdateStatusDelete", testOIDCClientsCRUD},
	{"OIDCClientSecretRotationOverlap", testOIDCClientRotation},
	{"OIDCClientSecretRevoke", testOIDCClientRevoke},
	{"OIDCClientKeysValidated", testOIDCClientKeys},
	{"OIDCClientAuditHoldsNoSecret", testOIDCClientAuditNoSecret},
	{"OIDCClientDisableAndDeleteEndItsSessions", testOIDCClientEndsSessions},
}

func newOIDCClient(t *testing.T, db *sqlstore.DB, tenantID, authMethod string) (*sqlstore.OIDCClient, tutela.Secret) {
	t.Helper()
	c := &sqlstore.OIDCClient{Name: "Portal", AppType: sqlstore.AppWeb, AuthMethod: authMethod,
		RedirectURIs: []string{"https://app.example.org/cb"}, Scopes: []string{"openid"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "EdDSA", CreatedBy: "test"}
	var s tutela.Secret
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		s, err = tx.OIDCClients(tenantID).Create(ctx, c)
		return err
	})
	return c, s
}

func verifyClientSecret(t *testing.T, db *sqlstore.DB, tenantID, clientID string, s tutela.Secret) bool {
	t.Helper()
	var ok bool
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		ok, err = tx.OIDCClients(tenantID).VerifySecret(ctx, clientID, s)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func testOIDCClientsIsolation(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "oidc-a"), createTenant(t, db, "oidc-b")
	c, secret := newOIDCClient(t, db, a.ID, sqlstore.ClientSecretBasic)
	if !sqlstore.ValidClientID(c.ID) || secret.IsZero() {
		t.Fatalf("created %q with secret %v", c.ID, !secret.IsZero())
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		other := tx.OIDCClients(b.ID)
		if _, err := other.Get(ctx, c.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("Get from another tenant: %v", err)
		}
		if list, err := other.List(ctx, "", 0); err != nil || len(list) != 0 {
			t.Errorf("List of another tenant = %d, %v", len(list), err)
		}
		if ok, err := other.VerifySecret(ctx, c.ID, secret); ok || err != nil {
			t.Errorf("secret verified in another tenant: %v %v", ok, err)
		}
		upd := *c
		upd.Name = "Hijacked"
		for name, err := range map[string]error{
			"Update":       other.Update(ctx, &upd),
			"SetStatus":    other.SetStatus(ctx, c.ID, sqlstore.ClientDisabled),
			"RevokeSecret": other.RevokeSecret(ctx, c.ID, tutela.NewID()),
			"RemoveKey":    other.RemoveKey(ctx, c.ID, "k"),
			"Delete":       other.Delete(ctx, c.ID),
		} {
			if tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Errorf("%s from another tenant: %v", name, err)
			}
		}
		if _, _, err := other.RotateSecret(ctx, c.ID, time.Hour); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("RotateSecret from another tenant: %v", err)
		}
		if _, err := other.Secrets(ctx, c.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("Secrets from another tenant: %v", err)
		}
		if _, err := other.KeySet(ctx, c.ID); tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("KeySet from another tenant: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *sqlstore.OIDCClient
	update(t, db, func(tx *sqlstore.Tx) (err error) { got, err = tx.OIDCClients(a.ID).Get(ctx, c.ID); return err })
	if got.Name != "Portal" || got.Status != sqlstore.ClientActive || !verifyClientSecret(t, db, a.ID, c.ID, secret) {
		t.Fatalf("the other tenant's calls changed the client: %+v", got)
	}
}

func testOIDCClientsCRUD(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "oidc-crud")
	var ids []string
	for range 3 {
		c, _ := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	var page1, page2 []*sqlstore.OIDCClient
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		if page1, err = tx.OIDCClients(tn.ID).List(ctx, "", 2); err != nil {
			return err
		}
		page2, err = tx.OIDCClients(tn.ID).List(ctx, page1[1].ID, 2)
		return err
	})
	if len(page1) != 2 || len(page2) != 1 || page1[0].ID != ids[0] || page1[1].ID != ids[1] || page2[0].ID != ids[2] {
		t.Fatalf("pages %d+%d, want ordered 2+1", len(page1), len(page2))
	}

	c := page1[0]
	clock.Add(time.Minute)
	c.Name, c.RedirectURIs, c.Scopes, c.RequireDPoP, c.AccessTokenTTL = "Renamed", []string{"https://new.example/cb"},
		[]string{"openid", "email"}, true, 300
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).Update(ctx, c) })
	var got *sqlstore.OIDCClient
	update(t, db, func(tx *sqlstore.Tx) (err error) { got, err = tx.OIDCClients(tn.ID).Get(ctx, c.ID); return err })
	if got.Name != "Renamed" || got.RedirectURIs[0] != "https://new.example/cb" || len(got.Scopes) != 2 || !got.RequireDPoP ||
		got.AccessTokenTTL != 300 || !got.UpdatedAt.After(got.CreatedAt) {
		t.Fatalf("after update %+v", got)
	}
	// A confidential client cannot become a public one by an update.
	c.AuthMethod = sqlstore.AuthNone
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).Update(ctx, c) })
	mustCode(t, err, tutela.EINVALID)

	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).SetStatus(ctx, c.ID, "paused") })
	mustCode(t, err, tutela.EINVALID)
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.OIDCClients(tn.ID).SetStatus(ctx, c.ID, sqlstore.ClientDisabled)
	})
	update(t, db, func(tx *sqlstore.Tx) (err error) { got, err = tx.OIDCClients(tn.ID).Get(ctx, c.ID); return err })
	if got.Status != sqlstore.ClientDisabled {
		t.Fatalf("status %q after disable", got.Status)
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).Delete(ctx, c.ID) })
	err = db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.OIDCClients(tn.ID).Get(ctx, c.ID); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).Delete(ctx, c.ID) })
	mustCode(t, err, tutela.ENOTFOUND)
}

func testOIDCClientRotation(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "oidc-rot")
	c, first := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	rotate := func(overlap time.Duration) tutela.Secret {
		t.Helper()
		var s tutela.Secret
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			s, _, err = tx.OIDCClients(tn.ID).RotateSecret(ctx, c.ID, overlap)
			return err
		})
		return s
	}
	clock.Add(time.Second)
	second := rotate(time.Hour)
	if second.Reveal() == first.Reveal() {
		t.Fatal("rotation returned the same secret")
	}
	clock.Add(59 * time.Minute)
	if !verifyClientSecret(t, db, tn.ID, c.ID, first) || !verifyClientSecret(t, db, tn.ID, c.ID, second) {
		t.Fatal("within the overlap both secrets must work")
	}
	// A rotation with a longer overlap does not extend the first secret's remaining minute.
	third := rotate(24 * time.Hour)
	clock.Add(time.Minute)
	if verifyClientSecret(t, db, tn.ID, c.ID, first) {
		t.Fatal("the first secret works after its overlap ended")
	}
	if !verifyClientSecret(t, db, tn.ID, c.ID, second) || !verifyClientSecret(t, db, tn.ID, c.ID, third) {
		t.Fatal("the second (in its overlap) and third secrets must work")
	}
	clock.Add(24 * time.Hour)
	if verifyClientSecret(t, db, tn.ID, c.ID, second) || !verifyClientSecret(t, db, tn.ID, c.ID, third) {
		t.Fatal("after the second overlap only the newest secret works")
	}
	var secrets []sqlstore.OIDCClientSecret
	update(t, db, func(tx *sqlstore.Tx) (err error) { secrets, err = tx.OIDCClients(tn.ID).Secrets(ctx, c.ID); return err })
	if len(secrets) != 3 || secrets[0].ExpiresAt != nil || secrets[2].ExpiresAt == nil {
		t.Fatalf("secrets %+v", secrets)
	}
	for _, bad := range []time.Duration{-time.Second, sqlstore.MaxSecretOverlap + time.Second} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, _, err := tx.OIDCClients(tn.ID).RotateSecret(ctx, c.ID, bad)
			return err
		})
		mustCode(t, err, tutela.EINVALID)
	}
	// The cap counts unexpired secrets: rotating again and again inside a long overlap stops.
	var err error
	for range sqlstore.MaxClientSecrets + 1 {
		if err = db.Update(ctx, func(tx *sqlstore.Tx) error {
			_, _, err := tx.OIDCClients(tn.ID).RotateSecret(ctx, c.ID, sqlstore.MaxSecretOverlap)
			return err
		}); err != nil {
			break
		}
	}
	mustCode(t, err, tutela.ECONFLICT)
	// A public client has no secret to rotate.
	pub, none := newOIDCClient(t, db, tn.ID, sqlstore.PrivateKeyJWT)
	if !none.IsZero() {
		t.Fatal("a private_key_jwt client got a secret")
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, _, err := tx.OIDCClients(tn.ID).RotateSecret(ctx, pub.ID, 0)
		return err
	})
	mustCode(t, err, tutela.ECONFLICT)
}

func testOIDCClientRevoke(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "oidc-rev")
	c, first := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	var second tutela.Secret
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		second, _, err = tx.OIDCClients(tn.ID).RotateSecret(ctx, c.ID, time.Hour)
		return err
	})
	var secrets []sqlstore.OIDCClientSecret
	update(t, db, func(tx *sqlstore.Tx) (err error) { secrets, err = tx.OIDCClients(tn.ID).Secrets(ctx, c.ID); return err })
	oldID := ""
	for _, s := range secrets {
		if s.ExpiresAt != nil { // the rotated one, in its overlap
			oldID = s.ID
		}
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).RevokeSecret(ctx, c.ID, oldID) })
	if verifyClientSecret(t, db, tn.ID, c.ID, first) || !verifyClientSecret(t, db, tn.ID, c.ID, second) {
		t.Fatal("revoke ended the wrong secret")
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).RevokeSecret(ctx, c.ID, oldID) })
	mustCode(t, err, tutela.ENOTFOUND)
	// Another client's secret cannot be revoked through this one.
	other, otherSecret := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		secrets, err = tx.OIDCClients(tn.ID).Secrets(ctx, other.ID)
		return err
	})
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).RevokeSecret(ctx, c.ID, secrets[0].ID) })
	mustCode(t, err, tutela.ENOTFOUND)
	if !verifyClientSecret(t, db, tn.ID, other.ID, otherSecret) {
		t.Fatal("the other client's secret was revoked")
	}
}

func jwkJSON(t *testing.T, key any, kid string) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testOIDCClientKeys(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "oidc-keys")
	c, _ := newOIDCClient(t, db, tn.ID, sqlstore.PrivateKeyJWT)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	add := func(clientID, kid string, jwk []byte) (string, error) {
		var got string
		err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
			got, err = tx.OIDCClients(tn.ID).AddKey(ctx, clientID, kid, jwk)
			return err
		})
		return got, err
	}
	for name, jwk := range map[string][]byte{
		"Ed25519 private": jwkJSON(t, edPriv, ""),
		// The provider's assertion verifier takes RS256, ES256 and PS256 only.
		"Ed25519 public": jwkJSON(t, edPub, ""),
		"EC P-384":       jwkJSON(t, &ec384.PublicKey, ""),
		"EC private":     jwkJSON(t, ec, ""),
		"RSA private":    jwkJSON(t, rsa2048, ""),
		"RSA 1024":       jwkJSON(t, &rsa1024.PublicKey, ""),
		"EC P-521":       jwkJSON(t, &ec521.PublicKey, ""),
		"symmetric":      []byte(`{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`),
		"not JSON":       []byte(`{"kty":`),
		"alg mismatch":   []byte(`{"kty":"OKP","crv":"Ed25519","x":"` + b64(edPub) + `","alg":"ES256"}`),
		"use enc":        []byte(`{"kty":"OKP","crv":"Ed25519","x":"` + b64(edPub) + `","use":"enc"}`),
		"oversized":      bytes.Repeat([]byte(" "), 9<<10),
	} {
		if _, err := add(c.ID, "", jwk); tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	kid, err := add(c.ID, "", jwkJSON(t, &ec.PublicKey, ""))
	if err != nil || kid == "" {
		t.Fatalf("EC P-256 public key: %q %v", kid, err)
	}
	if _, err := add(c.ID, "", jwkJSON(t, &rsa2048.PublicKey, "")); err != nil {
		t.Fatalf("RSA 2048 refused: %v", err)
	}
	_, err = add(c.ID, kid, jwkJSON(t, &rsa2048.PublicKey, ""))
	mustCode(t, err, tutela.ECONFLICT) // the same kid twice
	var set []jose.JSONWebKey
	update(t, db, func(tx *sqlstore.Tx) (err error) { set, err = tx.OIDCClients(tn.ID).KeySet(ctx, c.ID); return err })
	if len(set) != 2 || set[0].KeyID != kid || !set[0].IsPublic() || set[0].Algorithm != "ES256" || set[0].Use != "sig" {
		t.Fatalf("key set %+v", set)
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).RemoveKey(ctx, c.ID, kid) })
	update(t, db, func(tx *sqlstore.Tx) (err error) { set, err = tx.OIDCClients(tn.ID).KeySet(ctx, c.ID); return err })
	if len(set) != 1 || slices.ContainsFunc(set, func(k jose.JSONWebKey) bool { return k.KeyID == kid }) {
		t.Fatalf("removed key still in the set: %d keys", len(set))
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).RemoveKey(ctx, c.ID, kid) })
	mustCode(t, err, tutela.ENOTFOUND)
	// A client_secret_basic client takes no keys.
	sc, _ := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	_, err = add(sc.ID, "", jwkJSON(t, &ec.PublicKey, ""))
	mustCode(t, err, tutela.ECONFLICT)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func testOIDCClientAuditNoSecret(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "oidc-audit")
	c, first := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	var second tutela.Secret
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		second, _, err = tx.OIDCClients(tn.ID).RotateSecret(ctx, c.ID, time.Hour)
		return err
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.OIDCClients(tn.ID).SetStatus(ctx, c.ID, sqlstore.ClientDisabled)
	})
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.Event.Action] = true
		for _, s := range []tutela.Secret{first, second} {
			h := sqlstore.HashToken(s.Reveal())
			for _, form := range []string{s.Reveal(), hex.EncodeToString(h), base64.StdEncoding.EncodeToString(h), b64(h)} {
				if bytes.Contains(r.Canonical, []byte(form)) {
					t.Fatalf("%s event holds a secret or its hash: %s", r.Event.Action, r.Canonical)
				}
			}
		}
	}
	for _, a := range []string{"oidc_client.create", "oidc_client.secret_rotate", "oidc_client.status"} {
		if !seen[a] {
			t.Errorf("no %s event", a)
		}
	}
}

func testOIDCClientEndsSessions(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "oidc-sess")
	u := createUser(t, db, tn.ID, "ana@example.org")
	c, _ := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	other, _ := newOIDCClient(t, db, tn.ID, sqlstore.ClientSecretBasic)
	session := func(clientID string) *sqlstore.Session {
		s := newLimitSession(tn.ID, u.ID, clock.Now())
		s.ClientID = clientID
		update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.NewID())) })
		return s
	}
	revoked := func(id string) bool {
		var s *sqlstore.Session
		update(t, db, func(tx *sqlstore.Tx) (err error) { s, err = tx.SessionByID(ctx, id); return err })
		return s.RevokedAt != nil
	}
	mine, theirs, browser := session(c.ID), session(other.ID), session("")
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.OIDCClients(tn.ID).SetStatus(ctx, c.ID, sqlstore.ClientDisabled)
	})
	if !revoked(mine.ID) || revoked(theirs.ID) || revoked(browser.ID) {
		t.Fatal("disabling a client must end its sessions and only them")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.OIDCClients(tn.ID).Delete(ctx, other.ID) })
	if !revoked(theirs.ID) || revoked(browser.ID) {
		t.Fatal("deleting a client must end its sessions and only them")
	}
}
