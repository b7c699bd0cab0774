package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

const aiProviderBody = `{"name":"openrouter","base_url":"https://openrouter.ai/api/v1"}`

// Provider API keys the tests add: long enough to have a hint, distinct in their first 16
// characters so a fragment of one is recognisable.
var aiKeys = []string{
	"sk-or-v1-AAAAaaaa1111bbbb2222cccc3333dddd4444eeee5555",
	"sk-or-v1-BBBBqqqq6666rrrr7777ssss8888tttt9999uuuu0000",
	"sk-or-v1-CCCCmmmm1212nnnn3434oooo5656pppp7878qqqq9090",
}

func (e *env) createAIProvider(t *testing.T, base string, auth any, body string) ai.Provider {
	t.Helper()
	res, b := e.req(t, "POST", base+"/ai/providers", body, "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("create provider: %d %s", res.StatusCode, b)
	}
	var p ai.Provider
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) addAIKey(t *testing.T, base, providerID string, auth any, key string) ai.KeyInfo {
	t.Helper()
	res, b := e.req(t, "POST", base+"/ai/providers/"+providerID+"/keys", `{"key":`+jsonString(key)+`}`, "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("add key: %d %s", res.StatusCode, b)
	}
	if bytes.Contains(b, []byte(key)) {
		t.Fatalf("the key is echoed: %s", b)
	}
	var k ai.KeyInfo
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

// openedAIKeys are the provider's active keys as the gateway would open them, newest first.
func (e *env) openedAIKeys(t *testing.T, tenantID, providerID string) []string {
	t.Helper()
	var keys []ai.Key
	if err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) {
		keys, err = tx.AI(tenantID).Keys(context.Background(), providerID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, k.Secret.Reveal())
	}
	return out
}

