package aitest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"tutela/ai/aitest"
)

func post(t *testing.T, url string, h map[string]string, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

type completion struct {
	Object  string `json:"object"`
	Choices []struct {
		Message struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				Type     string `json:"type"`
				Function struct{ Name, Arguments string }
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func TestChat_EchoesLastUserMessage(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	status, b := post(t, p.URL+"/chat/completions", nil, `{"model":"m","messages":[
		{"role":"system","content":"be brief"},
		{"role":"user","content":"first"},
		{"role":"assistant","content":"ok"},
		{"role":"user","content":[{"type":"text","text":"hello "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"<PERSON_1>"}]}]}`)
	var c completion
	if status != 200 || json.Unmarshal(b, &c) != nil || c.Object != "chat.completion" || len(c.Choices) != 1 {
		t.Fatalf("%d %s", status, b)
	}
	// All message text: 8+5+2+16 = 31 bytes; the answer 16.
	if got := *c.Choices[0].Message.Content; got != "hello <PERSON_1>" || c.Choices[0].FinishReason != "stop" ||
		c.Usage.PromptTokens != 31/4+1 || c.Usage.CompletionTokens != 16/4+1 || c.Usage.TotalTokens != 31/4+1+16/4+1 {
		t.Fatalf("%s", b)
	}
}

func TestChat_CallsFirstTool(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	tools := `"tools":[{"type":"function","function":{"name":"lookup"}},{"type":"function","function":{"name":"other"}}]`
	_, b := post(t, p.URL+"/chat/completions", nil, `{"model":"m",`+tools+`,"messages":[{"role":"user","content":"CALL <EMAIL_1> please"}]}`)
	var c completion
	if json.Unmarshal(b, &c) != nil || len(c.Choices) != 1 {
		t.Fatalf("%s", b)
	}
	ch := c.Choices[0]
	if ch.FinishReason != "tool_calls" || ch.Message.Content != nil || len(ch.Message.ToolCalls) != 1 ||
		ch.Message.ToolCalls[0].Function.Name != "lookup" || ch.Message.ToolCalls[0].Function.Arguments != `{"text":"<EMAIL_1> please"}` {
		t.Fatalf("%s", b)
	}

	// Without tools, "CALL " is just text.
	_, b = post(t, p.URL+"/chat/completions", nil, `{"model":"m","messages":[{"role":"user","content":"CALL x"}]}`)
	if json.Unmarshal(b, &c) != nil || *c.Choices[0].Message.Content != "CALL x" {
		t.Fatalf("%s", b)
	}
}

// sse reads the data payloads of an event stream.
func sse(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestChat_StreamsChunksWithoutSplittingCharacters(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.SetChunkSize(1)
	status, b := post(t, p.URL+"/chat/completions", nil, `{"model":"m","stream":true,"messages":[{"role":"user","content":"aé€"}]}`)
	evs := sse(t, b)
	if status != 200 || len(evs) != 1+3+1+1 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("%d %q", status, evs)
	}
	var parts []string
	for _, e := range evs[1:4] {
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(e), &c) != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("%s", e)
		}
		parts = append(parts, c.Choices[0].Delta.Content)
	}
	if strings.Join(parts, "|") != "a|é|€" {
		t.Fatalf("parts %q", parts)
	}
	if strings.Contains(evs[4], `"usage"`) || !strings.Contains(evs[4], `"finish_reason":"stop"`) {
		t.Fatalf("final chunk %s (usage only when asked)", evs[4])
	}

	_, b = post(t, p.URL+"/chat/completions", nil, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ab"}]}`)
	evs = sse(t, b)
	if !strings.Contains(evs[len(evs)-2], `"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}`) {
		t.Fatalf("usage chunk %s", evs[len(evs)-2])
	}
}

func TestEmbeddings_OneVectorPerInput(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	for body, inputs := range map[string][]string{
		`{"model":"e","input":"one"}`:         {"one"},
		`{"model":"e","input":["one","two"]}`: {"one", "two"},
	} {
		status, b := post(t, p.URL+"/embeddings", nil, body)
		var r struct {
			Data []struct {
				Index     int       `json:"index"`
				Embedding []float64 `json:"embedding"`
			} `json:"data"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if status != 200 || json.Unmarshal(b, &r) != nil || len(r.Data) != len(inputs) || r.Usage.PromptTokens == 0 {
			t.Fatalf("%s: %d %s", body, status, b)
		}
		for i, in := range inputs {
			want := aitest.Vector(in)
			if r.Data[i].Index != i || len(r.Data[i].Embedding) != 8 {
				t.Fatalf("%s: %s", body, b)
			}
			for j := range want {
				if r.Data[i].Embedding[j] != want[j] || want[j] < -1 || want[j] > 1 {
					t.Fatalf("%s: vector %v, want %v", body, r.Data[i].Embedding, want)
				}
			}
		}
	}
	if a, b := aitest.Vector("one"), aitest.Vector("two"); a[0] == b[0] && a[1] == b[1] {
		t.Fatal("different inputs, same vector")
	}
	for _, body := range []string{`{"input":[]}`, `{"input":3}`, `nope`} {
		if status, _ := post(t, p.URL+"/embeddings", nil, body); status != 400 {
			t.Errorf("%s: %d", body, status)
		}
	}
}

func TestUnknownPathOrMethodIsNotFound(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	if status, _ := post(t, p.URL+"/completions", nil, `{}`); status != 404 {
		t.Errorf("POST /completions: %d", status)
	}
	resp, err := http.Get(p.URL + "/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestAcceptKeys_RefusesOthersEchoingPartOfTheKey(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.AcceptKeys("sk-good-key-1234567890")
	body := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	if status, _ := post(t, p.URL+"/chat/completions", map[string]string{"api-key": "sk-good-key-1234567890"}, body); status != 200 {
		t.Errorf("api-key: %d", status)
	}
	if status, _ := post(t, p.URL+"/chat/completions", map[string]string{"Authorization": "Bearer sk-good-key-1234567890"}, body); status != 200 {
		t.Errorf("bearer: %d", status)
	}
	status, b := post(t, p.URL+"/chat/completions", map[string]string{"Authorization": "Bearer sk-wrong-key-ABCDEFGH"}, body)
	if status != 401 || !strings.Contains(string(b), `"code":"invalid_api_key"`) || !strings.Contains(string(b), "sk-wro") || !strings.Contains(string(b), "EFGH") {
		t.Errorf("wrong key: %d %s", status, b)
	}
	if status, _ := post(t, p.URL+"/chat/completions", nil, body); status != 401 {
		t.Errorf("no key: %d", status)
	}
	if n := len(p.Requests()); n != 4 {
		t.Errorf("%d requests recorded", n)
	}
}

func TestFailNextThenDefault(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.FailNext(2, 503)
	body := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	for i, want := range []int{503, 503, 200} {
		if status, _ := post(t, p.URL+"/chat/completions", nil, body); status != want {
			t.Errorf("request %d: %d, want %d", i, status, want)
		}
	}
	reqs := p.Requests()
	reqs[0].Header.Set("X-Changed", "1")
	reqs[0].Body[0] = 'X'
	if again := p.Requests(); again[0].Header.Get("X-Changed") != "" || again[0].Body[0] != '{' || again[0].Path != "/v1/chat/completions" {
		t.Error("Requests is not a copy")
	}
}

func TestHandle_ReplyFieldsAndDefaultBody(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(r aitest.Request) aitest.Reply {
		return aitest.Reply{Status: 201, RetryAfter: "7", Header: http.Header{"X-Test": {"yes"}}}
	})
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-Test") != "yes" || !strings.Contains(string(b), `"content":"hi"`) {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
}
