package storetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// RetentionTests is the data-retention part of the conformance suite (ASVS 5.0 14.2.4, 14.2.7):
// the sweep removes exactly what has outlived its retention, never an active session or the
// audit log, and several nodes may sweep at once.
var RetentionTests = []Test{
	{"RetentionPurgesOnlyExpiredRows", testRetentionPurge},
	{"RetentionConcurrentPurgesSplitTheWork", testRetentionConcurrent},
	{"RetentionRefusesUnboundedOrFutureCutoff", testRetentionInvalid},
	{"RetentionPasswordHistoryKeepsOnlyThePolicyLength", testPasswordHistoryTrim},
	{"RetentionPurgesDeadJobsOnly", testRetentionDeadJobs},
}

// Dead jobs keep their kind, tenant and error (which may name what failed) for operators, but not
// for ever; a pending job is work still owed and stays however old it is.
func testRetentionDeadJobs(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	kill := func(kind string) *sqlstore.Job {
		j := enqueue(t, db, &sqlstore.Job{Kind: kind, MaxAttempts: 1})
		got := claim(t, db, 1)
		if len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("claimed %+v, want %s", got, j.ID)
		}
		update(t, db, func(tx *sqlstore.Tx) error {
			_, err := tx.FailJob(ctx, got[0], "mail: RCPT TO rejected (code 550)", db.Now())
			return err
		})
		return j
	}
	old := kill("mail")
	stale := enqueue(t, db, &sqlstore.Job{Kind: "webhook", MaxAttempts: 3, RunAt: db.Now().Add(400 * day)})
	clock.Add(20 * day)
	recent := kill("mail")
	clock.Add(11 * day) // old died 31 days ago, recent 11

	got, err := db.PurgeExpired(ctx, clock.Now(), testRetention)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeadJobs != 1 {
		t.Fatalf("purged %d dead jobs, want 1", got.DeadJobs)
	}
	ids := columnValues(t, db, `SELECT id FROM jobs ORDER BY id`)
	want := []string{stale.ID, recent.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) || slices.Contains(ids, old.ID) {
		t.Fatalf("jobs left = %q, want the pending %s and the recently dead %s", ids, stale.ID, recent.ID)
	}
	if c := jobCounts(t, db); c.Pending != 1 || c.Dead != 1 {
		t.Fatalf("counts = %+v", c)
	}
}

// Old password hashes are kept only as long as the history check needs them.
func testPasswordHistoryTrim(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "ana@example.org")
	history := func() []string {
		var h []string
		_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { h, err = tx.Users(tn.ID).PasswordHistory(ctx, u.ID, 100); return })
		return h
	}
	for i := range 8 {
		clock.Add(time.Minute)
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.Users(tn.ID).AddPasswordHistory(ctx, u.ID, fmt.Sprintf("hash-%d", i), 5)
		})
	}
	if h := history(); len(h) != 5 || h[0] != "hash-7" || h[4] != "hash-3" {
		t.Fatalf("history = %v, want the newest five", h)
	}
	clock.Add(time.Minute)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).AddPasswordHistory(ctx, u.ID, "hash-8", 0) })
	if h := history(); len(h) != 0 {
		t.Fatalf("history with a policy of 0 = %v, want none", h)
	}
}

const day = 24 * time.Hour

var testRetention = sqlstore.Retention{LoginHistory: 90 * day, SecurityEvents: 365 * day,
	EndedSessions: 30 * day, UsedTokens: 24 * time.Hour, DeadJobs: 30 * day}

// Row contents the purge's audit events must never repeat.
const (
	retentionIP        = "203.0.113.7"
	retentionUserAgent = "RetentionProbe/1.0"
	retentionReason    = "bad_password_probe"
)

// retentionSeed is a store holding, in every table the sweep covers, rows just past and just
// within their retention, and what the sweep must leave.
type retentionSeed struct {
	tenantID, userID string
	want             sqlstore.PurgeCounts
	keep             map[string][]string // query → the values it must return afterwards, sorted
	activeSession    string
	activeRefresh    []byte // an expired, already used refresh token of the active session
}

