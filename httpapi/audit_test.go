package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"tutela"
	"tutela/audit"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const origin = "tutela/audit"

func withAudit(t *testing.T, d sqlstore.Dialect) (*env, *sqlstore.Sequencer, string) {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, d, func(deps *httpapi.Deps) { deps.AuditVerifierKey = vkey })
	return e, sqlstore.NewSequencer(e.db, signer, origin, sqlstore.SequencerOptions{Clock: e.clock.Now}), vkey
}

// auditPage is GET /v1/audit/events as a client reads it: snake_case keys, never Go field names.
type auditPage struct {
	Events     []httpapi.AuditEventView `json:"events"`
	NextCursor string                   `json:"next_cursor"`
}

func TestAuditAPI_ProofsVerifyAgainstSignedCheckpoint(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e, seq, vkey := withAudit(t, d)
			ta, _ := e.seed(t, "tenant-a", "admin-a@example.org", pw, "program_admin")
			e.seed(t, "tenant-b", "admin-b@example.org", pw, "program_admin")
			a := e.login(t, "tenant-a", "admin-a@example.org", pw, "")
			b := e.login(t, "tenant-b", "admin-b@example.org", pw, "")
			e.req(t, "GET", "/v1/auth/me", "", "", b.AccessToken)
			if _, err := seq.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			// The public key and checkpoint are public; the checkpoint verifies with the key.
			res, keyBody := e.req(t, "GET", "/v1/audit/public-key", "", "", nil)
			if res.StatusCode != 200 || strings.TrimSpace(string(keyBody)) != vkey {
				t.Fatalf("public key: %d %q", res.StatusCode, keyBody)
			}
			res, cpBody := e.req(t, "GET", "/v1/audit/checkpoint", "", "", nil)
			if res.StatusCode != 200 {
				t.Fatalf("checkpoint: %d %s", res.StatusCode, cpBody)
			}
			cp, err := audit.OpenCheckpoint(cpBody, vkey, origin)
			if err != nil || cp.Size < 2 {
				t.Fatalf("checkpoint does not verify: %v (%+v)", err, cp)
			}
			// Tenant A's admin reads only tenant A's events.
			res, body := e.req(t, "GET", "/v1/audit/events?limit=1000", "", "", a.AccessToken)
			var page auditPage
			_ = json.Unmarshal(body, &page)
			if res.StatusCode != 200 || len(page.Events) == 0 {
				t.Fatalf("events: %d %s", res.StatusCode, body)
			}
			var mine int64 = -1
			for _, ev := range page.Events {
				if ev.TenantID != ta.ID {
					t.Fatalf("tenant A admin saw an event of tenant %q", ev.TenantID)
				}
				if ev.Index >= 0 && ev.Index < cp.Size && mine < 0 {
					mine = ev.Index
				}
			}
			if mine < 0 {
				t.Fatal("no sequenced event of tenant A")
			}
			// Inclusion proof of an own event, checked client-side against the signed root.
			res, body = e.req(t, "GET", "/v1/audit/proof/inclusion?index="+strconv.FormatInt(mine, 10)+"&size="+strconv.FormatInt(cp.Size, 10), "", "", a.AccessToken)
			var inc struct {
				LeafHash string   `json:"leaf_hash"`
				Proof    []string `json:"proof"`
			}
			_ = json.Unmarshal(body, &inc)
			if res.StatusCode != 200 {
				t.Fatalf("inclusion: %d %s", res.StatusCode, body)
			}
			if err := audit.CheckInclusion(decodeHashes(t, inc.Proof), cp.Size, cp.Root, mine, decodeHashes(t, []string{inc.LeafHash})[0]); err != nil {
				t.Fatalf("inclusion proof does not verify: %v", err)
			}
			// A tampered proof does not verify.
			bad := decodeHashes(t, inc.Proof)
			if len(bad) > 0 {
				bad[0][0] ^= 1
				if audit.CheckInclusion(bad, cp.Size, cp.Root, mine, decodeHashes(t, []string{inc.LeafHash})[0]) == nil {
					t.Fatal("tampered proof verified")
				}
			}
			// Tenant B's admin cannot get a proof for tenant A's event: 404, like a missing one.
			res, body = e.req(t, "GET", "/v1/audit/proof/inclusion?index="+strconv.FormatInt(mine, 10)+"&size="+strconv.FormatInt(cp.Size, 10), "", "", b.AccessToken)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
			// Consistency between an earlier and the current size.
			if _, err := seq.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, cp2Body := e.req(t, "GET", "/v1/audit/checkpoint", "", "", nil)
			cp2, err := audit.OpenCheckpoint(cp2Body, vkey, origin)
			if err != nil || cp2.Size <= cp.Size {
				t.Fatalf("second checkpoint: %v %+v", err, cp2)
			}
			res, body = e.req(t, "GET", "/v1/audit/proof/consistency?from="+strconv.FormatInt(cp.Size, 10)+"&to="+strconv.FormatInt(cp2.Size, 10), "", "", nil)
			var cons struct {
				Proof []string `json:"proof"`
			}
			_ = json.Unmarshal(body, &cons)
			if res.StatusCode != 200 {
				t.Fatalf("consistency: %d %s", res.StatusCode, body)
			}
			if err := audit.CheckConsistency(decodeHashes(t, cons.Proof), cp.Size, cp.Root, cp2.Size, cp2.Root); err != nil {
				t.Fatalf("consistency proof does not verify: %v", err)
			}
			for _, q := range []string{"index=-1&size=2", "index=x&size=2", "index=5&size=2"} {
				res, body := e.req(t, "GET", "/v1/audit/proof/inclusion?"+q, "", "", a.AccessToken)
				wantError(t, res, body, 400, tutela.EINVALID)
			}
		})
	}
}

