package token

import (
	"context"
	"strings"
	"testing"
)

// FuzzVerify: access tokens arrive in Authorization headers from anyone. Verify never panics
// and accepts exactly one string, the token the ring issued: a changed byte anywhere (header,
// claims, or an encoding of the same signature) is refused.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, EdDSA)
	tok := fx.issue(f)
	ctx := context.Background()
	if _, err := fx.ring.Verify(ctx, tok, testAudience); err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	parts := strings.Split(tok, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(`eyJhbGciOiJub25lIn0.` + parts[1] + ".")
	f.Add("..")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := fx.ring.Verify(ctx, in, testAudience)
		if err == nil && in != tok {
			t.Fatalf("Verify accepted %q (%+v); only %q was issued", in, c, tok)
		}
	})
}