func TestAIAdmin_ConfigRoundTrip(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, withMFA)
			tn, a, totp := adminWithFactor(t, e)
			e.stepUp(t, a.cookie, totp)
			base := "/v1/tenants/" + tn.ID
			// An empty tenant lists nothing (as [], not null) and has default settings.
			for _, want := range []struct{ path, body string }{
				{"/ai/providers", `{"providers":[]}`}, {"/ai/models", `{"models":[]}`}, {"/ai/purposes", `{"purposes":[]}`},
				{"/ai/settings", `{"requests_per_minute":0,"tokens_per_day":0,"tokens_per_month":0,"id_countries":[]}`},
			} {
				if res, b := e.req(t, "GET", base+want.path, "", "", a.cookie); res.StatusCode != 200 || string(bytes.TrimSpace(b)) != want.body {
					t.Fatalf("GET %s: %d %s", want.path, res.StatusCode, b)
				}
			}

			p := e.createAIProvider(t, base, a.cookie, aiProviderBody)
			if p.ID == "" || p.TenantID != tn.ID || p.AuthStyle != ai.AuthBearer || p.TimeoutSeconds != ai.DefaultTimeoutSeconds ||
				p.MaxRetries != ai.DefaultMaxRetries || p.Disabled || len(p.Keys) != 0 {
				t.Fatalf("created %+v", p)
			}
			res, b := e.req(t, "POST", base+"/ai/providers", aiProviderBody, "", a.cookie)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			res, b = e.req(t, "PATCH", base+"/ai/providers/"+p.ID, `{"auth_style":"api-key","timeout_seconds":30,"max_retries":0,"disabled":true}`, "", a.cookie)
			var patched ai.Provider
			_ = json.Unmarshal(b, &patched)
			if res.StatusCode != 200 || patched.Name != "openrouter" || patched.AuthStyle != ai.AuthAPIKey || patched.TimeoutSeconds != 30 ||
				patched.MaxRetries != 0 || !patched.Disabled {
				t.Fatalf("patch: %d %s", res.StatusCode, b)
			}

			// Rotation: each new key becomes primary, the one before it the fallback; a third
			// retires the oldest. Listing shows two hints, newest first.
			k1 := e.addAIKey(t, base, p.ID, a.cookie, aiKeys[0])
			k2 := e.addAIKey(t, base, p.ID, a.cookie, aiKeys[1])
			if got := e.openedAIKeys(t, tn.ID, p.ID); len(got) != 2 || got[0] != aiKeys[1] || got[1] != aiKeys[0] {
				t.Fatal("after two keys, both must open, newest first")
			}
			k3 := e.addAIKey(t, base, p.ID, a.cookie, aiKeys[2])
			if k3.Hint != ai.KeyHint(aiKeys[2]) || k3.CreatedBy != a.UserID {
				t.Fatalf("key info %+v", k3)
			}
			res, b = e.req(t, "GET", base+"/ai/providers/"+p.ID, "", "", a.cookie)
			var got ai.Provider
			_ = json.Unmarshal(b, &got)
			if res.StatusCode != 200 || len(got.Keys) != 2 || got.Keys[0].ID != k3.ID || got.Keys[1].ID != k2.ID ||
				got.Keys[0].Hint != ai.KeyHint(aiKeys[2]) || got.Keys[1].Hint != ai.KeyHint(aiKeys[1]) {
				t.Fatalf("provider after three keys: %d %s", res.StatusCode, b)
			}
			if keys := e.openedAIKeys(t, tn.ID, p.ID); len(keys) != 2 || keys[0] != aiKeys[2] || keys[1] != aiKeys[1] {
				t.Fatal("the oldest key was not retired, or the others do not open")
			}
			res, b = e.req(t, "DELETE", base+"/ai/providers/"+p.ID+"/keys/"+k1.ID, "", "", a.cookie)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			if res, b := e.req(t, "DELETE", base+"/ai/providers/"+p.ID+"/keys/"+k2.ID, "", "", a.cookie); res.StatusCode != 204 {
				t.Fatalf("delete key: %d %s", res.StatusCode, b)
			}
			if keys := e.openedAIKeys(t, tn.ID, p.ID); len(keys) != 1 || keys[0] != aiKeys[2] {
				t.Fatal("a deleted key still opens")
			}
			_, b = e.req(t, "GET", base+"/ai/providers", "", "", a.cookie)
			var list struct{ Providers []ai.Provider }
			_ = json.Unmarshal(b, &list)
			if len(list.Providers) != 1 || len(list.Providers[0].Keys) != 1 || list.Providers[0].Keys[0].ID != k3.ID {
				t.Fatalf("list: %s", b)
			}

			// A model name holds "/": sent as is or percent-encoded, it is one name.
			res, b = e.req(t, "PUT", base+"/ai/models/openai/gpt-4o-mini", `{"provider_id":"`+p.ID+`"}`, "", a.cookie)
			var m ai.Model
			_ = json.Unmarshal(b, &m)
			if res.StatusCode != 201 || m.Name != "openai/gpt-4o-mini" || m.Upstream != m.Name || m.Kind != ai.KindChat || m.ProviderID != p.ID {
				t.Fatalf("put model: %d %s", res.StatusCode, b)
			}
			escaped := base + "/ai/models/" + url.PathEscape("openai/gpt-4o-mini")
			res, b = e.req(t, "PUT", escaped, `{"provider_id":"`+p.ID+`","upstream":"gpt-4o-mini-2024-07-18","kind":"chat"}`, "", a.cookie)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"upstream":"gpt-4o-mini-2024-07-18"`)) {
				t.Fatalf("replace model: %d %s", res.StatusCode, b)
			}
			e.req(t, "PUT", base+"/ai/models/text-embedding-3-small", `{"provider_id":"`+p.ID+`","kind":"embedding"}`, "", a.cookie)
			for _, path := range []string{base + "/ai/models/openai/gpt-4o-mini", escaped} {
				if res, b := e.req(t, "GET", path, "", "", a.cookie); res.StatusCode != 200 || !bytes.Contains(b, []byte(`"name":"openai/gpt-4o-mini"`)) {
					t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
				}
			}
			_, b = e.req(t, "GET", base+"/ai/models", "", "", a.cookie)
			var models struct{ Models []ai.Model }
			_ = json.Unmarshal(b, &models)
			if len(models.Models) != 2 {
				t.Fatalf("models: %s", b)
			}

			// Purposes name allowed models; a model a purpose lists cannot go.
			res, b = e.req(t, "PUT", base+"/ai/purposes/case_management", `{"models":["openai/gpt-4o-mini"],"max_output_tokens":800}`, "", a.cookie)
			var pu ai.Purpose
			_ = json.Unmarshal(b, &pu)
			if res.StatusCode != 201 || pu.Purpose != "case_management" || len(pu.Models) != 1 || pu.MaxOutputTokens != 800 || pu.UpdatedBy != a.UserID {
				t.Fatalf("put purpose: %d %s", res.StatusCode, b)
			}
			res, b = e.req(t, "PUT", base+"/ai/purposes/case_management", `{"models":["openai/gpt-4o-mini","text-embedding-3-small"]}`, "", a.cookie)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"max_output_tokens":0`)) {
				t.Fatalf("replace purpose: %d %s", res.StatusCode, b)
			}
			if res, b := e.req(t, "GET", base+"/ai/purposes/case_management", "", "", a.cookie); res.StatusCode != 200 ||
				!bytes.Contains(b, []byte(`"models":["openai/gpt-4o-mini","text-embedding-3-small"]`)) {
				t.Fatalf("get purpose: %d %s", res.StatusCode, b)
			}
			if _, b := e.req(t, "GET", base+"/ai/purposes", "", "", a.cookie); !bytes.Contains(b, []byte(`"purpose":"case_management"`)) {
				t.Fatalf("purposes: %s", b)
			}
			res, b = e.req(t, "DELETE", escaped, "", "", a.cookie)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			res, b = e.req(t, "DELETE", base+"/ai/providers/"+p.ID, "", "", a.cookie)
			wantError(t, res, b, 409, tutela.ECONFLICT)

			// Settings are replaced whole; usage starts at zero.
			res, b = e.req(t, "PUT", base+"/ai/settings", `{"requests_per_minute":60,"tokens_per_day":100000,"tokens_per_month":2000000,"id_countries":["gb","ng"]}`, "", a.cookie)
			var st ai.Settings
			_ = json.Unmarshal(b, &st)
			if res.StatusCode != 200 || st.RequestsPerMinute != 60 || st.TokensPerDay != 100000 || st.TokensPerMonth != 2000000 ||
				strings.Join(st.IDCountries, ",") != "GB,NG" || st.UpdatedBy != a.UserID {
				t.Fatalf("put settings: %d %s", res.StatusCode, b)
			}
			if _, b := e.req(t, "GET", base+"/ai/settings", "", "", a.cookie); !bytes.Contains(b, []byte(`"id_countries":["GB","NG"]`)) {
				t.Fatalf("get settings: %s", b)
			}
			res, b = e.req(t, "GET", base+"/ai/usage", "", "", a.cookie)
			var u sqlstore.AIUsage
			_ = json.Unmarshal(b, &u)
			if res.StatusCode != 200 || u.MinuteRequests != 0 || u.DayTokens != 0 || u.MonthTokens != 0 {
				t.Fatalf("usage: %d %s", res.StatusCode, b)
			}

			// Everything goes, in order; then each is not found.
			for _, path := range []string{"/ai/purposes/case_management", "/ai/models/openai/gpt-4o-mini",
				"/ai/models/text-embedding-3-small", "/ai/providers/" + p.ID} {
				if res, b := e.req(t, "DELETE", base+path, "", "", a.cookie); res.StatusCode != 204 {
					t.Fatalf("DELETE %s: %d %s", path, res.StatusCode, b)
				}
				res, b := e.req(t, "GET", base+path, "", "", a.cookie)
				wantError(t, res, b, 404, tutela.ENOTFOUND)
			}
			err := e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
				keys, err := tx.AI(tn.ID).Keys(context.Background(), p.ID)
				if err == nil && len(keys) > 0 {
					t.Error("a deleted provider's keys still open")
				}
				return err
			})
			if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
				t.Fatal(err)
			}
		})
	}
}

