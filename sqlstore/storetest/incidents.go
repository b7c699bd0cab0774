package storetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/incidents"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/vault"
)

// IncidentTests are the incidents' part of the suite (issue 19): opening from events, the
// status rules, the tenant view, and the breach clock's reminders sent once each.
var IncidentTests = []Test{
	{"IncidentsOpenFromEvents", testIncidentOpenFromEvents},
	{"IncidentsStatusTransitionsAndClosedIsFinal", testIncidentTransitions},
	{"IncidentsTenantViewAndIsolation", testIncidentTenantView},
	{"IncidentsBreachClockRemindsOnceEach", testIncidentClock},
	{"IncidentsConcurrentSweepsSendOnce", testIncidentSweepRace},
	{"IncidentsPerTenantNotificationsStopTheClockWhenAllAreIn", testIncidentPerTenantNotices},
	{"IncidentsRemindersSkipOwnersNoLongerSuperAdmin", testIncidentRemindersSkipExOwners},
	{"IncidentsReminderAfterOutageStatesTimeLeftNow", testIncidentReminderAfterOutage},
}

type incidentKit struct {
	db    *sqlstore.DB
	clock *fakeClock
	vault *vault.Vault
	a, b  string
	admin *tutela.User // a super-admin of tenant a (the platform's people)
}

func newIncidentKit(t *testing.T, open Opener, slug string) *incidentKit {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVaultAt(t, db, newKEK(t), clock.Now)
	db.SetVault(v)
	k := &incidentKit{db: db, clock: clock, vault: v, a: createTenant(t, db, slug+"-a").ID, b: createTenant(t, db, slug+"-b").ID}
	k.admin = createUser(t, db, k.a, "root@"+slug+".example")
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.Users(k.a).Grant(ctx, k.admin.ID, authz.RoleSuperAdmin, "", nil)
	})
	return k
}

func (k *incidentKit) open(t *testing.T, req incidents.OpenRequest) *incidents.Incident {
	t.Helper()
	if req.Actor == "" {
		req.Actor = k.admin.ID
	}
	var inc *incidents.Incident
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { inc, err = incidents.Open(ctx, tx, req); return err })
	return inc
}

func (k *incidentKit) change(fn func(sqlstore.Incidents) (*incidents.Incident, error)) (*incidents.Incident, error) {
	var inc *incidents.Incident
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) (err error) { inc, err = fn(tx.Incidents()); return err })
	return inc, err
}

