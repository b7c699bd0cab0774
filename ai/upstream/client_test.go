package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/ai/aitest"
	"tutela/ai/upstream"
	"tutela/httpapi/middleware"
)

// sleeps records the backoff the client asked for, instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

var now = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

func newClient() (*upstream.Client, *sleeps) {
	s := &sleeps{}
	return upstream.New(upstream.Options{PrivateNetworks: loopback, Sleep: s.sleep, Rand: func() float64 { return 0.5 }, Now: func() time.Time { return now }}), s
}

// loopback lets the client reach the fake providers (httptest servers on 127.0.0.1).
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Keys long enough that OpenAI-style partial echoes ("sk-liv****WXYZ") are recognisable.
const (
	key1 = "sk-live-first-0123456789abcdefQRST"
	key2 = "sk-live-second-0123456789abcdefWXYZ"
)

func target(p *aitest.Provider, keys ...string) upstream.Target {
	t := upstream.Target{Provider: ai.Provider{BaseURL: p.URL, AuthStyle: ai.AuthBearer, TimeoutSeconds: 10, MaxRetries: 2}}
	for i, k := range keys {
		t.Keys = append(t.Keys, ai.Key{ID: []string{"k1", "k2", "k3"}[i], Secret: tutela.NewSecret(k)})
	}
	return t
}

func chatBody(content string, stream bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"model": "m", "stream": stream, "stream_options": map[string]any{"include_usage": stream},
		"messages": []any{map[string]any{"role": "user", "content": content}},
	})
	return b
}

func wantCode(t *testing.T, err error, code string) *tutela.Error {
	t.Helper()
	var e *tutela.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	return e
}

func TestDo_SendsRequestAndReturnsAnswer(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.AcceptKeys(key1)
	c, s := newClient()
	body := chatBody("hello <PERSON_1>", false)
	resp, err := c.Do(context.Background(), target(p, key1), "/chat/completions", body)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(resp.Body, &got); err != nil || len(got.Choices) != 1 || got.Choices[0].Message.Content != "hello <PERSON_1>" {
		t.Fatalf("body %s (%v)", resp.Body, err)
	}
	if resp.Status != 200 || resp.KeyID != "k1" || resp.Attempts != 1 || len(s.got()) != 0 {
		t.Fatalf("resp = %d %q %d, sleeps %v", resp.Status, resp.KeyID, resp.Attempts, s.got())
	}
	reqs := p.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1/chat/completions" || string(r.Body) != string(body) {
		t.Fatalf("request %s %s", r.Path, r.Body)
	}
	for h, want := range map[string]string{"Authorization": "Bearer " + key1, "Content-Type": "application/json",
		"Accept": "application/json", "User-Agent": "tutela"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

func TestDo_AuthStyles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		style         ai.AuthStyle
		keys          []string
		authz, apiKey string
	}{
		{ai.AuthBearer, []string{key1}, "Bearer " + key1, ""},
		{ai.AuthAPIKey, []string{key1}, "", key1},
		{ai.AuthNone, nil, "", ""},
		{ai.AuthNone, []string{key1}, "", ""}, // a stray key is still not sent
	} {
		p := aitest.New(t)
		c, _ := newClient()
		tg := target(p, tc.keys...)
		tg.Provider.AuthStyle = tc.style
		resp, err := c.Do(context.Background(), tg, "/embeddings", []byte(`{"model":"e","input":"x"}`))
		if err != nil {
			t.Fatalf("%s: %v", tc.style, err)
		}
		h := p.Requests()[0].Header
		if h.Get("Authorization") != tc.authz || h.Get("api-key") != tc.apiKey {
			t.Errorf("%s: Authorization %q api-key %q", tc.style, h.Get("Authorization"), h.Get("api-key"))
		}
		if tc.style == ai.AuthNone && resp.KeyID != "" {
			t.Errorf("none: KeyID %q", resp.KeyID)
		}
	}
}

