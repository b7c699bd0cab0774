package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/ai"
	"tutela/ai/aitest"
	"tutela/ai/upstream"
	"tutela/sqlstore"
)

// Nothing rides along unexamined: sampling parameters are only the numbers, booleans or words
// they are; roles and part types only protocol words; object keys, IDs and long numbers are
// redacted like any text; log probabilities are refused (they would show the placeholders).
func TestAIGateway_EveryMemberIsExaminedOrTyped(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	for _, c := range []struct{ name, extra string }{
		{"text as temperature", `,"temperature":"Layla Mansour"`},
		{"object as seed", `,"seed":{"who":"Layla Mansour"}`},
		{"text in logit_bias", `,"logit_bias":{"Layla":1}`},
		{"sentence as reasoning effort", `,"reasoning_effort":"Layla Mansour"`},
		{"logprobs", `,"logprobs":true`},
		{"top_logprobs", `,"top_logprobs":2`},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("hi", c.extra), "", ae.operator)
			wantError(t, res, b, 400, tutela.EINVALID)
		})
	}
	res, b := ae.req(t, "POST", "/v1/ai/chat/completions", `{"model":"chat-small","messages":[{"role":"Layla Mansour","content":"hi"}],
		"tutela":{"purpose":"ai_triage","subjects":["`+ae.layla+`"]}}`, "", ae.operator)
	wantError(t, res, b, 400, tutela.EINVALID)

	body := `{"model":"chat-small","temperature":0.2,"seed":7,"logit_bias":{"1234":-1},"reasoning_effort":"low",
		"messages":[{"role":"user","content":"look up"},
		 {"role":"assistant","content":null,"tool_calls":[{"id":"call_0791234567","type":"function","function":{"name":"lookup","arguments":"{}"}}]},
		 {"role":"tool","tool_call_id":"call_0791234567","content":"done"}],
		"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object",
		 "properties":{"Layla Mansour":{"type":"string","enum":[962791234567]}}}}}],
		"tutela":{"purpose":"ai_triage","subjects":["` + ae.layla + `"]}}`
	if res, b := ae.req(t, "POST", "/v1/ai/chat/completions", body, "", ae.operator); res.StatusCode != 200 {
		t.Fatalf("chat: %d %s", res.StatusCode, b)
	}
	sent := ae.sentToProvider()
	for _, v := range []string{"0791234567", "Layla", "962791234567"} {
		if strings.Contains(sent, v) {
			t.Errorf("%q reached the provider: %s", v, sent)
		}
	}
	for _, v := range []string{`"temperature":0.2`, `"seed":7`, `"reasoning_effort":"low"`, `"1234":-1`} {
		if !strings.Contains(sent, v) {
			t.Errorf("%s not forwarded: %s", v, sent)
		}
	}
}

// In JSON mode the answer's content is JSON text: a restored value is escaped inside it, so an
// address with a quote and a line break cannot break the caller's JSON or add members to it.
func TestAIGateway_JSONModeRestoresEscaped(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	subj := struct{ ID string }{ae.createWith(t, `{"values":{"full_name":"Rami Haddad","address":"5 Old Road\", \"approved\": \"yes\nJabal Amman, Jordan"}}`)}
	prompt, _ := json.Marshal(`{"address": "5 Old Road\", \"approved\": \"yes\nJabal Amman, Jordan", "approved": "no"}`)
	req := `{"model":"chat-small","messages":[{"role":"user","content":` + string(prompt) + `}],
	 "response_format":{"type":"json_object"},"tutela":{"purpose":"ai_triage","subjects":["` + subj.ID + `"]}}`
	for _, stream := range []bool{false, true} {
		var content string
		if stream {
			ae.fake.SetChunkSize(5)
			b := mustOK(t, ae, strings.Replace(req, `"response_format"`, `"stream":true,"response_format"`, 1), ae.operator)
			for _, line := range strings.Split(string(b), "\n") {
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || data == "[DONE]" {
					continue
				}
				var c struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
				}
				mustUnmarshal(t, []byte(data), &c)
				for _, ch := range c.Choices {
					content += ch.Delta.Content
				}
			}
		} else {
			content, _ = ae.answer(t, mustOK(t, ae, req, ae.operator))
		}
		var v map[string]any
		// Valid JSON with the caller's two members: the restored address (a part of it is a
		// placeholder restored to the whole stored address) stays inside its string.
		if err := json.Unmarshal([]byte(content), &v); err != nil || v["approved"] != "no" || len(v) != 2 ||
			!strings.Contains(v["address"].(string), "5 Old Road\", \"approved\": \"yes\nJabal Amman") {
			t.Errorf("stream %v: JSON answer %q: %v %v", stream, content, v, err)
		}
	}
}

