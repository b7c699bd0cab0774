package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"tutela/partners"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const referralTargetURL = "https://clinic.example.org/intake?lang=en"

// referralEnv is a consent env (Ada, outreach on consent, not yet granted) with a partner, a
// rival partner, and a service account of each holding referrals READ and UPDATE.
type referralEnv struct {
	*consentEnv
	partner, rival     string
	partnerSA, rivalSA string // access tokens
	partnerCreds       saCreated
}

func newReferralEnv(t *testing.T, d sqlstore.Dialect) *referralEnv {
	t.Helper()
	re := &referralEnv{consentEnv: newConsentEnv(t, d)}
	re.partner = re.addPartner(t, "Clinic", referralTargetURL)
	re.rival = re.addPartner(t, "Rival clinic", referralTargetURL)
	re.partnerSA, re.partnerCreds = re.partnerAccount(t, "clinic-sa", re.partner)
	re.rivalSA, _ = re.partnerAccount(t, "rival-sa", re.rival)
	return re
}

func (re *referralEnv) addPartner(t *testing.T, name string, urls ...string) string {
	t.Helper()
	p := &partners.Partner{Name: name, RedirectURLs: urls}
	if err := re.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.Partners(re.tenant.ID).Create(context.Background(), p)
	}); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// partnerAccount makes a service account with referrals READ and UPDATE, links it to partner
// (the partner service-account endpoint is another change's) and returns an access token and
// its credentials.
func (re *referralEnv) partnerAccount(t *testing.T, name, partner string) (string, saCreated) {
	t.Helper()
	sa := re.createSA(t, re.tenant.ID, re.admin, `{"name":"`+name+`","permissions":[
		{"resource":"referrals","action":"READ","max_classification":"GREEN"},
		{"resource":"referrals","action":"UPDATE","max_classification":"GREEN"}]}`)
	if _, err := re.db.SQL().ExecContext(context.Background(), `UPDATE service_accounts SET partner_id = $1 WHERE id = $2`,
		partner, sa.SA.ID); err != nil {
		t.Fatal(err)
	}
	return re.saToken(t, sa), sa
}

func (re *referralEnv) saToken(t *testing.T, sa saCreated) string {
	t.Helper()
	code, tok := re.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("partner token: %d %v", code, tok)
	}
	return tok["access_token"].(string)
}

func (re *referralEnv) grant(t *testing.T) { re.record(t, consentBody("granted", 1, ""), re.portal) }

func (re *referralEnv) body(target string, extra string) string {
	return fmt.Sprintf(`{"subject_id":%q,"partner_id":%q,"purpose":"outreach","target_url":%q,
		"justification":"needs a clinic appointment"%s}`, re.ada, re.partner, target, extra)
}

type referralOut struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Outcome     string `json:"outcome"`
	RedirectURL string `json:"redirect_url"`
	Events      []struct {
		State, Actor, Note string
	} `json:"events"`
}

