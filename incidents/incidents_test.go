package incidents

import (
	"strings"
	"testing"
	"time"

	"tutela"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func breach(frameworks ...string) *Incident {
	return &Incident{ID: "i", Title: "Lost laptop", Status: StatusInvestigating, PersonalDataBreach: true, DetectedAt: t0.Add(-time.Hour),
		ConfirmedAt: t0, Frameworks: frameworks}
}

// Under a 72-hour law the owners hear at 24, 48, 60 and 70 hours and at 72 (overdue), in order.
func TestReminders_72HoursAfterAwareness(t *testing.T) {
	t.Parallel()
	for _, fw := range []string{"gdpr", "ndpa", "uk_gdpr"} {
		got := breach(fw).Reminders()
		want := []time.Duration{24 * time.Hour, 48 * time.Hour, 60 * time.Hour, 70 * time.Hour, 72 * time.Hour}
		if len(got) != len(want) {
			t.Fatalf("%s: %d reminders, want %d", fw, len(got), len(want))
		}
		for i, r := range got {
			if r.At != t0.Add(want[i]) || r.Deadline != t0.Add(72*time.Hour) || r.Overdue != (i == len(want)-1) || r.Framework != fw {
				t.Errorf("%s reminder %d = %+v", fw, i, r)
			}
		}
	}
}

// No clock runs before confirmation, after the authority's notification, or once closed.
func TestReminders_NoneUnlessAConfirmedUnnotifiedOpenBreach(t *testing.T) {
	t.Parallel()
	notConfirmed := breach("gdpr")
	notConfirmed.PersonalDataBreach, notConfirmed.ConfirmedAt = false, time.Time{}
	notified := breach("gdpr")
	notified.Notifications = []Notification{{Recipient: ToAuthority, Framework: "gdpr", MadeAt: t0.Add(time.Hour)}}
	toSubjectsOnly := breach("gdpr")
	toSubjectsOnly.Notifications = []Notification{{Recipient: ToSubjects, Framework: "gdpr", MadeAt: t0.Add(time.Hour)}}
	closed := breach("gdpr")
	closed.Status = StatusClosed
	for name, c := range map[string]struct {
		inc  *Incident
		want int
	}{"not confirmed": {notConfirmed, 0}, "notified": {notified, 0}, "subjects only": {toSubjectsOnly, 5}, "closed": {closed, 0}} {
		if got := len(c.inc.Reminders()); got != c.want {
			t.Errorf("%s: %d reminders, want %d", name, got, c.want)
		}
	}
	// Two laws: notifying under one leaves the other's clock running.
	both := breach("gdpr", "ndpa")
	both.Notifications = []Notification{{Recipient: ToAuthority, Framework: "gdpr", MadeAt: t0}}
	rs := both.Reminders()
	if len(rs) != 5 || rs[0].Framework != "ndpa" {
		t.Fatalf("reminders %+v", rs)
	}
}

// Each point is due once; after an outage only the latest missed point is sent.
func TestDueReminder_EachPointOnceAndOnlyTheLatestAfterAnOutage(t *testing.T) {
	t.Parallel()
	inc := breach("gdpr")
	if _, ok := inc.DueReminder(time.Time{}, t0.Add(23*time.Hour)); ok {
		t.Fatal("due before 24 h")
	}
	r, ok := inc.DueReminder(time.Time{}, t0.Add(24*time.Hour))
	if !ok || r.At != t0.Add(24*time.Hour) {
		t.Fatalf("at 24 h: %+v %v", r, ok)
	}
	if _, ok := inc.DueReminder(r.At, t0.Add(47*time.Hour)); ok {
		t.Fatal("the 24 h point is due twice")
	}
	r, ok = inc.DueReminder(r.At, t0.Add(71*time.Hour))
	if !ok || r.At != t0.Add(70*time.Hour) || r.Overdue {
		t.Fatalf("after an outage from 24 h to 71 h: %+v", r)
	}
	if next, ok := inc.NextReminder(r.At); !ok || next != t0.Add(72*time.Hour) {
		t.Fatalf("next %v %v", next, ok)
	}
	r, ok = inc.DueReminder(r.At, t0.Add(100*time.Hour))
	if !ok || !r.Overdue {
		t.Fatalf("overdue: %+v %v", r, ok)
	}
	if _, ok := inc.NextReminder(r.At); ok {
		t.Fatal("a reminder after the overdue one")
	}
}

// Where each controller notifies its own authority, the clock stops when every affected tenant's
// notification is recorded; one deployment-wide notification stops it at once.
func TestClocks_PerTenantNotificationsStopTheClockOnlyWhenAllAreIn(t *testing.T) {
	t.Parallel()
	inc := breach("gdpr")
	inc.Tenants = []AffectedTenant{{TenantID: "a"}, {TenantID: "b"}}
	inc.Notifications = []Notification{{Recipient: ToAuthority, Framework: "gdpr", TenantID: "a", MadeAt: t0.Add(time.Hour)}}
	if c := inc.Clocks(t0.Add(2 * time.Hour))[0]; !c.NotifiedAt.IsZero() || len(inc.Reminders()) != 5 {
		t.Fatalf("one of two tenants notified: %+v", c)
	}
	if c := inc.ForTenant("a", false).Clocks(t0.Add(2 * time.Hour))[0]; c.NotifiedAt != t0.Add(time.Hour) {
		t.Fatalf("tenant a's own clock: %+v", c)
	}
	inc.Notifications = append(inc.Notifications, Notification{Recipient: ToAuthority, Framework: "gdpr", TenantID: "b", MadeAt: t0.Add(3 * time.Hour)})
	if c := inc.Clocks(t0.Add(4 * time.Hour))[0]; c.NotifiedAt != t0.Add(3*time.Hour) || len(inc.Reminders()) != 0 {
		t.Fatalf("both notified: %+v", c)
	}
	inc.Notifications = []Notification{{Recipient: ToAuthority, Framework: "gdpr", MadeAt: t0.Add(5 * time.Hour)}}
	if c := inc.Clocks(t0.Add(6 * time.Hour))[0]; c.NotifiedAt != t0.Add(5*time.Hour) {
		t.Fatalf("deployment-wide: %+v", c)
	}
}

func TestClocks_OverdueAndLate(t *testing.T) {
	t.Parallel()
	inc := breach("gdpr", "ndpa")
	cs := inc.Clocks(t0.Add(73 * time.Hour))
	if len(cs) != 2 || !cs[0].Overdue || cs[0].Remaining != -3600 || cs[0].Deadline != t0.Add(72*time.Hour) {
		t.Fatalf("clocks %+v", cs)
	}
	inc.Notifications = []Notification{{Recipient: ToAuthority, Framework: "ndpa", MadeAt: t0.Add(80 * time.Hour)}}
	cs = inc.Clocks(t0.Add(90 * time.Hour))
	if !cs[0].Overdue || cs[1].Overdue || !cs[1].Late || cs[1].NotifiedAt != t0.Add(80*time.Hour) {
		t.Fatalf("clocks %+v", cs)
	}
	inc.PersonalDataBreach = false
	if len(inc.Clocks(t0)) != 0 {
		t.Fatal("a clock for an unconfirmed incident")
	}
}

func TestCanMove_ForwardAndBackToInvestigatingButNeverOutOfClosed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		from, to Status
		ok       bool
	}{
		{StatusOpen, StatusInvestigating, true}, {StatusOpen, StatusContained, true}, {StatusOpen, StatusClosed, false},
		{StatusInvestigating, StatusOpen, false}, {StatusContained, StatusInvestigating, true},
		{StatusResolved, StatusClosed, true}, {StatusResolved, StatusInvestigating, true},
		{StatusClosed, StatusOpen, false}, {StatusClosed, StatusInvestigating, false}, {StatusClosed, StatusResolved, false},
		{StatusOpen, "reopened", false},
	} {
		if got := CanMove(c.from, c.to); got != c.ok {
			t.Errorf("%s → %s: %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}

func TestOpenRequest_Validate(t *testing.T) {
	t.Parallel()
	ok := func() OpenRequest {
		return OpenRequest{Title: "Lockouts", Description: "ten in five minutes", Actor: "monitor"}
	}
	r := ok()
	if err := r.Validate(t0); err != nil || r.Severity != Medium || len(r.Frameworks) != 1 || r.Frameworks[0] != "gdpr" {
		t.Fatalf("defaults: %+v %v", r, err)
	}
	for field, mod := range map[string]func(*OpenRequest){
		"title":       func(r *OpenRequest) { r.Title = "a\nb" },
		"description": func(r *OpenRequest) { r.Description = " " },
		"severity":    func(r *OpenRequest) { r.Severity = "urgent" },
		"detected_at": func(r *OpenRequest) { r.DetectedAt = t0.Add(time.Minute) },
		"frameworks":  func(r *OpenRequest) { r.Frameworks = []string{"gdpr", "gdpr"} },
		"owners":      func(r *OpenRequest) { r.Owners = []string{"not-an-id"} },
		"event_ids":   func(r *OpenRequest) { r.Events = []EventRef{{Kind: "log", ID: "x"}} },
		"actor":       func(r *OpenRequest) { r.Actor = "" },
	} {
		r := ok()
		mod(&r)
		err := r.Validate(t0)
		var te *tutela.Error
		if tutela.ErrorCode(err) != tutela.EINVALID || !asErr(err, &te) || te.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func asErr(err error, te **tutela.Error) bool {
	e, ok := err.(*tutela.Error)
	*te = e
	return ok
}

// The tenant view keeps the tenant's own part: no other tenant's IDs, subjects, scoped entries
// or notifications, no owners, and no platform user's ID as an actor.
func TestForTenant_OnlyTheTenantsOwnPart(t *testing.T) {
	t.Parallel()
	a, b := tutela.NewID(), tutela.NewID()
	admin := tutela.NewID()
	inc := breach("gdpr")
	inc.Owners, inc.CreatedBy = []string{admin}, admin
	inc.Tenants = []AffectedTenant{{TenantID: a, SubjectIDs: []string{"sa"}, SubjectsListed: 1}, {TenantID: b, SubjectIDs: []string{"sb"}, SubjectsListed: 1}}
	inc.Timeline = []Entry{{Actor: admin, Kind: KindNote, Text: "general"}, {Kind: KindAffected, TenantID: a, Text: "for a"},
		{Kind: KindAffected, TenantID: b, Text: "for b"}}
	inc.Notifications = []Notification{{TenantID: b, To: "authority of b", RecordedBy: admin}, {To: "lead authority", RecordedBy: admin}}
	v := inc.ForTenant(a, false)
	all := strings.Join([]string{v.Tenants[0].TenantID, v.Timeline[0].Actor, v.Timeline[0].Text, v.Timeline[1].Text}, " ")
	if len(v.Tenants) != 1 || v.Tenants[0].TenantID != a || v.Tenants[0].SubjectIDs != nil || v.Tenants[0].SubjectsListed != 1 ||
		len(v.Timeline) != 2 || len(v.Notifications) != 1 || v.Notifications[0].To != "lead authority" ||
		v.Notifications[0].RecordedBy != "" || v.Owners != nil || v.CreatedBy != "" || strings.Contains(all, admin) || strings.Contains(all, b) {
		t.Fatalf("tenant view %+v", v)
	}
	if w := inc.ForTenant(a, true); len(w.Tenants[0].SubjectIDs) != 1 || w.Tenants[0].SubjectIDs[0] != "sa" {
		t.Fatalf("with subjects: %+v", w.Tenants)
	}
	if inc.Tenants[1].SubjectIDs[0] != "sb" || inc.Timeline[0].Actor != admin {
		t.Fatal("the view changed the incident")
	}
}

// The export lists what a complete Art. 33(3) notification still lacks, and its document
// marks those fields missing rather than leaving them blank.
func TestReport_ListsMissingFieldsAndRendersThem(t *testing.T) {
	t.Parallel()
	inc := breach("gdpr")
	inc.Description = "A laptop holding case files was stolen."
	inc.Tenants = []AffectedTenant{{TenantID: "a", SubjectsApprox: 120, RecordsApprox: 300}, {TenantID: "b", SubjectsApprox: 2, SubjectsListed: 5}}
	r := inc.Report(t0.Add(10 * time.Hour))
	if r.SubjectsApprox != 125 || r.RecordsApprox != 300 || r.TenantsAffected != 2 || r.Complete ||
		strings.Join(r.Missing, ",") != "subject_categories,data_categories,contact,consequences,measures" {
		t.Fatalf("report %+v", r)
	}
	md := r.Markdown()
	for _, want := range []string{"# Personal data breach notification: Lost laptop", "**Incomplete:** still missing subject_categories",
		"A laptop holding case files was stolen.", "about 125", "## (b) Contact point\n\n_(missing: to be completed)_",
		"GDPR Art. 33(1) (the competent supervisory authority): deadline 2026-03-04T09:00:00Z, not yet notified"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	inc.SubjectCategories, inc.DataCategories = []string{"refugees"}, []string{"names", "case notes"}
	inc.Contact, inc.Consequences, inc.Measures = "dpo@example.org", "Identity theft risk.", "Disk encryption checked; passwords reset."
	if r := inc.Report(t0); !r.Complete || len(r.Missing) != 0 || strings.Contains(r.Markdown(), "missing") {
		t.Fatalf("complete report %+v", r)
	}
}