func TestDo_RetriesServerErrorsWithBackoff(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.FailNext(2, http.StatusServiceUnavailable)
	c, s := newClient()
	resp, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	if err != nil {
		t.Fatal(err)
	}
	// Full jitter with Rand fixed at 0.5: half of 250 ms, then half of 500 ms.
	if resp.Attempts != 3 || len(p.Requests()) != 3 || !equal(s.got(), 125*time.Millisecond, 250*time.Millisecond) {
		t.Fatalf("attempts %d, sleeps %v", resp.Attempts, s.got())
	}
}

func TestDo_HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retryAfter string
		want       time.Duration
	}{
		{"3", 3 * time.Second},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 125 * time.Millisecond}, // past: backoff only
		{"0", 125 * time.Millisecond},
		{"soon", 125 * time.Millisecond}, // unreadable: ignored
	} {
		p := aitest.New(t)
		n := 0
		var mu sync.Mutex
		p.Handle(func(aitest.Request) aitest.Reply {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n == 1 {
				return aitest.Reply{Status: http.StatusTooManyRequests, RetryAfter: tc.retryAfter}
			}
			return aitest.Reply{}
		})
		c, s := newClient()
		resp, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
		if err != nil {
			t.Fatalf("%q: %v", tc.retryAfter, err)
		}
		if resp.Attempts != 2 || !equal(s.got(), tc.want) {
			t.Errorf("Retry-After %q: attempts %d, sleeps %v, want [%v]", tc.retryAfter, resp.Attempts, s.got(), tc.want)
		}
	}
}

func TestDo_LongRetryAfterEndsAtOnceWithHint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusTooManyRequests, tutela.ERATELIMITED},
		{http.StatusServiceUnavailable, tutela.EUNAVAILABLE},
	} {
		p := aitest.New(t)
		p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Status: tc.status, RetryAfter: "60"} })
		c, s := newClient()
		_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
		wantCode(t, err, tc.code)
		var ra interface{ RetryAfter() time.Duration }
		if !errors.As(err, &ra) || ra.RetryAfter() != time.Minute {
			t.Errorf("%d: no retry hint of 60 s in %v", tc.status, err)
		}
		if len(p.Requests()) != 1 || len(s.got()) != 0 {
			t.Errorf("%d: %d requests, sleeps %v", tc.status, len(p.Requests()), s.got())
		}
	}
}

func TestDo_DoesNotRetryClientErrors(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply {
		return aitest.Reply{Status: http.StatusBadRequest,
			Body: []byte(`{"error":{"message":"prompt mentions Alice Smith","type":"invalid_request_error","code":"context_length_exceeded"}}`)}
	})
	c, s := newClient()
	_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAM)
	if e.Message != "the provider answered HTTP 400, type invalid_request_error, code context_length_exceeded" {
		t.Errorf("message %q", e.Message)
	}
	if strings.Contains(err.Error(), "Alice") || len(p.Requests()) != 1 || len(s.got()) != 0 {
		t.Errorf("error %v, %d requests, sleeps %v", err, len(p.Requests()), s.got())
	}
}

