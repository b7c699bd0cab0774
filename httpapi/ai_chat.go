package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/httpapi/middleware"
)

// chatRequest is an OpenAI chat completion request as the gateway accepts it. Only these fields
// are forwarded; any other is refused by name, so nothing reaches a provider unexamined. Every
// string in messages, tools, tool_choice, stop and response_format is redacted.
type chatRequest struct {
	Model               string            `json:"model"`
	Messages            []json.RawMessage `json:"messages"`
	Stream              bool              `json:"stream"`
	StreamOptions       *streamOptions    `json:"stream_options"`
	Tools               json.RawMessage   `json:"tools"`
	ToolChoice          json.RawMessage   `json:"tool_choice"`
	Stop                json.RawMessage   `json:"stop"`
	ResponseFormat      json.RawMessage   `json:"response_format"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	N                   *int              `json:"n"`
	// Sampling parameters are typed: a parameter is forwarded only as the number, boolean or
	// short word it is, so no text rides along unexamined.
	ParallelToolCalls *bool              `json:"parallel_tool_calls"`
	Temperature       *float64           `json:"temperature"`
	TopP              *float64           `json:"top_p"`
	PresencePenalty   *float64           `json:"presence_penalty"`
	FrequencyPenalty  *float64           `json:"frequency_penalty"`
	Seed              *int64             `json:"seed"`
	LogitBias         map[string]float64 `json:"logit_bias"`
	ReasoningEffort   *string            `json:"reasoning_effort"`
	// Logprobs and TopLogprobs are refused: the tokens' log probabilities would show the caller
	// the placeholders the model saw, before restoration.
	Logprobs    json.RawMessage `json:"logprobs"`
	TopLogprobs json.RawMessage `json:"top_logprobs"`
	// User and Store are refused with a reason: Tutela records who called, and a provider must
	// not keep what it is sent.
	User   json.RawMessage `json:"user"`
	Store  *bool           `json:"store"`
	Tutela *aiOptions      `json:"tutela"`
}

func (c *chatRequest) options() *aiOptions { return c.Tutela }

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Bounds of a chat request.
const (
	maxAIMessages = 2048
	maxAIChoices  = 8
)

func (c *chatRequest) check() error {
	switch {
	case !ai.ValidModelName(c.Model):
		return tutela.FieldErrorf("model", "model is required: one of GET /v1/ai/models")
	case len(c.Messages) == 0 || len(c.Messages) > maxAIMessages:
		return tutela.FieldErrorf("messages", "between 1 and %d messages are required", maxAIMessages)
	case c.User != nil:
		return tutela.FieldErrorf("user", "user is not forwarded: Tutela records who called and keeps it from the provider")
	case c.Store != nil && *c.Store:
		return tutela.FieldErrorf("store", "store must be false: a provider may not keep what it is sent")
	case c.N != nil && (*c.N < 1 || *c.N > maxAIChoices):
		return tutela.FieldErrorf("n", "n must be between 1 and %d", maxAIChoices)
	case c.MaxTokens != nil && *c.MaxTokens < 1, c.MaxCompletionTokens != nil && *c.MaxCompletionTokens < 1:
		return tutela.FieldErrorf("max_tokens", "max_tokens must be positive")
	case c.StreamOptions != nil && !c.Stream:
		return tutela.FieldErrorf("stream_options", "stream_options needs stream")
	case c.Logprobs != nil && string(c.Logprobs) != "false", c.TopLogprobs != nil:
		return tutela.FieldErrorf("logprobs", "logprobs are not forwarded: they would show the placeholders the model saw")
	case c.ReasoningEffort != nil && !aiWordRE.MatchString(*c.ReasoningEffort):
		return tutela.FieldErrorf("reasoning_effort", "reasoning_effort is a word such as low, medium or high")
	}
	for _, f := range []*float64{c.Temperature, c.TopP, c.PresencePenalty, c.FrequencyPenalty} {
		if f != nil && (math.IsNaN(*f) || math.IsInf(*f, 0)) {
			return tutela.FieldErrorf("temperature", "sampling parameters are finite numbers")
		}
	}
	if len(c.LogitBias) > 300 {
		return tutela.FieldErrorf("logit_bias", "logit_bias has at most 300 entries")
	}
	for k := range c.LogitBias {
		if !aiTokenIDRE.MatchString(k) {
			return tutela.FieldErrorf("logit_bias", "logit_bias keys are token IDs (digits)")
		}
	}
	return nil
}

var (
	aiWordRE    = regexp.MustCompile(`^[a-z]{1,16}$`)
	aiTokenIDRE = regexp.MustCompile(`^[0-9]{1,9}$`)
	// aiProtocolRE is what a role or a content part's type may be: a protocol word, never text.
	aiProtocolRE = regexp.MustCompile(`^[a-z][a-z_]{0,39}$`)
)

// outbound builds the provider's request: the redacted messages (after the attachment, if
// any), the provider's model name, the passed-through parameters, the purpose's output cap,
// and for a stream the usage chunk the budgets need.
func (c *chatRequest) outbound(call *aiCall, subjects []aiSubject) ([]byte, error) {
	msgs := make([]any, 0, len(c.Messages)+1)
	if call.opts.Attach {
		text, err := call.attachment(subjects)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, map[string]any{"role": "system", "content": text})
	}
	for i, raw := range c.Messages {
		v, err := decodeAny(raw)
		if err != nil {
			return nil, tutela.FieldErrorf("messages", "messages[%d] is not valid JSON", i)
		}
		if _, ok := v.(map[string]any); !ok {
			return nil, tutela.FieldErrorf("messages", "messages[%d] must be an object", i)
		}
		rv, err := call.redactJSON(v, "")
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, rv)
	}
	out := map[string]any{"model": call.model.Upstream, "messages": msgs}
	var rf struct {
		Type string `json:"type"`
	}
	if c.ResponseFormat != nil && json.Unmarshal(c.ResponseFormat, &rf) == nil {
		// The answer is JSON text: a restored value must be escaped inside it, or an address
		// with a quote or a line break would break the caller's JSON (or add members to it).
		call.jsonMode = rf.Type == "json_object" || rf.Type == "json_schema"
	}
	for name, raw := range map[string]json.RawMessage{"tools": c.Tools, "tool_choice": c.ToolChoice, "stop": c.Stop,
		"response_format": c.ResponseFormat} {
		if raw == nil {
			continue
		}
		v, err := decodeAny(raw)
		if err != nil {
			return nil, tutela.FieldErrorf(name, "%s is not valid JSON", name)
		}
		if out[name], err = call.redactJSON(v, ""); err != nil {
			return nil, err
		}
	}
	for name, v := range map[string]any{"parallel_tool_calls": c.ParallelToolCalls, "temperature": c.Temperature,
		"top_p": c.TopP, "presence_penalty": c.PresencePenalty, "frequency_penalty": c.FrequencyPenalty, "seed": c.Seed,
		"reasoning_effort": c.ReasoningEffort} {
		if !reflect.ValueOf(v).IsNil() {
			out[name] = v
		}
	}
	if c.LogitBias != nil {
		out["logit_bias"] = c.LogitBias
	}
	if c.N != nil {
		out["n"] = *c.N
	}
	limit := int64(call.purpose.MaxOutputTokens)
	capped := func(v *int64) *int64 {
		if v != nil && limit > 0 && *v > limit {
			return &limit
		}
		return v
	}
	if v := capped(c.MaxTokens); v != nil {
		out["max_tokens"] = *v
	}
	if v := capped(c.MaxCompletionTokens); v != nil {
		out["max_completion_tokens"] = *v
	}
	if limit > 0 && c.MaxTokens == nil && c.MaxCompletionTokens == nil {
		out["max_tokens"] = limit
	}
	if c.Store != nil {
		out["store"] = false
	}
	if c.Stream {
		out["stream"] = true
		out["stream_options"] = map[string]any{"include_usage": true}
	}
	return json.Marshal(out)
}

// decodeAny decodes JSON keeping numbers as written.
func decodeAny(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// aiProtocolKeys hold words of the protocol, not text: a role or a part's type is forwarded as
// it is when it is such a word, and refused otherwise (it could carry anything).
var aiProtocolKeys = map[string]bool{"role": true, "type": true}

// aiProtocolMembers are member names of the chat protocol and of JSON Schema: keys, never text
// a caller wrote, so they are not redacted (any other key is, as text).
var aiProtocolMembers = map[string]bool{"role": true, "content": true, "name": true, "tool_calls": true, "tool_call_id": true,
	"id": true, "type": true, "function": true, "arguments": true, "text": true, "refusal": true, "description": true,
	"parameters": true, "properties": true, "required": true, "items": true, "enum": true, "strict": true,
	"additionalProperties": true, "json_schema": true, "schema": true, "format": true, "default": true, "minimum": true,
	"maximum": true, "anyOf": true, "oneOf": true, "allOf": true, "$ref": true, "$defs": true, "title": true}

// aiRefusedParts are content parts the gateway cannot examine for identifiers.
var aiRefusedParts = map[string]bool{"image_url": true, "input_audio": true, "file": true, "image": true, "audio": true,
	"input_image": true, "input_file": true}

// redactJSON returns v with every string redacted (object keys too), and every number long
// enough to be an identifier checked as text, except roles and content-part types, which must be
// protocol words. A content part the gateway cannot examine (an image, audio, a file) is
// refused: it could carry anything.
func (call *aiCall) redactJSON(v any, key string) (any, error) {
	switch v := v.(type) {
	case string:
		if aiProtocolKeys[key] {
			if !aiProtocolRE.MatchString(v) {
				return nil, tutela.FieldErrorf("messages", "%s must be a protocol word (such as user or text)", key)
			}
			return v, nil
		}
		return call.redact(v)
	case json.Number:
		if len(v.String()) < 6 {
			return v, nil
		}
		r, err := call.redact(v.String())
		if err != nil || r == v.String() {
			return v, err
		}
		return r, nil // a number that is an identifier leaves as its placeholder
	case map[string]any:
		if t, _ := v["type"].(string); aiRefusedParts[t] {
			return nil, tutela.FieldErrorf("messages", "content parts of type %s cannot be checked for identifiers: send text only", t)
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			rk := k
			if !aiProtocolMembers[k] {
				var err error
				if rk, err = call.redact(k); err != nil {
					return nil, err
				}
			}
			if _, dup := out[rk]; dup {
				return nil, tutela.FieldErrorf("messages", "two keys of one object hold the same identifier")
			}
			rv, err := call.redactJSON(e, k)
			if err != nil {
				return nil, err
			}
			out[rk] = rv
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			var err error
			if out[i], err = call.redactJSON(e, key); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

// aiChat is POST /v1/ai/chat/completions.
func (s *Server) aiChat(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req chatRequest
	opts, ok := s.aiRequest(w, r, &req)
	if !ok {
		return
	}
	if err := req.check(); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	call, out, err := s.aiPrepare(r, p, opts, req.Model, ai.KindChat, req.outbound)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	extendWriteDeadline(w, call.provider)
	if req.Stream {
		s.aiChatStream(w, r, call, out, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	resp, err := s.d.AI.Do(r.Context(), call.target, "/chat/completions", out)
	res := newAIResult(err, false)
	if resp != nil {
		res.status, res.keyID, res.attempts = resp.Status, resp.KeyID, resp.Attempts
	}
	var body map[string]any
	if err == nil {
		body, res = call.restoreCompletion(resp.Body, res)
	}
	if s.aiEnd(w, r, call, res) {
		middleware.WriteJSON(w, http.StatusOK, body)
	}
}

// aiEnd records the end of a call that is not streamed and, when it failed or its end could
// not be recorded, answers the error; it reports whether the caller should send the answer.
func (s *Server) aiEnd(w http.ResponseWriter, r *http.Request, call *aiCall, res aiResult) bool {
	ferr := s.aiFinish(r, call, res, aiStatus(res.err))
	switch {
	case res.err != nil:
		if ferr != nil {
			middleware.Logger(r.Context()).Error("record AI inference", "err", ferr)
		}
		middleware.WriteError(w, r, res.err)
		return false
	case ferr != nil:
		middleware.Logger(r.Context()).Error("record AI inference", "err", ferr)
		middleware.WriteError(w, r, tutela.Wrap(ferr, "the inference could not be recorded"))
		return false
	}
	return true
}

// aiRequest decodes a gateway call's body into req and its Tutela options; on failure it has
// answered.
func (s *Server) aiRequest(w http.ResponseWriter, r *http.Request, req interface{ options() *aiOptions }) (aiOptions, bool) {
	if s.d.AI == nil {
		middleware.WriteError(w, r, errAINotConfigured)
		return aiOptions{}, false
	}
	if err := middleware.DecodeJSON(w, r, req); err != nil {
		middleware.WriteError(w, r, err)
		return aiOptions{}, false
	}
	opts, err := aiOptionsFrom(r, req.options())
	if err != nil {
		middleware.WriteError(w, r, err)
		return aiOptions{}, false
	}
	return opts, true
}

// aiStatus is the HTTP status a call ending with err answers.
func aiStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return middleware.Status(tutela.ErrorCode(err))
}

var errAINotConfigured = tutela.Errorf(tutela.ENOTCONFIGURED, "the AI gateway is not configured on this server")

// extendWriteDeadline lets the answer take as long as the provider may (the server's write
// timeout is for ordinary calls): every attempt's timeout, the backoffs, and a margin.
func extendWriteDeadline(w http.ResponseWriter, pr *ai.Provider) {
	d := time.Duration(pr.TimeoutSeconds*(pr.MaxRetries+1))*time.Second + time.Duration(pr.MaxRetries)*8*time.Second + 10*time.Second
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// restoreCompletion turns the provider's chat completion into the caller's: placeholders
// restored in each choice's text and tool-call arguments (JSON-escaped there), identifiers the
// model invented flagged, usage read, and a "tutela" member saying what was done.
func (call *aiCall) restoreCompletion(raw []byte, res aiResult) (map[string]any, aiResult) {
	v, err := decodeAny(raw)
	body, ok := v.(map[string]any)
	if err != nil || !ok {
		res.err = tutela.Errorf(tutela.EUPSTREAM, "the provider's answer is not a JSON object")
		return nil, res
	}
	if _, ok := body["model"]; ok {
		body["model"] = call.model.Name // the caller's name for it, not the provider's
	}
	x := call.newRestorer()
	var rawText strings.Builder
	choices, _ := body["choices"].([]any)
	for _, c := range choices {
		choice, _ := c.(map[string]any)
		msg, _ := choice["message"].(map[string]any)
		if msg == nil {
			continue
		}
		for _, k := range aiTextKeys {
			if s, ok := msg[k].(string); ok {
				rawText.WriteString(s)
				rawText.WriteByte('\n')
				msg[k] = x.RestoreEscaped(s, call.escapeFor(k))
			}
		}
		calls, _ := msg["tool_calls"].([]any)
		for _, tc := range calls {
			fn, _ := tc.(map[string]any)["function"].(map[string]any)
			if args, ok := fn["arguments"].(string); ok {
				rawText.WriteString(args)
				rawText.WriteByte('\n')
				fn["arguments"] = x.RestoreEscaped(args, jsonEscape)
			}
		}
	}
	res.prompt, res.complete, res.estimated = usageOf(body["usage"], call, rawText.Len())
	res.flags = call.red.Flags(rawText.String())
	res.restored = call.restoredFields(x)
	body["tutela"] = call.summary(res)
	return body, res
}

// escapeFor is the escaping of restored values in the answer member k: JSON escaping for the
// content of a JSON-mode answer, none otherwise.
func (call *aiCall) escapeFor(k string) func(string) string {
	if call.jsonMode && k == "content" {
		return jsonEscape
	}
	return nil
}

// aiTextKeys are the text members of a message or delta that are restored.
var aiTextKeys = []string{"content", "refusal", "reasoning", "reasoning_content"}

// jsonEscape escapes s for the inside of a JSON string (tool-call arguments are JSON text).
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// maxReportedTokens bounds the tokens one call is charged (the store refuses more at once).
const maxReportedTokens = 1 << 30

// usageOf reads a usage object; without one (some self-hosted servers) it estimates four
// characters per token over the prompt sent and the answer, so a budget cannot be dodged.
func usageOf(u any, call *aiCall, answerChars int) (prompt, completion int64, estimated bool) {
	m, _ := u.(map[string]any)
	num := func(k string) (int64, bool) {
		n, ok := m[k].(json.Number)
		if !ok {
			return 0, false
		}
		i, err := n.Int64()
		// A provider's count is clamped to what the budgets store, so a nonsense number
		// cannot make the inference's record fail to be written.
		return min(i, maxReportedTokens), err == nil && i >= 0
	}
	p, ok1 := num("prompt_tokens")
	c, ok2 := num("completion_tokens")
	if ok1 && ok2 {
		return p, c, false
	}
	if t, ok := num("total_tokens"); ok {
		return t, 0, false
	}
	return int64(call.sentChars/4 + 1), int64(answerChars/4 + 1), true
}

// summary is the "tutela" member of an answer: the fields restored to their stored value, the
// fields withheld from an attachment, and the identifiers the model wrote itself. It does not
// count replacements: whether the caller's text held a value they may not read must not show
// (the audit event counts them all).
func (call *aiCall) summary(res aiResult) map[string]any {
	flags := make([]any, len(res.flags))
	for i, f := range res.flags {
		flags[i] = map[string]any{"kind": f.Kind, "text": f.Text}
	}
	return map[string]any{"request_id": call.requestID, "restored_fields": toAny(nonNilStrings(res.restored)),
		"withheld_fields": toAny(call.withheld), "flags": flags}
}
