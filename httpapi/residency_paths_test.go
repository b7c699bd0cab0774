package httpapi_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"tutela/audit"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Paths that reach a tenant's data from a credential naming no tenant (a download token, an MFA
// challenge) resolve the tenant first: another region's node answers 421 and spends nothing.

func TestResidency_DSRDownloadRefusedByOtherRegionAndLinkKept(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newRegionPair(t, d, func(deps *httpapi.Deps) { deps.Keys = newVault(t, deps.DB) })
			p.home.seed(t, "away", "admin2@example.org", pw, "program_admin")
			p.home.seed(t, "away", "op@example.org", pw, "operator")
			se := &subjectEnv{env: p.home, logs: &syncBuffer{}, tenant: p.away, root: p.root.AccessToken,
				operator: p.home.login(t, "away", "op@example.org", pw, "").AccessToken,
				base:     "/v1/tenants/" + p.away.ID}
			if res, b := se.req(t, "PUT", se.base+"/subject-schema", subjectSchemaJSON, "", se.root); res.StatusCode != 200 {
				t.Fatalf("schema: %d %s", res.StatusCode, b)
			}
			admin2 := se.login(t, "away", "admin2@example.org", pw, "")
			req := se.dsrCall(t, "POST", se.base+"/dsr", `{"subject_id":"`+se.create(t)+`","kind":"access"}`, se.operator, 201)
			one := se.base + "/dsr/" + req.ID
			se.dsrCall(t, "POST", one+"/verify", `{"result":"verified","method":"in_person_document"}`, se.operator, 200)
			se.dsrCall(t, "POST", one+"/assign", `{"assignee":"`+p.ana.UserID+`","approver":"`+admin2.UserID+`"}`, se.operator, 200)
			se.dsrCall(t, "POST", one+"/submit", `{}`, p.ana.AccessToken, 200)
			se.dsrCall(t, "POST", one+"/approve", "", admin2.AccessToken, 200)
			// In person: the issuer must be cleared for every field (RED national_id), so root.
			res, b := se.req(t, "POST", one+"/download-link", "", "", se.root)
			if res.StatusCode != 201 {
				t.Fatalf("link: %d %s", res.StatusCode, b)
			}
			var link struct{ Path string }
			mustUnmarshal(t, b, &link)
			p.awayEventsAt = len(tenantEvents(t, p.home, p.away.ID))

			res, b = p.us.req(t, "GET", link.Path, "", "", nil)
			p.wantRefusedAndAudited(t, res, b)
			// The refusal rolled back: the link is unspent and the tenant's region serves it once.
			res, zipped := p.home.req(t, "GET", link.Path, "", "", nil)
			if res.StatusCode != 200 || !bytes.HasPrefix(zipped, []byte("PK")) {
				t.Fatalf("download at home after the refusal: %d %.200s", res.StatusCode, zipped)
			}
			res, b = p.us.req(t, "GET", link.Path, "", "", nil)
			wantError(t, res, b, 404, "not_found")
		})
	}
}

// The second factor of a sign-in at the tenant's region, sent to another region's node: 421
// before the user's factors are opened, no lockout count, no event or session for the tenant,
// and the challenge still completes at home.
func TestResidency_MFACompletionRefusedByOtherRegion(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			c := clocktest.New(time.Now().UTC())
			db, dsn := sqltest.OpenDSN(t, d, sqlstore.Options{Clock: c.Now})
			home := newEnvOn(t, db, c, withMFA)
			away, _ := home.seed(t, "away", "ana@example.org", pw, "operator")
			secret := home.enrolTOTP(t, home.login(t, "away", "ana@example.org", pw, "").AccessToken)
			ch := home.passwordStep(t, "away", "ana@example.org", "")
			us, err := sqlstore.Open(ctxBG, dsn, sqlstore.Options{Clock: c.Now, Region: "us"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { us.Close() })
			p := &regionPair{home: home, us: newEnvOn(t, us, c, withMFA), away: away}
			p.awayEventsAt = len(tenantEvents(t, home, away.ID))

			res, b := p.us.req(t, "POST", "/v1/auth/mfa/webauthn/options", `{"challenge":"`+ch.MFA.Challenge+`"}`, "", nil)
			p.wantRefusedAndAudited(t, res, b)
			// Wrong codes too: each one refused before it is checked or counted.
			for range 6 {
				res, b = p.us.req(t, "POST", "/v1/auth/mfa", `{"challenge":"`+ch.MFA.Challenge+`","code":"000000"}`, "", nil)
				p.wantRefusedAndAudited(t, res, b)
			}
			res, b = p.us.req(t, "POST", "/v1/auth/mfa", `{"challenge":"`+ch.MFA.Challenge+`","code":"`+home.code(t, secret)+`"}`, "", nil)
			p.wantRefusedAndAudited(t, res, b)
			status, g, body := home.completeMFA(t, ch.MFA.Challenge, "code", `"`+home.code(t, secret)+`"`)
			if status != 200 || g.AccessToken == "" {
				t.Fatalf("completion at home after the refusals: %d %s", status, body)
			}
		})
	}
}