func (re *referralEnv) create(t *testing.T, extra string) referralOut {
	t.Helper()
	res, b := re.req(t, "POST", re.base+"/referrals", re.body(referralTargetURL, extra), "", re.operator)
	if res.StatusCode != 201 {
		t.Fatalf("create referral: %d %s", res.StatusCode, b)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	var out referralOut
	mustUnmarshal(t, b, &out)
	return out
}

func tokenOf(redirect string) string { return redirect[strings.LastIndexByte(redirect, '/')+1:] }

func (re *referralEnv) open(t *testing.T, token string) *http.Response {
	t.Helper()
	res, _ := re.req(t, "GET", "/v1/referrals/r/"+token, "", "", nil)
	return res
}

func (re *referralEnv) confirm(t *testing.T, auth, token, status, outcome string) (*http.Response, []byte) {
	t.Helper()
	return re.req(t, "POST", "/v1/referrals/confirm",
		fmt.Sprintf(`{"token":%q,"status":%q,"outcome":%q}`, token, status, outcome), "", auth)
}

func (re *referralEnv) get(t *testing.T, id string) referralOut {
	t.Helper()
	res, b := re.req(t, "GET", re.base+"/referrals/"+id, "", "", re.admin)
	if res.StatusCode != 200 {
		t.Fatalf("get referral: %d %s", res.StatusCode, b)
	}
	var out referralOut
	mustUnmarshal(t, b, &out)
	return out
}

func (re *referralEnv) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := re.db.SQL().QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReferrals_CreateRefusalsStoreNothing(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			re := newReferralEnv(t, d)
			post := func(body string) (*http.Response, []byte) {
				return re.req(t, "POST", re.base+"/referrals", body, "", re.operator)
			}
			// Consent first missing: refused, whatever else is right.
			res, b := post(re.body(referralTargetURL, ""))
			wantError(t, res, b, 403, "consent_required")
			re.grant(t)
			for _, target := range []string{
				"http://clinic.example.org/intake?lang=en",         // another scheme
				"https://clinic.example.org:8443/intake?lang=en",   // another port
				"https://clinic.example.org:443/intake?lang=en",    // the default port spelled out
				"https://ada@clinic.example.org/intake?lang=en",    // added user information
				"https://clinic.example.org/intake/x?lang=en",      // an added trailing path
				"https://clinic.example.org/intake/?lang=en",       // a trailing slash
				"https://clinic.example.org/intake?lang=fr",        // another query
				"https://clinic.example.org/intake",                // no query
				"https://CLINIC.example.org/intake?lang=en",        // the host's case
				"https://clinic.example.org/int%61ke?lang=en",      // percent-encoding
				"https://clinic.example.org/intake?lang=en#frag",   // a fragment
				"https://evil.example/?https://clinic.example.org", // somewhere else entirely
			} {
				res, b := post(re.body(target, ""))
				if eb := wantError(t, res, b, 400, "invalid"); eb.Error.Field != "target_url" {
					t.Errorf("%s: field %q", target, eb.Error.Field)
				}
			}
			res, b = post(strings.Replace(re.body(referralTargetURL, ""), re.partner, "00000000-0000-7000-8000-000000000000", 1))
			wantError(t, res, b, 404, "not_found")
			res, b = post(strings.Replace(re.body(referralTargetURL, ""), re.ada, "00000000-0000-7000-8000-000000000000", 1))
			wantError(t, res, b, 404, "not_found")
			for _, ttl := range []string{"2592001", "59", "-1", "18446744073", "9223372036854775807"} {
				res, b = post(re.body(referralTargetURL, `,"ttl_seconds":`+ttl))
				if eb := wantError(t, res, b, 400, "invalid"); eb.Error.Field != "ttl_seconds" {
					t.Errorf("ttl_seconds %s: field %q", ttl, eb.Error.Field)
				}
			}
			res, b = post(strings.Replace(re.body(referralTargetURL, ""), "needs a clinic appointment", "", 1))
			wantError(t, res, b, 400, "invalid")
			// A tenant in simulation refers no one.
			setMode := func(mode string) {
				if _, err := re.db.SQL().ExecContext(context.Background(), `UPDATE tenants SET mode = $1 WHERE id = $2`, mode, re.tenant.ID); err != nil {
					t.Fatal(err)
				}
			}
			setMode("simulation")
			res, b = post(re.body(referralTargetURL, ""))
			wantError(t, res, b, 409, "conflict")
			setMode("provisioning")
			// Restricted processing refuses as consent does.
			if err := re.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
				return tx.Consent(re.tenant.ID).Restrict(context.Background(), re.ada, "")
			}); err != nil {
				t.Fatal(err)
			}
			res, b = post(re.body(referralTargetURL, ""))
			wantError(t, res, b, 403, "processing_restricted")
			// An auditor may read referrals, not make them.
			res, b = re.req(t, "POST", re.base+"/referrals", re.body(referralTargetURL, ""), "", re.auditor)
			wantError(t, res, b, 403, "forbidden")
			if n := re.count(t, "referrals") + re.count(t, "referral_events"); n != 0 {
				t.Fatalf("%d rows stored by refused referrals", n)
			}
		})
	}
}

