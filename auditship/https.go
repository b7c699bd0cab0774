package auditship

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/audit/receiver"
	"tutela/notify"
	"tutela/webhooks"
)

// HTTPS posts batches as JSON to a receiver (audit/receiver), signed with a shared secret in
// notify's webhook scheme (Tutela-Timestamp, Tutela-Signature: HMAC-SHA256 over timestamp "."
// body). The signature authenticates the shipper to the receiver; what makes a batch
// trustworthy is the checkpoint signature and the proofs, and what refuses a replayed or
// reordered batch is its indexes, which the receiver checks against what it holds.
type HTTPS struct {
	name   string
	url    string
	secret tutela.Secret
	client *http.Client
	now    func() time.Time
}

// NewHTTPS returns the destination name posting to url (https, or http on loopback for tests and
// a receiver on the same host) with secret. client nil means a client with a 60 s timeout.
func NewHTTPS(name, url string, secret tutela.Secret, client *http.Client, now func() time.Time) (*HTTPS, error) {
	if secret.IsZero() {
		return nil, errors.New("auditship: an https destination needs a signing secret")
	}
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	if now == nil {
		now = time.Now
	}
	return &HTTPS{name: name, url: url, secret: secret, client: client, now: now}, nil
}

// Name implements Destination.
func (h *HTTPS) Name() string { return h.name }

// maxReply bounds what is read of a receiver's answer.
const maxReply = 64 << 10

// Send implements Destination. Errors name the receiver by origin only: its URL's path or query
// may hold a token.
func (h *HTTPS) Send(ctx context.Context, b *audit.Batch) (*Reply, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(h.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("bad receiver URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(notify.HeaderTimestamp, ts)
	req.Header.Set(notify.HeaderSignature, notify.Sign(h.secret.Reveal(), ts, body))
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %v", webhooks.Origin(h.url), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %v", webhooks.Origin(h.url), err)
	}
	var r receiver.Response
	decodeErr := json.Unmarshal(raw, &r)
	switch {
	case resp.StatusCode == http.StatusOK && decodeErr == nil && r.Error == nil:
		end := b.From + int64(len(b.Entries))
		if r.Accepted == nil || r.Accepted.From != b.From || r.Accepted.To != end || r.Size < end {
			return nil, fmt.Errorf("%s: answered 200 without acknowledging entries %d..%d", webhooks.Origin(h.url), b.From, end-1)
		}
		return &Reply{Size: r.Size, CheckpointSize: r.CheckpointSize}, nil
	case (resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusUnprocessableEntity ||
		resp.StatusCode == http.StatusBadRequest) && decodeErr == nil && r.Error != nil:
		return &Reply{Size: r.Size, CheckpointSize: r.CheckpointSize, Refusal: r.Error}, nil
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: refused the signature (is the shared secret the same at both ends, and the clocks within %v?)",
			webhooks.Origin(h.url), notify.Tolerance)
	}
	return nil, fmt.Errorf("%s: answered %d", webhooks.Origin(h.url), resp.StatusCode)
}
