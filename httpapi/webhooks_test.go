package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/webhooks"
)

type webhookCreated struct {
	Webhook webhooks.Webhook `json:"webhook"`
	Secret  string           `json:"secret"`
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const webhookBody = `{"url":"https://hooks.example.org/in/T0K3N","events":["approval.requested","approval.approved"]}`

// An administrator with a fresh second factor adds a webhook and is shown its secret once; the
// list never shows it, nor do the logs or the audit log; a stale step-up, a service account, a
// role without the permission and bad input are refused; another tenant's webhook is 404.
func TestWebhooks_CreateListDeleteSecretShownOnce(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			logs := &lockedBuffer{}
			e := newEnv(t, d, func(dp *httpapi.Deps) {
				withMFA(dp)
				dp.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			tn, a, totp := adminWithFactor(t, e)
			base := "/v1/tenants/" + tn.ID + "/webhooks"

			res, b := e.req(t, "POST", base, webhookBody, "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			e.stepUp(t, a.cookie, totp)
			res, b = e.req(t, "POST", base, webhookBody, "", a.cookie)
			if res.StatusCode != 201 {
				t.Fatalf("create: %d %s", res.StatusCode, b)
			}
			var c webhookCreated
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.Secret, webhooks.SecretPrefix) || c.Webhook.URL != "https://hooks.example.org/in/T0K3N" ||
				c.Webhook.Status != webhooks.StatusActive || c.Webhook.CreatedBy != a.UserID || len(c.Webhook.Events) != 2 ||
				res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("created %s", b)
			}
			// The secret shown is the one deliveries are signed with.
			var d *sqlstore.WebhookDelivery
			if err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
				d, err = tx.Webhooks(tn.ID).Delivery(context.Background(), c.Webhook.ID)
				return err
			}); err != nil || d.Secret.Reveal() != c.Secret {
				t.Fatalf("stored secret differs: %v", err)
			}
			res, b = e.req(t, "GET", base, "", "", a.cookie)
			var list struct {
				Webhooks []webhooks.Webhook `json:"webhooks"`
			}
			_ = json.Unmarshal(b, &list)
			if res.StatusCode != 200 || len(list.Webhooks) != 1 || list.Webhooks[0].ID != c.Webhook.ID ||
				bytes.Contains(b, []byte(c.Secret[len(webhooks.SecretPrefix):])) || bytes.Contains(b, []byte("secret")) {
				t.Fatalf("list: %d %s", res.StatusCode, b)
			}

			for body, field := range map[string]string{
				`{"url":"http://hooks.example.org/in","events":["*"]}`:           "url",
				`{"url":"https://u:p@hooks.example.org/in","events":["*"]}`:      "url",
				`{"url":"https://hooks.example.org/in","events":["approval.x"]}`: "events",
				`{"url":"https://hooks.example.org/in","events":[]}`:             "events",
			} {
				res, b = e.req(t, "POST", base, body, "", a.cookie)
				if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != field {
					t.Errorf("%s: field %q, want %q", body, eb.Error.Field, field)
				}
			}

			// Another tenant's administrator, with a fresh second factor: A's webhook is not
			// found, through either tenant's path, and A's list is untouched.
			tb, _ := e.seed(t, "beta", "admin@beta.example.org", pw, "program_admin")
			other := e.login(t, "beta", "admin@beta.example.org", pw, "")
			e.stepUp(t, other.cookie, e.enrolTOTP(t, other.cookie))
			for _, path := range []string{"/v1/tenants/" + tb.ID + "/webhooks/" + c.Webhook.ID, base + "/" + c.Webhook.ID} {
				res, b = e.req(t, "DELETE", path, "", "", other.cookie)
				wantError(t, res, b, 404, tutela.ENOTFOUND)
			}
			res, b = e.req(t, "GET", base, "", "", other.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)

			// A service account holding webhooks CREATE is refused: only a person adds one.
			sa := e.createSAWith(t, tn.ID, authz.Permission{Resource: authz.ResWebhooks, Action: authz.Create},
				authz.Permission{Resource: authz.ResWebhooks, Action: authz.Read})
			code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
			if code != 200 {
				t.Fatalf("client token: %d %v", code, tok)
			}
			res, b = e.req(t, "POST", base, webhookBody, "", tok["access_token"].(string))
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// An operator holds no webhooks permission.
			e.seed(t, "acme", "op@example.org", pw, "operator")
			op := e.login(t, "acme", "op@example.org", pw, "")
			res, b = e.req(t, "GET", base, "", "", op.cookie)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)

			// Delete: a stale step-up is refused, a fresh one deletes, a second delete is 404.
			e.clock.Add(6 * time.Minute)
			res, b = e.req(t, "DELETE", base+"/"+c.Webhook.ID, "", "", a.cookie)
			wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
			e.stepUp(t, a.cookie, totp)
			if res, b = e.req(t, "DELETE", base+"/"+c.Webhook.ID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("delete: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "DELETE", base+"/"+c.Webhook.ID, "", "", a.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = e.req(t, "DELETE", base+"/not-an-id", "", "", a.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			if res, b = e.req(t, "GET", base, "", "", a.cookie); res.StatusCode != 200 || !bytes.Contains(b, []byte(`"webhooks":[]`)) {
				t.Fatalf("list after delete: %d %s", res.StatusCode, b)
			}

			// The secret is in no log line and no audit event; the audit log has the creation
			// and the deletion, naming the origin and not the URL's token.
			secretHex := c.Secret[len(webhooks.SecretPrefix):]
			if strings.Contains(logs.String(), secretHex) {
				t.Fatal("the logs hold the webhook secret")
			}
			recs, _, err := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{TenantID: tn.ID, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, r := range recs {
				seen[r.Event.Action]++
				if bytes.Contains(r.Canonical, []byte(secretHex)) || (strings.HasPrefix(r.Event.Action, "webhook.") && bytes.Contains(r.Canonical, []byte("T0K3N"))) {
					t.Fatalf("audit event %s holds the secret or the URL's token: %s", r.Event.Action, r.Canonical)
				}
			}
			if seen["webhook.created"] != 1 || seen["webhook.deleted"] != 1 {
				t.Fatalf("audit %v", seen)
			}
		})
	}
}

// The authorization decision API reports the step-up creating a webhook needs.
func TestWebhooks_CreateIsSensitive(t *testing.T) {
	t.Parallel()
	if !authz.Sensitive(authz.Create, authz.ResWebhooks) || authz.Sensitive(authz.Read, authz.ResWebhooks) {
		t.Fatal("webhooks CREATE must need a fresh step-up, READ not")
	}
}
