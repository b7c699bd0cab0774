package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/incidents"
	"tutela/notify"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type incidentBody struct {
	Incident incidents.Incident `json:"incident"`
	Clocks   []incidents.Clock  `json:"clocks"`
}

// incidentEnv is the subjects' environment (tenant acme with admin, operator and auditor, the
// root super-admin, and another tenant's admin) with a subject in each tenant.
type incidentEnv struct {
	*subjectEnv
	other        *tutela.Tenant
	subjA, subjO string
	rootID       string
}

func newIncidentEnv(t *testing.T, d sqlstore.Dialect) *incidentEnv {
	t.Helper()
	se := newSubjectEnv(t, d)
	ie := &incidentEnv{subjectEnv: se}
	ctx := context.Background()
	if err := se.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if ie.other, err = tx.TenantBySlug(ctx, "other"); err != nil {
			return err
		}
		root, err := tx.TenantBySlug(ctx, "root")
		if err != nil {
			return err
		}
		u, err := tx.Users(root.ID).ByEmail(ctx, "root@example.org")
		if err == nil {
			ie.rootID = u.ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ie.subjA = se.create(t)
	if res, b := se.req(t, "PUT", se.otherTenantsBase+"/subject-schema", subjectSchemaJSON, "", se.root); res.StatusCode != 200 {
		t.Fatalf("schema: %d %s", res.StatusCode, b)
	}
	res, b := se.req(t, "POST", se.otherTenantsBase+"/subjects", `{"values":{"full_name":"Grace Hopper"}}`, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("subject: %d %s", res.StatusCode, b)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &created); err != nil || created.ID == "" {
		t.Fatalf("subject: %s", b)
	}
	ie.subjO = created.ID
	return ie
}

func (ie *incidentEnv) call(t *testing.T, method, path, body string, auth any, status int) incidentBody {
	t.Helper()
	res, b := ie.req(t, method, path, body, "", auth)
	if res.StatusCode != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
	}
	var out incidentBody
	if status/100 == 2 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %s", method, path, b)
		}
	}
	return out
}

