package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/pquerna/otp/totp"

	"tutela"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/mail"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// enrolTOTP enrols a TOTP factor through the API for the signed-in user and returns its seed.
func (e *env) enrolTOTP(t *testing.T, auth any) string {
	t.Helper()
	factorID, secret := e.beginTOTPFor(t, auth)
	if status, eb := e.confirmWith(t, auth, factorID, secret, ""); status != 204 {
		t.Fatalf("confirm TOTP: %d %+v", status, eb)
	}
	e.clock.Add(30 * time.Second) // the confirming code is spent; the next step's code is fresh
	return secret
}

func (e *env) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type mfaChallenge struct {
	Error struct{ Code string } `json:"error"`
	MFA   struct {
		Challenge string   `json:"challenge"`
		Methods   []string `json:"methods"`
	} `json:"mfa"`
}

func (e *env) passwordStep(t *testing.T, tenant, email, ip string) mfaChallenge {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/auth/login", loginBody(tenant, email, pw), ip, nil)
	var ch mfaChallenge
	_ = json.Unmarshal(b, &ch)
	if res.StatusCode != 401 || ch.Error.Code != tutela.EMFAREQUIRED || len(ch.MFA.Challenge) != 64 {
		t.Fatalf("password step: %d %s", res.StatusCode, b)
	}
	if len(res.Cookies()) != 0 {
		t.Fatal("session cookie before the second factor")
	}
	return ch
}

func (e *env) completeMFA(t *testing.T, challenge, field, value string) (int, grant, []byte) {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/auth/mfa", `{"challenge":"`+challenge+`","`+field+`":`+value+`}`, "", nil)
	var g grant
	_ = json.Unmarshal(b, &g)
	for _, c := range res.Cookies() {
		if c.Name == "__Host-tutela_session" {
			g.cookie = c
		}
	}
	return res.StatusCode, g, b
}

func TestMFA_SignInNeedsSecondFactor_ReplayAndChallengeReuseRefused(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			e.seed(t, "acme", "ana@example.org", pw)
			first := e.login(t, "acme", "ana@example.org", pw, "")
			secret := e.enrolTOTP(t, first.AccessToken)

			ch := e.passwordStep(t, "acme", "ana@example.org", "")
			if strings.Join(ch.MFA.Methods, ",") != "totp" {
				t.Fatalf("methods %v", ch.MFA.Methods)
			}
			if code, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"000000"`); code != 401 || !strings.Contains(string(b), tutela.EINVALIDCREDENTIALS) {
				t.Fatalf("wrong code: %d %s", code, b)
			}
			good := e.code(t, secret)
			code, g, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+good+`"`)
			if code != 200 || g.cookie == nil {
				t.Fatalf("right code: %d %s", code, b)
			}
			res, me := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken)
			if res.StatusCode != 200 || !strings.Contains(string(me), `"otp"`) {
				t.Fatalf("amr lacks otp: %s", me)
			}
			// The challenge is spent.
			if code, _, _ := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+good+`"`); code != 401 {
				t.Fatalf("challenge reused: %d", code)
			}
			// The same TOTP code is refused on a fresh challenge (replay), in the same time step.
			ch2 := e.passwordStep(t, "acme", "ana@example.org", "")
			if code, _, _ := e.completeMFA(t, ch2.MFA.Challenge, "code", `"`+good+`"`); code != 401 {
				t.Fatalf("replayed TOTP code accepted: %d", code)
			}
			e.clock.Add(30 * time.Second)
			if code, _, b := e.completeMFA(t, ch2.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); code != 200 {
				t.Fatalf("next step's code: %d %s", code, b)
			}
			// Challenges expire.
			ch3 := e.passwordStep(t, "acme", "ana@example.org", "")
			e.clock.Add(6 * time.Minute)
			if code, _, _ := e.completeMFA(t, ch3.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); code != 401 {
				t.Fatal("expired challenge accepted")
			}
		})
	}
}

