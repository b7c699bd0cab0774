package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/ai/upstream"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// instantProvider answers every request at once from memory, so a benchmark measures the
// gateway alone: the provider's time is nil.
type instantProvider struct{ chat, stream string }

func (p instantProvider) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	body, ct := p.chat, "application/json"
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		body, ct = p.stream, "text/event-stream"
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, nil
}

// benchAnswer is a model's answer that uses placeholders the gateway restores.
const benchAnswer = "[S1_FULL_NAME] (born [S1_DATE_OF_BIRTH]) can be reached on [S1_PHONE] or [S1_EMAIL]. " +
	"Her brother [EMAIL_1] should be told. Next step: a home visit."

// benchStream is a streamed answer of n content chunks of 4 bytes.
func benchStream(n int) string {
	var b strings.Builder
	text := strings.Repeat(benchAnswer, n*4/len(benchAnswer)+1)[:n*4]
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", text[i*4:i*4+4])
	}
	b.WriteString("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	b.WriteString("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":50,\"total_tokens\":150}}\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

// benchAIEnv is the gateway on SQLite with Layla and the instant provider.
func benchAIEnv(b *testing.B, chunks int) (*env, string, string) {
	c := clocktest.New(time.Now().UTC())
	dialect := sqlstore.SQLite
	if os.Getenv("TUTELA_BENCH_DIALECT") == "postgres" {
		dialect = sqlstore.Postgres
	}
	db := sqltest.Open(b, dialect, sqlstore.Options{Clock: c.Now})
	ids := newIdentity(b, db, c.Now, identity.Config{}, nil)
	chat := `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		benchAnswer + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}`
	srv := httpapi.New(httpapi.Deps{DB: db, Identity: ids, Clock: c.Now, RateRPS: 1e9, RateBurst: 1e9, Keys: newVault(b, db),
		AI: upstream.New(upstream.Options{Transport: instantProvider{chat: chat, stream: benchStream(chunks)}})})
	e := &env{srv: checkedServer{Server: srv}, db: db, clock: c, ids: ids}
	tn, _ := e.seed(b, "acme", "op@example.org", pw, "operator")
	e.seed(b, "root", "root@example.org", pw, "super_admin")
	op := e.login(b, "acme", "op@example.org", pw, "").AccessToken
	root := e.login(b, "root", "root@example.org", pw, "").AccessToken
	if res, body := e.req(b, "PUT", "/v1/tenants/"+tn.ID+"/subject-schema", aiSchemaJSON, "", root); res.StatusCode != 200 {
		b.Fatalf("schema: %d %s", res.StatusCode, body)
	}
	res, body := e.req(b, "POST", "/v1/tenants/"+tn.ID+"/subjects", aiSubjectJSON, "", root)
	if res.StatusCode != 201 {
		b.Fatalf("subject: %d %s", res.StatusCode, body)
	}
	layla := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]
	err := db.Update(ctxBG, func(tx *sqlstore.Tx) error {
		s := tx.AI(tn.ID)
		pr := &ai.Provider{Name: "instant", BaseURL: "https://provider.example"}
		if err := s.CreateProvider(ctxBG, pr); err != nil {
			return err
		}
		if _, err := s.AddKey(ctxBG, pr.ID, tutela.NewSecret("sk-bench-key-000000001"), "bench"); err != nil {
			return err
		}
		if err := s.PutModel(ctxBG, &ai.Model{Name: "chat-small", ProviderID: pr.ID}); err != nil {
			return err
		}
		return s.PutPurpose(ctxBG, &ai.Purpose{Purpose: "ai_triage", Models: []string{"chat-small"}})
	})
	if err != nil {
		b.Fatal(err)
	}
	return e, op, layla
}

// benchPrompt is about size bytes of case notes naming Layla's values in other forms and a few
// identifiers of people not named.
func benchPrompt(size int) string {
	para := "Caseworker note: LAYLA MANSOUR (born 2 April 1990) called from 0791234567 about the rent; her e-mail is " +
		"layla.mansour@example.org and her ID jo 99812. Her brother omar.m@example.net sent money from GB82 WEST 1234 5698 7654 32. " +
		"The family lives in Jabal Amman; the children attend school and the landlord asked for two months in advance. "
	return strings.Repeat(para, size/len(para)+1)[:size]
}

// BenchmarkAIGateway measures a chat completion through the gateway, provider time excluded
// (the provider answers from memory): authentication, the admitting transaction (policy,
// consent, subject decryption, limits, the ai.prompt_sent event), redaction of the prompt,
// restoration of the answer, and the closing transaction (usage, the ai.inference event), plus
// the api.request audit record. It reports p50 and p99 in microseconds.
func BenchmarkAIGateway(b *testing.B) {
	for _, size := range []int{1 << 10, 8 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			e, op, layla := benchAIEnv(b, 1)
			msg := strings.ReplaceAll(benchPrompt(size), `"`, ``)
			body := `{"model":"chat-small","messages":[{"role":"user","content":"` + msg + `"}],"tutela":{"purpose":"ai_triage","subjects":["` + layla + `"]}}`
			var lat []time.Duration
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := httptest.NewRequest("POST", "/v1/ai/chat/completions", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Authorization", "Bearer "+op)
				rec := httptest.NewRecorder()
				start := time.Now()
				e.srv.Server.ServeHTTP(rec, r)
				lat = append(lat, time.Since(start))
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkAIGatewayStream measures a streamed answer of 1,000 chunks of 4 bytes (placeholders
// split across them) through the gateway, and reports chunks per second.
func BenchmarkAIGatewayStream(b *testing.B) {
	const chunks = 1000
	e, op, layla := benchAIEnv(b, chunks)
	body := `{"model":"chat-small","stream":true,"messages":[{"role":"user","content":"Summarise Layla Mansour's case."}],"tutela":{"purpose":"ai_triage","subjects":["` + layla + `"]}}`
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/ai/chat/completions", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+op)
		rec := httptest.NewRecorder()
		e.srv.Server.ServeHTTP(rec, r)
		if rec.Code != 200 || !strings.HasSuffix(rec.Body.String(), "data: [DONE]\n\n") {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		n++
	}
	b.ReportMetric(float64(n*chunks)/time.Since(start).Seconds(), "chunks/s")
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
