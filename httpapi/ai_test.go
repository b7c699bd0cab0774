package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/ai/aitest"
	"tutela/ai/upstream"

	"github.com/getkin/kin-openapi/openapi3filter"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// aiSchemaJSON is a subject schema with a field of every identifying type, all allowed for the
// ai_triage purpose; national_id and notes are RED (an operator, YELLOW, may not read them).
const aiSchemaJSON = `{"fields":[
 {"name":"full_name","type":"name","classification":"YELLOW","purposes":["ai_triage","case_management"],"retention_days":365,"mask":"partial","searchable":true},
 {"name":"date_of_birth","type":"date","classification":"YELLOW","purposes":["ai_triage"],"retention_days":365,"mask":"redacted","searchable":false},
 {"name":"address","type":"address","classification":"YELLOW","purposes":["ai_triage"],"retention_days":365,"mask":"redacted","searchable":false},
 {"name":"phone","type":"phone","classification":"YELLOW","purposes":["ai_triage"],"retention_days":30,"mask":"partial","searchable":false},
 {"name":"email","type":"email","classification":"YELLOW","purposes":["ai_triage"],"retention_days":30,"mask":"partial","searchable":false},
 {"name":"national_id","type":"national_id","classification":"RED","purposes":["ai_triage"],"retention_days":3650,"mask":"hashed","searchable":true},
 {"name":"notes","type":"text","classification":"RED","purposes":["ai_triage"],"retention_days":90,"mask":"hidden","searchable":false}]}`

const aiSubjectJSON = `{"values":{"full_name":"Layla Mansour","date_of_birth":"1990-04-02",
 "address":"12 Rainbow St, Jabal Amman, Amman, Jordan","phone":"+962 79 123 4567","email":"layla.mansour@example.org",
 "national_id":"JO-99812","notes":"Fled Homs in 2013 with two children"}}`

// aiSecrets are Layla's values, and the forms the test prompt writes them in: none may reach
// the provider, the audit log or the logs.
var aiSecrets = []string{"Layla", "Mansour", "1990-04-02", "2 April 1990", "Rainbow St", "Jabal Amman", "79 123 4567",
	"0791234567", "layla.mansour@example.org", "LAYLA.MANSOUR@EXAMPLE.ORG", "JO-99812", "jo 99812", "Fled Homs"}

type aiEnv struct {
	*subjectEnv
	fake       *aitest.Provider
	providerID string
	layla      string
}

func init() {
	// The checker validates every exchange against the OpenAPI document; a streamed answer is
	// documented as text/event-stream, which kin-openapi reads as an opaque body.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.FileBodyDecoder)
}

// newAIEnv is a tenant with the AI schema, Layla, a fake provider behind a model "chat-small"
// (and "embed-small", "chat-big"), the purpose ai_triage allowed to use chat-small and
// embed-small, and a minimization profile for ai_triage (age band, region, tokenized national ID).
func newAIEnv(t *testing.T, d sqlstore.Dialect) *aiEnv {
	t.Helper()
	ae := newAIBase(t, d)
	if res, b := ae.req(t, "PUT", ae.base+"/subject-schema", aiSchemaJSON, "", ae.root); res.StatusCode != 200 {
		t.Fatalf("put schema: %d %s", res.StatusCode, b)
	}
	if res, b := ae.req(t, "PUT", ae.base+"/minimization-profiles/ai_triage", `{"fields":{"date_of_birth":{"action":"generalize"},
		"address":{"action":"generalize"},"national_id":{"action":"tokenize"},"full_name":{"action":"drop"}}}`, "", ae.admin); res.StatusCode != 200 {
		t.Fatalf("profile: %d %s", res.StatusCode, b)
	}
	ae.layla = ae.createWith(t, aiSubjectJSON)
	return ae
}

