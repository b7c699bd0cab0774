package notify_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"tutela/notify"
)

func signed(id string, at time.Time) (http.Header, []byte) {
	body := []byte(`{"id":"` + id + `","type":"monitoring.alert","data":{}}`)
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set(notify.HeaderID, id)
	h.Set(notify.HeaderTimestamp, ts)
	h.Set(notify.HeaderSignature, notify.Sign(testSecret, ts, body))
	return h, body
}

// A delivery is accepted once: the same bytes again are a replay, and so is a copy whose
// unsigned ID header was changed; a retry of the event (new timestamp, new signature) is a
// duplicate; a forged body and another secret's signature are refused.
func TestReceiver_RefusesReplayDuplicateAndForgery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	r := notify.NewReceiver(testSecret)
	h, body := signed("evt-1", now)
	if err := r.Verify(h, body, now); err != nil {
		t.Fatalf("first delivery refused: %v", err)
	}
	if err := r.Verify(h, body, now.Add(time.Minute)); !errors.Is(err, notify.ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
	h2 := h.Clone()
	h2.Set(notify.HeaderID, "evt-2")
	if err := r.Verify(h2, body, now.Add(time.Minute)); !errors.Is(err, notify.ErrSignature) {
		t.Fatalf("replay under another header ID: %v, want ErrSignature", err)
	}
	h3 := h.Clone()
	h3.Del(notify.HeaderID)
	if err := r.Verify(h3, body, now.Add(time.Minute)); !errors.Is(err, notify.ErrReplay) {
		t.Fatalf("replay without the ID header: %v, want ErrReplay (the body's ID counts)", err)
	}
	retry, rbody := signed("evt-1", now.Add(2*time.Minute))
	if err := r.Verify(retry, rbody, now.Add(2*time.Minute)); !errors.Is(err, notify.ErrReplay) {
		t.Fatalf("retry of an accepted event: %v, want ErrReplay", err)
	}
	forged := append([]byte(nil), body...)
	forged[len(forged)-3] = 'x'
	if err := r.Verify(h, forged, now); !errors.Is(err, notify.ErrSignature) {
		t.Fatalf("forged body: %v", err)
	}
	other := notify.NewReceiver("whsec_another_secret_entirely_0000")
	h4, b4 := signed("evt-9", now)
	if err := other.Verify(h4, b4, now); !errors.Is(err, notify.ErrSignature) {
		t.Fatalf("another secret: %v", err)
	}
	// Past the tolerance the timestamp refuses it, after the receiver has forgotten the ID.
	late := now.Add(2*notify.Tolerance + time.Second)
	if err := r.Verify(h, body, late); !errors.Is(err, notify.ErrTimestamp) {
		t.Fatalf("old replay: %v, want ErrTimestamp", err)
	}
}

// A receiver that failed to process an event forgets it, so the sender's retry is accepted.
func TestReceiver_ForgetAcceptsTheRetry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	r := notify.NewReceiver(testSecret)
	h, body := signed("evt-1", now)
	if err := r.Verify(h, body, now); err != nil {
		t.Fatal(err)
	}
	r.Forget("evt-1")
	retry, rbody := signed("evt-1", now.Add(30*time.Second))
	if err := r.Verify(retry, rbody, now.Add(30*time.Second)); err != nil {
		t.Fatalf("retry after Forget: %v", err)
	}
	// A body without an ID cannot be deduplicated: refused.
	ts := strconv.FormatInt(now.Unix(), 10)
	noID := []byte(`{"type":"x"}`)
	h5 := http.Header{}
	h5.Set(notify.HeaderTimestamp, ts)
	h5.Set(notify.HeaderSignature, notify.Sign(testSecret, ts, noID))
	if err := r.Verify(h5, noID, now); !errors.Is(err, notify.ErrSignature) {
		t.Fatalf("body without id: %v", err)
	}
}

// The timestamp check accepts |now-ts| <= Tolerance, edges included. A delivery first accepted
// at ts-Tolerance is still timely at ts+Tolerance, so the receiver must still remember its ID
// then: the same bytes are a replay at that edge, and one instant later the timestamp refuses
// them.
func TestReceiver_RefusesReplayAtTheToleranceEdge(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	r := notify.NewReceiver(testSecret)
	h, body := signed("evt-edge", ts)
	if err := r.Verify(h, body, ts.Add(-notify.Tolerance)); err != nil {
		t.Fatalf("first delivery at the early edge: %v", err)
	}
	if err := r.Verify(h, body, ts.Add(notify.Tolerance)); !errors.Is(err, notify.ErrReplay) {
		t.Fatalf("the same delivery at the late edge: %v, want ErrReplay", err)
	}
	if err := r.Verify(h, body, ts.Add(notify.Tolerance+time.Nanosecond)); !errors.Is(err, notify.ErrTimestamp) {
		t.Fatalf("the same delivery past the late edge: %v, want ErrTimestamp", err)
	}
}
