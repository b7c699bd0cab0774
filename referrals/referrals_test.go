package referrals_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/referrals"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

func TestDestination_AddsTheTokenKeepingTheQueryAsWritten(t *testing.T) {
	t.Parallel()
	const tok = "rf1.abc-_XYZ"
	for _, c := range []struct{ target, want string }{
		{"https://clinic.example.org/intake", "https://clinic.example.org/intake?referral=rf1.abc-_XYZ"},
		{"https://clinic.example.org/intake?lang=en", "https://clinic.example.org/intake?lang=en&referral=rf1.abc-_XYZ"},
		{"https://clinic.example.org/?b=2&a=1", "https://clinic.example.org/?b=2&a=1&referral=rf1.abc-_XYZ"},
		{"https://clinic.example.org/a%2Fb?q=%20x", "https://clinic.example.org/a%2Fb?q=%20x&referral=rf1.abc-_XYZ"},
		{"https://clinic.example.org:8443/x?referral=theirs", "https://clinic.example.org:8443/x?referral=theirs&referral=rf1.abc-_XYZ"},
	} {
		got, err := referrals.Destination(c.target, tok)
		if err != nil || got != c.want {
			t.Errorf("Destination(%q) = %q, %v; want %q", c.target, got, err, c.want)
		}
	}
}

func TestStateAt_LiveReferralsExpireAtTheirExpiry(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		state referrals.State
		at    time.Time
		want  referrals.State
	}{
		{referrals.StateCreated, exp.Add(-time.Nanosecond), referrals.StateCreated},
		{referrals.StateCreated, exp, referrals.StateExpired},
		{referrals.StateOpened, exp, referrals.StateExpired},
		{referrals.StateConfirmed, exp.Add(time.Hour), referrals.StateExpired},
		{referrals.StateClosed, exp.Add(time.Hour), referrals.StateClosed},
		{referrals.StateCancelled, exp.Add(time.Hour), referrals.StateCancelled},
	} {
		r := referrals.Referral{State: c.state, ExpiresAt: exp}
		if got := r.StateAt(c.at); got != c.want {
			t.Errorf("%s at %s = %s, want %s", c.state, c.at, got, c.want)
		}
	}
	if referrals.Status("lost").Next() != "" || referrals.StatusReceived.Next() != referrals.StateConfirmed ||
		referrals.StatusDeclined.Next() != referrals.StateClosed {
		t.Error("Status.Next")
	}
}

func TestValidText_JustificationRequiredOutcomeBounded(t *testing.T) {
	t.Parallel()
	if referrals.ValidJustification("") == nil || referrals.ValidJustification("a\x00b") == nil ||
		referrals.ValidJustification(strings.Repeat("é", referrals.MaxJustificationLen+1)) == nil {
		t.Error("bad justification accepted")
	}
	if err := referrals.ValidJustification(strings.Repeat("é", referrals.MaxJustificationLen)); err != nil {
		t.Error(err)
	}
	if err := referrals.ValidOutcome(""); err != nil {
		t.Error(err)
	}
	if referrals.ValidOutcome(strings.Repeat("x", referrals.MaxOutcomeLen+1)) == nil || referrals.ValidOutcome("\xff") == nil {
		t.Error("bad outcome accepted")
	}
}

func newSigner(t *testing.T) (referrals.Signer, *vault.Vault, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
	v := sqltest.AttachVaultAt(t, db, clock.Now)
	return referrals.Signer{Vault: v}, v, clock
}

func TestSigner_TamperedForgedAndExpiredTokensRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, clock := newSigner(t)
	r := &referrals.Referral{ID: tutela.NewID(), ExpiresAt: clock.Now().Add(time.Hour + 500*time.Millisecond)}
	tok, err := s.Sign(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ExpiresAt.Equal(clock.Now().Add(time.Hour)) || r.KeyID == 0 {
		t.Fatalf("signed referral = %+v", r)
	}
	c, err := s.Verify(ctx, tok, clock.Now())
	if err != nil || c.ReferralID != r.ID || c.KeyID != r.KeyID || !c.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// Every byte of the body and tag, flipped: not found.
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "rf1."))
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		if _, err := s.Verify(ctx, "rf1."+base64.RawURLEncoding.EncodeToString(b), clock.Now()); !errors.Is(err, referrals.ErrBadToken) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, bad := range []string{"", "rf1.", "fl1." + tok[4:], tok + "A", tok[:len(tok)-1], strings.Replace(tok, "rf1.", "rf2.", 1),
		tok[:len(tok)-2] + "==", strings.Repeat("A", len(tok))} {
		if _, err := s.Verify(ctx, bad, clock.Now()); !errors.Is(err, referrals.ErrBadToken) {
			t.Errorf("Verify(%q) = %v", bad, err)
		}
	}
	// Expiry is exclusive.
	if _, err := s.Verify(ctx, tok, r.ExpiresAt.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, tok, r.ExpiresAt); tutela.ErrorCode(err) != tutela.ELINKGONE {
		t.Fatalf("at expiry: %v", err)
	}
	if _, err := s.Sign(ctx, &referrals.Referral{ID: "not-an-id", ExpiresAt: clock.Now()}); tutela.ErrorCode(err) != tutela.EINVALID {
		t.Fatalf("Sign(bad ID) = %v", err)
	}
}

func TestSigner_RetiredKeyEndsItsTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, v, clock := newSigner(t)
	old, err := s.Sign(ctx, &referrals.Referral{ID: tutela.NewID(), ExpiresAt: clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rotate(ctx, "", vault.PurposeReferrals); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.Sign(ctx, &referrals.Referral{ID: tutela.NewID(), ExpiresAt: clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, old, clock.Now()); err != nil {
		t.Fatalf("old token before retirement: %v", err)
	}
	clock.Add(v.CacheTTL() + vault.RotationSettleMargin)
	if _, err := v.Retire(ctx, "", vault.PurposeReferrals); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, old, clock.Now()); !errors.Is(err, referrals.ErrBadToken) {
		t.Fatalf("old token after retirement: %v", err)
	}
	if _, err := s.Verify(ctx, fresh, clock.Now()); err != nil {
		t.Fatalf("new token after retirement: %v", err)
	}
}

// BenchmarkSigner_Verify is the cost of checking a referral link before the database is asked
// anything (a forged token costs exactly this).
func BenchmarkSigner_Verify(b *testing.B) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(b, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
	s := referrals.Signer{Vault: sqltest.AttachVaultAt(b, db, clock.Now)}
	tok, err := s.Sign(ctx, &referrals.Referral{ID: tutela.NewID(), ExpiresAt: clock.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(ctx, tok, clock.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