// The auditor reads the configuration but changes nothing; the operator (who may run
// inferences) cannot even read it.
func TestAIAdmin_AuditorReadsOperatorNeither(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			e.seed(t, "acme", "aud@example.org", pw, "auditor")
			e.seed(t, "acme", "op@example.org", pw, "operator")
			admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
			auditor := e.login(t, "acme", "aud@example.org", pw, "").AccessToken
			operator := e.login(t, "acme", "op@example.org", pw, "").AccessToken
			base := "/v1/tenants/" + tn.ID
			p := e.createAIProvider(t, base, admin, aiProviderBody)
			e.addAIKey(t, base, p.ID, admin, aiKeys[0])
			wantStatus(t, e, "PUT", base+"/ai/models/gpt-4o-mini", `{"provider_id":"`+p.ID+`"}`, admin, 201)
			wantStatus(t, e, "PUT", base+"/ai/purposes/aid", `{"models":["gpt-4o-mini"]}`, admin, 201)

			reads := []string{"/ai/providers", "/ai/providers/" + p.ID, "/ai/models", "/ai/models/gpt-4o-mini",
				"/ai/purposes", "/ai/purposes/aid", "/ai/settings", "/ai/usage"}
			for _, path := range reads {
				if res, b := e.req(t, "GET", base+path, "", "", auditor); res.StatusCode != 200 || bytes.Contains(b, []byte(aiKeys[0])) {
					t.Fatalf("auditor GET %s: %d %s", path, res.StatusCode, b)
				}
				res, b := e.req(t, "GET", base+path, "", "", operator)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			changes := []struct{ method, path, body string }{
				{"POST", "/ai/providers", `{"name":"azure","base_url":"https://x.openai.azure.com/openai/v1"}`},
				{"PATCH", "/ai/providers/" + p.ID, `{"base_url":"https://attacker.example/v1"}`},
				{"DELETE", "/ai/providers/" + p.ID, ""},
				{"POST", "/ai/providers/" + p.ID + "/keys", `{"key":"` + aiKeys[1] + `"}`},
				{"DELETE", "/ai/providers/" + p.ID + "/keys/" + tutela.NewID(), ""},
				{"PUT", "/ai/models/gpt-4o", `{"provider_id":"` + p.ID + `"}`},
				{"DELETE", "/ai/models/gpt-4o-mini", ""},
				{"PUT", "/ai/purposes/aid", `{"models":["gpt-4o-mini"]}`},
				{"DELETE", "/ai/purposes/aid", ""},
				{"PUT", "/ai/settings", `{"requests_per_minute":0,"tokens_per_day":0,"tokens_per_month":0,"id_countries":[]}`},
			}
			for _, who := range []string{auditor, operator} {
				for _, c := range changes {
					res, b := e.req(t, c.method, base+c.path, c.body, "", who)
					wantError(t, res, b, 403, tutela.EFORBIDDEN)
				}
			}
			res, b := e.req(t, "GET", base+"/ai/providers/"+p.ID, "", "", admin)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"base_url":"https://openrouter.ai/api/v1"`)) || strings.Count(string(b), `"hint"`) != 1 {
				t.Fatalf("the refused calls changed the provider: %s", b)
			}
		})
	}
}

func TestAIAdmin_OtherTenantGetsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	ta, _ := e.seed(t, "tenant-a", "admin@example.org", pw, "program_admin")
	tb, _ := e.seed(t, "tenant-b", "admin-b@example.org", pw, "program_admin")
	a := e.login(t, "tenant-a", "admin@example.org", pw, "").AccessToken
	b := e.login(t, "tenant-b", "admin-b@example.org", pw, "").AccessToken
	baseA, baseB := "/v1/tenants/"+ta.ID, "/v1/tenants/"+tb.ID
	p := e.createAIProvider(t, baseA, a, aiProviderBody)
	k := e.addAIKey(t, baseA, p.ID, a, aiKeys[0])
	wantStatus(t, e, "PUT", baseA+"/ai/models/gpt-4o-mini", `{"provider_id":"`+p.ID+`"}`, a, 201)
	wantStatus(t, e, "PUT", baseA+"/ai/purposes/aid", `{"models":["gpt-4o-mini"]}`, a, 201)
	// Tenant A's paths are not found for B's administrator; A's IDs in B's paths neither.
	for _, base := range []string{baseA, baseB} {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/ai/providers/" + p.ID, ""},
			{"PATCH", "/ai/providers/" + p.ID, `{"base_url":"https://attacker.example/v1"}`},
			{"DELETE", "/ai/providers/" + p.ID, ""},
			{"POST", "/ai/providers/" + p.ID + "/keys", `{"key":"` + aiKeys[1] + `"}`},
			{"DELETE", "/ai/providers/" + p.ID + "/keys/" + k.ID, ""},
			{"GET", "/ai/models/gpt-4o-mini", ""},
			{"DELETE", "/ai/models/gpt-4o-mini", ""},
			{"GET", "/ai/purposes/aid", ""},
			{"DELETE", "/ai/purposes/aid", ""},
		} {
			res, body := e.req(t, c.method, base+c.path, c.body, "", b)
			wantError(t, res, body, 404, tutela.ENOTFOUND)
		}
	}
	for _, path := range []string{"/ai/providers", "/ai/settings", "/ai/usage"} {
		res, body := e.req(t, "GET", baseA+path, "", "", b)
		wantError(t, res, body, 404, tutela.ENOTFOUND)
	}
	// B cannot point its own model at A's provider.
	wantInvalidField(t, e, "PUT", baseB+"/ai/models/gpt-4o-mini", `{"provider_id":"`+p.ID+`"}`, b, "provider_id")
	if _, body := e.req(t, "GET", baseB+"/ai/providers", "", "", b); !bytes.Contains(body, []byte(`"providers":[]`)) {
		t.Fatalf("B's list: %s", body)
	}
	if keys := e.openedAIKeys(t, ta.ID, p.ID); len(keys) != 1 || keys[0] != aiKeys[0] {
		t.Fatal("the other tenant's calls changed A's keys")
	}
	res, body := e.req(t, "GET", baseA+"/ai/providers/"+p.ID, "", "", a)
	if res.StatusCode != 200 || !bytes.Contains(body, []byte(`"base_url":"https://openrouter.ai/api/v1"`)) {
		t.Fatalf("A's provider after B's calls: %d %s", res.StatusCode, body)
	}
}

// Every change needs a fresh second factor; reads do not.
func TestAIAdmin_ChangesNeedFreshStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, a, totp := adminWithFactor(t, e)
	base := "/v1/tenants/" + tn.ID
	e.stepUp(t, a.cookie, totp)
	p := e.createAIProvider(t, base, a.cookie, aiProviderBody)
	k := e.addAIKey(t, base, p.ID, a.cookie, aiKeys[0])
	wantStatus(t, e, "PUT", base+"/ai/models/gpt-4o-mini", `{"provider_id":"`+p.ID+`"}`, a.cookie, 201)
	wantStatus(t, e, "PUT", base+"/ai/purposes/aid", `{"models":["gpt-4o-mini"]}`, a.cookie, 201)
	e.clock.Add(6 * time.Minute)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/ai/providers", `{"name":"azure","base_url":"https://x.openai.azure.com/openai/v1"}`},
		{"PATCH", "/ai/providers/" + p.ID, `{"base_url":"https://attacker.example/v1"}`},
		{"DELETE", "/ai/providers/" + p.ID, ""},
		{"POST", "/ai/providers/" + p.ID + "/keys", `{"key":"` + aiKeys[1] + `"}`},
		{"DELETE", "/ai/providers/" + p.ID + "/keys/" + k.ID, ""},
		{"PUT", "/ai/models/gpt-4o", `{"provider_id":"` + p.ID + `"}`},
		{"DELETE", "/ai/models/gpt-4o-mini", ""},
		{"PUT", "/ai/purposes/aid", `{"models":["gpt-4o-mini"],"max_output_tokens":5}`},
		{"DELETE", "/ai/purposes/aid", ""},
		{"PUT", "/ai/settings", `{"requests_per_minute":1,"tokens_per_day":0,"tokens_per_month":0,"id_countries":[]}`},
	} {
		res, b := e.req(t, c.method, base+c.path, c.body, "", a.cookie)
		wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	}
	res, b := e.req(t, "GET", base+"/ai/providers/"+p.ID, "", "", a.cookie)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"base_url":"https://openrouter.ai/api/v1"`)) || strings.Count(string(b), `"hint"`) != 1 {
		t.Fatalf("reads need no step-up, and nothing changed: %d %s", res.StatusCode, b)
	}
	if _, b := e.req(t, "GET", base+"/ai/settings", "", "", a.cookie); !bytes.Contains(b, []byte(`"requests_per_minute":0`)) {
		t.Fatalf("settings changed without step-up: %s", b)
	}
	e.stepUp(t, a.cookie, totp)
	e.addAIKey(t, base, p.ID, a.cookie, aiKeys[1])
}

