package httpapi_test

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type dsrView struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	DueAt       time.Time  `json:"due_at"`
	ReceivedAt  time.Time  `json:"received_at"`
	Outcome     string     `json:"outcome"`
	CompletedAt *time.Time `json:"completed_at"`
}

// dsrCall makes one call and requires status, returning the request it answers.
func (se *subjectEnv) dsrCall(t *testing.T, method, path, body string, auth any, status int) dsrView {
	t.Helper()
	res, b := se.req(t, method, path, body, "", auth)
	if res.StatusCode != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
	}
	var d dsrView
	if status < 300 {
		mustUnmarshal(t, b, &d)
	}
	return d
}

// The whole workflow over HTTP, on both stores: an access request received, verified,
// assigned, submitted by its assignee, refused to the assignee's own approval (four eyes),
// approved by the approver, and its package downloaded once through the link, with the headers
// that keep it out of caches and referrers; the token never reaches the audit log or the logs;
// another tenant sees nothing.
func TestDSR_WorkflowAndOneTimeDownload(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			admin := se.login(t, "acme", "admin@example.org", pw, "")
			admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
			op := se.login(t, "acme", "op@example.org", pw, "")
			subj := se.create(t)
			base := se.base + "/dsr"

			// Bad input is refused with the field named; the auditor may not create.
			res, b := se.req(t, "POST", base, `{"subject_id":"`+subj+`","kind":"access","jurisdiction":"atlantis"}`, "", se.operator)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = se.req(t, "POST", base, `{"subject_id":"`+subj+`","kind":"access"}`, "", se.auditor)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			req := se.dsrCall(t, "POST", base, `{"subject_id":"`+subj+`","kind":"access","text":"Please send me all you hold about me"}`, se.operator, 201)
			if req.Status != "received" || !req.DueAt.Equal(req.ReceivedAt.AddDate(0, 0, 30)) {
				t.Fatalf("new request = %+v", req)
			}
			one := base + "/" + req.ID

			// The text is the subject's: the auditor (GREEN) sees that it exists, not what it says.
			res, b = se.req(t, "GET", one, "", "", se.auditor)
			if res.StatusCode != 200 || bytes.Contains(b, []byte("Please send")) || !bytes.Contains(b, []byte(`"text_withheld":true`)) {
				t.Fatalf("auditor's read: %d %s", res.StatusCode, b)
			}
			if res, b = se.req(t, "GET", one, "", "", se.admin); res.StatusCode != 200 || !bytes.Contains(b, []byte("Please send")) {
				t.Fatalf("admin's read: %d %s", res.StatusCode, b)
			}
			// Another tenant: not found, for reading and for every step.
			for _, c := range []struct{ method, path, body string }{{"GET", one, ""},
				{"POST", one + "/verify", `{"result":"verified","method":"document_copy"}`}} {
				other := strings.Replace(c.path, se.base, se.otherTenantsBase, 1)
				res, b = se.req(t, c.method, other, c.body, "", se.otherAdmin)
				wantError(t, res, b, 404, tutela.ENOTFOUND)
			}

			// Nothing executes before the identity is verified.
			se.dsrCall(t, "POST", one+"/approve", "", se.admin, 409)
			se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"in_person_document"}`, se.operator, 200)
			se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin.UserID+`"}`, se.operator, 400)
			se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
			se.dsrCall(t, "POST", one+"/submit", `{}`, op.AccessToken, 403) // not the assignee
			se.dsrCall(t, "POST", one+"/submit", `{}`, admin.AccessToken, 200)
			// Four eyes: the assignee holds APPROVE, yet cannot approve their own work; the
			// operator holds no APPROVE at all.
			se.dsrCall(t, "POST", one+"/approve", "", admin.AccessToken, 403)
			se.dsrCall(t, "POST", one+"/approve", "", op.AccessToken, 403)
			done := se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 200)
			if done.Status != "completed" || done.Outcome != "package_ready" || done.CompletedAt == nil {
				t.Fatalf("approved = %+v", done)
			}

			// The link: EXPORT on dsr (the auditor has none), 256 random bits, one use. No
			// e-mail address on file: it is handed over in person, so only to someone who may
			// read every field in clear (the super-admin; not admin2, cleared for YELLOW).
			res, b = se.req(t, "POST", one+"/download-link", "", "", se.auditor)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = se.req(t, "POST", one+"/download-link", "", "", admin2.AccessToken)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = se.req(t, "POST", one+"/download-link", "", "", se.root)
			if res.StatusCode != 201 || res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("download-link: %d %s", res.StatusCode, b)
			}
			var link struct {
				Path        string `json:"path"`
				DeliveredTo string `json:"delivered_to"`
			}
			mustUnmarshal(t, b, &link)
			if link.DeliveredTo != "in_person" || link.Path == "" {
				t.Fatalf("download-link: %s", b)
			}
			res, zipped := se.req(t, "GET", link.Path, "", "", nil)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/zip" ||
				res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Referrer-Policy") != "no-referrer" ||
				!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment;") {
				t.Fatalf("download: %d %v", res.StatusCode, res.Header)
			}
			zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
			if err != nil {
				t.Fatal(err)
			}
			var pkg []byte
			for _, f := range zr.File {
				if f.Name == "package.json" {
					rc, _ := f.Open()
					var buf bytes.Buffer
					buf.ReadFrom(rc)
					rc.Close()
					pkg = buf.Bytes()
				}
			}
			// Every value in clear, RED included: the subject's own right of access.
			for _, v := range []string{"Ada Lovelace", "AB-947 381", "Lives near Marylebone", "Please send me all"} {
				if !bytes.Contains(pkg, []byte(v)) {
					t.Errorf("package lacks %q", v)
				}
			}
			res, b = se.req(t, "GET", link.Path, "", "", nil)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "GET", "/v1/dsr-downloads/"+strings.Repeat("A", 43), "", "", nil)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "GET", "/v1/dsr-downloads/short", "", "", nil)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			// One link per approval: the package went with its download, no second link.
			res, b = se.req(t, "POST", one+"/download-link", "", "", se.root)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			se.clock.Add(time.Hour)

			// The token: not in the audit log, not in the logs; the route pattern is.
			token := strings.TrimPrefix(link.Path, "/v1/dsr-downloads/")
			all := bytes.Join(auditCanonicals(t, se.db), nil)
			if bytes.Contains(all, []byte(token)) || strings.Contains(se.logs.String(), token) {
				t.Fatal("the download token reached the audit log or the logs")
			}
			if !bytes.Contains(all, []byte("/v1/dsr-downloads/{token}")) || !bytes.Contains(all, []byte("dsr.package_download")) {
				t.Fatal("the download is not audited by its route pattern")
			}
			se.noValueLeaked(t)

			// Lists: by status, overdue (none yet, then this one once past due), bad filters.
			var page struct {
				Requests []dsrView `json:"requests"`
			}
			// The clock moved past the access tokens' lifetime: sign in again.
			se.operator = se.login(t, "acme", "op@example.org", pw, "").AccessToken
			se.auditor = se.login(t, "acme", "aud@example.org", pw, "").AccessToken
			second := se.dsrCall(t, "POST", base, `{"subject_id":"`+subj+`","kind":"restriction"}`, se.operator, 201)
			res, b = se.req(t, "GET", base+"?overdue=true", "", "", se.auditor)
			mustUnmarshal(t, b, &page)
			if res.StatusCode != 200 || len(page.Requests) != 0 {
				t.Fatalf("overdue list: %d %s", res.StatusCode, b)
			}
			se.clock.Add(31 * 24 * time.Hour)
			se.auditor = se.login(t, "acme", "aud@example.org", pw, "").AccessToken
			res, b = se.req(t, "GET", base+"?overdue=true", "", "", se.auditor)
			mustUnmarshal(t, b, &page)
			if res.StatusCode != 200 || len(page.Requests) != 1 || page.Requests[0].ID != second.ID {
				t.Fatalf("overdue list: %s", b)
			}
			res, b = se.req(t, "GET", base+"?status=completed&subject="+subj, "", "", se.auditor)
			mustUnmarshal(t, b, &page)
			if res.StatusCode != 200 || len(page.Requests) != 1 || page.Requests[0].ID != req.ID {
				t.Fatalf("completed list: %s", b)
			}
			res, b = se.req(t, "GET", base+"?overdue=maybe", "", "", se.auditor)
			wantError(t, res, b, 400, tutela.EINVALID)
		})
	}
}

