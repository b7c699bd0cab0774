package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"

	"tutela"
	"tutela/identity/identitytest"
	"tutela/jobs"
	"tutela/mail"
	"tutela/mail/mailtest"
	"tutela/sqlstore"
)

// smtpTo points the service's e-mail at an in-process SMTP server, so messages take the real
// path: queue, worker, SMTP.
func smtpTo(t *testing.T, e *env, addr string) {
	t.Helper()
	s, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: addr, From: "noreply@tutela.test", TLS: mail.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	e.ids.Mailer = s
}

type received struct{ subject, body string }

// mailTo returns the messages sink received for rcpt, decoded.
func mailTo(sink *mailtest.Server, rcpt string) []received {
	var out []received
	for _, m := range sink.Messages() {
		if len(m.To) != 1 || m.To[0] != rcpt {
			continue
		}
		body, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(string(m.Data))))
		r := received{body: string(body)}
		for line := range strings.SplitSeq(string(m.Data), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				r.subject = s
			}
		}
		out = append(out, r)
	}
	return out
}

// expectMail delivers what is queued and checks that rcpt got exactly the subjects want since
// the last call, none of them carrying any of secrets.
func expectMail(t *testing.T, e *env, sink *mailtest.Server, seen *int, rcpt string, want []string, secrets ...string) {
	t.Helper()
	deliver(t, e.ids)
	all := mailTo(sink, rcpt)
	got := []string{}
	for _, m := range all[*seen:] {
		got = append(got, m.subject)
		for _, s := range secrets {
			if s != "" && strings.Contains(m.body, s) {
				t.Fatalf("a notification carries a secret (%q):\n%s", s, m.body)
			}
		}
	}
	*seen = len(all)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("e-mails to %s: %q, want %q", rcpt, got, want)
	}
}

// ASVS 5.0 6.3.7: every change to how a user signs in, and a replayed TOTP code, e-mails the
// user, through the queue and SMTP; a change that rolls back e-mails no one.
func TestNotifications_EachSignInChangeEmailsTheUser(t *testing.T) {
	t.Parallel()
	sink := mailtest.NewServer(t)
	e := newEnv(t, sqlstore.SQLite, withMFA)
	smtpTo(t, e, sink.Addr())
	tn, ana := e.seed(t, "acme", "ana@example.org", pw, "program_admin") // may change her own e-mail
	e.seed(t, "acme", "bob@example.org", pw)
	seen := 0
	const who = "ana@example.org"

	first := e.login(t, "acme", who, pw, "")
	seed := e.enrolTOTP(t, first.AccessToken)
	expectMail(t, e, sink, &seen, who, []string{"A second factor was added to your account"}, seed)

	ch := e.passwordStep(t, "acme", who, "")
	used := e.code(t, seed)
	_, g, b := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+used+`"`)
	if g.AccessToken == "" {
		t.Fatalf("MFA sign-in: %s", b)
	}
	expectMail(t, e, sink, &seen, who, nil)

	res, b := e.req(t, "POST", "/v1/auth/mfa/recovery-codes", "", "", g.AccessToken)
	var rc struct{ Codes []string }
	_ = json.Unmarshal(b, &rc)
	if res.StatusCode != 201 || len(rc.Codes) == 0 {
		t.Fatalf("recovery codes: %d %s", res.StatusCode, b)
	}
	expectMail(t, e, sink, &seen, who, []string{"New recovery codes were generated"}, rc.Codes...)

	rp := virtualwebauthn.RelyingParty{Name: "Tutela", ID: "tutela.test", Origin: "https://tutela.test"}
	_, opts := e.req(t, "POST", "/v1/auth/mfa/webauthn/register/options", "", "", g.AccessToken)
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts))
	if err != nil {
		t.Fatalf("register options: %v: %s", err, opts)
	}
	att := virtualwebauthn.CreateAttestationResponse(rp, virtualwebauthn.NewAuthenticator(), identitytest.NewPasskeyCredential(t), *ao)
	res, b = e.req(t, "POST", "/v1/auth/mfa/webauthn/register", `{"name":"laptop","response":`+att+`}`, "", g.AccessToken)
	var passkey struct {
		ID string `json:"factor_id"`
	}
	_ = json.Unmarshal(b, &passkey)
	if res.StatusCode != 201 {
		t.Fatalf("register passkey: %d %s", res.StatusCode, b)
	}
	expectMail(t, e, sink, &seen, who, []string{"A second factor was added to your account"})

	if res, b := e.req(t, "DELETE", "/v1/auth/mfa/factors/"+passkey.ID, "", "", g.AccessToken); res.StatusCode != 204 {
		t.Fatalf("remove passkey: %d %s", res.StatusCode, b)
	}
	expectMail(t, e, sink, &seen, who, []string{"A second factor was removed from your account"})

	// The code that signed ana in, tried again by someone who saw it: refused, and ana told.
	ch = e.passwordStep(t, "acme", who, "")
	if code, _, _ := e.completeMFA(t, ch.MFA.Challenge, "code", `"`+used+`"`); code != 401 {
		t.Fatalf("replayed code: %d", code)
	}
	expectMail(t, e, sink, &seen, who, []string{"A used sign-in code was tried again"}, used)

	// An e-mail change that fails (the address is taken) rolls back, notification and all.
	res, b = e.req(t, "PATCH", "/v1/tenants/"+tn.ID+"/users/"+ana.ID, `{"email":"bob@example.org"}`, "", g.AccessToken)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	expectMail(t, e, sink, &seen, who, nil)

	const next = "granite meadow lantern 44 swallow"
	res, b = e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+pw+`","new_password":"`+next+`"}`, "", g.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("change password: %d %s", res.StatusCode, b)
	}
	expectMail(t, e, sink, &seen, who, []string{"Your password was changed"}, pw, next)

	if res, b := e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"`+who+`"}`, "", nil); res.StatusCode != 202 {
		t.Fatalf("forgot: %d %s", res.StatusCode, b)
	}
	expectMail(t, e, sink, &seen, who, []string{"Reset your password"})
	msgs := sink.Messages()
	body, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(string(msgs[len(msgs)-1].Data))))
	code := codeRE.FindString(string(body))
	const third = "copper harbor violet 71 meadowlark"
	if res, b := e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+code+`","new_password":"`+third+`"}`, "", nil); res.StatusCode != 204 {
		t.Fatalf("reset: %d %s", res.StatusCode, b)
	}
	expectMail(t, e, sink, &seen, who, []string{"Your password was reset"}, code, third)
}

