package upstream_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"tutela/ai"
	"tutela/ai/upstream"
)

// sseTransport answers every request with the same event stream, so the benchmark measures
// the client and the event parser rather than a network.
type sseTransport struct{ body string }

func (t sseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(strings.NewReader(t.body)), Request: r}, nil
}

// BenchmarkStream_Next reads a 200-event chat stream (a typical short answer).
func BenchmarkStream_Next(b *testing.B) {
	var sb strings.Builder
	for range 200 {
		sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"abc"},"finish_reason":null}]}` + "\n\n")
	}
	sb.WriteString("data: [DONE]\n\n")
	c := upstream.New(upstream.Options{Transport: sseTransport{sb.String()}})
	tg := upstream.Target{Provider: ai.Provider{BaseURL: "https://provider.example/v1", AuthStyle: ai.AuthNone, TimeoutSeconds: 10}}
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Stream(context.Background(), tg, "/chat/completions", []byte(`{}`))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		s.Close()
		if n != 200 {
			b.Fatalf("%d events", n)
		}
	}
}