// auditCanonicals is every audit event's canonical form, as stored.
func auditCanonicals(t *testing.T, db *sqlstore.DB) [][]byte {
	t.Helper()
	return columnBytes(t, db, `SELECT canonical FROM audit_events`)
}

// An erasure request under a legal hold: the approval answers 409 naming the hold, the request
// stays open (blocked) and the subject is untouched; once the hold is released, approving again
// crypto-shreds the subject.
func TestDSR_ErasureBlockedByHoldThenShreds(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin := se.login(t, "acme", "admin@example.org", pw, "")
	admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
	subj := se.create(t)
	res, b := se.req(t, "POST", se.base+"/subjects/"+subj+"/holds", `{"reason":"case 2026-3 litigation"}`, "", se.admin)
	if res.StatusCode != 201 {
		t.Fatalf("hold: %d %s", res.StatusCode, b)
	}
	var hold struct{ ID string }
	mustUnmarshal(t, b, &hold)
	one := se.base + "/dsr/" + se.dsrCall(t, "POST", se.base+"/dsr", `{"subject_id":"`+subj+`","kind":"erasure","jurisdiction":"popia"}`, se.operator, 201).ID
	se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"document_copy"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/submit", `{}`, admin.AccessToken, 200)
	res, b = se.req(t, "POST", one+"/approve", "", "", admin2.AccessToken)
	if e := wantError(t, res, b, 409, tutela.ECONFLICT); !strings.Contains(e.Error.Message, "case 2026-3 litigation") {
		t.Fatalf("409 does not name the hold: %s", b)
	}
	res, b = se.req(t, "GET", one, "", "", se.admin)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"status":"blocked"`)) || !bytes.Contains(b, []byte(`"step":"blocked"`)) {
		t.Fatalf("request after the refused erasure: %s", b)
	}
	if v := se.read(t, subj, "case_management", se.root); v["national_id"] != "AB-947 381" {
		t.Fatalf("the subject changed under the hold: %v", v)
	}
	if res, b := se.req(t, "DELETE", se.base+"/subjects/"+subj+"/holds/"+hold.ID, "", "", se.admin); res.StatusCode != 200 {
		t.Fatalf("release: %d %s", res.StatusCode, b)
	}
	if d := se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 200); d.Outcome != "erased" {
		t.Fatalf("approved after release: %+v", d)
	}
	res, b = se.req(t, "GET", se.base+"/subjects/"+subj+"?purpose=case_management", "", "", se.root)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
}

// APPROVE and EXPORT on dsr are sensitive: with step-up enforced, approving and making the
// download link need a second factor proved in the last 5 minutes.
func TestDSR_ApproveAndLinkNeedStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, adminSecret := adminWithFactor(t, e)
	e.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin2 := e.login(t, "acme", "admin2@example.org", pw, "")
	secret2 := e.enrolTOTP(t, admin2.cookie)
	base := "/v1/tenants/" + tn.ID
	e.stepUp(t, admin.cookie, adminSecret)
	putSchemaAsPlatform(t, e, tn.ID, subjectSchemaJSON)
	res, b := e.req(t, "POST", base+"/subjects", `{"values":{"full_name":"Ada Lovelace"}}`, "", admin.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	call := func(method, path, body string, auth any, status int) []byte {
		t.Helper()
		res, b := e.req(t, method, path, body, "", auth)
		if res.StatusCode != status {
			t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
		}
		return b
	}
	var d struct{ ID string }
	mustUnmarshal(t, call("POST", base+"/dsr", `{"subject_id":"`+s.ID+`","kind":"portability"}`, admin.cookie, 201), &d)
	one := base + "/dsr/" + d.ID
	call("POST", one+"/verify", `{"result":"verified","method":"document_copy"}`, admin.cookie, 200)
	call("POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, admin.cookie, 200)
	call("POST", one+"/submit", `{}`, admin.cookie, 200)
	e.clock.Add(6 * time.Minute)
	res, b = e.req(t, "POST", one+"/approve", "", "", admin2.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, admin2.cookie, secret2)
	call("POST", one+"/approve", "", admin2.cookie, 200)
	e.clock.Add(6 * time.Minute)
	res, b = e.req(t, "POST", one+"/download-link", "", "", admin2.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, admin2.cookie, secret2)
	// No e-mail on file: handed over in person, to admin2, who may read full_name (YELLOW).
	call("POST", one+"/download-link", "", admin2.cookie, 201)
}