func TestMFA_WrongCodesThrottledAndRecoveryCodesSingleUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, u := e.seed(t, "acme", "ana@example.org", pw)
	first := e.login(t, "acme", "ana@example.org", pw, "")
	secret := e.enrolTOTP(t, first.AccessToken)
	ch := e.passwordStep(t, "acme", "ana@example.org", "")
	g := grant{}
	_, g, _ = e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`)
	// Fresh from a second factor, the user may create recovery codes.
	res, b := e.req(t, "POST", "/v1/auth/mfa/recovery-codes", "", "", g.AccessToken)
	var rc struct{ Codes []string }
	_ = json.Unmarshal(b, &rc)
	if res.StatusCode != 201 || len(rc.Codes) != 10 {
		t.Fatalf("recovery codes: %d %s", res.StatusCode, b)
	}
	ch = e.passwordStep(t, "acme", "ana@example.org", "")
	if code, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+rc.Codes[0]+`"`); code != 200 {
		t.Fatalf("recovery code: %d %s", code, b)
	}
	ch = e.passwordStep(t, "acme", "ana@example.org", "")
	if code, _, _ := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+rc.Codes[0]+`"`); code != 401 {
		t.Fatal("recovery code used twice")
	}
	// Five wrong codes lock the second factor; even the right one is then refused.
	for i := range 4 {
		if code, _, _ := e.completeMFA(t, ch.MFA.Challenge, "code", fmt.Sprintf(`"%06d"`, i)); code != 401 {
			t.Fatalf("wrong code %d: %d", i, code)
		}
	}
	if code, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); code != 429 || !strings.Contains(string(b), tutela.ETOOMANYATTEMPTS) {
		t.Fatalf("after 5 failures: %d %s", code, b)
	}
	var kinds []string
	_ = e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
		ev, err := tx.SecurityEvents(ctxBG, tn.ID, 50)
		for _, x := range ev {
			if x.UserID == u.ID {
				kinds = append(kinds, x.Kind)
			}
		}
		return err
	})
	all := strings.Join(kinds, ",")
	for _, want := range []string{"recovery_code_used", "mfa_locked", "mfa_enrolled"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s security event in %s", want, all)
		}
	}
}

func TestMFA_MandatoryForAdminsAndStepUpForSensitiveActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, u := e.seed(t, "acme", "ana@example.org", pw)
	_, v := e.seed(t, "acme", "vic@example.org", pw)
	a := e.login(t, "acme", "admin@example.org", pw, "")
	// An admin without a factor can do nothing but enrol one.
	res, b := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users", "", "", a.cookie)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = e.req(t, "GET", "/v1/auth/mfa/factors", "", "", a.cookie)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"must_enroll":true`) {
		t.Fatalf("factors: %d %s", res.StatusCode, b)
	}
	secret := e.enrolTOTP(t, a.cookie)
	if res, b := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users", "", "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("after enrolment: %d %s", res.StatusCode, b)
	}
	// A sensitive action needs a fresh second factor (RFC 9470 challenge).
	res, b = e.req(t, "DELETE", "/v1/tenants/"+tn.ID+"/users/"+u.ID, "", "", a.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_user_authentication"`) || !strings.Contains(h, "max_age=300") {
		t.Fatalf("WWW-Authenticate %q", h)
	}
	if res, b := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie); res.StatusCode != 204 {
		t.Fatalf("step-up: %d %s", res.StatusCode, b)
	}
	if res, b := e.req(t, "DELETE", "/v1/tenants/"+tn.ID+"/users/"+u.ID, "", "", a.cookie); res.StatusCode != 204 {
		t.Fatalf("delete after step-up: %d %s", res.StatusCode, b)
	}
	// The step-up is good for five minutes.
	e.clock.Add(6 * time.Minute)
	res, b = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+v.ID+"/revoke-sessions", "", "", a.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	// Non-sensitive reads do not ask for it.
	if res, _ := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users/"+v.ID, "", "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("read needed step-up: %d", res.StatusCode)
	}
	// Removing a factor is itself a change that needs a fresh factor.
	_, b = e.req(t, "GET", "/v1/auth/mfa/factors", "", "", a.cookie)
	var fs struct{ Factors []struct{ ID string } }
	_ = json.Unmarshal(b, &fs)
	res, b = e.req(t, "DELETE", "/v1/auth/mfa/factors/"+fs.Factors[0].ID, "", "", a.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	// Tenant policy: every user must enrol.
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie)
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"mfa_required_all":true}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("tenant MFA policy: %d %s", res.StatusCode, b)
	}
	vic := e.login(t, "acme", "vic@example.org", pw, "")
	res, b = e.req(t, "GET", "/v1/auth/sessions", "", "", vic.AccessToken)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
}