// newAIBase is a subject env whose server has a gateway, and a fake provider configured for the
// tenant (key sk-test-key-one-0001), without a schema.
func newAIBase(t *testing.T, d sqlstore.Dialect) *aiEnv {
	t.Helper()
	se := newSubjectEnv(t, d, func(deps *httpapi.Deps) {
		deps.AI = upstream.New(upstream.Options{PrivateNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	})
	ae := &aiEnv{subjectEnv: se, fake: aitest.New(t)}
	ae.fake.AcceptKeys("sk-test-key-one-0001")
	ae.configure(t, func(s sqlstore.AI) error {
		pr := &ai.Provider{Name: "fake", BaseURL: ae.fake.URL, MaxRetries: 1, TimeoutSeconds: 5}
		if err := s.CreateProvider(ctxBG, pr); err != nil {
			return err
		}
		ae.providerID = pr.ID
		if _, err := s.AddKey(ctxBG, pr.ID, tutela.NewSecret("sk-test-key-one-0001"), "test"); err != nil {
			return err
		}
		for _, m := range []*ai.Model{{Name: "chat-small", ProviderID: pr.ID, Upstream: "vendor/chat-small-v2"},
			{Name: "embed-small", ProviderID: pr.ID, Kind: ai.KindEmbedding}, {Name: "chat-big", ProviderID: pr.ID}} {
			if err := s.PutModel(ctxBG, m); err != nil {
				return err
			}
		}
		return s.PutPurpose(ctxBG, &ai.Purpose{Purpose: "ai_triage", Models: []string{"chat-small", "embed-small"}})
	})
	return ae
}

// redReader is a user of the tenant cleared for RED who may use the gateway and read subjects.
func (ae *aiEnv) redReader(t *testing.T) string {
	t.Helper()
	return ae.userWithRole(t, "case_lead", `{"resource":"ai","action":"CREATE"},{"resource":"subjects","action":"READ","max_classification":"RED"}`, "")
}

func (ae *aiEnv) configure(t *testing.T, fn func(s sqlstore.AI) error) {
	t.Helper()
	if err := ae.db.Update(ctxBG, func(tx *sqlstore.Tx) error { return fn(tx.AI(ae.tenant.ID)) }); err != nil {
		t.Fatal(err)
	}
}

// chatBody is a chat request about Layla for ai_triage.
func (ae *aiEnv) chatBody(content string, extra string) string {
	c, _ := json.Marshal(content)
	return `{"model":"chat-small","messages":[{"role":"system","content":"You help caseworkers."},{"role":"user","content":` +
		string(c) + `}],"tutela":{"purpose":"ai_triage","subjects":["` + ae.layla + `"]}` + extra + `}`
}

// aiPrompt writes Layla's values in other forms than stored, and two identifiers of people the
// call does not name.
const aiPrompt = "Summarise the case of LAYLA MANSOUR (born 2 April 1990), phone 0791234567, e-mail " +
	"LAYLA.MANSOUR@EXAMPLE.ORG, ID jo 99812, living at Rainbow St in Jabal Amman. Note: Fled Homs in 2013 with two children. " +
	"Her brother writes from omar.m@example.net and pays from GB82 WEST 1234 5698 7654 32."

func (ae *aiEnv) answer(t *testing.T, b []byte) (string, map[string]any) {
	t.Helper()
	var v struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Tutela map[string]any `json:"tutela"`
	}
	mustUnmarshal(t, b, &v)
	if len(v.Choices) != 1 {
		t.Fatalf("choices: %s", b)
	}
	return v.Choices[0].Message.Content, v.Tutela
}

// sentToProvider is every byte the fake provider received.
func (ae *aiEnv) sentToProvider() string {
	var all strings.Builder
	for _, r := range ae.fake.Requests() {
		all.Write(r.Body)
		for k, v := range r.Header {
			all.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	return all.String()
}

func (ae *aiEnv) noSecretLeft(t *testing.T, where, text string) {
	t.Helper()
	for _, v := range aiSecrets {
		if strings.Contains(strings.ToLower(text), strings.ToLower(v)) {
			t.Errorf("%s holds %q", where, v)
		}
	}
	for _, v := range []string{"omar.m@example.net", "GB82 WEST", "GB82WEST"} {
		if strings.Contains(text, v) {
			t.Errorf("%s holds the unnamed identifier %q", where, v)
		}
	}
}

func (ae *aiEnv) auditText(t *testing.T) string {
	t.Helper()
	return string(bytes.Join(auditCanonicals(t, ae.db), []byte("\n")))
}

func TestAIGateway_NothingIdentifyingLeavesAndTheAnswerIsRestored(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ae := newAIEnv(t, d)
			res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody(aiPrompt, ""), "", ae.operator)
			if res.StatusCode != 200 {
				t.Fatalf("chat: %d %s", res.StatusCode, b)
			}
			sent := ae.sentToProvider()
			ae.noSecretLeft(t, "the provider's request", sent)
			if !strings.Contains(sent, `"model":"vendor/chat-small-v2"`) || !strings.Contains(sent, "[S1_FULL_NAME]") {
				t.Errorf("the provider got: %s", sent)
			}
			if strings.Contains(string(b), "vendor/chat-small-v2") {
				t.Errorf("the answer names the provider's model: %s", b)
			}
			if strings.Contains(sent, `"tutela"`) || strings.Contains(sent, ae.layla) {
				t.Errorf("Tutela's own fields or the subject's ID reached the provider: %s", sent)
			}
			// The fake echoes the prompt it got: the operator gets back the values they may read
			// (as stored), the RED national ID as they wrote it (never the stored form), and the
			// unnamed identifiers as they wrote them.
			content, summary := ae.answer(t, b)
			for _, want := range []string{"Layla Mansour", "1990-04-02", "+962 79 123 4567", "layla.mansour@example.org",
				"omar.m@example.net", "GB82 WEST 1234 5698 7654 32", "ID jo 99812,"} {
				if !strings.Contains(content, want) {
					t.Errorf("answer lacks %q: %s", want, content)
				}
			}
			if strings.Contains(content, "JO-99812") || strings.Contains(content, "[S1_") {
				t.Errorf("a RED value, or a placeholder telling the operator which of their words matched one, came back: %s", content)
			}
			// The summary counts nothing (a count would tell whether a RED value matched).
			if _, ok := summary["placeholders"]; ok {
				t.Errorf("summary: %v", summary)
			}
			if r, _ := summary["restored_fields"].([]any); slices.Contains(r, any("national_id")) || !slices.Contains(r, any("full_name")) {
				t.Errorf("restored fields: %v", summary["restored_fields"])
			}
			// A caller cleared for RED gets every value back.
			res, b = ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody(aiPrompt, ""), "", ae.redReader(t))
			if res.StatusCode != 200 {
				t.Fatalf("chat as a RED reader: %d %s", res.StatusCode, b)
			}
			if content, _ := ae.answer(t, b); !strings.Contains(content, "JO-99812") || !strings.Contains(content, "Fled Homs in 2013") {
				t.Errorf("root's answer: %s", content)
			}

			// On the record: what left and how the call ended, never a value.
			audit := ae.auditText(t)
			ae.noSecretLeft(t, "the audit log", audit)
			ae.noSecretLeft(t, "the logs", ae.logs.String())
			// One api.request event per call, written with the inference's end.
			n := 0
			for _, line := range strings.Split(audit, "\n") {
				if strings.Contains(line, `"api.request"`) && strings.Contains(line, "/v1/ai/chat/completions") {
					n++
					if !strings.Contains(line, `"status":200`) {
						t.Errorf("api.request: %s", line)
					}
				}
			}
			if n != 2 {
				t.Errorf("%d api.request events for 2 calls", n)
			}
			for _, want := range []string{`"ai.prompt_sent"`, `"ai.inference"`, `"fields_replaced"`, `"national_id"`, `"provider":"fake"`,
				`"model":"chat-small"`, ae.layla} {
				if !strings.Contains(audit, want) {
					t.Errorf("audit log lacks %s", want)
				}
			}
		})
	}
}

