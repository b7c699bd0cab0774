// Package aitest is a fake OpenAI-compatible provider for tests of the AI gateway and its
// client: an httptest server that records every request, checks API keys the way OpenAI does
// (including echoing part of a wrong key in its error message, so tests can prove the gateway
// never relays it), injects failures, and by default answers chat completions by echoing the
// last user message (so a test can check that placeholders were restored) and embeddings with
// vectors derived from the input.
package aitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request exactly as it arrived.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
}

// Reply is how the provider answers one request.
type Reply struct {
	// Status defaults to 200.
	Status int
	// Body is the answer. Nil means the default: the default answer for a 2xx, an
	// OpenAI-style server error otherwise.
	Body []byte
	// Chunks, for a streamed request, are the data payloads sent as SSE events (a payload
	// with newlines becomes one multi-line event), followed by "data: [DONE]".
	Chunks []string
	// SSE, when set, is written verbatim as a text/event-stream body (malformed-stream tests).
	SSE string
	// Hold keeps a streamed answer open after its events, without [DONE], until the client
	// goes away (cancellation tests).
	Hold bool
	// RetryAfter is sent as the Retry-After header.
	RetryAfter string
	// Header holds more headers to send (Location, Content-Type...).
	Header http.Header
	// Delay is waited before answering (timeout tests); a client that goes away ends it.
	Delay time.Duration
}

// Provider is a fake provider. Its methods are safe for concurrent use.
type Provider struct {
	// URL is the base URL to configure ("http://127.0.0.1:port/v1").
	URL string

	srv *httptest.Server

	mu        sync.Mutex
	requests  []Request
	keys      []string
	handle    func(Request) Reply
	failN     int
	failCode  int
	chunkSize int
	serial    int
}

// New starts a provider, closed when the test ends.
func New(t testing.TB) *Provider {
	p := &Provider{chunkSize: 3}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL + "/v1"
	return p
}

// Requests returns every request received, in order.
func (p *Provider) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.requests))
	for i, r := range p.requests {
		out[i] = Request{Path: r.Path, Header: r.Header.Clone(), Body: append([]byte(nil), r.Body...)}
	}
	return out
}

// AcceptKeys makes the provider require one of keys, as "Authorization: Bearer <key>" or
// "api-key: <key>"; any other request gets OpenAI's 401 invalid_api_key, whose message echoes
// the start and end of the key it was sent. AcceptKeys() with no keys turns the check off.
func (p *Provider) AcceptKeys(keys ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append([]string(nil), keys...)
}

// Handle replaces the default behaviour (after key checks and injected failures).
func (p *Provider) Handle(f func(r Request) Reply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handle = f
}

// FailNext makes the next n requests (that pass the key check) answer status with an
// OpenAI-style error, then the provider behaves as before.
func (p *Provider) FailNext(n int, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failN, p.failCode = n, status
}

// SetChunkSize sets how many bytes of the answer each streamed chunk carries (default 3, so
// placeholders are split across chunks); a character is never split.
func (p *Provider) SetChunkSize(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.chunkSize = max(n, 1)
}

// maxRequestBytes bounds what the fake reads of a request.
const maxRequestBytes = 32 << 20

func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	body, err := readAll(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read the request", "invalid_request_error", "")
		return
	}
	req := Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}

	p.mu.Lock()
	p.requests = append(p.requests, req)
	keys := p.keys
	handle := p.handle
	chunk := p.chunkSize
	p.serial++
	serial := p.serial
	p.mu.Unlock()

	if keys != nil {
		got := presentedKey(r.Header)
		ok := false
		for _, k := range keys {
			if got != "" && got == k {
				ok = true
			}
		}
		if !ok {
			writeError(w, http.StatusUnauthorized, fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", partialKey(got)),
				"invalid_request_error", "invalid_api_key")
			return
		}
	}
	p.mu.Lock()
	fail := 0
	if p.failN > 0 {
		p.failN--
		fail = p.failCode
	}
	p.mu.Unlock()
	if fail != 0 {
		writeError(w, fail, "aitest injected failure", "server_error", "aitest_failure")
		return
	}

	rep := Reply{}
	if handle != nil {
		rep = handle(req)
	}
	ok := rep.Status == 0 || (rep.Status >= 200 && rep.Status < 300)
	if ok && rep.Body == nil && rep.Chunks == nil && rep.SSE == "" {
		// The default answer, with the reply's status, headers and delay.
		d := p.defaultReply(req, r.Method, chunk, serial)
		if d.Status != 0 {
			rep.Status = d.Status
		}
		rep.Body, rep.Chunks = d.Body, d.Chunks
	}
	write(w, r.Context(), rep)
}

// write sends rep.
func write(w http.ResponseWriter, ctx context.Context, rep Reply) {
	if rep.Delay > 0 {
		t := time.NewTimer(rep.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	if rep.Status == 0 {
		rep.Status = http.StatusOK
	}
	for k, v := range rep.Header {
		w.Header()[k] = v
	}
	if rep.RetryAfter != "" {
		w.Header().Set("Retry-After", rep.RetryAfter)
	}
	if rep.Chunks != nil || rep.SSE != "" {
		writeStream(w, ctx, rep)
		return
	}
	b := rep.Body
	if b == nil {
		b = errorBody("aitest server error", "server_error", "")
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.Status)
	_, _ = w.Write(b)
}

func writeStream(w http.ResponseWriter, ctx context.Context, rep Reply) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/event-stream")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(rep.Status)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if rep.SSE != "" {
		_, _ = w.Write([]byte(rep.SSE))
	} else {
		for _, c := range rep.Chunks {
			var b strings.Builder
			for line := range strings.SplitSeq(c, "\n") {
				b.WriteString("data: " + line + "\n")
			}
			b.WriteString("\n")
			_, _ = w.Write([]byte(b.String()))
			flush()
		}
		if !rep.Hold {
			_, _ = w.Write([]byte("data: [DONE]\n\n"))
		}
	}
	flush()
	if rep.Hold {
		<-ctx.Done()
	}
}

// presentedKey is the key the request carries, in either style.
func presentedKey(h http.Header) string {
	if k := h.Get("api-key"); k != "" {
		return k
	}
	if a, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer "); ok {
		return a
	}
	return ""
}

// partialKey shows a key as OpenAI's error does: its start and end around stars.
func partialKey(k string) string {
	if len(k) <= 10 {
		return k
	}
	return k[:6] + strings.Repeat("*", len(k)-10) + k[len(k)-4:]
}

func errorBody(msg, typ, code string) []byte {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return b
}

func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(msg, typ, code))
}

func readAll(r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBytes))
}
