package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
)

// Regression: a keyset rotated by another process is refused for rewrap and retire until every
// node has reloaded it (cache TTL plus the margin, measured from rotated_at as stored), for
// every kind of keyset: before that a node may still write under the old primary and look up
// with only the old keys, and retiring would destroy what it just wrote.
func TestRewrapRetire_RefusedUntilEveryNodeReloadedTheRotation(t *testing.T) {
	t.Parallel()
	for _, purpose := range []string{PurposePersonalData, PurposeLookup, PurposeBlindIndex} {
		t.Run(purpose, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
			clock := clocktest.New(t0)
			st := newMemStore()
			kek, _ := NewLocalKEK(randomMaster(t))
			// node serves traffic; cli is the process that rotates, rewraps and retires.
			node, _ := New(ctx, kek, st, Options{Clock: clock.Now, CacheTTL: 10 * time.Minute})
			cli, _ := New(ctx, kek, st, Options{Clock: clock.Now, CacheTTL: 10 * time.Minute})
			src := &memSource{}
			var oldKey uint32
			if KindOf(purpose) == KindPRF {
				id, err := node.PRFPrimaryKey(ctx, "t", purpose)
				if err != nil {
					t.Fatal(err)
				}
				oldKey = id
				d, _ := node.PRF(ctx, "t", purpose, id, []byte("v"), 16)
				src.items = append(src.items, RewrapItem{ID: "1", TenantID: "t", Purpose: purpose, Ciphertext: d, KeyID: id,
					Recompute: func(ctx context.Context, keyID uint32) ([]byte, error) {
						return node.PRF(ctx, "t", purpose, keyID, []byte("v"), 16)
					}})
			} else {
				ct, err := node.Encrypt(ctx, "t", purpose, []byte("v"), []byte("1"))
				if err != nil {
					t.Fatal(err)
				}
				oldKey = KeyID(ct)
				src.items = append(src.items, RewrapItem{ID: "1", TenantID: "t", Purpose: purpose, AAD: []byte("1"), Ciphertext: ct})
			}
			clock.Add(time.Minute) // within the node's cache TTL
			rotated, err := cli.Rotate(ctx, "t", purpose)
			if err != nil {
				t.Fatal(err)
			}
			rotatedAt := t0.Add(time.Minute)
			if !rotated.RotatedAt.Equal(rotatedAt) {
				t.Fatalf("rotated_at %v, want %v", rotated.RotatedAt, rotatedAt)
			}
			// The serving node still has the old primary cached: the danger being guarded.
			if KindOf(purpose) == KindPRF {
				if id, _ := node.PRFPrimaryKey(ctx, "t", purpose); id != oldKey {
					t.Fatalf("node primary %d, want the cached old %d", id, oldKey)
				}
			} else if ct, _ := node.Encrypt(ctx, "t", purpose, []byte("w"), nil); KeyID(ct) != oldKey {
				t.Fatalf("node wrote under key %d, want the cached old %d", KeyID(ct), oldKey)
			}

			notBefore := rotatedAt.Add(10*time.Minute + RotationSettleMargin)
			want := func(op string) string {
				return fmt.Sprintf("%s refused: keyset %s (%s, tenant t) was rotated at %s and nodes may still use its old "+
					"primary key for up to vault.cache_ttl; run %s at or after %s (restarting every node also makes them "+
					"reload the keyset, but this wait still applies)", op, rotated.ID, purpose,
					rotatedAt.Format(time.RFC3339), op, notBefore.Format(time.RFC3339))
			}
			check := func(op string, err error) {
				t.Helper()
				var re *RotationUnsettledError
				if !errors.As(err, &re) || !errors.Is(err, ErrRotationUnsettled) || err.Error() != want(op) ||
					tutela.ErrorCode(err) != tutela.ECONFLICT || !re.NotBefore.Equal(notBefore) {
					t.Fatalf("%s right after rotation: %v (code %s)\nwant %s", op, err, tutela.ErrorCode(err), want(op))
				}
			}
			before := st.m[[2]string{"t", purpose}]
			// At once, and one second before the settle time: both refused, nothing changed.
			for _, at := range []time.Time{rotatedAt, notBefore.Add(-time.Second)} {
				clock.Set(at)
				p, err := cli.Rewrap(ctx, src, RewrapOptions{})
				check("rewrap", err)
				if p.Rewrapped != 0 || src.items[0].currentKey() != oldKey {
					t.Fatalf("refused rewrap changed rows: %+v", p)
				}
				_, err = cli.Retire(ctx, "t", purpose)
				check("retire", err)
				if after := st.m[[2]string{"t", purpose}]; after.Version != before.Version || len(after.Keys) != 2 {
					t.Fatalf("refused retire changed the keyset: %+v", after)
				}
			}

			// Once settled, the node has reloaded the rotation and rewrap and retire run.
			clock.Set(notBefore)
			if KindOf(purpose) == KindPRF {
				if id, _ := node.PRFPrimaryKey(ctx, "t", purpose); id == oldKey {
					t.Fatal("node still on the old primary after the cache TTL")
				}
			} else if ct, _ := node.Encrypt(ctx, "t", purpose, []byte("w"), nil); KeyID(ct) == oldKey {
				t.Fatal("node still writes under the old primary after the cache TTL")
			}
			if p, err := cli.Rewrap(ctx, src, RewrapOptions{}); err != nil || p.Rewrapped != 1 {
				t.Fatalf("rewrap after the TTL: %+v, %v", p, err)
			}
			if n, err := cli.Outdated(ctx, src, "t", purpose); err != nil || n != 0 {
				t.Fatalf("outdated after rewrap: %d, %v", n, err)
			}
			ks, err := cli.Retire(ctx, "t", purpose)
			if err != nil || len(ks.Keys) != 1 {
				t.Fatalf("retire after the TTL: %+v, %v", ks, err)
			}
		})
	}
}

