package httpapi_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"tutela"
	"tutela/identity"
	"tutela/identity/identitytest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

var hexCode = regexp.MustCompile(`[0-9a-f]{64}`)

type mfaResetAnswer struct {
	Delivery       string    `json:"enrollment_code_delivery"`
	EnrollmentCode string    `json:"enrollment_code"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// resetMFA has the administrator (stepping up first) reset the user's factors and returns the
// answer and the enrolment code as the user receives it (from the e-mail, or the answer).
func (e *env) resetMFA(t *testing.T, tenantID, userID string, admin any, adminSecret string) (mfaResetAnswer, string) {
	t.Helper()
	e.stepUp(t, admin, adminSecret)
	deliver(t, e.ids) // earlier notifications (factor added, …) go out first
	before := len(e.mail.Messages())
	res, b := e.req(t, "POST", "/v1/tenants/"+tenantID+"/users/"+userID+"/mfa/reset", "", "", admin)
	if res.StatusCode != 200 {
		t.Fatalf("MFA reset: %d %s", res.StatusCode, b)
	}
	var out mfaResetAnswer
	mustUnmarshal(t, b, &out)
	if out.Delivery == identity.DeliveryInPerson {
		return out, out.EnrollmentCode
	}
	deliver(t, e.ids) // the e-mail goes through the job queue
	msgs := e.mail.Messages()
	if len(msgs) != before+1 {
		t.Fatalf("%d messages after the reset, want %d", len(msgs), before+1)
	}
	code := hexCode.FindString(msgs[len(msgs)-1].Text)
	if code == "" {
		t.Fatalf("no enrolment code in the e-mail: %q", msgs[len(msgs)-1].Text)
	}
	return out, code
}

// beginTOTPFor starts a TOTP enrolment and returns the factor ID and seed.
func (e *env) beginTOTPFor(t *testing.T, auth any) (string, string) {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/auth/mfa/totp", "", "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("begin TOTP: %d %s", res.StatusCode, b)
	}
	var en struct {
		FactorID string `json:"factor_id"`
		Secret   string `json:"secret"`
	}
	mustUnmarshal(t, b, &en)
	return en.FactorID, en.Secret
}

func (e *env) confirmWith(t *testing.T, auth any, factorID, secret, enrollmentCode string) (int, errorBody) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"factor_id": factorID, "code": e.code(t, secret), "enrollment_code": enrollmentCode})
	if enrollmentCode == "" {
		body, _ = json.Marshal(map[string]string{"factor_id": factorID, "code": e.code(t, secret)})
	}
	res, b := e.req(t, "POST", "/v1/auth/mfa/totp/confirm", string(body), "", auth)
	var eb errorBody
	_ = json.Unmarshal(b, &eb)
	return res.StatusCode, eb
}

func (e *env) hasFactor(t *testing.T, tenantID, userID string) bool {
	t.Helper()
	has, err := e.ids.MFA.HasActiveFactor(ctxBG, tenantID, userID)
	if err != nil {
		t.Fatal(err)
	}
	return has
}

// ASVS 6.4.x: after an administrator's MFA reset, the password alone must not re-enrol a
// factor. Enrolment needs the one-time code mailed to the user: bound to the user and tenant,
// single use, expiring, throttled.
func TestMFAReset_PasswordAloneCannotReEnrol(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, admin, adminSecret := adminWithFactor(t, e)
			_, ana := e.seed(t, "acme", "ana@example.org", pw)
			_, vic := e.seed(t, "acme", "vic@example.org", pw)
			g := e.login(t, "acme", "ana@example.org", pw, "")
			e.enrolTOTP(t, g.AccessToken)

			out, code := e.resetMFA(t, tn.ID, ana.ID, admin.cookie, adminSecret)
			if out.Delivery != identity.DeliveryEmail || out.EnrollmentCode != "" || !out.ExpiresAt.After(e.clock.Now()) {
				t.Fatalf("reset answer with a mailer: %+v", out)
			}
			_, vicCode := e.resetMFA(t, tn.ID, vic.ID, admin.cookie, adminSecret)

			// Whoever holds the password signs in (no factor is left) ...
			thief := e.login(t, "acme", "ana@example.org", pw, "")
			res, b := e.req(t, "GET", "/v1/auth/mfa/factors", "", "", thief.AccessToken)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"enrollment_code_required":true`) {
				t.Fatalf("factors: %d %s", res.StatusCode, b)
			}
			// ... and cannot enrol an app, a passkey or recovery codes without the code.
			factorID, seed := e.beginTOTPFor(t, thief.AccessToken)
			status, eb := e.confirmWith(t, thief.AccessToken, factorID, seed, "")
			if status != 400 || eb.Error.Code != tutela.EINVALID || eb.Error.Field != "enrollment_code" {
				t.Fatalf("password-only enrolment: %d %+v", status, eb)
			}
			res, b = e.req(t, "POST", "/v1/auth/mfa/webauthn/register", `{"name":"mine","response":{"id":"x"}}`, "", thief.AccessToken)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "enrollment_code" {
				t.Fatalf("passkey without the code: %s", b)
			}
			res, b = e.req(t, "POST", "/v1/auth/mfa/recovery-codes", "", "", thief.AccessToken)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			// Another user's code, a made-up one: refused, 401.
			for _, wrong := range []string{vicCode, strings.Repeat("ab", 32), "short"} {
				if status, eb := e.confirmWith(t, thief.AccessToken, factorID, seed, wrong); status != 401 || eb.Error.Code != tutela.EINVALIDCREDENTIALS {
					t.Fatalf("wrong code %q: %d %+v", wrong, status, eb)
				}
			}
			if e.hasFactor(t, tn.ID, ana.ID) {
				t.Fatal("a factor was enrolled without the enrolment code")
			}
			// The right code enrols, once.
			if status, eb := e.confirmWith(t, thief.AccessToken, factorID, seed, code); status != 204 {
				t.Fatalf("enrolment with the code: %d %+v", status, eb)
			}
			if !e.hasFactor(t, tn.ID, ana.ID) {
				t.Fatal("no factor after enrolling with the code")
			}
			res, b = e.req(t, "GET", "/v1/auth/mfa/factors", "", "", thief.AccessToken)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"enrollment_code_required":false`) {
				t.Fatalf("factors after enrolment: %s", b)
			}
			// Reset again: the spent code does not work a second time.
			_, fresh := e.resetMFA(t, tn.ID, ana.ID, admin.cookie, adminSecret)
			g = e.login(t, "acme", "ana@example.org", pw, "")
			factorID, seed = e.beginTOTPFor(t, g.AccessToken)
			if status, _ := e.confirmWith(t, g.AccessToken, factorID, seed, code); status != 401 {
				t.Fatalf("replayed code: %d", status)
			}
			// Expired: refused, and the password still cannot enrol; a new reset gives a new code.
			e.clock.Add(identity.MFAEnrollCodeTTL + time.Second)
			g = e.login(t, "acme", "ana@example.org", pw, "")
			factorID, seed = e.beginTOTPFor(t, g.AccessToken)
			if status, _ := e.confirmWith(t, g.AccessToken, factorID, seed, fresh); status != 401 {
				t.Fatalf("expired code: %d", status)
			}
			if status, _ := e.confirmWith(t, g.AccessToken, factorID, seed, ""); status != 400 {
				t.Fatalf("password-only after expiry: %d", status)
			}
		})
	}
}

// The code is bound to its tenant: a user of another tenant with the same address, reset
// there, cannot use acme's code, nor acme's user theirs.
func TestMFAReset_EnrolmentCodeBoundToTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, adminSecret := adminWithFactor(t, e)
	_, ana := e.seed(t, "acme", "ana@example.org", pw)
	gx, _ := e.seed(t, "globex", "gadmin@example.org", pw, "program_admin")
	_, ana2 := e.seed(t, "globex", "ana@example.org", pw)
	gadmin := e.login(t, "globex", "gadmin@example.org", pw, "")
	gSecret := e.enrolTOTP(t, gadmin.cookie)
	_, acmeCode := e.resetMFA(t, tn.ID, ana.ID, admin.cookie, adminSecret)
	_, globexCode := e.resetMFA(t, gx.ID, ana2.ID, gadmin.cookie, gSecret)
	g := e.login(t, "globex", "ana@example.org", pw, "")
	factorID, seed := e.beginTOTPFor(t, g.AccessToken)
	if status, _ := e.confirmWith(t, g.AccessToken, factorID, seed, acmeCode); status != 401 {
		t.Fatalf("another tenant's code: %d", status)
	}
	if status, eb := e.confirmWith(t, g.AccessToken, factorID, seed, globexCode); status != 204 {
		t.Fatalf("own code: %d %+v", status, eb)
	}
	if e.hasFactor(t, tn.ID, ana.ID) {
		t.Fatal("acme's user got a factor")
	}
}

// Wrong enrolment codes are throttled per user like second factors: five in 15 minutes lock
// further tries (even the right code) for a while; each is an auth.mfa_enroll failure event.
func TestMFAReset_WrongEnrolmentCodesThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, adminSecret := adminWithFactor(t, e)
	_, ana := e.seed(t, "acme", "ana@example.org", pw)
	_, code := e.resetMFA(t, tn.ID, ana.ID, admin.cookie, adminSecret)
	g := e.login(t, "acme", "ana@example.org", pw, "")
	factorID, seed := e.beginTOTPFor(t, g.AccessToken)
	for i := range 5 {
		if status, _ := e.confirmWith(t, g.AccessToken, factorID, seed, strings.Repeat("0", 63)+string(rune('a'+i))); status != 401 {
			t.Fatalf("wrong code %d: %d", i, status)
		}
	}
	if status, eb := e.confirmWith(t, g.AccessToken, factorID, seed, code); status != 429 || eb.Error.Code != tutela.ETOOMANYATTEMPTS {
		t.Fatalf("right code while locked: %d %+v", status, eb)
	}
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "auth.mfa_enroll", Limit: 20})
	if err != nil || len(recs) != 6 {
		t.Fatalf("auth.mfa_enroll events: %d, %v", len(recs), err)
	}
	for _, r := range recs {
		if strings.Contains(string(r.Canonical), code) || r.Event.TargetID != ana.ID {
			t.Fatalf("failure event %+v", r.Event)
		}
	}
	e.clock.Add(2 * time.Minute)
	g = e.login(t, "acme", "ana@example.org", pw, "")
	factorID, seed = e.beginTOTPFor(t, g.AccessToken)
	if status, eb := e.confirmWith(t, g.AccessToken, factorID, seed, code); status != 204 {
		t.Fatalf("right code after the lock: %d %+v", status, eb)
	}
}

// Without a mailer the reset answer carries the code, once, for the administrator to hand over
// in person; the delivery is audited, the code never is. A passkey enrols with it too.
func TestMFAReset_WithoutMailerCodeHandedOverAndAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	e.ids.Mailer = nil
	tn, admin, adminSecret := adminWithFactor(t, e)
	_, ana := e.seed(t, "acme", "ana@example.org", pw)
	out, code := e.resetMFA(t, tn.ID, ana.ID, admin.cookie, adminSecret)
	if out.Delivery != identity.DeliveryInPerson || !hexCode.MatchString(code) || len(code) != 64 {
		t.Fatalf("reset answer without a mailer: %+v", out)
	}
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "user.mfa_enrollment_code", Limit: 5})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["delivery"] != identity.DeliveryInPerson ||
		recs[0].Event.TargetID != ana.ID || recs[0].Event.ActorID == "" {
		t.Fatalf("delivery audit: %+v, %v", recs, err)
	}
	all, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if strings.Contains(string(r.Canonical), code) {
			t.Fatalf("the enrolment code is in the audit log: %s", r.Event.Action)
		}
	}
	evs, err := securityEventKinds(e, tn.ID)
	if err != nil || !strings.Contains(evs, "mfa_reset_by_admin") {
		t.Fatalf("security events: %s %v", evs, err)
	}
	g := e.login(t, "acme", "ana@example.org", pw, "")
	res, opts := e.req(t, "POST", "/v1/auth/mfa/webauthn/register/options", "", "", g.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("register options: %d %s", res.StatusCode, opts)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
	if err != nil {
		t.Fatal(err)
	}
	rp := virtualwebauthn.RelyingParty{Name: "Tutela", ID: "tutela.test", Origin: "https://tutela.test"}
	att := virtualwebauthn.CreateAttestationResponse(rp, virtualwebauthn.NewAuthenticator(), identitytest.NewPasskeyCredential(t), *ao)
	res, b := e.req(t, "POST", "/v1/auth/mfa/webauthn/register", `{"name":"laptop","response":`+att+`,"enrollment_code":"`+code+`"}`, "", g.AccessToken)
	if res.StatusCode != 201 {
		t.Fatalf("passkey with the code: %d %s", res.StatusCode, b)
	}
	if !e.hasFactor(t, tn.ID, ana.ID) {
		t.Fatal("no passkey")
	}
	if evs, _ := securityEventKinds(e, tn.ID); !strings.Contains(evs, "mfa_enrollment_code_used") {
		t.Fatalf("security events: %s", evs)
	}
}

func securityEventKinds(e *env, tenantID string) (string, error) {
	var kinds []string
	err := e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
		evs, err := tx.SecurityEvents(ctxBG, tenantID, 200)
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		return err
	})
	return strings.Join(kinds, ","), err
}

// The enrolment code's e-mail is queued in the reset's own transaction: a committed reset has
// its e-mail job in the queue before anything is delivered (so a crash right after the commit
// still sends it), and a refused reset queues nothing.
func TestMFAReset_EnrolmentMailQueuedWithTheReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, adminSecret := adminWithFactor(t, e)
	_, ana := e.seed(t, "acme", "ana@example.org", pw)
	pending := func() int64 {
		t.Helper()
		var c sqlstore.JobCounts
		if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) { c, err = tx.CountJobs(ctxBG); return err }); err != nil {
			t.Fatal(err)
		}
		return c.Pending
	}
	deliver(t, e.ids)
	if n := pending(); n != 0 {
		t.Fatalf("%d jobs pending before the reset", n)
	}
	// Refused (the administrator's step-up has lapsed): nothing queued, nothing mailed.
	e.clock.Add(10 * time.Minute)
	before := len(e.mail.Messages())
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+ana.ID+"/mfa/reset", "", "", admin.cookie); res.StatusCode != 401 {
		t.Fatalf("reset without step-up: %d %s", res.StatusCode, b)
	}
	deliver(t, e.ids)
	if n := pending(); n != 0 || len(e.mail.Messages()) != before {
		t.Fatalf("a refused reset queued %d jobs and sent %d messages", n, len(e.mail.Messages())-before)
	}
	// The queue refuses the e-mail: the reset does not happen either (before, it committed and the
	// only copy of the code was lost).
	e.stepUp(t, admin.cookie, adminSecret)
	if _, err := e.db.SQL().ExecContext(ctxBG, `CREATE TRIGGER jobs_down BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'queue down'); END`); err != nil {
		t.Fatal(err)
	}
	checked := e.srv
	e.srv.t = nil // the failure is a 500 internal, which the document lists for no operation
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+ana.ID+"/mfa/reset", "", "", admin.cookie); res.StatusCode/100 == 2 {
		t.Fatalf("reset with the queue down: %d %s", res.StatusCode, b)
	}
	e.srv = checked
	var required bool
	if err := e.db.View(ctxBG, func(tx *sqlstore.Tx) (err error) {
		required, err = tx.Users(tn.ID).MFAEnrollmentCodeRequired(ctxBG, ana.ID)
		return err
	}); err != nil || required {
		t.Fatalf("a reset whose e-mail could not be queued changed the user: required %v, %v", required, err)
	}
	if _, err := e.db.SQL().ExecContext(ctxBG, `DROP TRIGGER jobs_down`); err != nil {
		t.Fatal(err)
	}
	// Committed: its e-mail is already in the queue when the answer comes.
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+ana.ID+"/mfa/reset", "", "", admin.cookie); res.StatusCode != 200 {
		t.Fatalf("reset: %d %s", res.StatusCode, b)
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d jobs pending after the reset, want its e-mail", n)
	}
	deliver(t, e.ids)
	msgs := e.mail.Messages()
	if len(msgs) != before+1 || msgs[len(msgs)-1].To != "ana@example.org" || hexCode.FindString(msgs[len(msgs)-1].Text) == "" {
		t.Fatalf("messages after the reset: %+v", msgs[before:])
	}
}