func (k *incidentKit) must(t *testing.T, fn func(sqlstore.Incidents) (*incidents.Incident, error)) *incidents.Incident {
	t.Helper()
	inc, err := k.change(fn)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func (k *incidentKit) sweep(t *testing.T) []sqlstore.IncidentReminder {
	t.Helper()
	var out []sqlstore.IncidentReminder
	update(t, k.db, func(tx *sqlstore.Tx) (err error) { out, err = tx.SweepIncidents(ctx); return err })
	return out
}

func (k *incidentKit) auditCount(t *testing.T, action string) int {
	t.Helper()
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func testIncidentOpenFromEvents(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incopen")
	u := createUser(t, k.db, k.b, "locked@b.example")
	sec := &sqlstore.SecurityEvent{TenantID: k.b, UserID: u.ID, Kind: "lockout", IP: "198.51.100.7"}
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.RecordSecurityEvent(ctx, sec) })
	secAt := k.clock.Now().UTC().Truncate(time.Microsecond)
	k.clock.Add(10 * time.Minute)
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "security.lockout"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("audit events %v %v", recs, err)
	}
	auditID := recs[0].Event.ID
	k.clock.Add(time.Hour)
	inc := k.open(t, incidents.OpenRequest{Title: "Lockouts in tenant B", Description: "Ten lockouts in five minutes.",
		Severity: incidents.High, Actor: "monitor", Events: []incidents.EventRef{{Kind: incidents.AuditEvent, ID: auditID},
			{Kind: incidents.SecurityEvent, ID: sec.ID}}})
	if !tutela.ValidID(inc.ID) || inc.Status != incidents.StatusOpen || inc.Severity != incidents.High || inc.PersonalDataBreach ||
		!inc.DetectedAt.Equal(secAt) || !slices.Equal(inc.Frameworks, []string{"gdpr"}) || inc.CreatedBy != "monitor" || len(inc.Owners) != 0 {
		t.Fatalf("opened %+v", inc)
	}
	// The timeline: the events at their own time (recorded together: in the order given),
	// scoped to their tenant, naming their kind and never their details (the address); then
	// the opening, an hour later.
	if len(inc.Timeline) != 3 {
		t.Fatalf("timeline %+v", inc.Timeline)
	}
	e0, e1, e2 := inc.Timeline[0], inc.Timeline[1], inc.Timeline[2]
	if e1.Kind != incidents.KindSecurityEvent || e1.Ref != sec.ID || e1.TenantID != k.b || !e1.At.Equal(secAt) || e1.Text != "Security event: lockout" ||
		e0.Kind != incidents.KindAuditEvent || e0.Ref != auditID || e0.TenantID != k.b || !e0.At.Equal(secAt) || e0.Text != "Audit event: security.lockout" ||
		e2.Kind != incidents.KindOpened || e2.TenantID != "" || !e2.At.Equal(secAt.Add(70*time.Minute)) {
		t.Fatalf("timeline %+v", inc.Timeline)
	}
	for _, e := range inc.Timeline {
		if strings.Contains(e.Text, "198.51.100") {
			t.Fatalf("the timeline holds the event's address: %+v", e)
		}
	}
	if k.auditCount(t, "incident.opened") != 1 {
		t.Fatal("incident.opened not audited")
	}
	// A person opening it is its owner by default.
	mine := k.open(t, incidents.OpenRequest{Title: "Manual", Description: "d"})
	if !slices.Equal(mine.Owners, []string{k.admin.ID}) || !mine.DetectedAt.Equal(k.clock.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("manual %+v", mine)
	}
	// An unknown or malformed event, an owner who is no user or no super-admin: nothing is
	// opened.
	plain := createUser(t, k.db, k.b, "admin@b.example")
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.Users(k.b).Grant(ctx, plain.ID, authz.RoleProgramAdmin, "", nil)
	})
	before := countRows(t, k.db, "incidents")
	for _, req := range []incidents.OpenRequest{
		{Title: "x", Description: "d", Actor: "monitor", Events: []incidents.EventRef{{Kind: incidents.SecurityEvent, ID: tutela.NewID()}}},
		{Title: "x", Description: "d", Actor: "monitor", Events: []incidents.EventRef{{Kind: incidents.SecurityEvent, ID: "not-a-uuid"}}},
		{Title: "x", Description: "d", Actor: "monitor", Events: []incidents.EventRef{{Kind: incidents.AuditEvent, ID: "nope"}}},
		{Title: "x", Description: "d", Actor: "monitor", Owners: []string{tutela.NewID()}},
		{Title: "x", Description: "d", Actor: "monitor", Owners: []string{plain.ID}},
	} {
		err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := incidents.Open(ctx, tx, req); return err })
		mustCode(t, err, tutela.EINVALID)
	}
	if n := countRows(t, k.db, "incidents"); n != before {
		t.Fatalf("%d incidents after refusals, want %d", n, before)
	}
}