func decodeHashes(t *testing.T, in []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			t.Fatalf("bad hash %q", s)
		}
		copy(out[i][:], b)
	}
	return out
}

func TestAuditAPI_ReadsAreAuditedAndScoped(t *testing.T) {
	t.Parallel()
	e, _, _ := withAudit(t, sqlstore.SQLite)
	ta, _ := e.seed(t, "tenant-a", "admin-a@example.org", pw, "program_admin")
	e.seed(t, "tenant-a", "plain-a@example.org", pw)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	a := e.login(t, "tenant-a", "admin-a@example.org", pw, "")
	plain := e.login(t, "tenant-a", "plain-a@example.org", pw, "")
	root := e.login(t, "root", "root@example.org", pw, "")
	res, body := e.req(t, "GET", "/v1/audit/events", "", "", plain.AccessToken)
	wantError(t, res, body, 403, tutela.EFORBIDDEN)
	// Asking for another tenant as a tenant admin still returns only the own tenant.
	res, body = e.req(t, "GET", "/v1/audit/events?tenant="+tutela.NewID(), "", "", a.AccessToken)
	var page auditPage
	_ = json.Unmarshal(body, &page)
	if res.StatusCode != 200 || len(page.Events) == 0 {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	for _, ev := range page.Events {
		if ev.TenantID != ta.ID {
			t.Fatalf("tenant filter from a tenant admin widened the scope: %q", ev.TenantID)
		}
	}
	res, body = e.req(t, "GET", "/v1/audit/events?action=audit.read", "", "", a.AccessToken)
	page = auditPage{}
	_ = json.Unmarshal(body, &page)
	if res.StatusCode != 200 || len(page.Events) < 1 || page.Events[0].ActorID == "" || page.Events[0].TenantID != ta.ID {
		t.Fatalf("the earlier read was not audited: %s", body)
	}
	// The super-admin sees every tenant.
	_, body = e.req(t, "GET", "/v1/audit/events?limit=1000", "", "", root.AccessToken)
	_ = json.Unmarshal(body, &page)
	tenants := map[string]bool{}
	for _, ev := range page.Events {
		tenants[ev.TenantID] = true
	}
	if len(tenants) < 2 {
		t.Fatalf("super-admin saw events of %d tenants", len(tenants))
	}
	res, body = e.req(t, "GET", "/v1/audit/events?from=yesterday", "", "", root.AccessToken)
	wantError(t, res, body, 400, tutela.EINVALID)
}

func TestAuditAPI_EveryCallRecordedWithoutValues(t *testing.T) {
	t.Parallel()
	e, _, _ := withAudit(t, sqlstore.SQLite)
	e.seed(t, "acme", "ana@example.org", pw)
	const secretPw = "wrong-but-secret-Passw0rd!"
	e.req(t, "POST", "/v1/auth/login?lang=en", loginBody("acme", "ana@example.org", secretPw), "", nil)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	e.req(t, "GET", "/v1/tenants/acme/users/"+tutela.NewID(), "", "", g.AccessToken)
	recs, _, err := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{Action: "api.request", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var loginRec, userRec *sqlstore.AuditRecord
	for i := range recs {
		r := &recs[i]
		if strings.Contains(string(r.Canonical), secretPw) || strings.Contains(string(r.Canonical), pw) {
			t.Fatalf("a password reached the audit log: %s", r.Canonical)
		}
		switch r.Event.TargetID {
		case "POST /v1/auth/login":
			if r.Event.Outcome == audit.OutcomeDenied {
				loginRec = r
			}
		case "GET /v1/tenants/{tenant}/users/{id}":
			userRec = r
		}
	}
	if loginRec == nil || userRec == nil {
		t.Fatalf("API calls not recorded by route pattern: %d records", len(recs))
	}
	d := loginRec.Event.Details
	if !strings.Contains(string(loginRec.Canonical), `"body_keys":["email","password","tenant"]`) ||
		!strings.Contains(string(loginRec.Canonical), `"query_keys":["lang"]`) || d["status"] == nil {
		t.Fatalf("login record lacks field names or status: %s", loginRec.Canonical)
	}
	if userRec.Event.ActorID != g.UserID || userRec.Event.TenantID != g.TenantID || userRec.Event.RequestID == "" {
		t.Fatalf("authenticated call not attributed: %+v", userRec.Event)
	}
}

// deniedFor returns the authz.denied events of one request (by its request ID) and checks that
// the request's api.request event is there too, so the two can be read together.
func deniedFor(t *testing.T, e *env, res *http.Response) []sqlstore.AuditRecord {
	t.Helper()
	reqID := res.Header.Get("X-Request-ID")
	recs, _, err := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var denied []sqlstore.AuditRecord
	call := false
	for _, r := range recs {
		if r.Event.RequestID != reqID {
			continue
		}
		switch r.Event.Action {
		case "authz.denied":
			denied = append(denied, r)
		case "api.request":
			call = true
		}
	}
	if !call {
		t.Fatalf("request %s has no api.request event", reqID)
	}
	return denied
}

func TestAuditDenied_CrossTenantRequestRecordedBehind404(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e, _, _ := withAudit(t, d)
			ta, admin := e.seed(t, "tenant-a", "admin-a@example.org", pw, "program_admin")
			tb, ub := e.seed(t, "tenant-b", "user-b@example.org", pw)
			a := e.login(t, "tenant-a", "admin-a@example.org", pw, "")
			const bodyValue = "Body Value Never Logged"
			// Another tenant's user by slug and by ID, and a tenant that does not exist: the client
			// sees the same 404 and the log the same kind of denial, so the log is no existence oracle
			// for a caller who can read it.
			for _, ref := range []string{tb.Slug, tb.ID, "no-such-tenant"} {
				res, body := e.req(t, "PATCH", "/v1/tenants/"+ref+"/users/"+ub.ID, `{"display_name":"`+bodyValue+`"}`, "", a.AccessToken)
				wantError(t, res, body, 404, tutela.ENOTFOUND)
				denied := deniedFor(t, e, res)
				if len(denied) != 1 {
					t.Fatalf("%s: %d authz.denied events, want exactly 1", ref, len(denied))
				}
				ev := denied[0].Event
				if ev.ActorType != audit.ActorUser || ev.ActorID != admin.ID || ev.TenantID != ta.ID || ev.Outcome != audit.OutcomeDenied ||
					ev.TargetType != "users" || ev.Reason == "" {
					t.Fatalf("%s: denial not attributed: %+v", ref, ev)
				}
				if ev.Details["denied_action"] != "UPDATE" || ev.Details["denied_resource"] != "users" || ev.Details["target_tenant"] != ref ||
					ev.Details["route"] != "PATCH /v1/tenants/{tenant}/users/{id}" {
					t.Fatalf("%s: denial details: %v", ref, ev.Details)
				}
				if strings.Contains(string(denied[0].Canonical), bodyValue) {
					t.Fatalf("a request body value reached the audit log: %s", denied[0].Canonical)
				}
			}
			// Tenant B's log holds nothing of it: the denial belongs to the actor's tenant.
			if recs, _, _ := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{TenantID: tb.ID, Action: "authz.denied"}); len(recs) != 0 {
				t.Fatalf("tenant B got %d denial events of tenant A's admin", len(recs))
			}
			// The admin's own tenant can read the denials through the API.
			res, body := e.req(t, "GET", "/v1/audit/events?action=authz.denied", "", "", a.AccessToken)
			var page auditPage
			if err := json.Unmarshal(body, &page); err != nil || res.StatusCode != 200 || len(page.Events) != 3 {
				t.Fatalf("denials via API: %d %s", res.StatusCode, body)
			}
			// An allowed call leaves no denial.
			res, body = e.req(t, "GET", "/v1/tenants/"+ta.Slug+"/users", "", "", a.AccessToken)
			if res.StatusCode != 200 {
				t.Fatalf("own tenant: %d %s", res.StatusCode, body)
			}
			if d := deniedFor(t, e, res); len(d) != 0 {
				t.Fatalf("allowed call recorded as denied: %+v", d[0].Event)
			}
		})
	}
}