func TestMFA_AdminResetNeedsStepUpEndsSessionsAndNotifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, u := e.seed(t, "acme", "ana@example.org", pw)
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	adminSecret := e.enrolTOTP(t, admin.AccessToken)
	ana := e.login(t, "acme", "ana@example.org", pw, "")
	anaSecret := e.enrolTOTP(t, ana.AccessToken)
	_ = anaSecret
	res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/mfa/reset", "", "", admin.AccessToken)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, adminSecret)+`"}`, "", admin.AccessToken)
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/mfa/reset", "", "", admin.AccessToken); res.StatusCode != 200 {
		t.Fatalf("reset: %d %s", res.StatusCode, b)
	}
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", ana.AccessToken); res.StatusCode != 401 {
		t.Fatal("session survived the MFA reset")
	}
	// Ana signs in with the password alone now (no factor left), and was told by e-mail.
	e.login(t, "acme", "ana@example.org", pw, "")
	deliver(t, e.ids)
	found := false
	for _, m := range e.mail.Messages() {
		found = found || (m.To == "ana@example.org" && strings.Contains(m.Subject, "second factors were reset"))
	}
	if !found {
		t.Fatal("user not notified of the reset")
	}
}

func TestMFA_PasskeySignInWithSoftwareAuthenticator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "acme", "ana@example.org", pw)
	first := e.login(t, "acme", "ana@example.org", pw, "")
	rp := virtualwebauthn.RelyingParty{Name: "Tutela", ID: "tutela.test", Origin: "https://tutela.test"}
	auth := virtualwebauthn.NewAuthenticator()
	cred := identitytest.NewPasskeyCredential(t)
	res, opts := e.req(t, "POST", "/v1/auth/mfa/webauthn/register/options", "", "", first.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("register options: %d %s", res.StatusCode, opts)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
	if err != nil {
		t.Fatal(err)
	}
	att := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)
	if res, b := e.req(t, "POST", "/v1/auth/mfa/webauthn/register", `{"name":"laptop","response":`+att+`}`, "", first.AccessToken); res.StatusCode != 201 {
		t.Fatalf("register: %d %s", res.StatusCode, b)
	}
	ch := e.passwordStep(t, "acme", "ana@example.org", "")
	res, lo := e.req(t, "POST", "/v1/auth/mfa/webauthn/options", `{"challenge":"`+ch.MFA.Challenge+`"}`, "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("login options: %d %s", res.StatusCode, lo)
	}
	aso, err := virtualwebauthn.ParseAssertionOptions(string(lo))
	if err != nil {
		t.Fatal(err)
	}
	assertion := virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *aso)
	code, g, b := e.completeMFA(t, ch.MFA.Challenge, "webauthn", assertion)
	if code != 200 {
		t.Fatalf("passkey sign-in: %d %s", code, b)
	}
	if _, me := e.req(t, "GET", "/v1/auth/me", "", "", g.AccessToken); !strings.Contains(string(me), `"hwk"`) {
		t.Fatalf("amr lacks hwk: %s", me)
	}
}

func TestKeys_ListShowsNoKeyMaterialAndIsSuperAdminOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	e.enrolTOTP(t, root.cookie)
	// A keyset exists (created as the server's vault would), so there is material to leak.
	if _, err := newVault(t, e.db).Encrypt(ctxBG, "", vault.PurposeSigningKeys, []byte("secret"), nil); err != nil {
		t.Fatal(err)
	}
	rows, err := sqlstore.KeysetStore{DB: e.db}.ListKeysets(ctxBG)
	if err != nil || len(rows) == 0 {
		t.Fatalf("no keyset to check: %v", err)
	}
	var wrapped [][]byte
	for _, k := range rows {
		wrapped = append(wrapped, k.Wrapped)
	}
	res, b := e.req(t, "GET", "/v1/keys", "", "", root.cookie)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"kek_uri"`) {
		t.Fatalf("keys: %d %s", res.StatusCode, b)
	}
	for _, w := range wrapped {
		for _, enc := range []string{base64.StdEncoding.EncodeToString(w), base64.RawURLEncoding.EncodeToString(w), string(w)} {
			if len(enc) > 8 && strings.Contains(string(b), enc) {
				t.Fatal("wrapped keyset in the API response")
			}
		}
	}
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	e.enrolTOTP(t, admin.cookie)
	res, b = e.req(t, "GET", "/v1/keys", "", "", admin.cookie)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
}