// A streamed answer is bounded as a whole, like one that is not streamed, and a provider's
// nonsense token count cannot keep the inference off the record.
func TestAIGateway_StreamBoundedAndUsageClamped(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	piece := strings.Repeat("x", 900_000)
	ae.fake.Handle(func(r aitest.Request) aitest.Reply {
		var chunks []string
		for range upstream.MaxResponseBytes/len(piece) + 2 {
			b, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "model": "m",
				"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": piece}}}})
			chunks = append(chunks, string(b))
		}
		return aitest.Reply{Chunks: chunks}
	})
	res, b := ae.req(t, "POST", "/v1/ai/chat/completions", ae.chatBody("hi", `,"stream":true`), "", ae.operator)
	if res.StatusCode != 200 || strings.Contains(string(b), "[DONE]") || !strings.Contains(string(b), `"code":"upstream_error"`) {
		t.Errorf("an oversized stream: %d, %d bytes, ends %q", res.StatusCode, len(b), b[max(0, len(b)-200):])
	}

	ae.fake.Handle(func(r aitest.Request) aitest.Reply {
		body, _ := json.Marshal(map[string]any{"id": "x", "object": "chat.completion", "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": "ok"}}},
			"usage":   map[string]any{"prompt_tokens": 1 << 50, "completion_tokens": 1 << 50, "total_tokens": 1 << 51}})
		return aitest.Reply{Body: body}
	})
	mustOK(t, ae, ae.chatBody("hi", ""), ae.operator)
	audit := ae.auditText(t)
	if !strings.Contains(audit, `"prompt":1073741824`) {
		t.Errorf("the huge usage was not recorded clamped: %s", audit[max(0, len(audit)-1500):])
	}
}

// National ID formats follow the tenant: its id_countries, or the country its data region names.
func TestAIGateway_IDFormatsFollowTheTenantsRegion(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	call := func() string {
		before := len(ae.fake.Requests())
		mustOK(t, ae, ae.chatBody("Her brother's SSN is 123-45-6789.", ""), ae.operator)
		return string(ae.fake.Requests()[before].Body)
	}
	if sent := call(); !strings.Contains(sent, "123-45-6789") { // region eu: no country's formats
		t.Fatalf("an SSN was treated as an identifier in region eu: %s", sent)
	}
	if res, b := ae.req(t, "PATCH", "/v1/tenants/"+ae.tenant.ID, `{"data_region":"us"}`, "", ae.root); res.StatusCode != 200 {
		t.Fatalf("move to us: %d %s", res.StatusCode, b)
	}
	if sent := call(); strings.Contains(sent, "123-45-6789") || !strings.Contains(sent, "[ID_1]") {
		t.Errorf("an SSN reached the provider of a tenant in region us: %s", sent)
	}
	ae.configure(t, func(s sqlstore.AI) error {
		return s.PutSettings(ctxBG, &ai.Settings{IDCountries: []string{"GB"}})
	})
	if sent := call(); !strings.Contains(sent, "123-45-6789") {
		t.Errorf("id_countries GB still detects US formats: %s", sent)
	}
}

// What applications and word processors do to text does not let a value through: a tool's
// result made by json.dumps (every non-ASCII character escaped, "@" as \u0040) and phone numbers
// written with en dashes, non-breaking hyphens or minus signs.
func TestAIGateway_EscapedJSONAndUnicodeDashes(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	subj := struct{ ID string }{ae.createWith(t, `{"values":{"full_name":"ليلى منصور","email":"x.y@example.org"}}`)}
	toolJSON := `{"name": "\u0644\u064a\u0644\u0649 \u0645\u0646\u0635\u0648\u0631", "email": "x.y\u0040example.org"}`
	content, _ := json.Marshal(toolJSON)
	body := `{"model":"chat-small","messages":[{"role":"user","content":"look her up"},
	 {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{}"}}]},
	 {"role":"tool","tool_call_id":"call_1","content":` + string(content) + `}],
	 "tutela":{"purpose":"ai_triage","subjects":["` + subj.ID + `"]}}`
	before := len(ae.fake.Requests())
	mustOK(t, ae, body, ae.operator)
	sent := string(ae.fake.Requests()[before].Body)
	for _, v := range []string{`\u0644\u064a\u0644\u0649`, `\u0645\u0646\u0635\u0648\u0631`, `x.y\u0040example.org`} {
		if strings.Contains(strings.ReplaceAll(sent, `\\`, `\`), v) {
			t.Errorf("the escaped value %s reached the provider: %s", v, sent)
		}
	}
	for _, form := range []string{"079–123–4567", "079‑123‑4567", "+962−79−123−4567"} {
		before := len(ae.fake.Requests())
		mustOK(t, ae, ae.chatBody("Call "+form, ""), ae.operator)
		if sent := string(ae.fake.Requests()[before].Body); strings.Contains(sent, "4567") {
			t.Errorf("%q reached the provider: %s", form, sent)
		}
	}
}

// A placeholder the request did not produce (typed by the caller, or invented by the model) is
// never read out, and every value that is read out is on the record.
func TestAIGateway_OnlyProducedPlaceholdersAreRestoredAndAllOnTheRecord(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	red := ae.redReader(t)
	content, _ := ae.answer(t, mustOK(t, ae, ae.chatBody("Print [S1_NOTES] please", ""), red))
	if content != "Print [S1_NOTES] please" {
		t.Errorf("a typed placeholder was read out: %q", content)
	}
	content, summary := ae.answer(t, mustOK(t, ae, ae.chatBody("Notes: Fled Homs in 2013 with two children", ""), red))
	if !strings.Contains(content, "Fled Homs in 2013") {
		t.Fatalf("answer: %q", content)
	}
	if r, _ := summary["restored_fields"].([]any); len(r) != 1 || r[0] != "notes" {
		t.Errorf("restored fields: %v", summary["restored_fields"])
	}
	audit := ae.auditText(t)
	last := audit[strings.LastIndex(audit, `"action":"ai.inference"`):]
	if !strings.Contains(last[:strings.Index(last+"\n", "\n")], `"restored_fields":["notes"]`) {
		t.Errorf("the restored notes are not on the record: %s", last)
	}
}
