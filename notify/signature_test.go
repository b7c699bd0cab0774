package notify_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tutela/notify"
)

const testSecret = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// A signature made with the secret verifies; one bit flipped anywhere (body, timestamp,
// signature, secret) does not.
func TestVerifySignature_AcceptsSignedRefusesFlippedBit(t *testing.T) {
	body := []byte(`{"id":"0190a1b2-0000-7000-8000-000000000001","type":"approval.requested","data":{}}`)
	ts := "1772366400"
	sig := notify.Sign(testSecret, ts, body)
	if !strings.HasPrefix(sig, "v1=") || len(sig) != 3+64 {
		t.Fatalf("signature header %q", sig)
	}
	if err := notify.VerifySignature(testSecret, ts, body, sig); err != nil {
		t.Fatalf("good signature refused: %v", err)
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return c
	}
	for i := range body {
		if err := notify.VerifySignature(testSecret, ts, flip(body, i), sig); !errors.Is(err, notify.ErrSignature) {
			t.Fatalf("body with bit flipped at %d accepted: %v", i, err)
		}
	}
	for i := range ts {
		if err := notify.VerifySignature(testSecret, string(flip([]byte(ts), i)), body, sig); !errors.Is(err, notify.ErrSignature) {
			t.Fatalf("timestamp with bit flipped at %d accepted", i)
		}
	}
	for i := 3; i < len(sig); i++ {
		if err := notify.VerifySignature(testSecret, ts, body, string(flip([]byte(sig), i))); !errors.Is(err, notify.ErrSignature) {
			t.Fatalf("signature with bit flipped at %d accepted", i)
		}
	}
	for i := range testSecret {
		if err := notify.VerifySignature(string(flip([]byte(testSecret), i)), ts, body, sig); !errors.Is(err, notify.ErrSignature) {
			t.Fatalf("secret with bit flipped at %d accepted", i)
		}
	}
	// The signature covers timestamp + "." + body: moving the boundary does not verify.
	if err := notify.VerifySignature(testSecret, ts+".", body[1:], notify.Sign(testSecret, ts, body)); err == nil {
		t.Fatal("a signature verified over another split of the signed bytes")
	}
	for _, h := range []string{"", "v1=", "v1", "v0=" + sig[3:], sig[3:], "v1=zz" + sig[5:], strings.ToUpper(sig)} {
		if err := notify.VerifySignature(testSecret, ts, body, h); !errors.Is(err, notify.ErrSignature) {
			t.Errorf("header %q accepted", h)
		}
	}
	if err := notify.VerifySignature("", ts, body, notify.Sign("", ts, body)); !errors.Is(err, notify.ErrSignature) {
		t.Error("an empty secret verified")
	}
	// Several signatures (a receiver rotating secrets sees both): one match is enough.
	other := notify.Sign("whsec_other", ts, body)
	if err := notify.VerifySignature(testSecret, ts, body, other+", "+sig); err != nil {
		t.Errorf("a list holding the good signature refused: %v", err)
	}
}

// Verify also refuses a timestamp outside the tolerance (a replayed capture) or malformed.
func TestVerify_RefusesStaleOrMalformedTimestamp(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{}`)
	header := func(at time.Time, ts string) http.Header {
		if ts == "" {
			ts = strconv.FormatInt(at.Unix(), 10)
		}
		h := http.Header{}
		h.Set(notify.HeaderTimestamp, ts)
		h.Set(notify.HeaderSignature, notify.Sign(testSecret, ts, body))
		return h
	}
	if err := notify.Verify(testSecret, header(now.Add(-notify.Tolerance), ""), body, now); err != nil {
		t.Fatalf("a delivery at the tolerance's edge refused: %v", err)
	}
	for name, h := range map[string]http.Header{
		"too old":       header(now.Add(-notify.Tolerance-time.Second), ""),
		"future":        header(now.Add(notify.Tolerance+time.Second), ""),
		"leading zero":  header(now, "0"+strconv.FormatInt(now.Unix(), 10)),
		"not a number":  header(now, "yesterday"),
		"no timestamp":  {notify.HeaderSignature: {notify.Sign(testSecret, "", body)}},
		"fractional ts": header(now, strconv.FormatInt(now.Unix(), 10)+".5"),
	} {
		if err := notify.Verify(testSecret, h, body, now); !errors.Is(err, notify.ErrTimestamp) {
			t.Errorf("%s: %v, want ErrTimestamp", name, err)
		}
	}
	h := header(now, "")
	if err := notify.Verify(testSecret, h, []byte(`{"x":1}`), now); !errors.Is(err, notify.ErrSignature) {
		t.Errorf("another body: %v", err)
	}
}