func TestKeys_RotateNeedsSuperAdminAndFreshStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	acme, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	secret := e.enrolTOTP(t, root.cookie)
	if _, err := newVault(t, e.db).Encrypt(ctxBG, "", vault.PurposeTOTP, []byte("seed"), nil); err != nil {
		t.Fatal(err)
	}
	keysOf := func() int {
		ks, err := sqlstore.KeysetStore{DB: e.db}.GetKeyset(ctxBG, "", vault.PurposeTOTP)
		if err != nil {
			t.Fatal(err)
		}
		return len(ks.Keys)
	}
	body := `{"purpose":"totp"}`

	// The enrolment's step-up window has passed: the session alone is not enough.
	e.clock.Add(6 * time.Minute)
	res, b := e.req(t, "POST", "/v1/keys/rotate", body, "", root.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	if !strings.Contains(res.Header.Get("WWW-Authenticate"), "insufficient_user_authentication") || keysOf() != 1 {
		t.Fatalf("refused rotation: %q, %d keys", res.Header.Get("WWW-Authenticate"), keysOf())
	}
	admin := e.login(t, "acme", "admin@example.org", pw, "")
	adminSecret := e.enrolTOTP(t, admin.cookie)
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, adminSecret)+`"}`, "", admin.cookie)
	res, b = e.req(t, "POST", "/v1/keys/rotate", body, "", admin.cookie)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)

	if res, b := e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", root.cookie); res.StatusCode != 204 {
		t.Fatalf("step-up: %d %s", res.StatusCode, b)
	}
	for _, bad := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"purpose":"everything"}`, 400, tutela.EINVALID},
		{`{"purpose":"totp","tenant_id":"../x"}`, 400, tutela.EINVALID},
		{`{"purpose":"totp","extra":1}`, 400, tutela.EINVALID},
		// A keyset that does not exist is not created (nor a destroyed one resurrected).
		{`{"purpose":"personal_data","tenant_id":"` + acme.ID + `"}`, 404, tutela.ENOTFOUND},
	} {
		res, b := e.req(t, "POST", "/v1/keys/rotate", bad.body, "", root.cookie)
		wantError(t, res, b, bad.status, bad.code)
	}
	if _, err := (sqlstore.KeysetStore{DB: e.db}).GetKeyset(ctxBG, acme.ID, vault.PurposePersonalData); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("a refused rotation created a keyset: %v", err)
	}

	res, b = e.req(t, "POST", "/v1/keys/rotate", body, "", root.cookie)
	if res.StatusCode != 200 || keysOf() != 2 {
		t.Fatalf("rotate: %d %s (%d keys)", res.StatusCode, b, keysOf())
	}
	var view vault.KeyView
	if err := json.Unmarshal(b, &view); err != nil || view.Purpose != vault.PurposeTOTP || len(view.Keys) != 2 ||
		strings.Contains(string(b), "wrapped") {
		t.Fatalf("view: %+v, %v\n%s", view, err, b)
	}
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "key.rotate", Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Event.ActorID == "" || recs[0].Event.ActorType != "user" {
		t.Fatalf("key.rotate events: %+v, %v", recs, err)
	}
}

// A programme administrator may rename the tenant with the session alone, but weakening its
// sign-in policy needs a fresh second factor.
func TestTenantPolicy_ChangesNeedStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	secret := e.enrolTOTP(t, a.cookie)
	e.clock.Add(6 * time.Minute)
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"name":"Acme Relief"}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("rename: %d %s", res.StatusCode, b)
	}
	for _, body := range []string{`{"mfa_required_all":false}`, `{"require_private_key_jwt":false}`,
		`{"password_composition":{}}`, `{"session_idle_seconds":86400}`, `{"session_absolute_seconds":2592000}`,
		`{"name":"x","mfa_required_all":true}`} {
		res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, body, "", a.cookie)
		wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	}
	var got struct{ Name string }
	_, b := e.req(t, "GET", "/v1/tenants/"+tn.ID, "", "", a.cookie)
	if err := json.Unmarshal(b, &got); err != nil || got.Name != "Acme Relief" {
		t.Fatalf("a refused change changed the tenant: %s", b)
	}
	e.req(t, "POST", "/v1/auth/step-up", `{"code":"`+e.code(t, secret)+`"}`, "", a.cookie)
	if res, b := e.req(t, "PATCH", "/v1/tenants/"+tn.ID, `{"session_idle_seconds":1800}`, "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("policy change after step-up: %d %s", res.StatusCode, b)
	}
}

// auth.mfa_all_users (the production default, ASVS 6.3.2): every user, whatever their role or
// tenant setting, must enrol a second factor before doing anything else, and then signs in
// with it.
func TestMFA_AllUsersByDefault(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now().UTC())
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: c.Now})
	ids := newIdentity(t, db, c.Now, identity.Config{MFAAllUsers: true}, &mail.Recorder{})
	ids.MFA = newMFA(t, db, c.Now)
	e := &env{srv: checkedServer{Server: httpapi.New(httpapi.Deps{DB: db, Clock: c.Now, RateRPS: 1000, RateBurst: 1000, EnforceStepUp: true,
		Identity: ids}), t: t}, db: db, clock: c, ids: ids}
	e.seed(t, "acme", "ana@example.org", pw, "operator") // a role outside auth.mfa_roles
	a := e.login(t, "acme", "ana@example.org", pw, "")
	res, b := e.req(t, "GET", "/v1/auth/sessions", "", "", a.cookie)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = e.req(t, "GET", "/v1/auth/mfa/factors", "", "", a.cookie)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"must_enroll":true`) {
		t.Fatalf("factors: %d %s", res.StatusCode, b)
	}
	secret := e.enrolTOTP(t, a.cookie)
	if res, b := e.req(t, "GET", "/v1/auth/sessions", "", "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("after enrolment: %d %s", res.StatusCode, b)
	}
	// The next sign-in needs the factor.
	ch := e.passwordStep(t, "acme", "ana@example.org", "")
	if status, _, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+e.code(t, secret)+`"`); status != 200 {
		t.Fatalf("second factor: %d %s", status, b)
	}
}