// The platform super-admin of a us node reads the audit log of its region and the platform's,
// never another region's tenant: naming it is 421, the unfiltered listing leaves it out, and an
// inclusion proof of its event is refused.
func TestResidency_AuditReadScopedToNodeRegion(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newRegionPair(t, d, nil)
			res, b := p.us.req(t, "GET", "/v1/audit/events?tenant="+p.away.ID+"&limit=1000", "", "", p.root.AccessToken)
			p.wantRefusedAndAudited(t, res, b)

			seen := map[string]bool{}
			for cursor := ""; ; {
				res, b = p.us.req(t, "GET", "/v1/audit/events?limit=1000&cursor="+cursor, "", "", p.root.AccessToken)
				var page auditPage
				mustUnmarshal(t, b, &page)
				if res.StatusCode != 200 {
					t.Fatalf("listing: %d %s", res.StatusCode, b)
				}
				for _, ev := range page.Events {
					seen[ev.TenantID] = true
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if seen[p.away.ID] || !seen[p.homeT.ID] || !seen[""] {
				t.Fatalf("tenants in the us node's listing = %v; want home (%s) and platform, not away (%s)", seen, p.homeT.ID, p.away.ID)
			}
			// Its own region's tenant filter still answers, at home everything is listed.
			res, b = p.us.req(t, "GET", "/v1/audit/events?tenant="+p.homeT.ID, "", "", p.root.AccessToken)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"tenant_id":"`+p.homeT.ID+`"`)) {
				t.Fatalf("own region's filter: %d %.300s", res.StatusCode, b)
			}
			res, b = p.home.req(t, "GET", "/v1/audit/events?tenant="+p.away.ID, "", "", p.root.AccessToken)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"tenant_id":"`+p.away.ID+`"`)) {
				t.Fatalf("unbound node's filter: %d %.300s", res.StatusCode, b)
			}

			seq := sqlstore.NewSequencer(p.home.db, newTestSigner(t), origin, sqlstore.SequencerOptions{Clock: p.home.clock.Now})
			if _, err := seq.Step(ctxBG); err != nil {
				t.Fatal(err)
			}
			recs := tenantEvents(t, p.home, p.away.ID)
			if len(recs) == 0 || recs[0].Index < 0 {
				t.Fatalf("no sequenced event of the away tenant: %+v", recs)
			}
			size := recs[0].Index + 1
			p.awayEventsAt = len(recs)
			res, b = p.us.req(t, "GET", "/v1/audit/proof/inclusion?index="+strconv.FormatInt(recs[0].Index, 10)+
				"&size="+strconv.FormatInt(size, 10), "", "", p.root.AccessToken)
			p.wantRefusedAndAudited(t, res, b)
		})
	}
}

func newTestSigner(t *testing.T) *audit.Signer {
	t.Helper()
	skey, _, err := audit.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// The e-mail telling the old address of a change carries both addresses: it is a job of the
// user's tenant, claimed by its region's nodes only.
func TestResidency_EmailChangeNoticeStaysInTenantsRegion(t *testing.T) {
	t.Parallel()
	p := newRegionPair(t, sqlstore.SQLite, nil)
	res, b := p.home.req(t, "PATCH", "/v1/tenants/away/users/"+p.ana.UserID, `{"email":"ana.new@example.org"}`, "", p.ana.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("change e-mail: %d %s", res.StatusCode, b)
	}
	deliver(t, p.us.ids)
	if got := p.us.mail.Messages(); len(got) != 0 {
		t.Fatalf("the us node's worker sent %d e-mails of the eu tenant's user (first to %s)", len(got), got[0].To)
	}
	deliver(t, p.home.ids)
	got := p.home.mail.Messages()
	if len(got) != 1 || got[0].To != "ana@example.org" || !strings.Contains(got[0].Text, "ana.new@example.org") {
		t.Fatalf("e-mails at home = %+v, want the notice to the old address", got)
	}
}

// A reset code names no tenant either: another region's node answers 421 before it reads the
// user, and the code still sets the password at the tenant's region.
func TestResidency_ResetCodeRefusedByOtherRegionAndKept(t *testing.T) {
	t.Parallel()
	p := newRegionPair(t, sqlstore.SQLite, nil)
	_, bob := p.home.seed(t, "away", "bob@example.org", pw, "operator")
	res, b := p.home.req(t, "POST", "/v1/tenants/away/users/"+bob.ID+"/password-reset", "", "", p.ana.AccessToken)
	var rt struct {
		Token string `json:"reset_token"`
	}
	if res.StatusCode != 201 {
		t.Fatalf("reset issue: %d %s", res.StatusCode, b)
	}
	mustUnmarshal(t, b, &rt)
	p.awayEventsAt = len(tenantEvents(t, p.home, p.away.ID))
	reset := `{"token":"` + rt.Token + `","new_password":"saffron glacier parcel 17 orchard"}`
	res, b = p.us.req(t, "POST", "/v1/auth/password/reset", reset, "", nil)
	p.wantRefusedAndAudited(t, res, b)
	if res, b = p.home.req(t, "POST", "/v1/auth/password/reset", reset, "", nil); res.StatusCode != 204 {
		t.Fatalf("reset at home after the refusal: %d %s", res.StatusCode, b)
	}
}
