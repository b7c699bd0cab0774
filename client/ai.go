package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"tutela"
)

// AI calls Tutela's AI privacy gateway (/v1/ai/), the OpenAI-compatible API that replaces the
// named subjects' values and other identifiers with placeholders before a prompt leaves, and
// restores what the caller may read in the answer (docs/ai.md).
//
// Any OpenAI SDK works against BaseURL+"/v1/ai" with the headers of AIScope.Header; AI is the
// small typed client for Go programs that would rather not depend on one.
type AI struct {
	// BaseURL is Tutela's URL ("https://tutela.example.org").
	BaseURL string
	// Token returns the caller's access token: a user's, or a service account's (client
	// credentials) holding CREATE on ai.
	Token func(ctx context.Context) (string, error)
	// HTTPClient defaults to a client with no overall timeout: a streamed answer lasts as long
	// as the model writes (bound it with the context).
	HTTPClient *http.Client
}

// AIScope is what a call is for: the purpose (required), the subjects it is about, and whether
// their minimized records are attached.
type AIScope struct {
	Purpose  string
	Subjects []string
	Attach   bool
}

// Header returns scope as the Tutela-Purpose, Tutela-Subjects and Tutela-Attach headers, for an
// OpenAI SDK's per-request or default headers.
func (s AIScope) Header() http.Header {
	h := http.Header{}
	h.Set("Tutela-Purpose", s.Purpose)
	if len(s.Subjects) > 0 {
		h.Set("Tutela-Subjects", strings.Join(s.Subjects, ","))
	}
	if s.Attach {
		h.Set("Tutela-Attach", "true")
	}
	return h
}

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	Role       string         `json:"role"`
	Content    string         `json:"content"`
	Name       string         `json:"name,omitempty"`
	ToolCalls  []ChatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

// ChatToolCall is a tool (function) call a model made; Arguments is JSON text.
type ChatToolCall struct {
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// ChatRequest is a chat completion request. Params holds any other member the gateway forwards
// (temperature, tools, response_format, …), as JSON values.
type ChatRequest struct {
	Model     string
	Messages  []ChatMessage
	MaxTokens int
	Params    map[string]any
}

// AISummary is what the gateway says it did with a call.
type AISummary struct {
	RequestID      string   `json:"request_id"`
	RestoredFields []string `json:"restored_fields"`
	WithheldFields []string `json:"withheld_fields"`
	Flags          []AIFlag `json:"flags"`
}

// AIFlag is identifier-like text the model wrote that Tutela did not put there.
type AIFlag struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// ChatResponse is a chat completion, placeholders restored for the caller.
type ChatResponse struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int         `json:"index"`
		Message      ChatMessage `json:"message"`
		FinishReason string      `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
	Tutela AISummary `json:"tutela"`
}

func (req ChatRequest) body(scope AIScope, stream bool) ([]byte, error) {
	m := make(map[string]any, len(req.Params)+5)
	for k, v := range req.Params {
		m[k] = v
	}
	m["model"], m["messages"] = req.Model, req.Messages
	if req.MaxTokens > 0 {
		m["max_tokens"] = req.MaxTokens
	}
	if stream {
		m["stream"] = true
	}
	m["tutela"] = map[string]any{"purpose": scope.Purpose, "subjects": nonNil(scope.Subjects), "attach": scope.Attach}
	return json.Marshal(m)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Chat asks for a completion.
func (a *AI) Chat(ctx context.Context, scope AIScope, req ChatRequest) (*ChatResponse, error) {
	body, err := req.body(scope, false)
	if err != nil {
		return nil, err
	}
	res, err := a.post(ctx, "/v1/ai/chat/completions", body)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var out ChatResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("tutela ai: decode the answer: %w", err)
	}
	return &out, nil
}

// ChatChunk is one event of a streamed completion. The last one (Choices empty) carries Tutela.
type ChatChunk struct {
	ID      string `json:"id"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role      string         `json:"role"`
			Content   string         `json:"content"`
			ToolCalls []ChatToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Tutela *AISummary `json:"tutela"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ChatStream reads a streamed completion.
type ChatStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// ChatStream asks for a streamed completion; read it with Next until io.EOF, then Close.
func (a *AI) ChatStream(ctx context.Context, scope AIScope, req ChatRequest) (*ChatStream, error) {
	body, err := req.body(scope, true)
	if err != nil {
		return nil, err
	}
	res, err := a.post(ctx, "/v1/ai/chat/completions", body)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &ChatStream{body: res.Body, sc: sc}, nil
}

// Next returns the next chunk; io.EOF after [DONE]. An error event from the gateway (the
// inference failed, or could not be recorded, after the stream began) is returned as a
// *tutela.Error: the answer so far must then be discarded.
func (s *ChatStream) Next() (*ChatChunk, error) {
	for s.sc.Scan() {
		data, ok := strings.CutPrefix(s.sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return nil, io.EOF
		}
		var c ChatChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return nil, fmt.Errorf("tutela ai: decode a chunk: %w", err)
		}
		if c.Error != nil {
			return nil, &tutela.Error{Code: c.Error.Code, Message: c.Error.Message}
		}
		return &c, nil
	}
	if err := s.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.ErrUnexpectedEOF // ended without [DONE]: the answer is incomplete
}

// Close releases the stream.
func (s *ChatStream) Close() error { return s.body.Close() }

// Embeddings returns one vector per input.
func (a *AI) Embeddings(ctx context.Context, scope AIScope, model string, inputs []string) ([][]float64, error) {
	body, err := json.Marshal(map[string]any{"model": model, "input": inputs,
		"tutela": map[string]any{"purpose": scope.Purpose, "subjects": nonNil(scope.Subjects)}})
	if err != nil {
		return nil, err
	}
	res, err := a.post(ctx, "/v1/ai/embeddings", body)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 256<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("tutela ai: decode the answer: %w", err)
	}
	vecs := make([][]float64, len(inputs))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(vecs) {
			return nil, errors.New("tutela ai: the answer has an embedding for no input")
		}
		vecs[d.Index] = d.Embedding
	}
	return vecs, nil
}

// post sends body and returns a 200 response; any other status becomes the *tutela.Error the
// gateway answered (code and message), so callers can switch on tutela.ErrorCode.
func (a *AI) post(ctx context.Context, path string, body []byte) (*http.Response, error) {
	tok, err := a.Token(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	hc := a.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusOK {
		return res, nil
	}
	defer res.Body.Close()
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&eb) != nil || eb.Error.Code == "" {
		return nil, fmt.Errorf("tutela ai: HTTP %d", res.StatusCode)
	}
	return nil, &tutela.Error{Code: eb.Error.Code, Message: eb.Error.Message}
}
