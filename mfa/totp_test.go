package mfa_test

import (
	"bytes"
	"encoding/base32"
	"image/png"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pquerna/otp/totp"

	"tutela"
	"tutela/mfa"
)

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol begins and confirms a TOTP factor at the current clock, then moves the clock one step
// on so the confirming step is behind.
func enrol(t *testing.T, k *kit, tenantID, userID string) (factorID, secret string) {
	t.Helper()
	e, err := k.svc.BeginTOTP(ctx, tenantID, userID, "ana@example.org", "Tutela")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.svc.ConfirmTOTP(ctx, tenantID, userID, e.FactorID, code(t, e.Secret.Reveal(), k.clock.Now()), nil); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	k.clock.Add(30 * time.Second)
	return e.FactorID, e.Secret.Reveal()
}

func TestTOTP_UnconfirmedFactorNotUsable(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		e, err := k.svc.BeginTOTP(ctx, k.tenant.ID, k.user.ID, "ana@example.org", "Tutela")
		if err != nil {
			t.Fatal(err)
		}
		if e.URI.String() != "[redacted]" || !strings.HasPrefix(e.URI.Reveal(), "otpauth://totp/") {
			t.Fatalf("URI must be a redacting secret holding an otpauth URI")
		}
		now := code(t, e.Secret.Reveal(), k.clock.Now())
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, now), mfa.ErrInvalidCode)
		if ok, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, k.user.ID); ok {
			t.Fatal("pending factor counts as active")
		}
		fs, _ := k.svc.Factors(ctx, k.tenant.ID, k.user.ID)
		if len(fs) != 1 || fs[0].Active || fs[0].Type != mfa.TypeTOTP {
			t.Fatalf("factors = %+v", fs)
		}
		wrong := "000000"
		if wrong == now {
			wrong = "111111"
		}
		mustIs(t, k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, wrong, nil), mfa.ErrInvalidCode)
		for _, bad := range []string{"", "12345", "1234567", "12a456", "１２３４５６"} {
			mustIs(t, k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, bad, nil), mfa.ErrInvalidCode)
		}
		// Another user cannot confirm it, nor can another tenant.
		other := k.newUser(t, k.tenant.ID, "bo@example.org")
		mustIs(t, k.svc.ConfirmTOTP(ctx, k.tenant.ID, other.ID, e.FactorID, now, nil), mfa.ErrInvalidCode)
		if err := k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, now, nil); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		if ok, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, k.user.ID); !ok {
			t.Fatal("confirmed factor not active")
		}
		// The confirming code's step is spent; it is told apart from a replay (no alarm for a
		// newcomer typing it again), and only it.
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, now), mfa.ErrConfirmCodeReused)
		// A confirmed factor cannot be confirmed again.
		k.clock.Add(30 * time.Second)
		next := code(t, e.Secret.Reveal(), k.clock.Now())
		mustIs(t, k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, next, nil), mfa.ErrInvalidCode)
		if err := k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, next); err != nil {
			t.Fatalf("the next code: %v", err)
		}
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, next), mfa.ErrReplayed)
		// Once a later code has signed in, the confirming code again is a replay like any other.
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, now), mfa.ErrReplayed)
		acts := k.auditActions(t)
		if acts["mfa.totp_enrollment_started"] != 1 || acts["mfa.totp_enrolled"] != 1 {
			t.Fatalf("audit = %v", acts)
		}
	})
}

func TestTOTP_PendingEnrolmentExpires(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		e, err := k.svc.BeginTOTP(ctx, k.tenant.ID, k.user.ID, "ana@example.org", "Tutela")
		if err != nil {
			t.Fatal(err)
		}
		k.clock.Add(16 * time.Minute)
		mustIs(t, k.svc.ConfirmTOTP(ctx, k.tenant.ID, k.user.ID, e.FactorID, code(t, e.Secret.Reveal(), k.clock.Now()), nil), mfa.ErrInvalidCode)
	})
}