func seedRetention(t *testing.T, db *sqlstore.DB, clock *fakeClock) *retentionSeed {
	t.Helper()
	now := clock.Now()
	at := func(ago time.Duration) { clock.Set(now.Add(-ago)) }
	tn := createTenant(t, db, "retention")
	u1 := createUser(t, db, tn.ID, "ana@example.org")
	u2 := createUser(t, db, tn.ID, "ben@example.org")
	sa1 := &sqlstore.ServiceAccount{TenantID: tn.ID, Name: "etl"}
	sa2 := &sqlstore.ServiceAccount{TenantID: tn.ID, Name: "reports"}
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateServiceAccount(ctx, sa1, []byte("h1")); err != nil {
			return err
		}
		return tx.CreateServiceAccount(ctx, sa2, []byte("h2"))
	})
	s := &retentionSeed{tenantID: tn.ID, userID: u1.ID, keep: map[string][]string{}}
	keep := func(q string, v ...string) { s.keep[q] = append(s.keep[q], v...) }

	login := func(ago time.Duration) string {
		at(ago)
		r := &sqlstore.LoginRecord{TenantID: tn.ID, UserID: u1.ID, IP: retentionIP, UserAgent: retentionUserAgent,
			Result: "failure", Reason: retentionReason}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.RecordLogin(ctx, r) })
		return r.ID
	}
	login(400 * day)
	login(91 * day)
	keep(`SELECT id FROM login_history`, login(89*day), login(time.Hour))
	s.want.LoginHistory = 2

	event := func(ago time.Duration) string {
		at(ago)
		e := &sqlstore.SecurityEvent{TenantID: tn.ID, UserID: u1.ID, Kind: "account_locked", IP: retentionIP,
			Details: `{"reason":"` + retentionReason + `"}`}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.RecordSecurityEvent(ctx, e) })
		return e.ID
	}
	event(366 * day)
	keep(`SELECT id FROM security_events`, event(364*day), event(time.Minute))
	s.want.SecurityEvents = 1

	// Sessions end by revocation, idle timeout or absolute expiry, whichever comes first; the
	// retention counts from that end, not from the sign-in.
	session := func(ago, absolute, idle time.Duration) string {
		at(ago)
		ss := &sqlstore.Session{TenantID: tn.ID, UserID: u1.ID, TokenVersion: 1, AMR: []string{"pwd"}, IP: retentionIP,
			UserAgent: retentionUserAgent, IdleTimeout: idle, AbsoluteExpiry: clock.Now().Add(absolute)}
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.CreateSession(ctx, ss, sqlstore.HashToken(tutela.RandomToken(32)))
		})
		return ss.ID
	}
	refresh := func(sessionID string, ago time.Duration) []byte {
		at(ago)
		h := sqlstore.HashToken(tutela.RandomToken(32))
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.CreateRefreshToken(ctx, sessionID, h, clock.Now().Add(time.Hour))
		})
		return h
	}
	revoke := func(sessionID string, ago time.Duration) {
		at(ago)
		update(t, db, func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, sessionID, "logout") })
	}
	revokedLongAgo := session(400*day, 12*time.Hour, 15*time.Minute)
	refresh(revokedLongAgo, 400*day)
	refresh(revokedLongAgo, 400*day-time.Minute)
	revoke(revokedLongAgo, 400*day-2*time.Minute)
	idleLongAgo := session(60*day, 12*time.Hour, 15*time.Minute)
	refresh(idleLongAgo, 60*day)
	session(60*day, time.Hour, 1000*day) // absolute expiry 60 days ago
	session(400*day, 1000*day, 369*day)  // idle since 31 days
	revokedRecently := session(400*day, 1000*day, 1000*day)
	refresh(revokedRecently, 400*day)
	revoke(revokedRecently, 29*day)
	idleRecently := session(400*day, 1000*day, 371*day) // idle since 29 days
	s.activeSession = session(400*day, 1000*day, 1000*day)
	s.activeRefresh = refresh(s.activeSession, 400*day)
	update(t, db, func(tx *sqlstore.Tx) error { _, err := tx.UseRefreshToken(ctx, s.activeRefresh); return err })
	refresh(s.activeSession, 400*day)
	keep(`SELECT id FROM sessions`, revokedRecently, idleRecently, s.activeSession)
	keep(`SELECT session_id FROM refresh_tokens`, revokedRecently, s.activeSession, s.activeSession)
	s.want.Sessions, s.want.RefreshTokens = 4, 3

	token := func(ago time.Duration, user, purpose string, ttl time.Duration, use bool) string {
		at(ago)
		var id string
		update(t, db, func(tx *sqlstore.Tx) error {
			tok, ot, err := tx.Users(tn.ID).CreateToken(ctx, user, purpose, ttl)
			if err != nil {
				return err
			}
			id = ot.ID
			if use {
				_, err = tx.ConsumeToken(ctx, tok, purpose)
			}
			return err
		})
		return id
	}
	token(400*day, u1.ID, sqlstore.TokenReset, time.Hour, true) // used long ago
	token(3*day, u1.ID, sqlstore.TokenSetup, time.Hour, false)  // expired two days ago
	token(2*day, u2.ID, sqlstore.TokenMFA, 5*time.Minute, true) // MFA challenge met two days ago
	keep(`SELECT id FROM user_tokens`,
		token(2*time.Hour, u1.ID, sqlstore.TokenReset, time.Hour, true),  // used two hours ago, still valid
		token(5*time.Hour, u2.ID, sqlstore.TokenSetup, time.Hour, false), // expired four hours ago
		token(10*time.Minute, u2.ID, sqlstore.TokenMFA, 5*time.Minute, false))
	s.want.UserTokens = 3

	ceremony := func(ago time.Duration, user, challenge string) {
		at(ago)
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.MFA(tn.ID).CreateCeremony(ctx, &sqlstore.WebAuthnCeremony{Challenge: challenge, UserID: user,
				Kind: "login", Session: []byte("{}"), ExpiresAt: clock.Now().Add(5 * time.Minute)})
		})
	}
	ceremony(3*day, u1.ID, "ceremony-old")
	ceremony(time.Hour, u2.ID, "ceremony-recent")
	keep(`SELECT challenge FROM webauthn_ceremonies`, "ceremony-recent")
	s.want.WebAuthnCeremonies = 1

	jti := func(ago time.Duration, saID, jti string) {
		at(ago)
		update(t, db, func(tx *sqlstore.Tx) error {
			_, err := tx.UseClientAssertionJTI(ctx, tn.ID, saID, jti, clock.Now().Add(5*time.Minute))
			return err
		})
	}
	jti(3*day, sa1.ID, "jti-old")
	jti(time.Hour, sa2.ID, "jti-recent")
	keep(`SELECT jti FROM client_assertion_jtis`, "jti-recent")
	s.want.ClientAssertionJTIs = 1

	clock.Set(now)
	for q := range s.keep {
		slices.Sort(s.keep[q])
	}
	return s
}

