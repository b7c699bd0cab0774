package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers, in the shape of Standard Webhooks and Stripe: the event's ID (the
// same on every retry), the time of this attempt in Unix seconds, and the signature over both
// the timestamp and the body.
const (
	HeaderID        = "Tutela-Webhook-Id"
	HeaderTimestamp = "Tutela-Timestamp"
	HeaderSignature = "Tutela-Signature"
)

// Tolerance is how far a delivery's timestamp may be from the receiver's clock before Verify
// refuses it: a captured request replayed later is refused even though its signature is good.
const Tolerance = 5 * time.Minute

// ErrSignature is a signature that does not verify (or a header that holds none).
var ErrSignature = errors.New("notify: webhook signature does not verify")

// ErrTimestamp is a timestamp that is malformed or outside Tolerance.
var ErrTimestamp = errors.New("notify: webhook timestamp is malformed or too old")

// Sign returns the Tutela-Signature header for body sent at timestamp (Unix seconds, decimal):
// "v1=" and the hex HMAC-SHA256, keyed with the secret as given ("whsec_…"), of
// timestamp + "." + body. Binding the timestamp keeps a receiver that checks it from accepting
// a replay with a fresh timestamp.
func Sign(secret, timestamp string, body []byte) string {
	return sign([]byte(secret), timestamp, body)
}

func sign(secret []byte, timestamp string, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a Tutela-Signature header against the secret, the Tutela-Timestamp
// header and the raw body, as received (before any JSON parsing: re-encoding changes bytes).
// The header may list several "v1=" signatures separated by commas; one match is enough.
// The comparison is constant-time. It does not judge the timestamp's age: Verify does both.
func VerifySignature(secret, timestamp string, body []byte, header string) error {
	if secret == "" || timestamp == "" {
		return ErrSignature
	}
	want := mac([]byte(secret), timestamp, body)
	for part := range strings.SplitSeq(header, ",") {
		scheme, sig, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || scheme != "v1" {
			continue
		}
		got, err := hex.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}

// Verify is what a receiver runs on a delivery: the timestamp within Tolerance of now, then the
// signature. Drop duplicates by the Tutela-Webhook-Id header, which is also the body's "id".
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts != strconv.FormatInt(sec, 10) {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(sec, 0)); d > Tolerance || d < -Tolerance {
		return ErrTimestamp
	}
	return VerifySignature(secret, ts, body, h.Get(HeaderSignature))
}
