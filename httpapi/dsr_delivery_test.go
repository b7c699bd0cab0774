package httpapi_test

import (
	"archive/zip"
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Regression tests of the issue-14 review's findings on data-subject requests (delivery of the
// package, verification and rejection). Each failed on the code before the fix.

// schemaWithEmail is the test schema plus an email-typed field, where the link is e-mailed to.
var schemaWithEmail = strings.Replace(subjectSchemaJSON, `{"fields":[`,
	`{"fields":[ {"name":"email","type":"email","classification":"YELLOW","purposes":["aid"],"retention_days":365,"mask":"partial","searchable":false},`, 1)

// dsrReady takes a new request of kind for subj to submitted: verified by the operator, worked
// by admin, approved by admin2 (four eyes). It returns the request's path.
func (se *subjectEnv) dsrReady(t *testing.T, subj, kind string, admin, admin2 grant) string {
	t.Helper()
	req := se.dsrCall(t, "POST", se.base+"/dsr", `{"subject_id":"`+subj+`","kind":"`+kind+`"}`, se.operator, 201)
	one := se.base + "/dsr/" + req.ID
	se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"in_person_document"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/submit", `{}`, admin.AccessToken, 200)
	return one
}

func packageJSON(t *testing.T, zipped []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == "package.json" {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(rc)
			rc.Close()
			return buf.Bytes()
		}
	}
	t.Fatal("no package.json")
	return nil
}

// Review finding 1 (HIGH): the approver, a YELLOW-cleared programme administrator who sees
// national_id masked on every read, asked for the link, got the token in the answer and
// downloaded the RED value in clear; and a completed package could be linked again at any time,
// serving a value deleted from the subject since. Now: no e-mail on file means a hand-over in
// person, refused to a caller who may not read every field in clear; the package is deleted
// with its download; a second link is refused.
func TestDSR_YELLOWApproverGetsNoTokenAndPackageIsNotServedTwice(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
			admin := se.login(t, "acme", "admin@example.org", pw, "")
			admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
			subj := se.create(t)
			if v := se.read(t, subj, "case_management", admin2.AccessToken); v["national_id"] == "AB-947 381" {
				t.Fatalf("admin2 reads national_id in clear: %v", v)
			}
			one := se.dsrReady(t, subj, "access", admin, admin2)
			se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 200)

			for _, body := range []string{"", `{"delivery":"in_person"}`} {
				res, b := se.req(t, "POST", one+"/download-link", body, "", admin2.AccessToken)
				e := wantError(t, res, b, 403, tutela.EFORBIDDEN)
				if !strings.Contains(e.Error.Message, "national_id") || bytes.Contains(b, []byte("dsr-downloads")) {
					t.Fatalf("refusal: %s", b)
				}
			}
			// Asking for e-mail when the record holds no address is a clear error, nothing issued.
			res, b := se.req(t, "POST", one+"/download-link", `{"delivery":"email"}`, "", se.root)
			if e := wantError(t, res, b, 400, tutela.EINVALID); e.Error.Field != "delivery" {
				t.Fatalf("email without an address: %s", b)
			}
			res, b = se.req(t, "POST", one+"/download-link", `{"delivery":"pigeon"}`, "", se.root)
			wantError(t, res, b, 400, tutela.EINVALID)

			// RED clearance is not enough with a field mask on notes, nor without READ on the
			// requests (the subject's texts).
			masked := se.userWithRole(t, "masked_red", `{"resource":"subjects","action":"READ"},{"resource":"dsr","action":"READ"},`+
				`{"resource":"dsr","action":"EXPORT"}`, `"subjects.notes":"hidden"`)
			noText := se.userWithRole(t, "no_text_red", `{"resource":"subjects","action":"READ"},{"resource":"dsr","action":"EXPORT"}`, ``)
			for auth, want := range map[string]string{masked: "notes", noText: "texts"} {
				res, b := se.req(t, "POST", one+"/download-link", "", "", auth)
				if e := wantError(t, res, b, 403, tutela.EFORBIDDEN); !strings.Contains(e.Error.Message, want) {
					t.Fatalf("refusal: %s, want it to name %s", b, want)
				}
			}
			// The super-admin, who may read all of it, takes it over in person.
			res, b = se.req(t, "POST", one+"/download-link", `{"delivery":"in_person"}`, "", se.root)
			if res.StatusCode != 201 {
				t.Fatalf("in-person link: %d %s", res.StatusCode, b)
			}
			var link struct{ Path string }
			mustUnmarshal(t, b, &link)
			res, zipped := se.req(t, "GET", link.Path, "", "", nil)
			if res.StatusCode != 200 || !bytes.Contains(packageJSON(t, zipped), []byte("AB-947 381")) {
				t.Fatalf("download: %d", res.StatusCode)
			}
			if n := countPackages(t, se.db); n != 0 {
				t.Fatalf("%d packages kept after the download", n)
			}
			// The phone is deleted; the old package is not served again on a new link.
			if res, b := se.req(t, "PATCH", se.base+"/subjects/"+subj, `{"values":{"phone":null}}`, "", se.operator); res.StatusCode != 200 {
				t.Fatalf("patch: %d %s", res.StatusCode, b)
			}
			for _, auth := range []string{se.root, admin2.AccessToken} {
				res, b = se.req(t, "POST", one+"/download-link", "", "", auth)
				if auth == se.root {
					wantError(t, res, b, 409, tutela.ECONFLICT)
				} else if res.StatusCode != 409 && res.StatusCode != 403 {
					t.Fatalf("second link for admin2: %d %s", res.StatusCode, b)
				}
			}
			se.noValueLeaked(t)
		})
	}
}