func TestAuditDenied_ForbiddenRecordsActionResourceAndReason(t *testing.T) {
	t.Parallel()
	e, _, _ := withAudit(t, sqlstore.SQLite)
	ta, plain := e.seed(t, "tenant-a", "plain-a@example.org", pw)
	g := e.login(t, "tenant-a", "plain-a@example.org", pw, "")
	const bodyValue = "leak-me@example.org"
	res, body := e.req(t, "POST", "/v1/tenants/"+ta.ID+"/users", `{"email":"`+bodyValue+`","display_name":"Leak"}`, "", g.AccessToken)
	eb := wantError(t, res, body, 403, tutela.EFORBIDDEN)
	denied := deniedFor(t, e, res)
	if len(denied) != 1 {
		t.Fatalf("%d authz.denied events, want exactly 1", len(denied))
	}
	ev := denied[0].Event
	if ev.ActorID != plain.ID || ev.TenantID != ta.ID || ev.Outcome != audit.OutcomeDenied || ev.Reason != eb.Error.Message ||
		!strings.Contains(ev.Reason, "deny by default") {
		t.Fatalf("denial not attributed: %+v (client saw %q)", ev, eb.Error.Message)
	}
	if ev.Details["denied_action"] != "CREATE" || ev.Details["denied_resource"] != "users" || ev.Details["target_tenant"] != ta.ID {
		t.Fatalf("denial details: %v", ev.Details)
	}
	if strings.Contains(string(denied[0].Canonical), bodyValue) {
		t.Fatalf("a request body value reached the audit log: %s", denied[0].Canonical)
	}
	// A route without a tenant in its path: no target_tenant, the rest as above.
	res, body = e.req(t, "GET", "/v1/audit/events", "", "", g.AccessToken)
	wantError(t, res, body, 403, tutela.EFORBIDDEN)
	denied = deniedFor(t, e, res)
	if len(denied) != 1 || denied[0].Event.Details["denied_action"] != "READ" || denied[0].Event.Details["denied_resource"] != "audit" ||
		denied[0].Event.Details["target_tenant"] != nil || denied[0].Event.Reason == "" {
		t.Fatalf("audit read denial: %+v", denied)
	}
}