func TestTOTP_SkewEdges(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		_, secret := enrol(t, k, k.tenant.ID, k.user.ID)
		k.clock.Add(10 * time.Minute)
		now := k.clock.Now()
		at := func(steps int) string { return code(t, secret, now.Add(time.Duration(steps)*30*time.Second)) }
		// ±2 steps: refused as wrong codes, and they spend nothing.
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, at(-2)), mfa.ErrInvalidCode)
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, at(2)), mfa.ErrInvalidCode)
		// −1, 0, +1: accepted, each once.
		for _, s := range []int{-1, 0, 1} {
			if err := k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, at(s)); err != nil {
				t.Fatalf("step %+d refused: %v", s, err)
			}
			mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, at(s)), mfa.ErrReplayed)
		}
		// After +1 was used, an earlier step's code is refused too (RFC 6238 §5.2).
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, at(-1)), mfa.ErrReplayed)
		// Edges of the window measured in time, not steps: 15 s into the step, a code from
		// 45 s ago is the previous step (accepted), one from 46 s ago... two steps back.
		k.clock.Add(5 * time.Minute)
		now = k.clock.Now()
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, code(t, secret, now.Add(-46*time.Second))), mfa.ErrInvalidCode)
		mustIs(t, k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, code(t, secret, now.Add(45*time.Second))), mfa.ErrInvalidCode)
		if err := k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, code(t, secret, now.Add(44*time.Second))); err != nil {
			t.Fatalf("code 44 s ahead (next step) refused: %v", err)
		}
	})
}

func TestTOTP_ConcurrentReplayAcceptedOnce(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		_, secret := enrol(t, k, k.tenant.ID, k.user.ID)
		c := code(t, secret, k.clock.Now())
		var wins, replays atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				err := k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, c)
				switch {
				case err == nil:
					wins.Add(1)
				case err == mfa.ErrReplayed:
					replays.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || replays.Load() != 9 {
			t.Fatalf("wins=%d replays=%d, want 1 and 9", wins.Load(), replays.Load())
		}
	})
}

func TestTOTP_QRCodeDecodesToURI(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		e, err := k.svc.BeginTOTP(ctx, k.tenant.ID, k.user.ID, "ana@example.org", "Tutela Acme")
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(e.QRPNG))
		if err != nil {
			t.Fatalf("QR is not a PNG: %v", err)
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		// The image is a bare code with a quiet zone: PURE_BARCODE reads it as such instead of
		// hunting for finder patterns, which now and then fails on a valid code (a flaky test).
		res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{
			gozxing.DecodeHintType_PURE_BARCODE: true, gozxing.DecodeHintType_TRY_HARDER: true})
		if err != nil {
			t.Fatalf("QR does not decode: %v", err)
		}
		if res.GetText() != e.URI.Reveal() {
			t.Fatalf("QR holds %q, want the enrolment URI", res.GetText())
		}
		if !strings.Contains(e.URI.Reveal(), "secret="+e.Secret.Reveal()) || !strings.Contains(e.URI.Reveal(), "issuer=Tutela") {
			t.Fatalf("URI lacks secret or issuer")
		}
	})
}