// checkKept fails unless exactly the rows the seed keeps are left.
func (s *retentionSeed) checkKept(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	for q, want := range s.keep {
		got := columnValues(t, db, q)
		if !slices.Equal(got, want) {
			t.Errorf("%s after the purge = %q, want %q", q, got, want)
		}
	}
}

func columnValues(t *testing.T, db *sqlstore.DB, q string) []string {
	t.Helper()
	rows, err := db.SQL().QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func allAuditEvents(t *testing.T, db *sqlstore.DB) []sqlstore.AuditRecord {
	t.Helper()
	var all []sqlstore.AuditRecord
	cursor := ""
	for {
		page, next, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Cursor: cursor, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if cursor = next; cursor == "" {
			return all
		}
	}
}

// purgeEvents checks that the audit log still holds every event of before, unchanged, and that
// everything added is a retention.purge event by the system that names tables and counts but no
// row contents. It returns the rows the added events say were deleted, per table.
func purgeEvents(t *testing.T, db *sqlstore.DB, before []sqlstore.AuditRecord, forbidden ...string) map[string]int64 {
	t.Helper()
	after := allAuditEvents(t, db)
	old := make(map[string][]byte, len(before))
	for _, r := range before {
		old[r.Event.ID] = r.Canonical
	}
	deleted := map[string]int64{}
	for _, r := range after {
		if c, ok := old[r.Event.ID]; ok {
			if string(c) != string(r.Canonical) {
				t.Errorf("audit event %s changed by the purge", r.Event.ID)
			}
			delete(old, r.Event.ID)
			continue
		}
		e := r.Event
		if e.Action != sqlstore.ActionRetentionPurge || e.ActorType != audit.ActorSystem || e.TenantID != "" ||
			e.TargetType != "table" || e.SourceIP != "" {
			t.Errorf("unexpected audit event added by the purge: %s", r.Canonical)
			continue
		}
		for _, f := range forbidden {
			if strings.Contains(string(r.Canonical), f) {
				t.Errorf("purge event repeats row contents %q: %s", f, r.Canonical)
			}
		}
		if _, ok := e.Details["cutoff"].(string); !ok {
			t.Errorf("purge event without its cutoff: %s", r.Canonical)
		}
		list, _ := e.Details["deleted"].([]any)
		var total int64
		for _, x := range list {
			m, _ := x.(map[string]any)
			table, _ := m["table"].(string)
			n, err := m["rows"].(json.Number).Int64()
			if table == "" || err != nil {
				t.Errorf("purge event with malformed counts: %s", r.Canonical)
				continue
			}
			deleted[table] += n
			total += n
		}
		if total == 0 {
			t.Errorf("purge event for a purge that deleted nothing: %s", r.Canonical)
		}
	}
	if len(old) > 0 {
		t.Errorf("%d audit events vanished in the purge", len(old))
	}
	return deleted
}

func countsByTable(c sqlstore.PurgeCounts) map[string]int64 {
	m := map[string]int64{"login_history": c.LoginHistory, "security_events": c.SecurityEvents,
		"sessions": c.Sessions, "refresh_tokens": c.RefreshTokens, "user_tokens": c.UserTokens,
		"webauthn_ceremonies": c.WebAuthnCeremonies, "client_assertion_jtis": c.ClientAssertionJTIs}
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

func testRetentionPurge(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	s := seedRetention(t, db, clock)
	before := allAuditEvents(t, db)

	got, err := db.PurgeExpired(ctx, clock.Now(), testRetention)
	if err != nil {
		t.Fatal(err)
	}
	if got != s.want {
		t.Fatalf("PurgeExpired = %+v, want %+v", got, s.want)
	}
	s.checkKept(t, db)
	logged := purgeEvents(t, db, before, retentionIP, retentionUserAgent, retentionReason, s.userID)
	if want := countsByTable(s.want); !maps.Equal(logged, want) {
		t.Errorf("purge events count %v, want %v", logged, want)
	}

	// The active session signed in 400 days ago survives with its refresh tokens, and a used one
	// still reads as used, so replaying it is still detected as reuse (RFC 9700 §4.14).
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		sess, err := tx.SessionByID(ctx, s.activeSession)
		if err != nil {
			return err
		}
		if !sess.Active(tx.Now()) {
			t.Errorf("active session %+v no longer active", sess)
		}
		rt, err := tx.UseRefreshToken(ctx, s.activeRefresh)
		if err != nil {
			return err
		}
		if rt.UsedAt == nil {
			t.Error("a used refresh token of the active session reads as unused after the purge")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A second sweep finds nothing and records nothing.
	before = allAuditEvents(t, db)
	if got, err := db.PurgeExpired(ctx, clock.Now(), testRetention); err != nil || got.Total() != 0 {
		t.Fatalf("second PurgeExpired = %+v, %v; want nothing deleted", got, err)
	}
	if n := len(allAuditEvents(t, db)) - len(before); n != 0 {
		t.Fatalf("a sweep that deleted nothing added %d audit events", n)
	}

	// Much later, everything but the active session has expired.
	clock.Add(400 * day)
	if _, err := db.PurgeExpired(ctx, clock.Now(), testRetention); err != nil {
		t.Fatal(err)
	}
	if ids := columnValues(t, db, `SELECT id FROM sessions`); !slices.Equal(ids, []string{s.activeSession}) {
		t.Fatalf("sessions left = %q, want only the active %s", ids, s.activeSession)
	}
	if n := countRows(t, db, "refresh_tokens"); n != 2 {
		t.Fatalf("%d refresh tokens left, want the active session's 2", n)
	}
}

// Several nodes sweep at once: each succeeds, every expired row is deleted exactly once, and the
// audit events add up to the rows deleted.
func testRetentionConcurrent(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	s := seedRetention(t, db, clock)
	before := allAuditEvents(t, db)
	const nodes = 4
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		sum = map[string]int64{}
	)
	for range nodes {
		wg.Go(func() {
			c, err := db.PurgeExpired(ctx, clock.Now(), testRetention)
			if err != nil {
				t.Errorf("concurrent PurgeExpired: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range countsByTable(c) {
				sum[k] += v
			}
		})
	}
	wg.Wait()
	want := countsByTable(s.want)
	if !maps.Equal(sum, want) {
		t.Errorf("concurrent purges deleted %v in all, want %v", sum, want)
	}
	s.checkKept(t, db)
	if logged := purgeEvents(t, db, before); !maps.Equal(logged, want) {
		t.Errorf("purge events count %v, want %v", logged, want)
	}
}

// Retention must be bounded and the cutoff cannot lie ahead of the store's clock: either would
// reach rows (active sessions among them) that must stay. Nothing is deleted.
func testRetentionInvalid(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	seedRetention(t, db, clock)
	for name, r := range map[string]sqlstore.Retention{
		"zero login history":    {SecurityEvents: day, EndedSessions: day, UsedTokens: day, DeadJobs: day},
		"zero dead jobs":        {LoginHistory: day, SecurityEvents: day, EndedSessions: day, UsedTokens: day},
		"zero security events":  {LoginHistory: day, EndedSessions: day, UsedTokens: day},
		"negative sessions":     {LoginHistory: day, SecurityEvents: day, EndedSessions: -day, UsedTokens: day},
		"zero used tokens":      {LoginHistory: day, SecurityEvents: day, EndedSessions: day},
		"all unset (unbounded)": {},
	} {
		_, err := db.PurgeExpired(ctx, clock.Now(), r)
		if tutela.ErrorCode(err) != tutela.EINVALID {
			t.Errorf("%s: PurgeExpired = %v, want invalid", name, err)
		}
	}
	_, err := db.PurgeExpired(ctx, clock.Now().Add(2000*day), testRetention)
	mustCode(t, err, tutela.EINVALID)
	if n := countRows(t, db, "sessions"); n != 7 {
		t.Fatalf("%d sessions left after refused purges, want all 7", n)
	}
	if got := columnValues(t, db, `SELECT id FROM login_history`); len(got) != 4 {
		t.Fatalf("refused purges deleted sign-in history: %d of 4 left", len(got))
	}
}
