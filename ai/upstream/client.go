// Package upstream is the AI gateway's client of OpenAI-compatible providers (OpenRouter, Azure
// OpenAI, vLLM, Ollama): it sends an already minimized JSON body to a tenant's provider with the
// provider's API key, retries what is worth retrying, rotates to the second key when the first is
// refused, and turns every failure into a client-safe *tutela.Error. It never follows a redirect
// (the key must reach only the configured host) and never copies a provider's error message or
// body into an error (providers echo parts of API keys and prompts in them).
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/egress"
)

// Limits of the client.
const (
	// MaxResponseBytes bounds a non-streamed answer: a provider (or whatever answers at its
	// address) must not make the gateway buffer without limit.
	MaxResponseBytes = 16 << 20
	// MaxEventBytes bounds one line, and one event's data, of a streamed answer.
	MaxEventBytes = 1 << 20
	// MaxRetryAfter is the longest Retry-After the client waits for. A provider asking for more
	// is not waited on: the caller gets rate_limited or unavailable with the hint, so a request
	// does not hold a connection (and the caller) for minutes.
	MaxRetryAfter = 20 * time.Second

	backoffBase = 250 * time.Millisecond
	backoffCap  = 8 * time.Second
	// maxErrorBody is how much of a refusal is read to find its error type and code; the rest
	// is drained up to the same amount so the connection can be reused, then dropped.
	maxErrorBody = 64 << 10
)

// Target is where one request goes: the provider and its opened keys.
type Target struct {
	Provider ai.Provider // BaseURL, AuthStyle, TimeoutSeconds, MaxRetries
	Keys     []ai.Key    // active keys, newest first (0, 1 or 2; none for AuthNone)
}

// Options configure a Client. The zero value is ready for production.
type Options struct {
	// Transport sends the requests; default: a clone of http.DefaultTransport with bounded
	// header size and idle connections.
	Transport http.RoundTripper
	// Sleep waits between attempts and returns ctx's error if ctx ends first; tests pass a
	// recorder so backoff is asserted without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns the jitter in [0, 1); tests fix it.
	Rand func() float64
	// Now reads the clock, for Retry-After given as an HTTP date.
	Now func() time.Time
	// PrivateNetworks are the non-public networks the default transport may connect to (a
	// self-hosted model on the LAN, a local Ollama on loopback). Every other loopback,
	// private, link-local, shared (CGNAT), unspecified or multicast address is refused at
	// dial time, after DNS resolution: a tenant administrator's base_url must not turn the
	// gateway into a way to reach the deployment's internal services (SSRF). With an HTTP
	// proxy in the environment (HTTPS_PROXY), the rule applies to the proxy's address and the
	// proxy's own policy governs the rest.
	PrivateNetworks []netip.Prefix
}

// Client sends requests to providers. It is safe for concurrent use; one serves every tenant.
type Client struct {
	hc    *http.Client
	sleep func(ctx context.Context, d time.Duration) error
	rand  func() float64
	now   func() time.Time
	// second is the unit of Provider.TimeoutSeconds (tests shorten it).
	second time.Duration
}

// New returns a Client.
func New(opt Options) *Client {
	c := &Client{sleep: opt.Sleep, rand: opt.Rand, now: opt.Now, second: time.Second}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	if c.now == nil {
		c.now = time.Now
	}
	rt := opt.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		t.MaxResponseHeaderBytes = 64 << 10
		t.TLSHandshakeTimeout = 10 * time.Second
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: egress.Control(opt.PrivateNetworks)}
		t.DialContext = d.DialContext
		rt = t
	}
	c.hc = &http.Client{
		Transport: rt,
		// A redirect would carry the API key and the prompt to a host the tenant did not
		// configure; the 3xx is returned as a refusal instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Response is a provider's 2xx answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // at most MaxResponseBytes
	// KeyID is the key that answered ("" for AuthNone).
	KeyID string
	// Attempts counts the requests sent, key fallbacks included.
	Attempts int
}

// Do POSTs body (JSON) to the provider's BaseURL+path ("/chat/completions", "/embeddings") and
// returns its 2xx answer. It retries 429, 500, 502, 503, 504 and connection failures up to
// Provider.MaxRetries times with exponential backoff (base 250 ms, ×2, cap 8 s, full jitter),
// waiting at least the provider's Retry-After; a Retry-After over MaxRetryAfter ends the call at
// once with rate_limited (429) or unavailable carrying the hint. An attempt that runs out of
// Provider.TimeoutSeconds ends the call with upstream_timeout: retrying it would hold the caller
// for several timeouts. A 401 or 403 with the first key is retried at once with the second (a
// rotation in progress) and does not count as a retry. Other statuses are not retried.
func (c *Client) Do(ctx context.Context, t Target, path string, body []byte) (*Response, error) {
	resp, a, err := c.send(ctx, t, path, body, false)
	if err != nil {
		return nil, err
	}
	defer a.finish()
	defer drainClose(resp.Body)
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, a.failure(ctx, err)
	}
	if len(b) > MaxResponseBytes {
		return nil, &tutela.Error{Code: tutela.EUPSTREAM,
			Message: fmt.Sprintf("the provider's answer is larger than %d MiB", MaxResponseBytes>>20)}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b, KeyID: a.keyID, Attempts: a.attempts}, nil
}

