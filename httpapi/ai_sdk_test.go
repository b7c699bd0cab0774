package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/ai/aitest"
	"tutela/client"
	"tutela/sqlstore"
)

// The Go SDK against a running gateway: a completion, a stream, embeddings, and a refusal as a
// *tutela.Error; then the metrics count the calls by provider and model.
func TestAIGateway_GoSDKAndMetrics(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	ts := httptest.NewServer(ae.srv.Server)
	t.Cleanup(ts.Close)
	sdk := &client.AI{BaseURL: ts.URL, Token: func(context.Context) (string, error) { return ae.operator, nil }}
	scope := client.AIScope{Purpose: "ai_triage", Subjects: []string{ae.layla}}
	req := client.ChatRequest{Model: "chat-small", Messages: []client.ChatMessage{{Role: "user", Content: "Call Layla Mansour on 0791234567"}}}

	res, err := sdk.Chat(context.Background(), scope, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Message.Content != "Call Layla Mansour on +962 79 123 4567" ||
		len(res.Tutela.RestoredFields) != 2 || res.Usage.TotalTokens == 0 {
		t.Fatalf("chat: %+v", res)
	}

	st, err := sdk.ChatStream(context.Background(), scope, req)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var summary *client.AISummary
	for {
		c, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if c.Tutela != nil {
			summary = c.Tutela
		}
	}
	_ = st.Close()
	if text.String() != res.Choices[0].Message.Content || summary == nil || len(summary.RestoredFields) != 2 {
		t.Fatalf("stream: %q %+v", text.String(), summary)
	}

	vecs, err := sdk.Embeddings(context.Background(), scope, "embed-small", []string{"Layla Mansour", "x"})
	if err != nil || len(vecs) != 2 || len(vecs[0]) == 0 {
		t.Fatalf("embeddings: %v %v", vecs, err)
	}

	_, err = sdk.Chat(context.Background(), client.AIScope{Purpose: "case_management"}, req)
	if tutela.ErrorCode(err) != tutela.EFORBIDDEN {
		t.Fatalf("refused call: %v", err)
	}
	if strings.Contains(ae.sentToProvider(), "Layla") {
		t.Error("a name reached the provider")
	}

	rec := httptest.NewRecorder()
	ae.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	m := rec.Body.String()
	for _, want := range []string{`tutela_ai_requests_total{model="chat-small",provider="fake",status="ok"} 2`,
		`tutela_ai_requests_total{model="embed-small",provider="fake",status="ok"} 1`,
		`tutela_ai_placeholders_total{model="chat-small",provider="fake"} 4`, `tutela_ai_tokens_total{kind="prompt",model="chat-small",provider="fake"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A property test through the whole gateway: subjects generated with names in several scripts,
// phones, e-mails, IDs and dates of birth, mentioned in prompts in other forms than stored, with
// identifiers of people not named: none of it reaches the provider, and the caller gets the
// stored values back.
func TestAIGateway_PropertyNothingIdentifyingReachesTheProvider(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	rng := rand.New(rand.NewPCG(16, 2026))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	given := []string{"Amina", "José", "Oleksandr", "محمد", "فاطمة", "Zhāng", "Ngozi", "Élodie", "Карина", "عبد\u200cالرحیم"}
	family := []string{"Haddad", "Núñez", "Kovalenko", "الخطيب", "رضایی", "Okafor", "Lefèvre", "Петренко", "Nakamura"}
	cc := []struct{ code, nsn string }{{"962", "79"}, {"44", "7700"}, {"33", "6"}, {"234", "803"}, {"380", "67"}}
	for i := 0; i < 12; i++ {
		name := pick(given) + " " + pick(family)
		c := cc[rng.IntN(len(cc))]
		local := c.nsn + fmt.Sprintf("%07d", rng.IntN(10_000_000))
		phone := "+" + c.code + " " + local
		email := fmt.Sprintf("person%d.case@example.org", rng.IntN(100000))
		nid := fmt.Sprintf("ZX-%06d", rng.IntN(1_000_000))
		y, m, d := 1950+rng.IntN(50), 1+rng.IntN(12), 1+rng.IntN(28)
		dob := fmt.Sprintf("%04d-%02d-%02d", y, m, d)
		vals, _ := json.Marshal(map[string]any{"values": map[string]string{"full_name": name, "phone": phone, "email": email,
			"national_id": nid, "date_of_birth": dob}})
		subj := struct{ ID string }{ae.createWith(t, string(vals))}

		// The same values as people write them.
		forms := []string{strings.ToUpper(name), "0" + local, "00" + c.code + local, strings.ToUpper(email),
			strings.ToLower(strings.ReplaceAll(nid, "-", " ")), fmt.Sprintf("%d/%d/%d", d, m, y)}
		other := fmt.Sprintf("stranger%d@mail.example.net", i)
		prompt := fmt.Sprintf("Case of %s, born %s, tel. %s (or %s), mail %s, ID %s. Cc %s.",
			forms[0], forms[5], forms[1], forms[2], forms[3], forms[4], other)
		body, _ := json.Marshal(map[string]any{"model": "chat-small", "messages": []any{map[string]any{"role": "user", "content": prompt}},
			"tutela": map[string]any{"purpose": "ai_triage", "subjects": []string{subj.ID}}})
		before := len(ae.fake.Requests())
		res, b := ae.req(t, "POST", "/v1/ai/chat/completions", string(body), "", ae.operator)
		if res.StatusCode != 200 {
			t.Fatalf("chat: %d %s", res.StatusCode, b)
		}
		sent := string(ae.fake.Requests()[before].Body)
		var msg struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		mustUnmarshal(t, []byte(sent), &msg)
		got := msg.Messages[0].Content
		for _, v := range append(forms, other, name, strings.Fields(name)[0], local) {
			if strings.Contains(strings.ToLower(got), strings.ToLower(v)) {
				t.Errorf("%q reached the provider in %q", v, got)
			}
		}
		content, _ := ae.answer(t, b)
		for _, v := range []string{name, phone, email, dob, other} {
			if !strings.Contains(content, v) {
				t.Errorf("answer lacks %q: %s", v, content)
			}
		}
	}
}

// A provider may take longer than the server's write timeout (30 s by default, against a
// provider's 60 s): the gateway extends the connection's write deadline for the call, so the
// answer still reaches the caller.
func TestAIGateway_SlowProviderOutlastsTheWriteTimeout(t *testing.T) {
	t.Parallel()
	ae := newAIEnv(t, sqlstore.SQLite)
	ae.fake.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Delay: 1500 * time.Millisecond} })
	ts := httptest.NewUnstartedServer(ae.srv.Server)
	ts.Config.WriteTimeout = time.Second
	ts.Start()
	t.Cleanup(ts.Close)
	sdk := &client.AI{BaseURL: ts.URL, Token: func(context.Context) (string, error) { return ae.operator, nil }}
	res, err := sdk.Chat(context.Background(), client.AIScope{Purpose: "ai_triage"},
		client.ChatRequest{Model: "chat-small", Messages: []client.ChatMessage{{Role: "user", Content: "hello"}}})
	if err != nil || len(res.Choices) != 1 || res.Choices[0].Message.Content != "hello" {
		t.Fatalf("slow answer: %+v %v", res, err)
	}
}