func TestAIGateway_StreamRestoresPlaceholdersSplitAcrossChunks(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	whole, _ := ae.answer(t, mustOK(t, ae, ae.chatBody(aiPrompt, ""), ae.operator))
	for _, size := range []int{1, 3, 7} {
		ae.fake.SetChunkSize(size)
		res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody(aiPrompt, `,"stream":true`), "", ae.operator)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", res.StatusCode, b)
		}
		var got strings.Builder
		var summary map[string]any
		done := false
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if data == "[DONE]" {
				done = true
				continue
			}
			var c struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
				Usage  any            `json:"usage"`
				Tutela map[string]any `json:"tutela"`
				Error  any            `json:"error"`
			}
			mustUnmarshal(t, []byte(data), &c)
			if c.Error != nil || c.Usage != nil {
				t.Fatalf("chunk: %s", data)
			}
			for _, ch := range c.Choices {
				got.WriteString(ch.Delta.Content)
			}
			if c.Tutela != nil {
				summary = c.Tutela
			}
		}
		if !done || summary == nil {
			t.Fatalf("chunk size %d: no [DONE] or summary:\n%s", size, b)
		}
		if got.String() != whole {
			t.Errorf("chunk size %d: streamed %q, want %q", size, got.String(), whole)
		}
	}
}

