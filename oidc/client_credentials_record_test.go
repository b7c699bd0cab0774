package oidc

import (
	"context"
	"testing"
	"time"

	"tutela"
)

// A refused service account's record keeps its request's values but not its cancellation, and
// is bounded by the provider's DBTimeout even when the request had no deadline (a record
// without one would leave its whole group-commit batch unbounded).
func TestClientCredentials_RefusalRecordContextBounded(t *testing.T) {
	t.Parallel()
	for _, set := range []time.Duration{0, 2 * time.Second} {
		p, err := New(Deps{PublicURL: "http://127.0.0.1", DBTimeout: set})
		if err != nil {
			t.Fatal(err)
		}
		want := set
		if want == 0 {
			want = 5 * time.Second
		}
		req, cancelReq := context.WithCancel(tutela.WithRequestMeta(context.Background(), &tutela.RequestMeta{RequestID: "r1"}))
		actx, cancel := p.recordContext(req)
		cancelReq()
		dl, ok := actx.Deadline()
		if !ok || dl.After(time.Now().Add(want)) {
			t.Fatalf("DBTimeout %v: record context deadline %v (set %v), want one within %v", set, dl, ok, want)
		}
		if actx.Err() != nil {
			t.Fatalf("the record context ended with its request: %v", actx.Err())
		}
		if m := tutela.RequestMetaFrom(actx); m == nil || m.RequestID != "r1" {
			t.Fatalf("the record context lost the request's metadata: %+v", m)
		}
		cancel()
	}
}