func testIncidentTransitions(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incmove")
	inc := k.open(t, incidents.OpenRequest{Title: "Phishing", Description: "d"})
	st := func(s incidents.Status) sqlstore.IncidentChange { return sqlstore.IncidentChange{Status: &s} }
	move := func(s incidents.Status) error {
		_, err := k.change(func(x sqlstore.Incidents) (*incidents.Incident, error) { return x.Update(ctx, inc.ID, st(s)) })
		return err
	}
	mustCode(t, move(incidents.StatusClosed), tutela.ECONFLICT) // open → closed skips resolution
	mustCode(t, move("reopened"), tutela.EINVALID)
	for _, s := range []incidents.Status{incidents.StatusInvestigating, incidents.StatusContained, incidents.StatusResolved} {
		if err := move(s); err != nil {
			t.Fatalf("→ %s: %v", s, err)
		}
	}
	// A confirmed breach is not closed before the authority has been told.
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc.ID, time.Time{})
	})
	_, err := k.change(func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc.ID, time.Time{})
	})
	mustCode(t, err, tutela.ECONFLICT) // the clock's start is not rewritten
	mustCode(t, move(incidents.StatusClosed), tutela.ECONFLICT)
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.RecordNotification(ctx, inc.ID, &incidents.Notification{Recipient: incidents.ToAuthority, To: "CNIL", Reference: "2026-123"})
	})
	if err := move(incidents.StatusClosed); err != nil {
		t.Fatal(err)
	}
	got := k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) { return x.Get(ctx, inc.ID) })
	if got.Status != incidents.StatusClosed || got.ClosedAt.IsZero() {
		t.Fatalf("closed %+v", got)
	}
	var kinds []string
	for _, e := range got.Timeline {
		kinds = append(kinds, e.Kind)
	}
	if want := "opened status status status breach_confirmed notification status"; strings.Join(kinds, " ") != want {
		t.Fatalf("timeline kinds %v, want %s", kinds, want)
	}
	// Closed is final: no move, no edit, no note.
	for _, s := range []incidents.Status{incidents.StatusInvestigating, incidents.StatusResolved, incidents.StatusOpen} {
		mustCode(t, move(s), tutela.ECONFLICT)
	}
	title := "renamed"
	_, err = k.change(func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.Update(ctx, inc.ID, sqlstore.IncidentChange{Title: &title})
	})
	mustCode(t, err, tutela.ECONFLICT)
	_, err = k.change(func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.AddNote(ctx, inc.ID, "late", "", time.Time{})
	})
	mustCode(t, err, tutela.ECONFLICT)
	if k.auditCount(t, "incident.closed") != 1 || k.auditCount(t, "incident.breach_confirmed") != 1 || k.auditCount(t, "incident.notified") != 1 {
		t.Fatal("changes not audited")
	}
}

func testIncidentTenantView(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incview")
	subjA, subjB := k.subject(t, k.a), k.subject(t, k.b)
	shared := k.open(t, incidents.OpenRequest{Title: "Shared", Description: "d"})
	onlyA := k.open(t, incidents.OpenRequest{Title: "Only A", Description: "d"})
	n := func(v int) *int { return &v }
	for _, c := range []struct {
		id string
		c  sqlstore.AffectedChange
	}{
		{shared.ID, sqlstore.AffectedChange{TenantID: k.a, SubjectsApprox: n(10), RecordsApprox: n(40), SubjectIDs: []string{subjA}}},
		{shared.ID, sqlstore.AffectedChange{TenantID: k.b, SubjectsApprox: n(3), SubjectIDs: []string{subjB}}},
		{onlyA.ID, sqlstore.AffectedChange{TenantID: k.a}},
	} {
		k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) { return x.SetAffected(ctx, c.id, c.c) })
	}
	// A subject of another tenant, or none, is refused.
	_, err := k.change(func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.SetAffected(ctx, shared.ID, sqlstore.AffectedChange{TenantID: k.a, SubjectIDs: []string{subjB}})
	})
	mustCode(t, err, tutela.EINVALID)
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.AddNote(ctx, shared.ID, "B's servers were reimaged", k.b, time.Time{})
	})
	var viewB *incidents.Incident
	var listB []incidents.Incident
	err = k.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if viewB, err = tx.Incidents().ForTenant(ctx, k.b, shared.ID, true); err != nil {
			return err
		}
		_, err = tx.Incidents().ForTenant(ctx, k.b, onlyA.ID, true)
		mustCode(t, err, tutela.ENOTFOUND)
		listB, _, err = tx.Incidents().List(ctx, k.b, sqlstore.IncidentFilter{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(viewB.Tenants) != 1 || viewB.Tenants[0].TenantID != k.b || !slices.Equal(viewB.Tenants[0].SubjectIDs, []string{subjB}) ||
		viewB.Tenants[0].SubjectsApprox != 3 {
		t.Fatalf("B's view %+v", viewB.Tenants)
	}
	for _, e := range viewB.Timeline {
		if e.TenantID == k.a || strings.Contains(e.Text, "about 10 subjects") {
			t.Fatalf("B sees A's entry %+v", e)
		}
	}
	if len(listB) != 1 || listB[0].ID != shared.ID || len(listB[0].Tenants) != 1 || listB[0].Tenants[0].SubjectIDs != nil {
		t.Fatalf("B's list %+v", listB)
	}
	var all []incidents.Incident
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		all, _, err = tx.Incidents().List(ctx, "", sqlstore.IncidentFilter{})
		return err
	})
	if len(all) != 2 || all[0].ID != onlyA.ID {
		t.Fatalf("platform list %+v", all)
	}
	// A page cursor must be an incident of the listing: B paging after A's incident, or after
	// an unknown one, is refused alike; after its own it pages on; the platform pages after any.
	for _, cursor := range []string{onlyA.ID, tutela.NewID()} {
		err = k.db.View(ctx, func(tx *sqlstore.Tx) error {
			_, _, err := tx.Incidents().List(ctx, k.b, sqlstore.IncidentFilter{Cursor: cursor})
			return err
		})
		mustCode(t, err, tutela.EINVALID)
	}
	var afterShared, afterOnlyA []incidents.Incident
	update(t, k.db, func(tx *sqlstore.Tx) (err error) {
		if afterShared, _, err = tx.Incidents().List(ctx, k.b, sqlstore.IncidentFilter{Cursor: shared.ID}); err != nil {
			return err
		}
		afterOnlyA, _, err = tx.Incidents().List(ctx, "", sqlstore.IncidentFilter{Cursor: onlyA.ID})
		return err
	})
	if len(afterShared) != 0 || len(afterOnlyA) != 1 || afterOnlyA[0].ID != shared.ID {
		t.Fatalf("B after its own: %+v; platform after A's: %+v", afterShared, afterOnlyA)
	}
	r := viewB.Report(k.clock.Now())
	if r.SubjectsApprox != 3 || r.TenantsAffected != 1 {
		t.Fatalf("B's report counts A: %+v", r)
	}
}

