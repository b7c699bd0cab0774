package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// OIDCLogoutTests is the back-channel logout part of the suite: every path that ends a
// relying party's session tells the client-session hook, in the revoking transaction, and a
// Tutela session of its own (no client) never does.
var OIDCLogoutTests = []Test{
	{"ClientSessionEndedOnEveryRevocationPath", testClientSessionEndedEveryPath},
	{"ClientSessionHookFailureRollsRevocationBack", testClientSessionHookRollback},
}

type endedLog struct {
	mu    sync.Mutex
	ended []sqlstore.EndedSession
}

func (l *endedLog) hook(_ context.Context, _ *sqlstore.Tx, s sqlstore.EndedSession) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = append(l.ended, s)
	return nil
}

// take returns the client session IDs ended since the last call, sorted.
func (l *endedLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, s := range l.ended {
		ids = append(ids, s.ID)
	}
	l.ended = nil
	slices.Sort(ids)
	return ids
}

// signIn makes a Tutela session for the user and, for each client, a client session from it.
func signIn(t *testing.T, db *sqlstore.DB, tenantID, userID string, clients ...string) (parent string, children []string) {
	t.Helper()
	update(t, db, func(tx *sqlstore.Tx) error {
		p := newLimitSession(tenantID, userID, tx.Now())
		if err := tx.CreateSession(ctx, p, sqlstore.HashToken(tutela.NewID())); err != nil {
			return err
		}
		parent = p.ID
		for _, c := range clients {
			s := newLimitSession(tenantID, userID, tx.Now())
			s.ClientID, s.ParentID, s.Scope = c, p.ID, "openid"
			if err := tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.NewID())); err != nil {
				return err
			}
			children = append(children, s.ID)
		}
		return nil
	})
	slices.Sort(children)
	return parent, children
}

func testClientSessionEndedEveryPath(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	log := &endedLog{}
	db.OnClientSessionEnded(log.hook)
	tn := createTenant(t, db, "bcl")
	u := createUser(t, db, tn.ID, "a@example.org")
	ca, cb := createOIDCClient(t, db, tn.ID, "App"), createOIDCClient(t, db, tn.ID, "App")
	users := func(tx *sqlstore.Tx) sqlstore.Users { return tx.Users(tn.ID) }
	for _, tc := range []struct {
		name   string
		revoke func(tx *sqlstore.Tx, parent string) error
	}{
		{"logout (RevokeSessionByID of the sign-in session)", func(tx *sqlstore.Tx, parent string) error {
			return tx.RevokeSessionByID(ctx, parent, "logout")
		}},
		{"revoke one (Users.RevokeSessions with id)", func(tx *sqlstore.Tx, parent string) error {
			_, err := users(tx).RevokeSessions(ctx, u.ID, parent, "", "revoked_by_user")
			return err
		}},
		{"revoke all (password change, reset, disable)", func(tx *sqlstore.Tx, _ string) error {
			_, err := users(tx).RevokeSessions(ctx, u.ID, "", "", "password_change")
			return err
		}},
		{"tenant-wide sign-out", func(tx *sqlstore.Tx, _ string) error {
			_, err := tx.RevokeTenantSessions(ctx, tn.ID, "revoked_by_admin")
			return err
		}},
	} {
		parent, children := signIn(t, db, tn.ID, u.ID, ca.ID, cb.ID)
		if got := log.take(); len(got) != 0 {
			t.Fatalf("%s: signing in ended %v", tc.name, got)
		}
		update(t, db, func(tx *sqlstore.Tx) error { return tc.revoke(tx, parent) })
		if got := log.take(); !slices.Equal(got, children) {
			t.Fatalf("%s: hook saw %v, want the client sessions %v", tc.name, got, children)
		}
	}
	// "Sign out everywhere else" keeps the current sign-in's client sessions.
	keep, keptChildren := signIn(t, db, tn.ID, u.ID, ca.ID)
	_, otherChildren := signIn(t, db, tn.ID, u.ID, cb.ID)
	update(t, db, func(tx *sqlstore.Tx) error {
		_, err := users(tx).RevokeSessions(ctx, u.ID, "", keep, "revoked_by_user")
		return err
	})
	if got := log.take(); !slices.Equal(got, otherChildren) {
		t.Fatalf("revoke others: hook saw %v, want %v", got, otherChildren)
	}
	var kept *sqlstore.Session
	update(t, db, func(tx *sqlstore.Tx) (err error) { kept, err = tx.SessionByID(ctx, keptChildren[0]); return err })
	if kept.RevokedAt != nil {
		t.Fatal("revoking the other sessions ended the current sign-in's client session")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, keep, "logout") })
	log.take()

	// One client session ended on its own (refresh-token reuse revokes just it), with its
	// client, user and parent named; a second revocation of it says nothing more.
	parent, children := signIn(t, db, tn.ID, u.ID, ca.ID)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, children[0], "refresh_reuse") })
	log.mu.Lock()
	got := slices.Clone(log.ended)
	log.mu.Unlock()
	want := sqlstore.EndedSession{ID: children[0], TenantID: tn.ID, UserID: u.ID, ClientID: ca.ID, ParentID: parent, Reason: "refresh_reuse"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("hook saw %+v, want %+v", got, want)
	}
	log.take()
	update(t, db, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, children[0], "again") })
	update(t, db, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, parent, "logout") })
	if got := log.take(); len(got) != 0 {
		t.Fatalf("already-ended client session reported again: %v", got)
	}
}

func testClientSessionHookRollback(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	boom := errors.New("queue refused")
	db.OnClientSessionEnded(func(context.Context, *sqlstore.Tx, sqlstore.EndedSession) error { return boom })
	tn := createTenant(t, db, "bcl")
	u := createUser(t, db, tn.ID, "a@example.org")
	c := createOIDCClient(t, db, tn.ID, "App")
	parent, children := signIn(t, db, tn.ID, u.ID, c.ID)
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, parent, "logout") })
	if !errors.Is(err, boom) {
		t.Fatalf("revocation with a failing hook: %v", err)
	}
	for _, id := range []string{parent, children[0]} {
		var s *sqlstore.Session
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { s, err = tx.SessionByID(ctx, id); return err }); err != nil {
			t.Fatal(err)
		}
		if s.RevokedAt != nil {
			t.Fatalf("session %s revoked although its transaction failed", id)
		}
	}
}