func mustOK(t *testing.T, ae *aiEnv, body, auth string) []byte {
	t.Helper()
	res, b := ae.req(t, "POST", "/v1/ai/chat/completions", body, "", auth)
	if res.StatusCode != 200 {
		t.Fatalf("chat: %d %s", res.StatusCode, b)
	}
	return b
}

func TestAIGateway_RefusesWhatItCannotCheckOrAllow(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	otherSubject := func() string {
		res, b := ae.req(t, "POST", ae.otherTenantsBase+"/subjects", `{"values":{"full_name":"Someone Else"}}`, "", ae.root)
		if res.StatusCode != 201 {
			return "0190c1d2-0000-7000-8000-000000000000"
		}
		var s struct{ ID string }
		mustUnmarshal(t, b, &s)
		return s.ID
	}()
	image := `{"model":"chat-small","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"tutela":{"purpose":"ai_triage"}}`
	for _, c := range []struct {
		name, body, auth string
		status           int
		code             string
	}{
		{"no purpose", `{"model":"chat-small","messages":[{"role":"user","content":"hi"}]}`, ae.operator, 400, tutela.EINVALID},
		{"purpose not enabled", strings.Replace(ae.chatBody("hi", ""), "ai_triage", "case_management", 1), ae.operator, 403, tutela.EFORBIDDEN},
		{"model not for purpose", strings.Replace(ae.chatBody("hi", ""), "chat-small", "chat-big", 1), ae.operator, 403, tutela.EFORBIDDEN},
		{"embedding model for chat", strings.Replace(ae.chatBody("hi", ""), "chat-small", "embed-small", 1), ae.operator, 400, tutela.EINVALID},
		{"auditor may not infer", ae.chatBody("hi", ""), ae.auditor, 403, tutela.EFORBIDDEN},
		{"another tenant's subject", strings.Replace(ae.chatBody("hi", ""), ae.layla, otherSubject, 1), ae.operator, 404, tutela.ENOTFOUND},
		{"other tenant's admin", ae.chatBody("hi", ""), ae.otherAdmin, 403, tutela.EFORBIDDEN},
		{"image part", image, ae.operator, 400, tutela.EINVALID},
		{"user field", ae.chatBody("hi", `,"user":"layla"`), ae.operator, 400, tutela.EINVALID},
		{"store true", ae.chatBody("hi", `,"store":true`), ae.operator, 400, tutela.EINVALID},
		{"unknown field", ae.chatBody("hi", `,"metadata":{"who":"layla"}`), ae.operator, 400, tutela.EINVALID},
		{"too many subjects", strings.Replace(ae.chatBody("hi", ""), `"`+ae.layla+`"`, strings.Repeat(`"`+ae.layla+`",`, 20)+`"`+ae.layla+`"`, 1), ae.operator, 400, tutela.EINVALID},
		{"no token", ae.chatBody("hi", ""), "", 401, tutela.EUNAUTHENTICATED},
		{"too much text", ae.chatBody(strings.Repeat("00 ", httpapi.MaxAIText/3+1), ""), ae.operator, 413, tutela.ETOOLARGE},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, b := ae.req(t, "POST", "/v1/ai/chat/completions", c.body, "", c.auth)
			wantError(t, res, b, c.status, c.code)
		})
	}
	// The model list is for callers of the gateway: an auditor (READ on ai, no CREATE) is refused.
	res, b := ae.req(t, "GET", "/v1/ai/models", "", "", ae.auditor)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	if res, b := ae.req(t, "GET", "/v1/ai/models", "", "", ae.operator); res.StatusCode != 200 ||
		!strings.Contains(string(b), `"id":"chat-small"`) || !strings.Contains(string(b), `"purposes":["ai_triage"]`) {
		t.Errorf("models: %d %s", res.StatusCode, b)
	}
	if res, b := ae.req(t, "GET", "/v1/ai/models", "", "", ae.otherAdmin); res.StatusCode != 200 || strings.Contains(string(b), "chat-small") {
		t.Errorf("another tenant's models: %d %s", res.StatusCode, b)
	}
	res, b = ae.do(t, "POST", "/v1/ai/chat/completions", ae.chatBody("hi", ""), "Authorization", "Bearer "+ae.operator,
		"Tutela-Purpose", "case_management")
	wantError(t, res, b, 400, tutela.EINVALID)
	if n := len(ae.fake.Requests()); n != 0 {
		t.Errorf("refused calls reached the provider %d times", n)
	}
	// The purpose as a default header and the subjects in the body: one call.
	body := `{"model":"chat-small","messages":[{"role":"user","content":"About Layla Mansour"}],"tutela":{"subjects":["` + ae.layla + `"]}}`
	res, b = ae.do(t, "POST", "/v1/ai/chat/completions", body, "Authorization", "Bearer "+ae.operator, "Tutela-Purpose", "ai_triage")
	if res.StatusCode != 200 || !strings.Contains(string(b), "Layla Mansour") || strings.Contains(ae.sentToProvider(), "Layla") {
		t.Errorf("header purpose with body subjects: %d %s", res.StatusCode, b)
	}
}