// A notification queued while the mail relay is down is not lost: it is retried after its
// backoff and delivered, once, when the relay is back.
func TestNotifications_QueuedWhileMailerDownDeliveredWhenItReturns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	g := e.login(t, "acme", "ana@example.org", pw, "")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there now: the relay is down
	smtpTo(t, e, down)
	const next = "granite meadow lantern 44 swallow"
	res, b := e.req(t, "POST", "/v1/auth/password", `{"current_password":"`+pw+`","new_password":"`+next+`"}`, "", g.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("change password: %d %s", res.StatusCode, b)
	}
	deliver(t, e.ids) // the attempt fails
	pending := func() int64 {
		var c sqlstore.JobCounts
		if err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) { c, err = tx.CountJobs(context.Background()); return err }); err != nil {
			t.Fatal(err)
		}
		return c.Pending
	}
	if pending() != 1 {
		t.Fatalf("pending jobs = %d after a failed send, want the notification kept", pending())
	}
	metric := func(want string) {
		t.Helper()
		rec := httptest.NewRecorder()
		e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if body := rec.Body.String(); !strings.Contains(body, "\n"+want+"\n") {
			t.Fatalf("metrics lack %q", want)
		}
	}
	metric("tutela_jobs_pending 1")
	metric("tutela_jobs_dead 0")

	sink := mailtest.NewServer(t)
	smtpTo(t, e, sink.Addr()) // the relay is back
	deliver(t, e.ids)
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("retried before its backoff: %d messages", n)
	}
	e.clock.Add(jobs.Backoff(1))
	deliver(t, e.ids)
	deliver(t, e.ids)
	if got := mailTo(sink, "ana@example.org"); len(got) != 1 || got[0].subject != "Your password was changed" || strings.Contains(got[0].body, next) {
		t.Fatalf("after the relay came back: %q, want the notification once", got)
	}
	if pending() != 0 {
		t.Fatalf("pending jobs = %d after delivery", pending())
	}
	metric("tutela_jobs_pending 0")
}

// Forgot-password on a server without e-mail is a permanent, documented answer (501
// not_configured, no Retry-After), the same for an account that exists and one that does not.
func TestForgotPassword_WithoutEmailIsNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.ids.Mailer = nil
	e.seed(t, "acme", "ana@example.org", pw)
	var bodies []string
	for _, email := range []string{"ana@example.org", "nobody@example.org"} {
		res, b := e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"`+email+`"}`, "", nil)
		eb := wantError(t, res, b, 501, tutela.ENOTCONFIGURED)
		if ra := res.Header.Get("Retry-After"); ra != "" {
			t.Fatalf("Retry-After %q on a permanent answer", ra)
		}
		bodies = append(bodies, eb.Error.Code+eb.Error.Message)
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("answers differ by account: %q", bodies)
	}
}