// A provider API key is a secret: it is never in a response, an audit record or a log line,
// whether the request succeeds or is refused.
func TestAIAdmin_KeyNeverEchoedAuditedOrLogged(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			logs := &syncBuffer{}
			e := newEnv(t, d, func(deps *httpapi.Deps) {
				deps.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
			base := "/v1/tenants/" + tn.ID
			p := e.createAIProvider(t, base, admin, aiProviderBody)
			var responses [][]byte
			for _, key := range aiKeys {
				k := e.addAIKey(t, base, p.ID, admin, key)
				_, b := e.req(t, "GET", base+"/ai/providers/"+p.ID, "", "", admin)
				responses = append(responses, b)
				_, b = e.req(t, "DELETE", base+"/ai/providers/"+p.ID+"/keys/"+k.ID+"x", "", "", admin)
				responses = append(responses, b)
			}
			// Refused keys: a space, a control character, too long; each names the field only.
			bad := []string{
				"sk-or-v1-DDDDwwww " + strings.Repeat("x", 20),
				"sk-or-v1-EEEEvvvv\u0001" + strings.Repeat("y", 20),
				"sk-or-v1-FFFFkkkk" + strings.Repeat("z", ai.MaxKeyBytes),
			}
			for _, key := range bad {
				res, b := e.req(t, "POST", base+"/ai/providers/"+p.ID+"/keys", `{"key":`+jsonString(key)+`}`, "", admin)
				if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "key" {
					t.Fatalf("bad key refused with field %q", eb.Error.Field)
				}
				responses = append(responses, b)
			}
			// A key whose JSON is malformed or of the wrong type, and one in an unknown field.
			for _, body := range []string{`{"key":"sk-or-v1-GGGGjjjj` + strings.Repeat("h", 20) + `}`,
				`{"key":["sk-or-v1-HHHHiiii` + strings.Repeat("g", 20) + `"]}`,
				`{"api_key":"sk-or-v1-JJJJffff` + strings.Repeat("f", 20) + `"}`} {
				res, b := e.req(t, "POST", base+"/ai/providers/"+p.ID+"/keys", body, "", admin)
				wantError(t, res, b, 400, tutela.EINVALID)
				responses = append(responses, b)
				bad = append(bad, body[strings.Index(body, "sk-"):strings.Index(body, "sk-")+30])
			}
			if keys := e.openedAIKeys(t, tn.ID, p.ID); len(keys) != 2 || keys[0] != aiKeys[2] {
				t.Fatal("a refused key was stored")
			}
			recs, _, err := e.db.AuditEvents(context.Background(), sqlstore.AuditFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			actions := map[string]bool{}
			for _, key := range append(append([]string{}, aiKeys...), bad...) {
				secret := key[:len(key)-4] // the hint shows the last four
				for _, r := range recs {
					actions[r.Event.Action] = true
					if bytes.Contains(r.Canonical, []byte(secret)) || bytes.Contains(r.Canonical, []byte(key[:16])) {
						t.Fatalf("%s event holds a key: %s", r.Event.Action, r.Canonical)
					}
				}
				for _, b := range responses {
					if bytes.Contains(b, []byte(key[:16])) {
						t.Fatalf("a response holds a key: %s", b)
					}
				}
				if strings.Contains(logs.String(), key[:16]) {
					t.Fatalf("the logs hold a key: %s", logs)
				}
			}
			// The requests' own audit records name the body's field, not its value.
			named := 0
			for _, r := range recs {
				if r.Event.Action == "api.request" && r.Event.TargetID == "POST /v1/tenants/{tenant}/ai/providers/{id}/keys" &&
					bytes.Contains(r.Canonical, []byte(`"key"`)) {
					named++
				}
			}
			if named < len(aiKeys)+3 {
				t.Errorf("%d request records name the key field, want at least %d", named, len(aiKeys)+3)
			}
			for _, a := range []string{"ai.provider_create", "ai.key_add", "ai.key_retire"} {
				if !actions[a] {
					t.Errorf("no %s event (have %v)", a, actions)
				}
			}
		})
	}
}