func TestAIGateway_ConsentGate(t *testing.T) {
	t.Parallel()
	ae := newAIBase(t, sqlstore.SQLite)
	ce := setupConsent(t, ae.subjectEnv) // outreach: a purpose on consent; Ada, no consent yet
	ae.configure(t, func(s sqlstore.AI) error {
		return s.PutPurpose(ctxBG, &ai.Purpose{Purpose: "outreach", Models: []string{"chat-small"}})
	})
	body := `{"model":"chat-small","messages":[{"role":"user","content":"Write to Ada Lovelace"}],"tutela":{"purpose":"outreach","subjects":["` + ce.ada + `"]}}`
	res, b := ae.req(t, "POST", "/v1/ai/chat/completions", body, "", ae.operator)
	wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
	ce.record(t, consentBody("granted", 1, ""), ce.portal)
	if res, b := ae.req(t, "POST", "/v1/ai/chat/completions", body, "", ae.operator); res.StatusCode != 200 {
		t.Fatalf("after consent: %d %s", res.StatusCode, b)
	}
	ce.record(t, consentBody("withdrawn", 1, ""), ce.portal)
	res, b = ae.req(t, "POST", "/v1/ai/chat/completions", body, "", ae.operator)
	wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
	if n := len(ae.fake.Requests()); n != 1 {
		t.Errorf("the provider was called %d times, want once (between consent and withdrawal)", n)
	}
	// The same through headers instead of the body's tutela member.
	res, b = ae.do(t, "POST", "/v1/ai/chat/completions", `{"model":"chat-small","messages":[{"role":"user","content":"hi"}]}`,
		"Authorization", "Bearer "+ae.operator, "Tutela-Purpose", "outreach", "Tutela-Subjects", ce.ada)
	wantError(t, res, b, 403, tutela.ECONSENTREQUIRED)
}