// The platform opens an incident from a security event and records the tenants and subjects
// it affects; tenant acme's administrator and auditor read it through acme's path with only
// acme's part (the auditor without subject IDs), never the other tenant's ID or subject; an
// incident affecting only the other tenant is 404 to acme; a tenant's people cannot use the
// platform's path, an operator cannot read incidents at all.
func TestIncidents_PlatformManagesAndEachTenantSeesOnlyItsPart(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ie := newIncidentEnv(t, d)
			ctx := context.Background()
			sec := &sqlstore.SecurityEvent{TenantID: ie.tenant.ID, Kind: "lockout", IP: "203.0.113.9"}
			if err := ie.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.RecordSecurityEvent(ctx, sec) }); err != nil {
				t.Fatal(err)
			}
			res, b := ie.req(t, "POST", "/v1/incidents", fmt.Sprintf(`{"title":"Credential stuffing","description":"Lockouts across tenants.",
				"severity":"high","event_ids":[%q]}`, sec.ID), "", ie.root)
			if res.StatusCode != 201 {
				t.Fatalf("open: %d %s", res.StatusCode, b)
			}
			var shared incidentBody
			_ = json.Unmarshal(b, &shared)
			id := shared.Incident.ID
			if res.Header.Get("Location") != "/v1/incidents/"+id || shared.Incident.Severity != incidents.High ||
				!slices.Equal(shared.Incident.Owners, []string{ie.rootID}) || len(shared.Clocks) != 0 ||
				!slices.ContainsFunc(shared.Incident.Timeline, func(e incidents.Entry) bool {
					return e.Kind == incidents.KindSecurityEvent && e.Ref == sec.ID && e.TenantID == ie.tenant.ID
				}) || strings.Contains(string(b), "203.0.113") {
				t.Fatalf("opened %s", b)
			}
			res, b = ie.req(t, "POST", "/v1/incidents", `{"title":"x","description":"d","event_ids":["`+tutela.NewID()+`"]}`, "", ie.root)
			wantError(t, res, b, 400, tutela.EINVALID)

			ie.call(t, "PUT", "/v1/incidents/"+id+"/tenants/"+ie.tenant.ID,
				`{"subjects_approx":10,"records_approx":40,"subject_ids":["`+ie.subjA+`"]}`, ie.root, 200)
			ie.call(t, "PUT", "/v1/incidents/"+id+"/tenants/"+ie.other.ID, `{"subjects_approx":3,"subject_ids":["`+ie.subjO+`"]}`, ie.root, 200)
			// Acme's subject is not the other tenant's.
			res, b = ie.req(t, "PUT", "/v1/incidents/"+id+"/tenants/"+ie.other.ID, `{"subject_ids":["`+ie.subjA+`"]}`, "", ie.root)
			wantError(t, res, b, 400, tutela.EINVALID)
			ie.call(t, "POST", "/v1/incidents/"+id+"/timeline", `{"text":"The other tenant's servers were reimaged.","tenant_id":"`+ie.other.ID+`"}`, ie.root, 201)
			onlyOther := ie.call(t, "POST", "/v1/incidents", `{"title":"Other only","description":"d"}`, ie.root, 201).Incident.ID
			ie.call(t, "PUT", "/v1/incidents/"+onlyOther+"/tenants/"+ie.other.ID, `{}`, ie.root, 200)

			full := ie.call(t, "GET", "/v1/incidents/"+id, "", ie.root, 200)
			if len(full.Incident.Tenants) != 2 {
				t.Fatalf("platform view %+v", full.Incident.Tenants)
			}

			// The tenant's people cannot use the platform's path.
			for _, path := range []string{"/v1/incidents", "/v1/incidents/" + id, "/v1/incidents/" + id + "/notification"} {
				res, b = ie.req(t, "GET", path, "", "", ie.admin)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			res, b = ie.req(t, "POST", "/v1/incidents", `{"title":"x","description":"d"}`, "", ie.admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = ie.req(t, "PATCH", "/v1/incidents/"+id, `{"severity":"low"}`, "", ie.admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)

			acme := "/v1/tenants/" + ie.tenant.ID + "/incidents"
			forbidden := []string{ie.other.ID, ie.subjO, ie.rootID, "reimaged"}
			for who, auth := range map[string]string{"admin": ie.admin, "auditor": ie.auditor} {
				res, b = ie.req(t, "GET", acme, "", "", auth)
				var page struct {
					Incidents []incidents.Incident `json:"incidents"`
				}
				_ = json.Unmarshal(b, &page)
				if res.StatusCode != 200 || len(page.Incidents) != 1 || page.Incidents[0].ID != id {
					t.Fatalf("%s list: %d %s", who, res.StatusCode, b)
				}
				for _, path := range []string{acme, acme + "/" + id, acme + "/" + id + "/notification", acme + "/" + id + "/notification?format=markdown"} {
					res, b = ie.req(t, "GET", path, "", "", auth)
					if res.StatusCode != 200 {
						t.Fatalf("%s %s: %d %s", who, path, res.StatusCode, b)
					}
					for _, leak := range forbidden {
						if strings.Contains(string(b), leak) {
							t.Fatalf("%s reads %q at %s: %s", who, leak, path, b)
						}
					}
				}
				v := ie.call(t, "GET", acme+"/"+id, "", auth, 200)
				if len(v.Incident.Tenants) != 1 || v.Incident.Tenants[0].TenantID != ie.tenant.ID || v.Incident.Tenants[0].SubjectsApprox != 10 ||
					(who == "admin") != slices.Equal(v.Incident.Tenants[0].SubjectIDs, []string{ie.subjA}) {
					t.Fatalf("%s view %+v", who, v.Incident.Tenants)
				}
				res, b = ie.req(t, "GET", acme+"/"+onlyOther, "", "", auth)
				wantError(t, res, b, 404, tutela.ENOTFOUND)
				// Another tenant's incident as a page cursor is refused like an unknown one,
				// rather than positioning acme's page after it.
				for _, cursor := range []string{onlyOther, tutela.NewID()} {
					res, b = ie.req(t, "GET", acme+"?cursor="+cursor, "", "", auth)
					wantError(t, res, b, 400, tutela.EINVALID)
				}
				res, b = ie.req(t, "GET", acme+"?cursor="+id, "", "", auth)
				if res.StatusCode != 200 || strings.Contains(string(b), onlyOther) {
					t.Fatalf("%s list after its own incident: %d %s", who, res.StatusCode, b)
				}
			}
			// The platform pages through every incident.
			res, b = ie.req(t, "GET", "/v1/incidents?cursor="+onlyOther, "", "", ie.root)
			if res.StatusCode != 200 || !strings.Contains(string(b), id) {
				t.Fatalf("platform list after %s: %d %s", onlyOther, res.StatusCode, b)
			}
			// The other tenant's administrator sees its own part of the shared incident, nothing of
			// acme's, and acme's path is not found to them.
			otherBase := ie.otherTenantsBase + "/incidents"
			res, b = ie.req(t, "GET", otherBase+"/"+id, "", "", ie.otherAdmin)
			if res.StatusCode != 200 || strings.Contains(string(b), ie.tenant.ID) || strings.Contains(string(b), ie.subjA) ||
				!strings.Contains(string(b), ie.subjO) || !strings.Contains(string(b), "reimaged") {
				t.Fatalf("other's view: %d %s", res.StatusCode, b)
			}
			res, b = ie.req(t, "GET", acme+"/"+id, "", "", ie.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = ie.req(t, "GET", acme, "", "", ie.operator)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
		})
	}
}