// attempt is the state of the attempt that produced the returned response: its key, its count,
// and the timer and cancel that bound it.
type attempt struct {
	keyID    string
	attempts int
	timeout  time.Duration
	seconds  int
	timer    *time.Timer
	cancel   context.CancelFunc
	timedOut *atomic.Bool
}

// finish releases the attempt's timer and context.
func (a *attempt) finish() {
	a.timer.Stop()
	a.cancel()
}

// failure is the error for err, met while reading the answer of a.
func (a *attempt) failure(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return canceled(ctx)
	case a.timedOut.Load():
		return timeoutError(a.seconds, err)
	}
	return &tutela.Error{Code: tutela.EUPSTREAM, Message: "the provider's answer broke off", Err: err}
}

// send runs the attempts until one gets a 2xx, whose response (body unread) it returns with the
// attempt that got it.
func (c *Client) send(ctx context.Context, t Target, path string, body []byte, stream bool) (*http.Response, *attempt, error) {
	url, err := endpoint(t.Provider, path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := usableKeys(t)
	if err != nil {
		return nil, nil, err
	}
	seconds := t.Provider.TimeoutSeconds
	if seconds <= 0 {
		seconds = ai.DefaultTimeoutSeconds
	}
	maxRetries := min(max(t.Provider.MaxRetries, 0), ai.MaxMaxRetries)
	accept := "application/json"
	if stream {
		accept = "text/event-stream"
	}

	k, retries, attempts := 0, 0, 0
	var lastKey string
	var lastStatus int
	// failed wraps an error after at least one attempt with what the audit record wants.
	failed := func(err error) error {
		return &Failure{Err: err, Status: lastStatus, Attempts: attempts, KeyID: lastKey}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, failed(canceled(ctx))
		}
		attempts++
		var key *ai.Key
		if len(keys) > 0 {
			key = &keys[k]
		}
		a := &attempt{attempts: attempts, timeout: time.Duration(seconds) * c.second, seconds: seconds, timedOut: new(atomic.Bool)}
		if key != nil {
			a.keyID = key.ID
		}
		resp, err := c.try(ctx, a, t.Provider.AuthStyle, key, url, accept, body)
		lastKey, lastStatus = a.keyID, 0
		if err == nil {
			lastStatus = resp.StatusCode
		}
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if stream {
				if err := checkEventStream(resp); err != nil {
					drainClose(resp.Body)
					a.finish()
					return nil, nil, failed(err)
				}
			}
			return resp, a, nil
		}

		v := c.judge(ctx, a, resp, err)
		switch {
		case v.final:
			return nil, nil, failed(v.err)
		case v.keyRefused && k == 0 && len(keys) > 1:
			// The newest key may not be live at the provider yet, or it is the older one
			// that was revoked: try the other one now, without counting a retry.
			k = 1
			continue
		case !v.retryable:
			return nil, nil, failed(v.err)
		case v.hasRetryAfter && v.retryAfter > MaxRetryAfter:
			code, msg := tutela.EUNAVAILABLE, "the provider is unavailable"
			if resp.StatusCode == http.StatusTooManyRequests {
				code, msg = tutela.ERATELIMITED, "the provider is rate limiting requests"
			}
			return nil, nil, failed(&retryAfterError{err: &tutela.Error{Code: code,
				Message: fmt.Sprintf("%s; retry after %d s", msg, ceilSeconds(v.retryAfter)), Err: v.err}, after: v.retryAfter})
		case retries >= maxRetries:
			if v.hasRetryAfter {
				return nil, nil, failed(&retryAfterError{err: v.err, after: v.retryAfter})
			}
			return nil, nil, failed(v.err)
		}
		d := c.backoff(retries)
		if v.hasRetryAfter && v.retryAfter > d {
			d = v.retryAfter
		}
		if err := c.sleep(ctx, d); err != nil {
			return nil, nil, failed(canceled(ctx))
		}
		retries++
	}
}

// verdict is what a failed attempt means for the next one.
type verdict struct {
	err           error // the failure as the caller sees it if nothing else is tried
	final         bool  // canceled or timed out: nothing more is tried
	retryable     bool  // 429, 500, 502, 503, 504 or a connection failure
	keyRefused    bool  // 401 or 403
	retryAfter    time.Duration
	hasRetryAfter bool
}