func TestReferrals_LifecycleRedirectConfirmCloseAudited(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			re := newReferralEnv(t, d)
			re.grant(t)
			ref := re.create(t, "")
			if !strings.HasPrefix(ref.RedirectURL, "https://tutela.test/v1/referrals/r/rf1.") || ref.State != "created" {
				t.Fatalf("created = %+v", ref)
			}
			token := tokenOf(ref.RedirectURL)
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "rf1."))
			if err != nil || len(raw) != 4+16+8+32 {
				t.Fatalf("token body: %d bytes, %v", len(raw), err)
			}

			// HEAD does not spend it.
			res, _ := re.req(t, "HEAD", "/v1/referrals/r/"+token, "", "", nil)
			if res.StatusCode != 405 || res.Header.Get("Allow") != "GET" {
				t.Fatalf("HEAD = %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
			}
			// Confirming before anyone was sent: 409.
			res, b := re.confirm(t, re.partnerSA, token, "received", "")
			wantError(t, res, b, 409, "conflict")

			res = re.open(t, token)
			loc := res.Header.Get("Location")
			if res.StatusCode != 303 || loc != referralTargetURL+"&referral="+token {
				t.Fatalf("open = %d, Location %q", res.StatusCode, loc)
			}
			if res.Header.Get("Referrer-Policy") != "no-referrer" || res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers = %v", res.Header)
			}
			// No personal data in either URL: not the subject's ID, name or phone.
			for _, u := range []string{ref.RedirectURL, loc} {
				for _, pd := range []string{re.ada, strings.ReplaceAll(re.ada, "-", ""), "Lovelace", "7946", "outreach"} {
					if strings.Contains(u, pd) {
						t.Errorf("%s carries %q", u, pd)
					}
				}
			}
			if id := uuid.MustParse(re.ada); bytes.Contains(raw, id[:]) {
				t.Error("the token carries the subject's ID")
			}
			// Single use.
			res, b = re.req(t, "GET", "/v1/referrals/r/"+token, "", "", nil)
			wantError(t, res, b, 410, "link_gone")

			// Only the partner's own service account confirms.
			res, b = re.confirm(t, re.admin, token, "received", "")
			wantError(t, res, b, 403, "forbidden")
			res, b = re.confirm(t, re.rivalSA, token, "received", "")
			wantError(t, res, b, 404, "not_found")
			res, b = re.confirm(t, re.partnerSA, token, "arrived", "")
			wantError(t, res, b, 400, "invalid")
			res, b = re.confirm(t, re.partnerSA, token, "received", "at reception")
			if res.StatusCode != 200 || !strings.Contains(string(b), `"state":"confirmed"`) || strings.Contains(string(b), re.ada) {
				t.Fatalf("received: %d %s", res.StatusCode, b)
			}
			res, b = re.confirm(t, re.partnerSA, token, "received", "at reception")
			wantError(t, res, b, 409, "conflict")
			res, b = re.confirm(t, re.partnerSA, token, "completed", "seen by a nurse")
			if res.StatusCode != 200 || !strings.Contains(string(b), `"state":"closed"`) {
				t.Fatalf("completed: %d %s", res.StatusCode, b)
			}
			res, b = re.confirm(t, re.partnerSA, token, "completed", "seen by a nurse")
			wantError(t, res, b, 409, "conflict")

			got := re.get(t, ref.ID)
			var states []string
			for _, e := range got.Events {
				states = append(states, e.State)
			}
			if got.State != "closed" || got.Outcome != "seen by a nurse" ||
				!slices.Equal(states, []string{"created", "opened", "confirmed", "closed"}) {
				t.Fatalf("lifecycle = %+v", got)
			}
			res, b = re.req(t, "GET", re.base+"/referrals?state=closed&subject_id="+re.ada+"&partner_id="+re.partner, "", "", re.auditor)
			if res.StatusCode != 200 || !strings.Contains(string(b), ref.ID) {
				t.Fatalf("list closed: %d %s", res.StatusCode, b)
			}
			res, b = re.req(t, "GET", re.base+"/referrals?state=opened", "", "", re.auditor)
			if res.StatusCode != 200 || strings.Contains(string(b), ref.ID) {
				t.Fatalf("list opened: %d %s", res.StatusCode, b)
			}

			// Every step audited with the justification; the token nowhere in the log or logs.
			recs, _, err := re.db.AuditEvents(context.Background(), sqlstore.AuditFilter{TargetType: "referral", TargetID: ref.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for i := len(recs) - 1; i >= 0; i-- {
				e := recs[i].Event
				actions = append(actions, e.Action)
				if e.Details["justification"] != "needs a clinic appointment" {
					t.Errorf("%s: justification %v", e.Action, e.Details["justification"])
				}
			}
			if !slices.Equal(actions, []string{"referral.created", "referral.opened", "referral.confirmed", "referral.closed"}) {
				t.Fatalf("audit = %v", actions)
			}
			tag := token[len(token)-20:]
			if bytes.Contains(bytes.Join(auditCanonicals(t, re.db), nil), []byte(tag)) {
				t.Error("the audit log holds the token")
			}
			if strings.Contains(re.logs.String(), tag) {
				t.Error("the logs hold the token")
			}
		})
	}
}