func TestTOTP_SecretSealedAndBoundToRow(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		_, secretA := enrol(t, k, k.tenant.ID, k.user.ID)
		bob := k.newUser(t, k.tenant.ID, "bob@example.org")
		idB, _ := enrol(t, k, k.tenant.ID, bob.ID)
		var sealed []byte
		if err := k.db.SQL().QueryRowContext(ctx, `SELECT secret FROM mfa_factors WHERE user_id = $1 AND type = 'totp'`,
			k.user.ID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secretA)
		if len(sealed) == 0 || bytes.Contains(sealed, raw) || bytes.Contains(sealed, []byte(secretA)) ||
			bytes.Contains(bytes.ToUpper(sealed), []byte(secretA)) {
			t.Fatal("TOTP seed readable in the database row")
		}
		// Move A's sealed seed into B's row: B's factor now holds A's seed, but the AAD names
		// A's user and factor, so it cannot be opened there — A's codes do not work for B.
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE mfa_factors SET secret = $1 WHERE id = $2`, sealed, idB); err != nil {
			t.Fatal(err)
		}
		err := k.svc.VerifyTOTP(ctx, k.tenant.ID, bob.ID, code(t, secretA, k.clock.Now()))
		if err == nil {
			t.Fatal("a seed moved to another user's row was accepted")
		}
		mustCode(t, err, tutela.EINTERNAL)
		// A still works.
		if err := k.svc.VerifyTOTP(ctx, k.tenant.ID, k.user.ID, code(t, secretA, k.clock.Now())); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTOTP_TenantScoped(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		_, secret := enrol(t, k, k.tenant.ID, k.user.ID)
		other := k.newTenant(t, "other")
		mustIs(t, k.svc.VerifyTOTP(ctx, other.ID, k.user.ID, code(t, secret, k.clock.Now())), mfa.ErrInvalidCode)
		if ok, _ := k.svc.HasActiveFactor(ctx, other.ID, k.user.ID); ok {
			t.Fatal("factor visible from another tenant")
		}
		fs, _ := k.svc.Factors(ctx, other.ID, k.user.ID)
		mustCode(t, k.svc.RemoveFactor(ctx, other.ID, k.user.ID, fs0(t, k).ID), tutela.ENOTFOUND)
		if len(fs) != 0 {
			t.Fatalf("factors visible from another tenant: %v", fs)
		}
		_, err := k.svc.BeginTOTP(ctx, other.ID, k.user.ID, "x", "y")
		mustCode(t, err, tutela.ENOTFOUND)
	})
}

func fs0(t *testing.T, k *kit) *mfa.Factor {
	t.Helper()
	fs, err := k.svc.Factors(ctx, k.tenant.ID, k.user.ID)
	if err != nil || len(fs) == 0 {
		t.Fatalf("factors = %v, %v", fs, err)
	}
	return fs[0]
}

func TestRecoveryCodes_SingleUseAndRegenerationVoids(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		codes, err := k.svc.NewRecoveryCodes(ctx, k.tenant.ID, k.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, c := range codes {
			s := c.Reveal()
			if len(s) != 29 || seen[s] { // six groups of four: 120 bits (ASVS 6.5.2)
				t.Fatalf("bad or repeated code %q", s)
			}
			seen[s] = true
		}
		if len(codes) != mfa.RecoveryCodeCount {
			t.Fatalf("%d codes", len(codes))
		}
		if ok, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, k.user.ID); ok {
			t.Fatal("recovery codes alone count as an active factor")
		}
		// Stored hashed: no code appears in the table.
		rows, err := k.db.SQL().QueryContext(ctx, `SELECT code_hash FROM mfa_recovery_codes`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var h []byte
			_ = rows.Scan(&h)
			for c := range seen {
				if bytes.Contains(h, []byte(strings.ReplaceAll(c, "-", ""))) {
					t.Fatal("recovery code stored in the clear")
				}
			}
		}
		rows.Close()

		// Input is forgiving about case, dashes and spaces.
		first := strings.ToUpper(strings.ReplaceAll(codes[0].Reveal(), "-", " "))
		n, err := k.svc.UseRecoveryCode(ctx, k.tenant.ID, k.user.ID, first)
		if err != nil || n != 9 {
			t.Fatalf("use = %d, %v", n, err)
		}
		_, err = k.svc.UseRecoveryCode(ctx, k.tenant.ID, k.user.ID, codes[0].Reveal())
		mustIs(t, err, mfa.ErrInvalidCode)
		for _, bad := range []string{"", "aaaa-bbbb-cccc-dddd", codes[1].Reveal() + "x", codes[1].Reveal()[:18]} {
			_, err = k.svc.UseRecoveryCode(ctx, k.tenant.ID, k.user.ID, bad)
			mustIs(t, err, mfa.ErrInvalidCode)
		}
		// Another user's and another tenant's codes are not this user's.
		other := k.newUser(t, k.tenant.ID, "bo@example.org")
		_, err = k.svc.UseRecoveryCode(ctx, k.tenant.ID, other.ID, codes[1].Reveal())
		mustIs(t, err, mfa.ErrInvalidCode)
		res, err := k.svc.VerifyCode(ctx, k.tenant.ID, k.user.ID, codes[1].Reveal())
		if err != nil || !res.RecoveryUsed || res.Remaining != 8 || res.Type != mfa.TypeRecovery {
			t.Fatalf("VerifyCode(recovery) = %+v, %v", res, err)
		}

		fresh, err := k.svc.NewRecoveryCodes(ctx, k.tenant.ID, k.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = k.svc.UseRecoveryCode(ctx, k.tenant.ID, k.user.ID, codes[2].Reveal())
		mustIs(t, err, mfa.ErrInvalidCode) // voided by regeneration
		if n, err := k.svc.UseRecoveryCode(ctx, k.tenant.ID, k.user.ID, fresh[0].Reveal()); err != nil || n != 9 {
			t.Fatalf("new code = %d, %v", n, err)
		}
		fs, _ := k.svc.Factors(ctx, k.tenant.ID, k.user.ID)
		if len(fs) != 1 || fs[0].Type != mfa.TypeRecovery || fs[0].Remaining != 9 || fs[0].LastUsedAt == nil {
			t.Fatalf("factors = %+v", fs)
		}
		acts := k.auditActions(t)
		if acts["mfa.recovery_used"] != 3 || acts["mfa.recovery_codes_generated"] != 2 {
			t.Fatalf("audit = %v", acts)
		}
		for _, e := range k.auditEvents(t, "mfa.recovery_used") {
			for _, c := range append(codes, fresh...) {
				if strings.Contains(string(mustJSON(t, e.Details)), strings.ReplaceAll(c.Reveal(), "-", "")[:8]) {
					t.Fatal("audit details hold a recovery code")
				}
			}
		}
	})
}

func TestRecoveryCodes_ConcurrentUseOnce(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		codes, err := k.svc.NewRecoveryCodes(ctx, k.tenant.ID, k.user.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := k.svc.UseRecoveryCode(ctx, k.tenant.ID, k.user.ID, codes[3].Reveal()); err == nil {
					wins.Add(1)
				} else if err != mfa.ErrInvalidCode {
					t.Errorf("unexpected: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("code used %d times", wins.Load())
		}
	})
}

func TestRemoveFactors(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		id, _ := enrol(t, k, k.tenant.ID, k.user.ID)
		if _, err := k.svc.NewRecoveryCodes(ctx, k.tenant.ID, k.user.ID); err != nil {
			t.Fatal(err)
		}
		bob := k.newUser(t, k.tenant.ID, "bob@example.org")
		enrol(t, k, k.tenant.ID, bob.ID)
		mustCode(t, k.svc.RemoveFactor(ctx, k.tenant.ID, bob.ID, id), tutela.ENOTFOUND) // not bob's
		mustCode(t, k.svc.RemoveFactor(ctx, k.tenant.ID, k.user.ID, "not-a-uuid"), tutela.ENOTFOUND)
		if err := k.svc.RemoveFactor(ctx, k.tenant.ID, k.user.ID, id); err != nil {
			t.Fatal(err)
		}
		if ok, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, k.user.ID); ok {
			t.Fatal("removed factor still active")
		}
		enrol(t, k, k.tenant.ID, k.user.ID)
		n, err := k.svc.RemoveAllFactors(ctx, k.tenant.ID, k.user.ID)
		if err != nil || n != 2 {
			t.Fatalf("RemoveAllFactors = %d, %v; want TOTP + recovery", n, err)
		}
		if fs, _ := k.svc.Factors(ctx, k.tenant.ID, k.user.ID); len(fs) != 0 {
			t.Fatalf("factors left: %v", fs)
		}
		if ok, _ := k.svc.HasActiveFactor(ctx, k.tenant.ID, bob.ID); !ok {
			t.Fatal("another user's factor removed")
		}
		var left int
		_ = k.db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1`, k.user.ID).Scan(&left)
		if left != 0 {
			t.Fatalf("%d recovery codes left", left)
		}
		acts := k.auditActions(t)
		if acts["mfa.factor_removed"] != 1 || acts["mfa.factors_reset"] != 1 {
			t.Fatalf("audit = %v", acts)
		}
	})
}