// subject creates a subject of tenantID (its ID is what matters here).
func (k *incidentKit) subject(t *testing.T, tenantID string) string {
	t.Helper()
	schema := testSchema()
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(tenantID).Put(ctx, schema) })
	sealed, err := privacy.NewSubjects(k.vault).SealNew(ctx, tenantID, schema, map[string]string{"full_name": "Ada Lovelace"})
	if err != nil {
		t.Fatal(err)
	}
	update(t, k.db, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(tenantID).Create(ctx, sealed); return err })
	return sealed.SubjectID
}

func testIncidentClock(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incclock")
	inc := k.open(t, incidents.OpenRequest{Title: "Stolen laptop", Description: "d", Frameworks: []string{"gdpr", "ndpa"}})
	if got := k.sweep(t); len(got) != 0 {
		t.Fatalf("reminders before confirmation: %+v", got)
	}
	aware := k.clock.Now().UTC().Truncate(time.Microsecond)
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc.ID, time.Time{})
	})
	// Each point fires once, at its time, whatever the number of sweeps; the two laws share
	// their points, so one reminder goes out for both.
	var fired []time.Duration
	for step := time.Duration(0); step <= 80*time.Hour; step += 30 * time.Minute {
		k.clock.Set(aware.Add(step))
		for range 2 {
			for _, r := range k.sweep(t) {
				if !r.Reminder.At.Equal(k.clock.Now()) && r.Reminder.At.After(k.clock.Now()) {
					t.Fatalf("reminder %+v fired early at %v", r.Reminder, k.clock.Now())
				}
				if len(r.Owners) != 1 || r.Owners[0].UserID != k.admin.ID || r.Owners[0].TenantID != k.a {
					t.Fatalf("owners %+v", r.Owners)
				}
				fired = append(fired, r.Reminder.At.Sub(aware))
			}
		}
	}
	if want := []time.Duration{24 * time.Hour, 48 * time.Hour, 60 * time.Hour, 70 * time.Hour, 72 * time.Hour}; !slices.Equal(fired, want) {
		t.Fatalf("fired at %v, want %v", fired, want)
	}
	if k.auditCount(t, "incident.reminder") != 4 || k.auditCount(t, "incident.overdue") != 1 {
		t.Fatal("reminders not audited")
	}
	got := k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) { return x.Get(ctx, inc.ID) })
	cs := got.Clocks(k.clock.Now())
	if len(cs) != 2 || !cs[0].Overdue || !cs[1].Overdue {
		t.Fatalf("clocks %+v", cs)
	}

	// A second breach: recording the authority's notification under each law stops its
	// reminders; with one law left, only its reminders go on.
	k.clock.Set(aware.Add(100 * time.Hour))
	aware2 := k.clock.Now().UTC().Truncate(time.Microsecond)
	inc2 := k.open(t, incidents.OpenRequest{Title: "Misdirected e-mail", Description: "d", Frameworks: []string{"gdpr", "ndpa"}})
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc2.ID, time.Time{})
	})
	k.clock.Set(aware2.Add(24 * time.Hour))
	if got := k.sweep(t); len(got) != 1 || got[0].Incident.ID != inc2.ID {
		t.Fatalf("24 h: %+v", got)
	}
	for _, fw := range []string{"gdpr", "ndpa"} {
		k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
			return x.RecordNotification(ctx, inc2.ID, &incidents.Notification{Recipient: incidents.ToAuthority, Framework: fw, To: fw + " authority"})
		})
	}
	for step := 24 * time.Hour; step <= 100*time.Hour; step += time.Hour {
		k.clock.Set(aware2.Add(step))
		if got := k.sweep(t); len(got) != 0 {
			t.Fatalf("a reminder after the notifications, at %v: %+v", step, got[0].Reminder)
		}
	}
	got = k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) { return x.Get(ctx, inc2.ID) })
	for _, c := range got.Clocks(k.clock.Now()) {
		if c.Overdue || c.NotifiedAt.IsZero() || c.Late {
			t.Fatalf("clock %+v", c)
		}
	}
}