func TestReferrals_ForgedExpiredAndCancelledTokens(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			re := newReferralEnv(t, d)
			re.grant(t)
			token := tokenOf(re.create(t, "").RedirectURL)
			// Flip one bit of each byte in turn (the prefix excepted): never opens.
			for i := len("rf1."); i < len(token); i += 7 {
				forged := []byte(token)
				forged[i] ^= 1
				if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", rune(forged[i])) {
					forged[i] = 'A'
					if token[i] == 'A' {
						forged[i] = 'B'
					}
				}
				res, b := re.req(t, "GET", "/v1/referrals/r/"+string(forged), "", "", nil)
				wantError(t, res, b, 404, "not_found")
				res, b = re.confirm(t, re.partnerSA, string(forged), "received", "")
				wantError(t, res, b, 404, "not_found")
			}
			for _, bad := range []string{"rf1.", "fl1." + token[4:], token + "A", strings.ToUpper(token)} {
				res, b := re.confirm(t, re.partnerSA, bad, "received", "")
				wantError(t, res, b, 404, "not_found")
			}
			if res := re.open(t, token); res.StatusCode != 303 {
				t.Fatalf("the genuine token after the forgeries: %d", res.StatusCode)
			}

			// Expired: 410, to the person and to the partner (whose access token is renewed).
			short := re.create(t, `,"ttl_seconds":60`)
			shortToken := tokenOf(short.RedirectURL)
			re.clock.Add(time.Minute)
			res, b := re.req(t, "GET", "/v1/referrals/r/"+shortToken, "", "", nil)
			wantError(t, res, b, 410, "link_gone")
			res, b = re.confirm(t, re.partnerSA, token, "received", "") // the 7-day one, still fine
			if res.StatusCode != 200 {
				t.Fatalf("confirm the live one: %d %s", res.StatusCode, b)
			}
			if got := re.get(t, short.ID); got.State != "expired" {
				t.Fatalf("past expiry reads %q", got.State)
			}
			res, b = re.req(t, "GET", re.base+"/referrals?state=expired", "", "", re.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), short.ID) {
				t.Fatalf("list expired: %d %s", res.StatusCode, b)
			}

			// Cancelled: the link is gone, and a second cancel conflicts.
			c := re.create(t, "")
			res, b = re.req(t, "POST", re.base+"/referrals/"+c.ID+"/cancel", `{"justification":"wrong clinic"}`, "", re.operator)
			wantError(t, res, b, 403, "forbidden") // operators create and read; cancelling is DELETE
			res, b = re.req(t, "POST", re.base+"/referrals/"+c.ID+"/cancel", `{"justification":""}`, "", re.admin)
			wantError(t, res, b, 400, "invalid")
			res, b = re.req(t, "POST", re.base+"/referrals/"+c.ID+"/cancel", `{"justification":"wrong clinic"}`, "", re.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"state":"cancelled"`) {
				t.Fatalf("cancel: %d %s", res.StatusCode, b)
			}
			res, b = re.req(t, "POST", re.base+"/referrals/"+c.ID+"/cancel", `{"justification":"again"}`, "", re.admin)
			wantError(t, res, b, 409, "conflict")
			res, b = re.req(t, "GET", "/v1/referrals/r/"+tokenOf(c.RedirectURL), "", "", nil)
			wantError(t, res, b, 410, "link_gone")
			recs, _, err := re.db.AuditEvents(context.Background(), sqlstore.AuditFilter{Action: "referral.cancelled", TargetID: c.ID, Limit: 10})
			if err != nil || len(recs) != 1 || recs[0].Event.Details["justification"] != "wrong clinic" {
				t.Fatalf("cancel audit = %+v, %v", recs, err)
			}

			re.clock.Add(7 * 24 * time.Hour)
			res, b = re.confirm(t, re.saToken(t, re.partnerCreds), token, "completed", "")
			wantError(t, res, b, 410, "link_gone")
		})
	}
}

func TestReferrals_OtherTenantsAndPartnersSeeNothing(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			re := newReferralEnv(t, d)
			re.grant(t)
			ref := re.create(t, "")
			for _, path := range []string{re.base + "/referrals/" + ref.ID, re.otherTenantsBase + "/referrals/" + ref.ID} {
				res, b := re.req(t, "GET", path, "", "", re.otherAdmin)
				wantError(t, res, b, 404, "not_found")
			}
			res, b := re.req(t, "POST", re.base+"/referrals/"+ref.ID+"/cancel", `{"justification":"not mine"}`, "", re.otherAdmin)
			wantError(t, res, b, 404, "not_found")
			res, b = re.req(t, "GET", re.otherTenantsBase+"/referrals", "", "", re.otherAdmin)
			if res.StatusCode != 200 || strings.Contains(string(b), ref.ID) {
				t.Fatalf("other tenant's list: %d %s", res.StatusCode, b)
			}
			// A partner's account reads its own partner's referrals only.
			res, b = re.req(t, "GET", re.base+"/referrals", "", "", re.rivalSA)
			if res.StatusCode != 200 || strings.Contains(string(b), ref.ID) {
				t.Fatalf("rival's list: %d %s", res.StatusCode, b)
			}
			res, b = re.req(t, "GET", re.base+"/referrals/"+ref.ID, "", "", re.rivalSA)
			wantError(t, res, b, 404, "not_found")
			res, b = re.req(t, "GET", re.base+"/referrals?partner_id="+re.partner, "", "", re.rivalSA)
			var list struct{ Referrals []json.RawMessage }
			mustUnmarshal(t, b, &list)
			if res.StatusCode != 200 || len(list.Referrals) != 0 {
				t.Fatalf("rival asking for the clinic's: %d %s", res.StatusCode, b)
			}
			res, b = re.req(t, "GET", re.base+"/referrals/"+ref.ID, "", "", re.partnerSA)
			if res.StatusCode != 200 {
				t.Fatalf("the clinic's own: %d %s", res.StatusCode, b)
			}
		})
	}
}
