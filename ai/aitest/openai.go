package aitest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// created is the fixed "created" of every answer, so answers are reproducible.
const created = 1700000000

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// text is a message content's text: the string, or its text parts joined.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func tokens(n int) int { return n/4 + 1 }

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens,omitempty"`
	TotalTokens      int `json:"total_tokens"`
}

// defaultReply is the provider's own answer to req.
func (p *Provider) defaultReply(req Request, method string, chunk, serial int) Reply {
	if method != http.MethodPost {
		return Reply{Status: http.StatusNotFound, Body: errorBody("not found", "invalid_request_error", "")}
	}
	switch {
	case strings.HasSuffix(req.Path, "/chat/completions"):
		return chat(req.Body, chunk, serial)
	case strings.HasSuffix(req.Path, "/embeddings"):
		return embeddings(req.Body)
	}
	return Reply{Status: http.StatusNotFound, Body: errorBody("not found", "invalid_request_error", "")}
}

func badRequest(msg string) Reply {
	return Reply{Status: http.StatusBadRequest, Body: errorBody(msg, "invalid_request_error", "")}
}

// chat answers a chat completion: the last user message echoed, or a call of the first tool
// when there are tools and that message starts with "CALL ".
func chat(body []byte, chunk, serial int) Reply {
	var r chatRequest
	if err := json.Unmarshal(body, &r); err != nil || len(r.Messages) == 0 {
		return badRequest("messages are required")
	}
	all, last := 0, ""
	for _, m := range r.Messages {
		t := text(m.Content)
		all += len(t)
		if m.Role == "user" {
			last = t
		}
	}
	id := fmt.Sprintf("chatcmpl-aitest-%d", serial)
	var tool, args string
	if rest, ok := strings.CutPrefix(last, "CALL "); ok && len(r.Tools) > 0 {
		tool = r.Tools[0].Function.Name
		// Unescaped like a real provider's arguments ("<" stays "<"), so a placeholder
		// in them reads as it was sent.
		var b strings.Builder
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		_ = e.Encode(map[string]string{"text": rest})
		args = strings.TrimSuffix(b.String(), "\n")
	}
	out := last
	if tool != "" {
		out = args
	}
	u := usage{PromptTokens: tokens(all), CompletionTokens: tokens(len(out))}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	callID := fmt.Sprintf("call_aitest_%d", serial)

	if r.Stream {
		return Reply{Chunks: chatChunks(id, r.Model, last, tool, args, callID, chunk, u, r.StreamOptions.IncludeUsage)}
	}
	msg := map[string]any{"role": "assistant", "content": last}
	finish := "stop"
	if tool != "" {
		msg["content"] = nil
		msg["tool_calls"] = []any{map[string]any{"id": callID, "type": "function",
			"function": map[string]any{"name": tool, "arguments": args}}}
		finish = "tool_calls"
	}
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": r.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
		"usage":   u,
	})
	return Reply{Body: b}
}

// chatChunks are the chat.completion.chunk events of the answer.
func chatChunks(id, model, answer, tool, args, callID string, size int, u usage, withUsage bool) []string {
	event := func(delta map[string]any, finish any) string {
		b, _ := json.Marshal(map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		})
		return string(b)
	}
	var out []string
	finish := "stop"
	if tool == "" {
		out = append(out, event(map[string]any{"role": "assistant", "content": ""}, nil))
		for _, s := range split(answer, size) {
			out = append(out, event(map[string]any{"content": s}, nil))
		}
	} else {
		finish = "tool_calls"
		out = append(out, event(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
			"index": 0, "id": callID, "type": "function", "function": map[string]any{"name": tool, "arguments": ""}}}}, nil))
		for _, s := range split(args, size) {
			out = append(out, event(map[string]any{"tool_calls": []any{map[string]any{
				"index": 0, "function": map[string]any{"arguments": s}}}}, nil))
		}
	}
	out = append(out, event(map[string]any{}, finish))
	if withUsage {
		b, _ := json.Marshal(map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{}, "usage": u,
		})
		out = append(out, string(b))
	}
	return out
}

// split cuts s into pieces of at most size bytes without splitting a character (a character
// longer than size is a piece of its own).
func split(s string, size int) []string {
	var out []string
	for len(s) > 0 {
		n := 0
		for n < len(s) {
			_, w := utf8.DecodeRuneInString(s[n:])
			if n > 0 && n+w > size {
				break
			}
			n += w
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// embeddings answers one 8-dimensional vector per input, derived from the input's SHA-256 so
// equal inputs get equal vectors.
func embeddings(body []byte) Reply {
	var r struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if json.Unmarshal(body, &r) != nil {
		return badRequest("invalid JSON")
	}
	var inputs []string
	var one string
	if json.Unmarshal(r.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(r.Input, &inputs) != nil || len(inputs) == 0 {
		return badRequest("input must be a string or an array of strings")
	}
	data := make([]any, len(inputs))
	n := 0
	for i, in := range inputs {
		n += len(in)
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Vector(in)}
	}
	u := usage{PromptTokens: tokens(n)}
	u.TotalTokens = u.PromptTokens
	b, _ := json.Marshal(map[string]any{"object": "list", "data": data, "model": r.Model, "usage": u})
	return Reply{Body: b}
}

// Vector is the embedding the provider answers for input: 8 numbers in [-1, 1] from its
// SHA-256.
func Vector(input string) []float64 {
	h := sha256.Sum256([]byte(input))
	v := make([]float64, 8)
	for i := range v {
		v[i] = float64(binary.BigEndian.Uint16(h[i*2:]))/32767.5 - 1
	}
	return v
}