// A keyset never rotated has no old primary anywhere: rewrap (of legacy or foreign rows) and
// retire are not held back, and the guard reads rotated_at from the store, not this process's
// memory: a vault that did not rotate refuses too.
func TestRewrapRetire_GuardReadsStoredRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	st := newMemStore()
	kek, _ := NewLocalKEK(randomMaster(t))
	a, _ := New(ctx, kek, st, Options{Clock: clock.Now})
	if _, err := a.Encrypt(ctx, "", PurposeTOTP, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Retire(ctx, "", PurposeTOTP); err != nil {
		t.Fatalf("retire of a never-rotated keyset: %v", err)
	}
	if _, err := a.Rotate(ctx, "", PurposeTOTP); err != nil {
		t.Fatal(err)
	}
	b, _ := New(ctx, kek, st, Options{Clock: clock.Now}) // another process, started after the rotation
	if _, err := b.Retire(ctx, "", PurposeTOTP); !errors.Is(err, ErrRotationUnsettled) ||
		!strings.Contains(err.Error(), "retire refused") {
		t.Fatalf("retire by another process right after rotation: %v", err)
	}
	clock.Add(b.ttl + RotationSettleMargin)
	if _, err := b.Retire(ctx, "", PurposeTOTP); err != nil {
		t.Fatalf("retire after the TTL: %v", err)
	}
}

// A retire whose scans began before the keyset settled is refused even when it asks after: a
// node still on the old primary while the scan ran could have written behind its cursor.
func TestRetireScannedAt_ScanMustBeginAfterTheKeysetSettled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	kek, _ := NewLocalKEK(randomMaster(t))
	v, err := New(ctx, kek, newMemStore(), Options{Clock: clock.Now, CacheTTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Encrypt(ctx, "t", PurposePersonalData, []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rotate(ctx, "t", PurposePersonalData); err != nil {
		t.Fatal(err)
	}
	scanStart := clock.Now().Add(time.Minute) // scans began before the keyset settled
	clock.Add(time.Hour)                      // and finished long after
	if _, err := v.RetireScannedAt(ctx, "t", PurposePersonalData, scanStart); !errors.Is(err, ErrRotationUnsettled) {
		t.Fatalf("retire after a scan begun before settling: %v, want ErrRotationUnsettled", err)
	}
	ks, err := v.RetireScannedAt(ctx, "t", PurposePersonalData, clock.Now())
	if err != nil || len(ks.Keys) != 1 {
		t.Fatalf("retire after a scan begun once settled: %+v %v", ks, err)
	}
}