// judge reads the failed attempt a (resp is nil when err is not) and releases it.
func (c *Client) judge(ctx context.Context, a *attempt, resp *http.Response, err error) verdict {
	if err != nil {
		a.finish()
		switch {
		case ctx.Err() != nil:
			return verdict{err: canceled(ctx), final: true}
		case a.timedOut.Load():
			return verdict{err: timeoutError(a.seconds, err), final: true}
		}
		if errors.Is(err, egress.ErrNonPublic) {
			return verdict{err: &tutela.Error{Code: tutela.EUPSTREAM, Err: err,
				Message: "the provider's address is not public; the operator may allow its network with ai.private_networks"}}
		}
		return verdict{err: &tutela.Error{Code: tutela.EUPSTREAM, Message: "the provider could not be reached", Err: err}, retryable: true}
	}
	v := verdict{err: statusError(resp)}
	timedOut := a.timedOut.Load()
	a.finish()
	if timedOut {
		return verdict{err: timeoutError(a.seconds, v.err), final: true}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		v.keyRefused = true
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		v.retryable = true
		v.retryAfter, v.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	return v
}

// backoff is the full-jitter delay before retry n (0-based): uniform in [0, min(cap, base·2ⁿ)).
func (c *Client) backoff(n int) time.Duration {
	ceil := backoffCap
	if n < 6 {
		ceil = min(backoffBase<<n, backoffCap)
	}
	r := c.rand()
	if r < 0 || r >= 1 {
		r = 0
	}
	return time.Duration(r * float64(ceil))
}

// try sends one request. On success the response's body is open and the attempt's timer is
// running; the caller finishes a.
func (c *Client) try(ctx context.Context, a *attempt, style ai.AuthStyle, key *ai.Key, url, accept string, body []byte) (*http.Response, error) {
	actx, cancel := context.WithCancel(ctx)
	a.cancel = cancel
	timedOut := a.timedOut
	a.timer = time.AfterFunc(a.timeout, func() {
		timedOut.Store(true)
		cancel()
	})
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "tutela")
	if key != nil {
		switch style {
		case ai.AuthAPIKey:
			req.Header.Set("api-key", key.Secret.Reveal())
		default:
			req.Header.Set("Authorization", "Bearer "+key.Secret.Reveal())
		}
	}
	return c.hc.Do(req)
}

// endpoint joins the provider's base URL and path, checking both again: a stored base URL is
// trusted no further than the rule that admitted it.
func endpoint(p ai.Provider, path string) (string, error) {
	if err := ai.CheckBaseURL(p.BaseURL); err != nil {
		return "", &tutela.Error{Code: tutela.EUPSTREAM, Message: "the provider's base URL is not allowed", Err: err}
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#%\\") || strings.Contains(path, "..") || strings.Contains(path, "//") {
		// The gateway names the path; a bad one is a bug there, not the caller's input.
		return "", &tutela.Error{Code: tutela.EINTERNAL, Message: "internal error", Err: fmt.Errorf("upstream: bad path %q", path)}
	}
	return strings.TrimRight(p.BaseURL, "/") + path, nil
}

// usableKeys returns the keys to send: none for AuthNone, else the first two, each checked so a
// key that could split a header is never sent.
func usableKeys(t Target) ([]ai.Key, error) {
	switch t.Provider.AuthStyle {
	case ai.AuthNone:
		return nil, nil
	case ai.AuthBearer, ai.AuthAPIKey, "":
	default:
		return nil, tutela.Errorf(tutela.EUPSTREAM, "the provider's auth style is not supported")
	}
	keys := t.Keys
	if len(keys) > ai.MaxActiveKeys {
		keys = keys[:ai.MaxActiveKeys]
	}
	if len(keys) == 0 {
		return nil, tutela.Errorf(tutela.EUPSTREAM, "the provider has no active API key")
	}
	for _, k := range keys {
		if ai.CheckKey(k.Secret.Reveal()) != nil {
			return nil, tutela.Errorf(tutela.EUPSTREAM, "the provider's API key %s is malformed", k.ID)
		}
	}
	return keys, nil
}

// drainClose reads a little of what is left so the connection can be reused, then closes.
func drainClose(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, maxErrorBody))
	_ = b.Close()
}

func canceled(ctx context.Context) error {
	return &tutela.Error{Code: tutela.EUPSTREAM, Message: "the request was canceled", Err: context.Cause(ctx)}
}

func timeoutError(seconds int, err error) error {
	return &tutela.Error{Code: tutela.EUPSTREAMTIMEOUT,
		Message: fmt.Sprintf("the provider did not answer within %d s", seconds), Err: errors.Join(context.DeadlineExceeded, err)}
}