func TestAIGateway_KeyRotationKeepsRequestsSucceeding(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	call := func(step string) {
		t.Helper()
		if res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("hello", ""), "", ae.operator); res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", step, res.StatusCode, b)
		}
	}
	call("one key")
	// A new key is added before the provider has activated it: the old one still answers.
	ae.configure(t, func(s sqlstore.AI) error {
		_, err := s.AddKey(ctxBG, ae.providerID, tutela.NewSecret("sk-test-key-two-0002"), "test")
		return err
	})
	call("new key not live yet")
	ae.fake.AcceptKeys("sk-test-key-one-0001", "sk-test-key-two-0002")
	call("both live")
	// The provider revokes the old key; the new one carries on.
	ae.fake.AcceptKeys("sk-test-key-two-0002")
	call("old key revoked")
	// A third rotation retires the first key.
	ae.configure(t, func(s sqlstore.AI) error {
		_, err := s.AddKey(ctxBG, ae.providerID, tutela.NewSecret("sk-test-key-three-0003"), "test")
		return err
	})
	ae.fake.AcceptKeys("sk-test-key-three-0003")
	call("third key")
	var used []string
	for _, r := range ae.fake.Requests() {
		used = append(used, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}
	if last := used[len(used)-1]; last != "sk-test-key-three-0003" {
		t.Errorf("keys used: %v", used)
	}
	for _, k := range used {
		if k == "sk-test-key-one-0001" && ae.fake.Requests()[len(used)-1].Header.Get("Authorization") == "Bearer "+k {
			t.Errorf("retired key still sent: %v", used)
		}
	}
	if strings.Contains(ae.auditText(t), "sk-test-key") || strings.Contains(ae.logs.String(), "sk-test-key") {
		t.Error("a provider key reached the audit log or the logs")
	}
}

func TestAIGateway_ProviderErrorsAreClearAndAudited(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	ae.fake.FailNext(2, 503) // the first try and its one retry
	res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("hello", ""), "", ae.operator)
	wantError(t, res, b, 502, tutela.EUPSTREAM)
	// A provider that refuses the key echoes part of it; the caller learns only the status.
	ae.fake.AcceptKeys("sk-some-other-key-9999")
	res, b = ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("hello", ""), "", ae.operator)
	wantError(t, res, b, 502, tutela.EUPSTREAM)
	if bytes.Contains(b, []byte("sk-")) || bytes.Contains(b, []byte("0001")) {
		t.Errorf("the error relays the provider's message: %s", b)
	}
	audit := ae.auditText(t)
	if strings.Count(audit, `"ai.inference"`) != 2 || !strings.Contains(audit, `"status":"upstream_error"`) {
		t.Errorf("errors not audited: %s", audit)
	}
	// The failure's record says what the provider answered and how often it was asked.
	if !strings.Contains(audit, `"provider_status":503`) || !strings.Contains(audit, `"attempts":2`) ||
		!strings.Contains(audit, `"provider_status":401`) {
		t.Errorf("failures audited without the provider's status or the attempts: %s", audit)
	}
	if strings.Contains(audit, "sk-test") || strings.Contains(ae.logs.String(), "sk-test") {
		t.Error("a key reached the audit log or the logs")
	}
}

func TestAIGateway_RateLimitAndBudget(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	ae.configure(t, func(s sqlstore.AI) error {
		return s.PutSettings(ctxBG, &ai.Settings{RequestsPerMinute: 2})
	})
	mustOK(t, ae, ae.chatBody("one", ""), ae.operator)
	mustOK(t, ae, ae.chatBody("two", ""), ae.operator)
	res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("three", ""), "", ae.operator)
	wantError(t, res, b, 429, tutela.ERATELIMITED)
	if res.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	ae.clock.Add(time.Minute)
	ae.configure(t, func(s sqlstore.AI) error {
		u, err := s.Usage(ctxBG)
		if err != nil {
			return err
		}
		return s.PutSettings(ctxBG, &ai.Settings{TokensPerDay: u.DayTokens + 10})
	})
	mustOK(t, ae, ae.chatBody(strings.Repeat("a long prompt ", 10), ""), ae.operator) // spends more than 10 tokens
	res, b = ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("again", ""), "", ae.operator)
	wantError(t, res, b, 429, tutela.EQUOTAEXCEEDED)
	if n := len(ae.fake.Requests()); n != 3 {
		t.Errorf("provider called %d times, want 3", n)
	}
}