func TestDo_ErrorTypeAndCodeOnlyWhenIdentifiers(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"error":{"type":"sk-live abc","code":401}}`:                    "the provider answered HTTP 422, code 401",
		`{"error":{"type":"` + strings.Repeat("a", 65) + `","code":{}}}`: "the provider answered HTTP 422",
		`{"error":"bad key sk-live-123"}`:                                "the provider answered HTTP 422",
		`not json sk-live-123`:                                           "the provider answered HTTP 422",
		`{"error":{"type":"a\nb","code":"rate.limit-1_x"}}`:              "the provider answered HTTP 422, code rate.limit-1_x",
	} {
		p := aitest.New(t)
		p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Status: 422, Body: []byte(body)} })
		c, _ := newClient()
		_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
		if e := wantCode(t, err, tutela.EUPSTREAM); e.Message != want {
			t.Errorf("%s: message %q, want %q", body, e.Message, want)
		}
	}
}

func TestDo_GivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.FailNext(100, http.StatusBadGateway)
	c, s := newClient()
	_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAM)
	if e.Message != "the provider answered HTTP 502, type server_error, code aitest_failure" {
		t.Errorf("message %q", e.Message)
	}
	if strings.Contains(err.Error(), "injected") || len(p.Requests()) != 3 || len(s.got()) != 2 {
		t.Errorf("error %v, %d requests, sleeps %v", err, len(p.Requests()), s.got())
	}

	tg := target(p, key1)
	tg.Provider.MaxRetries = 0
	_, err = c.Do(context.Background(), tg, "/chat/completions", chatBody("hi", false))
	wantCode(t, err, tutela.EUPSTREAM)
	if len(p.Requests()) != 4 {
		t.Errorf("MaxRetries 0 sent %d requests, want 1", len(p.Requests())-3)
	}
}

func TestBackoff_CappedAt8s(t *testing.T) {
	t.Parallel()
	c := upstream.New(upstream.Options{PrivateNetworks: loopback, Rand: func() float64 { return 0.999999 }})
	want := []time.Duration{250, 500, 1000, 2000, 4000, 8000, 8000, 8000}
	for n, w := range want {
		got := upstream.Backoff(c, n)
		if got > w*time.Millisecond || got < w*time.Millisecond*99/100 {
			t.Errorf("backoff(%d) = %v, want just under %v ms", n, got, w)
		}
	}
	if got := upstream.Backoff(c, 1000); got > 8*time.Second {
		t.Errorf("backoff(1000) = %v", got)
	}
	c = upstream.New(upstream.Options{PrivateNetworks: loopback, Rand: func() float64 { return 1.5 }}) // out of range: no wait beyond the cap
	if got := upstream.Backoff(c, 3); got != 0 {
		t.Errorf("bad rand gave %v", got)
	}
}

func TestDo_TimeoutIsUpstreamTimeout(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Delay: 1500 * time.Millisecond} })
	c, s := newClient()
	tg := target(p, key1)
	tg.Provider.TimeoutSeconds = 1
	_, err := c.Do(context.Background(), tg, "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAMTIMEOUT)
	if e.Message != "the provider did not answer within 1 s" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v", err)
	}
	if len(p.Requests()) != 1 || len(s.got()) != 0 {
		t.Errorf("a timed-out attempt was retried: %d requests", len(p.Requests()))
	}
}

func TestDo_FallsBackToSecondKeyOnAuthFailure(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		p := aitest.New(t)
		p.AcceptKeys(key2)
		if status == http.StatusForbidden {
			p.AcceptKeys() // no key check: the handler refuses key1 with 403
			p.Handle(func(r aitest.Request) aitest.Reply {
				if r.Header.Get("Authorization") != "Bearer "+key2 {
					return aitest.Reply{Status: http.StatusForbidden}
				}
				return aitest.Reply{}
			})
		}
		c, s := newClient()
		resp, err := c.Do(context.Background(), target(p, key1, key2), "/chat/completions", chatBody("hi", false))
		if err != nil {
			t.Fatalf("%d: %v", status, err)
		}
		reqs := p.Requests()
		if resp.KeyID != "k2" || resp.Attempts != 2 || len(s.got()) != 0 || len(reqs) != 2 ||
			reqs[0].Header.Get("Authorization") != "Bearer "+key1 || reqs[1].Header.Get("Authorization") != "Bearer "+key2 {
			t.Fatalf("%d: key %q attempts %d sleeps %v", status, resp.KeyID, resp.Attempts, s.got())
		}
	}
}

func TestDo_RefusedKeysNeverReachTheError(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.AcceptKeys("sk-some-other-key-entirely-0000")
	c, s := newClient()
	_, err := c.Do(context.Background(), target(p, key1, key2), "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAM)
	if e.Message != "the provider refused the API key (HTTP 401, type invalid_request_error, code invalid_api_key)" {
		t.Errorf("message %q", e.Message)
	}
	for _, text := range []string{e.Message, err.Error(), tutela.ErrorMessage(err)} {
		for _, leak := range []string{key1, key2, key1[:6], "QRST", "WXYZ", "Incorrect", "platform.openai.com"} {
			if strings.Contains(text, leak) {
				t.Errorf("%q leaks %q", text, leak)
			}
		}
	}
	if len(p.Requests()) != 2 || len(s.got()) != 0 {
		t.Errorf("%d requests, sleeps %v (one per key, no retry)", len(p.Requests()), s.got())
	}

	// With a single key, a refusal is final at once.
	_, err = c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	wantCode(t, err, tutela.EUPSTREAM)
	if len(p.Requests()) != 3 {
		t.Errorf("single refused key sent %d requests", len(p.Requests())-2)
	}
}

func TestDo_RedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	elsewhere := aitest.New(t)
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply {
		return aitest.Reply{Status: http.StatusTemporaryRedirect, Header: http.Header{"Location": {elsewhere.URL + "/chat/completions"}}}
	})
	c, s := newClient()
	_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAM)
	if !strings.Contains(e.Message, "redirect (HTTP 307") {
		t.Errorf("message %q", e.Message)
	}
	if n := len(elsewhere.Requests()); n != 0 {
		t.Fatalf("the redirect was followed: %d requests elsewhere", n)
	}
	if len(p.Requests()) != 1 || len(s.got()) != 0 {
		t.Errorf("%d requests, sleeps %v", len(p.Requests()), s.got())
	}
}

func TestDo_UnreachableProviderIsRetriedThenReported(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, s := newClient()
	tg := upstream.Target{Provider: ai.Provider{BaseURL: "http://" + addr + "/v1", AuthStyle: ai.AuthNone, TimeoutSeconds: 10, MaxRetries: 2}}
	_, err = c.Do(context.Background(), tg, "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAM)
	if e.Message != "the provider could not be reached" || len(s.got()) != 2 {
		t.Errorf("message %q, sleeps %v", e.Message, s.got())
	}
}

func TestDo_OversizedAnswerRefused(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	big := make([]byte, upstream.MaxResponseBytes+1)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Body: big} })
	c, _ := newClient()
	_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	e := wantCode(t, err, tutela.EUPSTREAM)
	if e.Message != "the provider's answer is larger than 16 MiB" || len(p.Requests()) != 1 {
		t.Errorf("message %q, %d requests", e.Message, len(p.Requests()))
	}

	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Body: big[:upstream.MaxResponseBytes]} })
	resp, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	if err != nil || len(resp.Body) != upstream.MaxResponseBytes {
		t.Fatalf("an answer of exactly the limit: %v", err)
	}
}

func TestDo_CancelStopsRetrying(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.FailNext(100, http.StatusServiceUnavailable)
	ctx, cancel := context.WithCancel(context.Background())
	c := upstream.New(upstream.Options{PrivateNetworks: loopback, Sleep: func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}})
	_, err := c.Do(ctx, target(p, key1), "/chat/completions", chatBody("hi", false))
	if !errors.Is(err, context.Canceled) || tutela.ErrorCode(err) != tutela.EUPSTREAM {
		t.Fatalf("error %v", err)
	}
	if len(p.Requests()) != 1 {
		t.Errorf("%d requests after cancel", len(p.Requests()))
	}

	_, err = c.Do(ctx, target(p, key1), "/chat/completions", chatBody("hi", false))
	if !errors.Is(err, context.Canceled) || len(p.Requests()) != 1 {
		t.Errorf("an already canceled call sent a request: %v", err)
	}
}

func TestDo_RefusesUnusableTargetWithoutSending(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	c, _ := newClient()
	for name, tc := range map[string]struct {
		mut  func(*upstream.Target)
		path string
	}{
		"no key":             {func(t *upstream.Target) { t.Keys = nil }, "/chat/completions"},
		"key with newline":   {func(t *upstream.Target) { t.Keys[0].Secret = tutela.NewSecret("sk-1\r\nX-Evil: 1") }, "/chat/completions"},
		"plain http remote":  {func(t *upstream.Target) { t.Provider.BaseURL = "http://example.com/v1" }, "/chat/completions"},
		"base URL with user": {func(t *upstream.Target) { t.Provider.BaseURL = "https://u:p@example.com/v1" }, "/chat/completions"},
		"unknown auth style": {func(t *upstream.Target) { t.Provider.AuthStyle = "basic" }, "/chat/completions"},
		"path with query":    {func(t *upstream.Target) {}, "/chat/completions?x=1"},
		"path climbing":      {func(t *upstream.Target) {}, "/../admin"},
		"relative path":      {func(t *upstream.Target) {}, "chat/completions"},
	} {
		tg := target(p, key1)
		tc.mut(&tg)
		if _, err := c.Do(context.Background(), tg, tc.path, chatBody("hi", false)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "sk-1") {
			t.Errorf("%s: error shows the key: %v", name, err)
		}
	}
	if n := len(p.Requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func equal(got []time.Duration, want ...time.Duration) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestDo_RetryHintOnlyForRetryableFailures(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Status: http.StatusBadRequest, RetryAfter: "5"} })
	c, _ := newClient()
	_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	var ra interface{ RetryAfter() time.Duration }
	if wantCode(t, err, tutela.EUPSTREAM); errors.As(err, &ra) {
		t.Errorf("a 400 carried a retry hint: %v", ra.RetryAfter())
	}

	p.Handle(func(aitest.Request) aitest.Reply {
		return aitest.Reply{Status: http.StatusTooManyRequests, RetryAfter: "5"}
	})
	_, err = c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	if e := wantCode(t, err, tutela.EUPSTREAM); !strings.Contains(e.Message, "HTTP 429") || !errors.As(err, &ra) || ra.RetryAfter() != 5*time.Second {
		t.Errorf("last 429: %v", err)
	}
}

// brokenServer declares a longer body than it sends, so the client sees the connection end
// in the middle of the answer.
func brokenServer(t *testing.T, contentType, partial string) upstream.Target {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write([]byte(partial))
	}))
	t.Cleanup(srv.Close)
	return upstream.Target{Provider: ai.Provider{BaseURL: srv.URL, AuthStyle: ai.AuthNone, TimeoutSeconds: 10}}
}

func TestDo_AnswerBrokenOff(t *testing.T) {
	t.Parallel()
	c, _ := newClient()
	_, err := c.Do(context.Background(), brokenServer(t, "application/json", `{"id":`), "/chat/completions", chatBody("hi", false))
	if e := wantCode(t, err, tutela.EUPSTREAM); e.Message != "the provider's answer broke off" {
		t.Fatalf("message %q", e.Message)
	}
}

// The gateway writes these errors with middleware.WriteError: the status, Retry-After and body
// a client gets must carry the hint and nothing of the provider's answer.
func TestErrors_WrittenForClients(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(r aitest.Request) aitest.Reply {
		return aitest.Reply{Status: http.StatusTooManyRequests, RetryAfter: "90",
			Body: []byte(`{"error":{"message":"slow down, ` + key1 + `","type":"rate_limit_exceeded"}}`)}
	})
	c, _ := newClient()
	_, err := c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	w := httptest.NewRecorder()
	middleware.WriteError(w, nil, err)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "90" {
		t.Fatalf("%d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if b := w.Body.String(); !strings.Contains(b, `"code":"rate_limited"`) || strings.Contains(b, key1[:6]) || strings.Contains(b, "slow down") {
		t.Fatalf("body %s", b)
	}

	p.AcceptKeys(key2)
	p.Handle(nil)
	_, err = c.Do(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", false))
	w = httptest.NewRecorder()
	middleware.WriteError(w, nil, err)
	if b := w.Body.String(); w.Code != http.StatusBadGateway || strings.Contains(b, key1[:6]) || strings.Contains(b, "QRST") || strings.Contains(b, "Incorrect") {
		t.Fatalf("%d %s", w.Code, b)
	}
}