// Nodes sweeping at the same moment send each reminder once.
func testIncidentSweepRace(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incrace")
	var ids []string
	for range 3 {
		inc := k.open(t, incidents.OpenRequest{Title: "Breach", Description: "d"})
		k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
			return x.ConfirmBreach(ctx, inc.ID, time.Time{})
		})
		ids = append(ids, inc.ID)
	}
	k.clock.Add(24 * time.Hour)
	var mu sync.Mutex
	sent := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var out []sqlstore.IncidentReminder
			err := k.db.Update(ctx, func(tx *sqlstore.Tx) (err error) { out, err = tx.SweepIncidents(ctx); return err })
			if err != nil && tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range out {
				sent[r.Incident.ID]++
			}
		})
	}
	wg.Wait()
	k.sweep(t) // whatever a failed sweep left
	total := 0
	for _, id := range ids {
		total += sent[id]
	}
	if k.auditCount(t, "incident.reminder") != 3 || total > 3 {
		t.Fatalf("sent %v, audited %d; want each of 3 once", sent, k.auditCount(t, "incident.reminder"))
	}
}

// Each controller notifying its own authority: the reminders go on until every affected
// tenant's notification is recorded, and a tenant added afterwards starts them again.
func testIncidentPerTenantNotices(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incpertenant")
	c := createTenant(t, k.db, "incpertenant-c").ID
	inc := k.open(t, incidents.OpenRequest{Title: "Shared breach", Description: "d"})
	for _, tenant := range []string{k.a, k.b} {
		k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
			return x.SetAffected(ctx, inc.ID, sqlstore.AffectedChange{TenantID: tenant})
		})
	}
	aware := k.clock.Now().UTC().Truncate(time.Microsecond)
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc.ID, time.Time{})
	})
	notice := func(tenant string) {
		k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
			return x.RecordNotification(ctx, inc.ID, &incidents.Notification{Recipient: incidents.ToAuthority, TenantID: tenant, To: "authority of " + tenant})
		})
	}
	notice(k.a)
	k.clock.Set(aware.Add(24 * time.Hour))
	if got := k.sweep(t); len(got) != 1 {
		t.Fatalf("one of two tenants notified, at 24 h: %d reminders", len(got))
	}
	notice(k.b)
	k.clock.Set(aware.Add(48 * time.Hour))
	if got := k.sweep(t); len(got) != 0 {
		t.Fatalf("both notified, at 48 h: %+v", got[0].Reminder)
	}
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.SetAffected(ctx, inc.ID, sqlstore.AffectedChange{TenantID: c})
	})
	k.clock.Set(aware.Add(60 * time.Hour))
	if got := k.sweep(t); len(got) != 1 || got[0].Reminder.At != aware.Add(60*time.Hour) {
		t.Fatalf("a tenant added: %+v", got)
	}
}