func TestAIGateway_AttachSendsOnlyTheMinimizedRecord(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	mustOK(t, ae, strings.Replace(ae.chatBody("Assess the person.", ""), `"subjects"`, `"attach":true,"subjects"`, 1), ae.operator)
	sent := ae.sentToProvider()
	ae.noSecretLeft(t, "the provider's request", sent)
	// Age band and region pass (the profile generalizes them); the national ID is RED, which
	// the operator may not read, so it is withheld rather than tokenized.
	for _, want := range []string{`\"date_of_birth\":\"`, `\"address\":\"Jordan\"`, "Person S1"} {
		if !strings.Contains(sent, want) {
			t.Errorf("attachment lacks %s: %s", want, sent)
		}
	}
	if strings.Contains(sent, `\"national_id\"`) {
		t.Errorf("a withheld field was attached: %s", sent)
	}
}

func TestAIGateway_ToolCallsAndEmbeddings(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	tools := `,"tools":[{"type":"function","function":{"name":"file_note","description":"File a note","parameters":{"type":"object","properties":{"text":{"type":"string"}}}}}]`
	b := mustOK(t, ae, ae.chatBody("CALL note that Layla Mansour called from 0791234567", tools), ae.operator)
	var v struct {
		Choices []struct {
			Message struct {
				ToolCalls []struct {
					Function struct {
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
		} `json:"choices"`
	}
	mustUnmarshal(t, b, &v)
	if len(v.Choices) != 1 || len(v.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("no tool call: %s", b)
	}
	var args struct{ Text string }
	if err := json.Unmarshal([]byte(v.Choices[0].Message.ToolCalls[0].Function.Arguments), &args); err != nil {
		t.Fatalf("restored arguments are not JSON: %v", err)
	}
	if !strings.Contains(args.Text, "Layla Mansour") || !strings.Contains(args.Text, "+962 79 123 4567") {
		t.Errorf("arguments: %q", args.Text)
	}
	ae.noSecretLeft(t, "the provider's request", ae.sentToProvider())

	res, b := ae.req(t, "POST", "/v1/ai/embeddings", `{"model":"embed-small","input":["Layla Mansour, 0791234567","no one"],"tutela":{"purpose":"ai_triage","subjects":["`+ae.layla+`"]}}`, "", ae.operator)
	if res.StatusCode != 200 {
		t.Fatalf("embeddings: %d %s", res.StatusCode, b)
	}
	var emb struct {
		Data []struct{ Embedding []float64 } `json:"data"`
	}
	mustUnmarshal(t, b, &emb)
	if len(emb.Data) != 2 {
		t.Errorf("embeddings: %s", b)
	}
	ae.noSecretLeft(t, "the provider's request", ae.sentToProvider())
	res, b = ae.req(t, "POST", "/v1/ai/embeddings", `{"model":"embed-small","input":[[1,2,3]],"tutela":{"purpose":"ai_triage"}}`, "", ae.operator)
	wantError(t, res, b, 400, tutela.EINVALID)
}

// A caller who may not read a RED field cannot use the gateway to confirm a guess of it: a right
// and a wrong guess of Layla's national ID give answers of the same form (the caller's own
// words back) and the same summary.
func TestAIGateway_NoConfirmationOracleForUnreadableFields(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	answer := func(guess string) (string, map[string]any) {
		return ae.answer(t, mustOK(t, ae, ae.chatBody("Is "+guess+" the ID of Layla Mansour?", ""), ae.operator))
	}
	right, rs := answer("JO 99812")
	wrong, ws := answer("JO 99813")
	if right != "Is JO 99812 the ID of Layla Mansour?" || wrong != "Is JO 99813 the ID of Layla Mansour?" {
		t.Errorf("answers: %q, %q", right, wrong)
	}
	delete(rs, "request_id")
	delete(ws, "request_id")
	if fmt.Sprint(rs) != fmt.Sprint(ws) {
		t.Errorf("summaries differ: %v / %v", rs, ws)
	}
	// What left was redacted all the same: the right guess never reached the provider.
	if strings.Contains(ae.sentToProvider(), "99812") {
		t.Error("the national ID reached the provider")
	}
}