// The breach clock on the test clock, through the API and the job queue: after confirmation
// the owner is e-mailed once at 24 h and at 48 h (the notice names the incident, never its
// title), recording the authority's notification stops the reminders, and an unnotified breach
// shows as overdue past 72 h and is mailed as such once.
func TestIncidents_BreachClockRemindsOwnerOnceEachUntilNotified(t *testing.T) {
	t.Parallel()
	ie := newIncidentEnv(t, sqltest.Dialects[0])
	if err := notify.Register(ie.ids.Jobs, ie.db, ie.mail, &http.Client{}, notify.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	open := func(title string) string {
		id := ie.call(t, "POST", "/v1/incidents", `{"title":"`+title+`","description":"Case files on a stolen laptop."}`, ie.root, 201).Incident.ID
		c := ie.call(t, "POST", "/v1/incidents/"+id+"/confirm", `{}`, ie.root, 200)
		if len(c.Clocks) != 1 || c.Clocks[0].Remaining < 72*3600-1 || c.Clocks[0].Remaining > 72*3600 || c.Clocks[0].Overdue {
			t.Fatalf("clocks %+v", c.Clocks)
		}
		return id
	}
	notified, late := open("Ada Lovelace's file"), open("Second breach")
	start := ie.clock.Now()
	ie.mail.Reset()
	mails := func() []string {
		t.Helper()
		if _, err := ie.srv.SweepIncidents(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := ie.srv.SweepIncidents(ctx); err != nil { // a second node sweeping at once
			t.Fatal(err)
		}
		deliver(t, ie.ids)
		var out []string
		for _, m := range ie.mail.Messages() {
			if m.To != "root@example.org" || strings.Contains(m.Subject+m.Text, "Lovelace") || strings.Contains(m.Subject+m.Text, "laptop") {
				t.Fatalf("mail %+v", m)
			}
			for _, id := range []string{notified, late} {
				if strings.Contains(m.Subject, id) {
					kind := "reminder"
					if strings.HasPrefix(m.Subject, "OVERDUE") {
						kind = "overdue"
					}
					out = append(out, id+" "+kind)
				}
			}
		}
		ie.mail.Reset()
		slices.Sort(out)
		return out
	}
	at := func(h int) { ie.clock.Set(start.Add(time.Duration(h) * time.Hour)) }
	at(23)
	if got := mails(); len(got) != 0 {
		t.Fatalf("before 24 h: %v", got)
	}
	for _, h := range []int{24, 48} {
		at(h)
		want := []string{late + " reminder", notified + " reminder"}
		slices.Sort(want)
		if got := mails(); !slices.Equal(got, want) {
			t.Fatalf("at %d h: %v, want %v", h, got, want)
		}
		if got := mails(); len(got) != 0 {
			t.Fatalf("at %d h again: %v", h, got)
		}
	}
	at(50)
	fresh := func() string { return ie.login(t, "root", "root@example.org", pw, "").AccessToken } // the old token has expired
	ie.call(t, "POST", "/v1/incidents/"+notified+"/notifications", `{"recipient":"authority","to":"CNIL","reference":"NOTIF-2026-0042"}`, fresh(), 201)
	for _, h := range []int{60, 70} {
		at(h)
		if got := mails(); !slices.Equal(got, []string{late + " reminder"}) {
			t.Fatalf("at %d h: %v", h, got)
		}
	}
	at(73)
	if got := mails(); !slices.Equal(got, []string{late + " overdue"}) {
		t.Fatalf("at 73 h: %v", got)
	}
	at(200)
	if got := mails(); len(got) != 0 {
		t.Fatalf("after the deadline: %v", got)
	}
	root := fresh()
	lateView := ie.call(t, "GET", "/v1/incidents/"+late, "", root, 200)
	if c := lateView.Clocks[0]; !c.Overdue || c.Remaining >= 0 || c.Late {
		t.Fatalf("late clock %+v", c)
	}
	done := ie.call(t, "GET", "/v1/incidents/"+notified, "", root, 200)
	if c := done.Clocks[0]; c.Overdue || c.NotifiedAt.IsZero() || c.Late {
		t.Fatalf("notified clock %+v", c)
	}
	var kinds []string
	for _, e := range lateView.Incident.Timeline {
		kinds = append(kinds, e.Kind)
	}
	if want := "opened breach_confirmed reminder reminder reminder reminder overdue"; strings.Join(kinds, " ") != want {
		t.Fatalf("timeline %v", kinds)
	}
}

// The export lists the fields a complete Art. 33(3) notification lacks until they are filled,
// as JSON and as Markdown; on a tenant's path the counts are the tenant's own.
func TestIncidents_NotificationExport(t *testing.T) {
	t.Parallel()
	ie := newIncidentEnv(t, sqltest.Dialects[0])
	id := ie.call(t, "POST", "/v1/incidents", `{"title":"Misdirected export","description":"An export went to the wrong partner."}`, ie.root, 201).Incident.ID
	ie.call(t, "PUT", "/v1/incidents/"+id+"/tenants/"+ie.tenant.ID, `{"subjects_approx":120,"records_approx":300}`, ie.root, 200)
	ie.call(t, "PUT", "/v1/incidents/"+id+"/tenants/"+ie.other.ID, `{"subjects_approx":7,"records_approx":9}`, ie.root, 200)
	report := func(path string, auth any) (r incidents.Report) {
		t.Helper()
		res, b := ie.req(t, "GET", path, "", "", auth)
		var body struct {
			Notification incidents.Report `json:"notification"`
		}
		if err := json.Unmarshal(b, &body); res.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		return body.Notification
	}
	r := report("/v1/incidents/"+id+"/notification", ie.root)
	if r.Complete || r.SubjectsApprox != 127 || r.RecordsApprox != 309 ||
		strings.Join(r.Missing, ",") != "personal_data_breach,subject_categories,data_categories,contact,consequences,measures" {
		t.Fatalf("report %+v", r)
	}
	ie.call(t, "POST", "/v1/incidents/"+id+"/confirm", `{}`, ie.root, 200)
	ie.call(t, "PATCH", "/v1/incidents/"+id, `{"subject_categories":["beneficiaries"],"data_categories":["names","case notes"],
		"contact":"dpo@example.org","consequences":"Disclosure to an unintended partner.","measures":"Partner deleted the file; sharing paused."}`, ie.root, 200)
	if r = report("/v1/incidents/"+id+"/notification", ie.root); !r.Complete || len(r.Missing) != 0 || len(r.Clocks) != 1 {
		t.Fatalf("complete report %+v", r)
	}
	if r = report("/v1/tenants/"+ie.tenant.ID+"/incidents/"+id+"/notification", ie.admin); r.SubjectsApprox != 120 || r.TenantsAffected != 1 {
		t.Fatalf("tenant report %+v", r)
	}
	res, b := ie.req(t, "GET", "/v1/incidents/"+id+"/notification?format=markdown", "", "", ie.root)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(b), "## (d) Measures taken or proposed\n\nPartner deleted the file") || !strings.Contains(string(b), "about 127") {
		t.Fatalf("markdown: %d %s", res.StatusCode, b)
	}
	res, b = ie.req(t, "GET", "/v1/incidents/"+id+"/notification?format=pdf", "", "", ie.root)
	wantError(t, res, b, 400, tutela.EINVALID)
}

// Status moves are checked, a breach is not closed before the authority is told, a closed
// incident changes no more, and bad input changes nothing.
func TestIncidents_StatusRulesAndBadInput(t *testing.T) {
	t.Parallel()
	ie := newIncidentEnv(t, sqltest.Dialects[0])
	id := ie.call(t, "POST", "/v1/incidents", `{"title":"Phishing","description":"d","frameworks":["gdpr","ndpa"]}`, ie.root, 201).Incident.ID
	path := "/v1/incidents/" + id
	for body, code := range map[string]string{
		`{"status":"closed"}`:             tutela.ECONFLICT,
		`{"severity":"urgent"}`:           tutela.EINVALID,
		`{"frameworks":["hipaa"]}`:        tutela.EINVALID,
		`{"title":""}`:                    tutela.EINVALID,
		`{"owners":["` + ie.subjA + `"]}`: tutela.EINVALID, // not a user
	} {
		res, b := ie.req(t, "PATCH", path, body, "", ie.root)
		wantError(t, res, b, map[string]int{tutela.ECONFLICT: 409, tutela.EINVALID: 400}[code], code)
	}
	res, b := ie.req(t, "POST", path+"/notifications", `{"recipient":"authority","framework":"gdpr","to":"CNIL"}`, "", ie.root)
	wantError(t, res, b, 409, tutela.ECONFLICT) // not a confirmed breach yet
	res, b = ie.req(t, "POST", path+"/confirm", `{"aware_at":"`+ie.clock.Now().Add(time.Hour).Format(time.RFC3339)+`"}`, "", ie.root)
	wantError(t, res, b, 400, tutela.EINVALID)
	ie.call(t, "POST", path+"/confirm", `{}`, ie.root, 200)
	ie.call(t, "PATCH", path, `{"status":"resolved"}`, ie.root, 200)
	ie.call(t, "POST", path+"/notifications", `{"recipient":"authority","framework":"gdpr","to":"CNIL"}`, ie.root, 201)
	res, b = ie.req(t, "PATCH", path, `{"status":"closed"}`, "", ie.root)
	if eb := wantError(t, res, b, 409, tutela.ECONFLICT); !strings.Contains(eb.Error.Message, "ndpa") {
		t.Fatalf("message %q", eb.Error.Message)
	}
	ie.call(t, "POST", path+"/notifications", `{"recipient":"authority","framework":"ndpa","to":"NDPC"}`, ie.root, 201)
	closed := ie.call(t, "PATCH", path, `{"status":"closed"}`, ie.root, 200)
	if closed.Incident.Status != incidents.StatusClosed || closed.Incident.ClosedAt.IsZero() {
		t.Fatalf("closed %+v", closed.Incident)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", path, `{"status":"investigating"}`},
		{"PATCH", path, `{"measures":"more"}`},
		{"POST", path + "/timeline", `{"text":"late note"}`},
	} {
		res, b = ie.req(t, c.method, c.path, c.body, "", ie.root)
		wantError(t, res, b, 409, tutela.ECONFLICT)
	}
	res, b = ie.req(t, "GET", "/v1/incidents/"+tutela.NewID(), "", "", ie.root)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
}

// aware_at is optional, so is the confirm body: none confirms with aware_at now. An affected
// tenant is named by ID or by slug, like everywhere else in the API; the slug is resolved to
// the tenant's ID, and an unknown slug is refused, changing nothing.
func TestIncidents_ConfirmWithoutBodyAndAffectedTenantBySlug(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ie := newIncidentEnv(t, d)
			id := ie.call(t, "POST", "/v1/incidents", `{"title":"Lost backup","description":"d","frameworks":["gdpr"]}`, ie.root, 201).Incident.ID
			path := "/v1/incidents/" + id
			c := ie.call(t, "POST", path+"/confirm", "", ie.root, 200)
			if !c.Incident.PersonalDataBreach || !c.Incident.ConfirmedAt.Equal(ie.clock.Now().UTC().Truncate(time.Microsecond)) || len(c.Clocks) != 1 {
				t.Fatalf("confirmed without a body: %+v", c)
			}
			got := ie.call(t, "PUT", path+"/tenants/"+ie.other.Slug, `{"subjects_approx":4}`, ie.root, 200)
			if len(got.Incident.Tenants) != 1 || got.Incident.Tenants[0].TenantID != ie.other.ID || got.Incident.Tenants[0].SubjectsApprox != 4 {
				t.Fatalf("affected by slug: %+v", got.Incident.Tenants)
			}
			got = ie.call(t, "PUT", path+"/tenants/"+ie.tenant.ID, `{"subjects_approx":2}`, ie.root, 200)
			if len(got.Incident.Tenants) != 2 {
				t.Fatalf("affected by ID: %+v", got.Incident.Tenants)
			}
			res, b := ie.req(t, "PUT", path+"/tenants/no-such-tenant", `{"subjects_approx":1}`, "", ie.root)
			wantError(t, res, b, 400, tutela.EINVALID)
			if after := ie.call(t, "GET", path, "", ie.root, 200); len(after.Incident.Tenants) != 2 {
				t.Fatalf("an unknown slug changed the incident: %+v", after.Incident.Tenants)
			}
		})
	}
}