// Owners are checked when named and again at each reminder: an owner whose super_admin grant
// was revoked (or expired, or who was disabled) since hears no more of the incident, and with
// no owner left qualifying the reminder goes to every current super-admin instead.
func testIncidentRemindersSkipExOwners(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incexowner")
	other := createUser(t, k.db, k.b, "root2@incexowner.example")
	temp := createUser(t, k.db, k.a, "temp@incexowner.example")
	until := k.clock.Now().Add(30 * time.Hour)
	update(t, k.db, func(tx *sqlstore.Tx) error {
		if err := tx.Users(k.b).Grant(ctx, other.ID, authz.RoleSuperAdmin, "", nil); err != nil {
			return err
		}
		return tx.Users(k.a).Grant(ctx, temp.ID, authz.RoleSuperAdmin, "", &until)
	})
	inc := k.open(t, incidents.OpenRequest{Title: "Breach", Description: "d", Owners: []string{k.admin.ID, temp.ID}})
	aware := k.clock.Now().UTC().Truncate(time.Microsecond)
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc.ID, time.Time{})
	})
	owners := func(t *testing.T, at time.Duration) []sqlstore.IncidentOwner {
		t.Helper()
		k.clock.Set(aware.Add(at))
		got := k.sweep(t)
		if len(got) != 1 || got[0].Incident.ID != inc.ID {
			t.Fatalf("at %v: reminders %+v, want one for the incident", at, got)
		}
		return got[0].Owners
	}
	// Both owners qualify at 24 h.
	if got := owners(t, 24*time.Hour); !slices.Equal(got, []sqlstore.IncidentOwner{{TenantID: k.a, UserID: k.admin.ID}, {TenantID: k.a, UserID: temp.ID}}) {
		t.Fatalf("24 h: owners %+v", got)
	}
	// temp's grant has expired by 48 h, and the other owner's is revoked: neither hears of it;
	// the remaining super-admin does.
	update(t, k.db, func(tx *sqlstore.Tx) error { return tx.Users(k.a).RevokeRole(ctx, k.admin.ID, authz.RoleSuperAdmin) })
	if got := owners(t, 48*time.Hour); !slices.Equal(got, []sqlstore.IncidentOwner{{TenantID: k.b, UserID: other.ID}}) {
		t.Fatalf("48 h: owners %+v, want only the remaining super-admin %s", got, other.ID)
	}
	// Granted again, the owner is reminded again (and the fallback stops).
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.Users(k.a).Grant(ctx, k.admin.ID, authz.RoleSuperAdmin, "", nil)
	})
	if got := owners(t, 60*time.Hour); !slices.Equal(got, []sqlstore.IncidentOwner{{TenantID: k.a, UserID: k.admin.ID}}) {
		t.Fatalf("60 h: owners %+v", got)
	}
}

// After an outage only the latest missed reminder goes out, and its timeline text states the
// time really left at the sweep, not the time left at the missed point.
func testIncidentReminderAfterOutage(t *testing.T, open Opener) {
	k := newIncidentKit(t, open, "incoutage")
	inc := k.open(t, incidents.OpenRequest{Title: "Breach", Description: "d", Frameworks: []string{"gdpr"}})
	aware := k.clock.Now().UTC().Truncate(time.Microsecond)
	k.must(t, func(x sqlstore.Incidents) (*incidents.Incident, error) {
		return x.ConfirmBreach(ctx, inc.ID, time.Time{})
	})
	// No node swept from awareness until 61 h 30 min: the 24 h, 48 h and 60 h points were missed.
	k.clock.Set(aware.Add(61*time.Hour + 30*time.Minute))
	got := k.sweep(t)
	if len(got) != 1 || !got[0].Reminder.At.Equal(aware.Add(60*time.Hour)) {
		t.Fatalf("after the outage: %+v", got)
	}
	if n := k.auditCount(t, "incident.reminder"); n != 1 {
		t.Fatalf("%d reminders audited, want 1", n)
	}
	var texts []string
	for _, e := range got[0].Incident.Timeline {
		if e.Kind == incidents.KindReminder {
			texts = append(texts, e.Text)
		}
	}
	if len(texts) != 1 || !strings.Contains(texts[0], "(10h30m0s left)") {
		t.Fatalf("reminder texts %q, want one stating 10h30m0s left", texts)
	}
}