// An API key over the request body limit is refused before it is read.
func TestAIAdmin_OversizedKeyBodyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { d.BodyLimit = 8 << 10 })
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
	base := "/v1/tenants/" + tn.ID
	p := e.createAIProvider(t, base, admin, aiProviderBody)
	res, b := e.req(t, "POST", base+"/ai/providers/"+p.ID+"/keys", `{"key":"sk-`+strings.Repeat("k", 9<<10)+`"}`, "", admin)
	wantError(t, res, b, 413, tutela.ETOOLARGE)
	wantInvalidField(t, e, "POST", base+"/ai/providers/"+p.ID+"/keys", `{"key":"sk-`+strings.Repeat("k", ai.MaxKeyBytes)+`"}`, admin, "key")
	wantInvalidField(t, e, "POST", base+"/ai/providers/"+p.ID+"/keys", `{"key":""}`, admin, "key")
	if keys := e.openedAIKeys(t, tn.ID, p.ID); len(keys) != 0 {
		t.Fatal("a refused key was stored")
	}
}

// Each bad change is refused with invalid naming the field, and nothing is stored.
func TestAIAdmin_BadInputRefusedWithField(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
			base := "/v1/tenants/" + tn.ID
			p := e.createAIProvider(t, base, admin, aiProviderBody)
			wantStatus(t, e, "PUT", base+"/ai/models/gpt-4o-mini", `{"provider_id":"`+p.ID+`"}`, admin, 201)
			for _, c := range []struct{ method, path, body, field string }{
				{"POST", "/ai/providers", `{"name":"Azure","base_url":"https://x.example/v1"}`, "name"},
				{"POST", "/ai/providers", `{"name":"azure","base_url":"http://x.example/v1"}`, "base_url"},
				{"POST", "/ai/providers", `{"name":"azure","base_url":"https://user:pw@x.example/v1"}`, "base_url"},
				{"POST", "/ai/providers", `{"name":"azure","base_url":"https://x.example/v1","auth_style":"basic"}`, "auth_style"},
				{"POST", "/ai/providers", `{"name":"azure","base_url":"https://x.example/v1","timeout_seconds":601}`, "timeout_seconds"},
				{"POST", "/ai/providers", `{"name":"azure","base_url":"https://x.example/v1","max_retries":6}`, "max_retries"},
				{"POST", "/ai/providers", `{"name":"azure","base_url":"https://x.example/v1","key":"sk-x"}`, "key"},
				{"PATCH", "/ai/providers/" + p.ID, `{"base_url":"ftp://x.example/"}`, "base_url"},
				{"PATCH", "/ai/providers/" + p.ID, `{"timeout_seconds":"60"}`, "timeout_seconds"},
				{"PATCH", "/ai/providers/" + p.ID, `{"timeout_seconds":0}`, "timeout_seconds"},
				{"PUT", "/ai/models/gpt-4o", `{"provider_id":"nope"}`, "provider_id"},
				{"PUT", "/ai/models/gpt-4o", `{"provider_id":"` + tutela.NewID() + `"}`, "provider_id"},
				{"PUT", "/ai/models/gpt-4o", `{"provider_id":"` + p.ID + `","kind":"image"}`, "kind"},
				{"PUT", "/ai/models/gpt-4o", `{"provider_id":"` + p.ID + `","upstream":"a b"}`, "upstream"},
				{"PUT", "/ai/models/gpt%204o", `{"provider_id":"` + p.ID + `"}`, "name"},
				{"PUT", "/ai/purposes/aid", `{"models":[]}`, "models"},
				{"PUT", "/ai/purposes/aid", `{"models":["gpt-4o-mini","gpt-4o-mini"]}`, "models"},
				{"PUT", "/ai/purposes/aid", `{"models":["not-allowed"]}`, "models"},
				{"PUT", "/ai/purposes/aid", `{"models":["gpt-4o-mini"],"max_output_tokens":-1}`, "max_output_tokens"},
				{"PUT", "/ai/purposes/Aid", `{"models":["gpt-4o-mini"]}`, "purpose"},
				{"PUT", "/ai/settings", `{"tokens_per_day":0,"tokens_per_month":0,"id_countries":[]}`, "requests_per_minute"},
				{"PUT", "/ai/settings", `{"requests_per_minute":0,"tokens_per_day":0,"tokens_per_month":0}`, "id_countries"},
				{"PUT", "/ai/settings", `{"requests_per_minute":-1,"tokens_per_day":0,"tokens_per_month":0,"id_countries":[]}`, "requests_per_minute"},
				{"PUT", "/ai/settings", `{"requests_per_minute":0,"tokens_per_day":-5,"tokens_per_month":0,"id_countries":[]}`, "tokens_per_day"},
				{"PUT", "/ai/settings", `{"requests_per_minute":0,"tokens_per_day":0,"tokens_per_month":0,"id_countries":["GBR"]}`, "id_countries"},
			} {
				wantInvalidField(t, e, c.method, base+c.path, c.body, admin, c.field)
			}
			res, b := e.req(t, "GET", base+"/ai/providers", "", "", admin)
			if res.StatusCode != 200 || strings.Count(string(b), `"id":`) != 1 || !bytes.Contains(b, []byte(`"base_url":"https://openrouter.ai/api/v1"`)) ||
				!bytes.Contains(b, []byte(`"timeout_seconds":60`)) {
				t.Fatalf("a refused provider change was stored: %s", b)
			}
			for _, path := range []string{"/ai/models/gpt-4o", "/ai/purposes/aid"} {
				res, b := e.req(t, "GET", base+path, "", "", admin)
				wantError(t, res, b, 404, tutela.ENOTFOUND)
			}
			if _, b := e.req(t, "GET", base+"/ai/settings", "", "", admin); !bytes.Contains(b, []byte(`"requests_per_minute":0,"tokens_per_day":0`)) {
				t.Fatalf("a refused settings change was stored: %s", b)
			}
			// Malformed IDs are not found, never a 500.
			for _, path := range []string{"/ai/providers/not-an-id", "/ai/providers/" + p.ID + "/keys/not-an-id"} {
				res, b := e.req(t, "DELETE", base+path, "", "", admin)
				wantError(t, res, b, 404, tutela.ENOTFOUND)
			}
		})
	}
}