func TestAuditAPI_SourceIPAndUserAgentMaskedByClearance(t *testing.T) {
	t.Parallel()
	e, _, _ := withAudit(t, sqlstore.SQLite)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "auditor@example.org", pw, "auditor")
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "203.0.113.50")
	aud := e.login(t, "acme", "auditor@example.org", pw, "")
	root := e.login(t, "root", "root@example.org", pw, "")
	const ua = "TestAgent/7.1 (audit masking)"
	e.do(t, "GET", "/v1/auth/me", "", "Authorization", "Bearer "+a.AccessToken, "User-Agent", ua)
	read := func(token string) (auditPage, string) {
		t.Helper()
		res, body := e.req(t, "GET", "/v1/audit/events?limit=1000", "", "", token)
		var page auditPage
		if err := json.Unmarshal(body, &page); err != nil || res.StatusCode != 200 || len(page.Events) == 0 {
			t.Fatalf("events: %d %s", res.StatusCode, body)
		}
		if strings.Contains(string(body), `"SourceIP"`) || !strings.Contains(string(body), `"source_ip"`) {
			t.Fatalf("response keys are not the documented snake_case: %s", body)
		}
		return page, string(body)
	}
	// GREEN (auditor): a keyed hash of the IP, the user agent redacted.
	page, body := read(aud.AccessToken)
	if strings.Contains(body, "203.0.113.50") || strings.Contains(body, ua) {
		t.Fatalf("auditor sees raw network data: %s", body)
	}
	hashed := 0
	for _, ev := range page.Events {
		if ev.SourceIP != "" && !strings.HasPrefix(ev.SourceIP, "h:") {
			t.Fatalf("source_ip not hashed for GREEN: %q", ev.SourceIP)
		}
		if ev.UserAgent != "" && ev.UserAgent != "[redacted]" {
			t.Fatalf("user_agent not redacted for GREEN: %q", ev.UserAgent)
		}
		if strings.HasPrefix(ev.SourceIP, "h:") {
			hashed++
		}
	}
	if hashed == 0 {
		t.Fatal("no event with a hashed source_ip")
	}
	// YELLOW (programme admin) and RED (super-admin) see both in clear.
	for name, token := range map[string]string{"program_admin": a.AccessToken, "super_admin": root.AccessToken} {
		page, _ := read(token)
		ip, agent := false, false
		for _, ev := range page.Events {
			ip = ip || ev.SourceIP == "203.0.113.50"
			agent = agent || ev.UserAgent == ua
		}
		if !ip || !agent {
			t.Fatalf("%s does not see the IP (%v) and user agent (%v) in clear", name, ip, agent)
		}
	}
}