func countPackages(t *testing.T, db *sqlstore.DB) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctxBG, `SELECT COUNT(*) FROM dsr_packages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var linkRe = regexp.MustCompile(`https://tutela\.test(/v1/dsr-downloads/[A-Za-z0-9_-]{43})`)

// Finding 1, delivery by the system: when the record holds an e-mail address, the link goes
// there through the durable mail queue and the caller (here the YELLOW approver) never sees the
// token; the audit log records who issued it and how, never the address or the token.
func TestDSR_LinkIsEmailedToTheSubjectNotReturnedToTheCaller(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	if res, b := se.req(t, "PUT", se.base+"/subject-schema", schemaWithEmail, "", se.root); res.StatusCode != 200 {
		t.Fatalf("put schema: %d %s", res.StatusCode, b)
	}
	se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin := se.login(t, "acme", "admin@example.org", pw, "")
	admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
	res, b := se.req(t, "POST", se.base+"/subjects", `{"values":{"full_name":"Ada Lovelace","national_id":"AB-947 381",
		"email":"ada.subject@example.net"}}`, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	one := se.dsrReady(t, s.ID, "portability", admin, admin2)
	se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 200)
	se.mail.Reset()

	res, b = se.req(t, "POST", one+"/download-link", "", "", admin2.AccessToken)
	if res.StatusCode != 201 {
		t.Fatalf("download-link: %d %s", res.StatusCode, b)
	}
	var out map[string]any
	mustUnmarshal(t, b, &out)
	if out["delivered_to"] != "email" || out["expires_at"] == nil || len(out) != 2 || bytes.Contains(b, []byte("dsr-downloads")) {
		t.Fatalf("answer to the caller: %s", b)
	}
	if len(se.mail.Messages()) != 0 {
		t.Fatal("e-mail sent before the queue ran")
	}
	deliver(t, se.ids)
	msgs := se.mail.Messages()
	if len(msgs) != 1 || msgs[0].To != "ada.subject@example.net" {
		t.Fatalf("e-mails = %+v", msgs)
	}
	m := linkRe.FindStringSubmatch(msgs[0].Text)
	if m == nil {
		t.Fatalf("no link in the e-mail:\n%s", msgs[0].Text)
	}
	// A second link, by e-mail or in person, is refused: one link per approval.
	res, b = se.req(t, "POST", one+"/download-link", `{"delivery":"in_person"}`, "", se.root)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	res, zipped := se.req(t, "GET", m[1], "", "", nil)
	if res.StatusCode != 200 || !bytes.Contains(packageJSON(t, zipped), []byte("AB-947 381")) {
		t.Fatalf("the subject's download: %d", res.StatusCode)
	}
	res, b = se.req(t, "GET", m[1], "", "", nil)
	wantError(t, res, b, 404, tutela.ENOTFOUND)

	all := bytes.Join(auditCanonicals(t, se.db), nil)
	token := strings.TrimPrefix(m[1], "/v1/dsr-downloads/")
	for _, secret := range []string{token, "ada.subject@example.net"} {
		if bytes.Contains(all, []byte(secret)) || strings.Contains(se.logs.String(), secret) {
			t.Fatalf("%q reached the audit log or the logs", secret)
		}
	}
	if !bytes.Contains(all, []byte(`"delivery":"email"`)) {
		t.Fatal("the delivery mode is not audited")
	}
	var jobs int
	if err := se.db.SQL().QueryRowContext(ctxBG, `SELECT COUNT(*) FROM jobs WHERE kind = 'mail' AND payload LIKE '%ada.subject%'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 0 {
		t.Fatal("the mail job's payload is not sealed")
	}
	se.noValueLeaked(t)

	// An address written after the request was received is not trusted: whoever may edit
	// subjects (YELLOW) could otherwise have the package, RED included, mailed to themselves.
	res, b = se.req(t, "POST", se.base+"/subjects", `{"values":{"full_name":"Ada Lovelace","national_id":"AB-947 381",
		"email":"ada.subject@example.net"}}`, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("create subject: %d %s", res.StatusCode, b)
	}
	mustUnmarshal(t, b, &s)
	req := se.dsrCall(t, "POST", se.base+"/dsr", `{"subject_id":"`+s.ID+`","kind":"access"}`, se.operator, 201)
	se.clock.Add(time.Second)
	if res, b := se.req(t, "PATCH", se.base+"/subjects/"+s.ID, `{"values":{"email":"mallory@example.net"}}`, "", admin.AccessToken); res.StatusCode != 200 {
		t.Fatalf("patch: %d %s", res.StatusCode, b)
	}
	two := se.base + "/dsr/" + req.ID
	se.dsrCall(t, "POST", two+"/verify", `{"result":"verified","method":"in_person_document"}`, se.operator, 200)
	se.dsrCall(t, "POST", two+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
	se.dsrCall(t, "POST", two+"/submit", `{}`, admin.AccessToken, 200)
	se.dsrCall(t, "POST", two+"/approve", "", admin2.AccessToken, 200)
	se.mail.Reset()
	res, b = se.req(t, "POST", two+"/download-link", "", "", admin.AccessToken)
	wantError(t, res, b, 403, tutela.EFORBIDDEN) // falls back to in person; admin is YELLOW
	res, b = se.req(t, "POST", two+"/download-link", `{"delivery":"email"}`, "", admin.AccessToken)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	deliver(t, se.ids)
	if msgs := se.mail.Messages(); len(msgs) != 0 {
		t.Fatalf("mailed to an address changed after the request: %+v", msgs)
	}
}

// Finding 2 (MEDIUM): verify {"result":"failed"} (UPDATE) closed the request as rejected, a
// refusal without APPROVE, without a reason and without a second person. Now it records the
// result and leaves the request open; only a reject (APPROVE, a reason, not the assignee)
// closes it.
func TestDSR_FailedVerificationLeavesRequestOpenAndRejectNeedsFourEyes(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	se.seed(t, "acme", "admin2@example.org", pw, "program_admin")
	admin := se.login(t, "acme", "admin@example.org", pw, "")
	admin2 := se.login(t, "acme", "admin2@example.org", pw, "")
	subj := se.create(t)
	base := se.base + "/dsr"
	req := se.dsrCall(t, "POST", base, `{"subject_id":"`+subj+`","kind":"erasure"}`, se.operator, 201)
	one := base + "/" + req.ID
	res, b := se.req(t, "POST", one+"/reject", `{"reason":"case 1"}`, "", se.operator)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	d := se.dsrCall(t, "POST", one+"/verify", `{"result":"failed","method":"document_copy"}`, se.operator, 200)
	if d.Status != "received" || d.CompletedAt != nil || d.Outcome != "" {
		t.Fatalf("after a failed verification: %+v", d)
	}
	res, b = se.req(t, "GET", one, "", "", se.admin)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"verification":"failed"`)) || !bytes.Contains(b, []byte(`"step":"identity_failed"`)) {
		t.Fatalf("the failed check is not recorded: %s", b)
	}
	se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 409)
	se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 409)
	// A second check verifies; the assignee cannot refuse the request they work.
	se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"in_person_document"}`, se.operator, 200)
	se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+admin.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
	res, b = se.req(t, "POST", one+"/reject", `{"reason":"case 1: manifestly unfounded"}`, "", admin.AccessToken)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = se.req(t, "POST", one+"/reject", `{}`, "", admin2.AccessToken)
	wantError(t, res, b, 400, tutela.EINVALID)
	if d := se.dsrCall(t, "POST", one+"/reject", `{"reason":"case 1: manifestly unfounded"}`, admin2.AccessToken, 200); d.Status != "rejected" {
		t.Fatalf("rejected by admin2: %+v", d)
	}
}
