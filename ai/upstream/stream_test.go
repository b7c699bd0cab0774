package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"tutela"
	"tutela/ai/aitest"
	"tutela/ai/upstream"
)

// events reads s to its end.
func events(t *testing.T, s *upstream.Stream) []string {
	t.Helper()
	var out []string
	for {
		b, err := s.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		out = append(out, string(b))
	}
}

func TestStream_DefaultChatChunksInOrder(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.AcceptKeys(key1)
	c, _ := newClient()
	s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hello <PERSON_1>, bye", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.KeyID != "k1" || s.Attempts != 1 || s.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream %q %d %v", s.KeyID, s.Attempts, s.Header)
	}
	var text strings.Builder
	var finish string
	var usage int
	evs := events(t, s)
	for _, e := range evs {
		var c struct {
			Choices []struct {
				Delta        struct{ Content string } `json:"delta"`
				FinishReason *string                  `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				TotalTokens int `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("event %q: %v", e, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			usage = c.Usage.TotalTokens
		}
	}
	if text.String() != "hello <PERSON_1>, bye" || finish != "stop" || usage == 0 {
		t.Fatalf("text %q finish %q usage %d from %d events", text.String(), finish, usage, len(evs))
	}
	// Chunks of 3 bytes: the placeholder is split, as a real provider's tokens may split it.
	if len(evs) != 1+7+2 {
		t.Errorf("%d events", len(evs))
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("Next after the end: %v", err)
	}
	if got := p.Requests()[0].Header.Get("Accept"); got != "text/event-stream" {
		t.Errorf("Accept %q", got)
	}
}

func TestStream_ToolCallArgumentsInFragments(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	c, _ := newClient()
	body, _ := json.Marshal(map[string]any{"model": "m", "stream": true,
		"tools":    []any{map[string]any{"type": "function", "function": map[string]any{"name": "lookup"}}},
		"messages": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "CALL <EMAIL_1>"}}}}})
	s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", body)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var name, args strings.Builder
	for _, e := range events(t, s) {
		var c struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						Function struct{ Name, Arguments string } `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				name.WriteString(tc.Function.Name)
				args.WriteString(tc.Function.Arguments)
			}
		}
	}
	if name.String() != "lookup" || args.String() != `{"text":"<EMAIL_1>"}` {
		t.Fatalf("tool %q args %q", name.String(), args.String())
	}
}

func TestStream_ParsesEventStreamRules(t *testing.T) {
	t.Parallel()
	for sse, want := range map[string][]string{
		// Comments and other fields skipped; multi-line data joined; one space after the colon
		// removed (none required); a bare "data" line is empty data; CR LF line ends.
		": keep-alive\n\ndata: a\ndata:  b\n\nevent: x\nid: 1\nretry: 5\ndata:c\n\ndata\n\n" +
			"data: {\"error\":{\"code\":\"x\"}}\r\n\r\ndata: [DONE]\n\ndata: after\n\n": {"a\n b", "c", "", `{"error":{"code":"x"}}`},
		// No [DONE]: the end of the body ends the stream; an unfinished event is dropped.
		"data: x\n\ndata: y": {"x"},
		// Fields without data dispatch nothing.
		"event: ping\n\n\n\ndata: z\n\n": {"z"},
		"":                               nil,
	} {
		p := aitest.New(t)
		p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{SSE: sse} })
		c, _ := newClient()
		s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
		if sse == "" {
			// An empty SSE reply is the default answer; ask for a bodyless stream instead.
			s.Close()
			p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Chunks: []string{}} })
			s, err = c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
		}
		if err != nil {
			t.Fatal(err)
		}
		got := events(t, s)
		s.Close()
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("%q: events %q, want %q", sse, got, want)
		}
	}
}

func TestStream_MultiLineChunksFromProvider(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Chunks: []string{"one", "two\nlines", "three"}} })
	c, _ := newClient()
	s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := events(t, s); strings.Join(got, "|") != "one|two\nlines|three" {
		t.Fatalf("events %q", got)
	}
}

func TestStream_OversizedEventRefused(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", upstream.MaxEventBytes)
	for name, sse := range map[string]string{
		"line":            "data: ok\n\ndata: " + big + "\n\n",
		"line without LF": "data: ok\n\ndata: " + big + big,
		"event":           "data: ok\n\ndata: " + big[:upstream.MaxEventBytes/2] + "\ndata: " + big[:upstream.MaxEventBytes/2] + "\n\n",
		"comment":         "data: ok\n\n:" + big + "\n\n",
	} {
		p := aitest.New(t)
		p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{SSE: sse} })
		c, _ := newClient()
		s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := s.Next(); err != nil || string(b) != "ok" {
			t.Fatalf("%s: first event %q %v", name, b, err)
		}
		_, err = s.Next()
		if e := wantCode(t, err, tutela.EUPSTREAM); e.Message != "the provider sent an event larger than 1 MiB" {
			t.Errorf("%s: message %q", name, e.Message)
		}
		if _, again := s.Next(); again != err {
			t.Errorf("%s: Next after the failure: %v", name, again)
		}
		s.Close()
	}

	// A line of exactly the limit is fine.
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{SSE: "data:" + big[5:] + "\n\n"} })
	c, _ := newClient()
	s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Next(); err != nil || len(b) != upstream.MaxEventBytes-5 {
		t.Fatalf("event at the limit: %d bytes, %v", len(b), err)
	}
}

func TestStream_RetriesUntilTheStreamStarts(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.AcceptKeys(key2)
	p.FailNext(1, http.StatusTooManyRequests)
	c, sl := newClient()
	s, err := c.Stream(context.Background(), target(p, key1, key2), "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Attempts != 3 || s.KeyID != "k2" || len(sl.got()) != 1 {
		t.Fatalf("attempts %d key %q sleeps %v", s.Attempts, s.KeyID, sl.got())
	}
	if len(events(t, s)) == 0 {
		t.Fatal("no events")
	}
}

func TestStream_NotAnEventStreamRefused(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply {
		return aitest.Reply{Body: []byte(`{"error":{"message":"sk-live-first leaked","code":"x"}}`)}
	})
	c, _ := newClient()
	_, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
	if e := wantCode(t, err, tutela.EUPSTREAM); e.Message != "the provider did not answer with an event stream" || strings.Contains(err.Error(), "leaked") {
		t.Fatalf("error %v", err)
	}
}

func TestStream_FailureBeforeStreamIsUpstreamError(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.FailNext(10, http.StatusInternalServerError)
	c, sl := newClient()
	_, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
	wantCode(t, err, tutela.EUPSTREAM)
	if len(p.Requests()) != 3 || len(sl.got()) != 2 {
		t.Fatalf("%d requests, sleeps %v", len(p.Requests()), sl.got())
	}
}

func TestStream_CancelStopsIt(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Chunks: []string{"one"}, Hold: true} })
	c, _ := newClient()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Stream(ctx, target(p, key1), "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Next(); err != nil || string(b) != "one" {
		t.Fatalf("first event %q %v", b, err)
	}
	cancel()
	_, err = s.Next()
	if !errors.Is(err, context.Canceled) || tutela.ErrorCode(err) != tutela.EUPSTREAM {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestStream_CloseStopsAWaitingNext(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Chunks: []string{"one"}, Hold: true} })
	c, _ := newClient()
	s, err := c.Stream(context.Background(), target(p, key1), "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next()
		errc <- err
	}()
	s.Close()
	if err := <-errc; err == nil || err == io.EOF {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestStream_StalledStreamTimesOut(t *testing.T) {
	t.Parallel()
	p := aitest.New(t)
	p.Handle(func(aitest.Request) aitest.Reply { return aitest.Reply{Chunks: []string{"one"}, Hold: true} })
	c, _ := newClient()
	upstream.SetSecond(c, 100_000_000) // 100 ms per "second"
	tg := target(p, key1)
	tg.Provider.TimeoutSeconds = 5
	s, err := c.Stream(context.Background(), tg, "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Next(); err != nil || string(b) != "one" {
		t.Fatalf("first event %q %v", b, err)
	}
	_, err = s.Next()
	if e := wantCode(t, err, tutela.EUPSTREAMTIMEOUT); e.Message != "the provider did not answer within 5 s" {
		t.Fatalf("message %q", e.Message)
	}
}

func TestStream_BrokenOff(t *testing.T) {
	t.Parallel()
	c, _ := newClient()
	s, err := c.Stream(context.Background(), brokenServer(t, "text/event-stream; charset=utf-8", "data: a\n\ndata: b"), "/chat/completions", chatBody("hi", true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Next(); err != nil || string(b) != "a" {
		t.Fatalf("first event %q %v", b, err)
	}
	_, err = s.Next()
	if e := wantCode(t, err, tutela.EUPSTREAM); e.Message != "the provider's answer broke off" {
		t.Fatalf("message %q", e.Message)
	}
}
