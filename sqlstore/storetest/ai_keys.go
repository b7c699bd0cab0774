package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/sqlstore"
	"tutela/vault"
)

func keyIDs(keys []ai.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

// Adding a key is rotation: the new key is primary, the one before is the fallback, and the one
// before that is deleted in the same transaction.
func testAIKeyRotation(t *testing.T, open Opener) {
	k := newAIKit(t, open, "airot")
	p := k.provider(t, k.a, "openai")
	other := k.provider(t, k.a, "other")
	k.addKey(t, k.a, other.ID, "sk-other-provider-000000")
	secrets := []string{"sk-first-key-1111111111", "sk-second-key-2222222222", "sk-third-key-3333333333"}
	var infos []*ai.KeyInfo
	for i, s := range secrets {
		infos = append(infos, k.addKey(t, k.a, p.ID, s))
		if i == 1 {
			continue // the third is added in the same clock tick as the second: the order still holds
		}
		k.clock.Add(time.Second)
	}
	if infos[0].Hint != "…1111" || infos[0].CreatedBy != "admin@example.org" || !tutela.ValidID(infos[0].ID) {
		t.Fatalf("key info %+v", infos[0])
	}
	keys := k.keys(t, k.a, p.ID)
	if len(keys) != 2 || keys[0].ID != infos[2].ID || keys[1].ID != infos[1].ID ||
		keys[0].Secret.Reveal() != secrets[2] || keys[1].Secret.Reveal() != secrets[1] {
		t.Fatalf("keys after three adds: %v, want [%s %s]", keyIDs(keys), infos[2].ID, infos[1].ID)
	}
	got := k.get(t, k.a, p.ID)
	if len(got.Keys) != 2 || got.Keys[0].ID != infos[2].ID || got.Keys[0].Hint != "…3333" || got.Keys[1].ID != infos[1].ID {
		t.Fatalf("provider's key infos %+v", got.Keys)
	}
	// The oldest key's row is gone, not just hidden, and its retirement is audited.
	var n int
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM ai_provider_keys WHERE id = $1`, infos[0].ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("retired key rows: %d, %v", n, err)
	}
	ev := lastAIEvent(t, k.db, k.a, "ai.key_retire")
	if ev.Event.TargetID != p.ID || ev.Event.Details["key_id"] != infos[0].ID || ev.Event.Details["reason"] != "rotated" {
		t.Fatalf("retire event %+v", ev.Event)
	}
	// The other provider's key is untouched by this provider's rotations.
	if keys := k.keys(t, k.a, other.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-other-provider-000000" {
		t.Fatalf("other provider's keys: %v", keyIDs(keys))
	}
	// DeleteKey ends the overlap early; a second delete, or a key of another provider, is not found.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, infos[2].ID) })
	if keys := k.keys(t, k.a, p.ID); len(keys) != 1 || keys[0].ID != infos[1].ID {
		t.Fatalf("after delete: %v", keyIDs(keys))
	}
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, infos[2].ID) }), tutela.ENOTFOUND)
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, infos[0].ID) }), tutela.ENOTFOUND)
	otherKey := k.get(t, k.a, other.ID).Keys[0].ID
	mustCode(t, k.do(k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, otherKey) }), tutela.ENOTFOUND)
	if ev := lastAIEvent(t, k.db, k.a, "ai.key_retire"); ev.Event.Details["key_id"] != infos[2].ID || ev.Event.Details["reason"] != "deleted" {
		t.Fatalf("delete event %+v", ev.Event)
	}
	// Deleting the provider deletes its last key.
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) })
	if n := countRows(t, k.db, "ai_provider_keys"); n != 1 {
		t.Fatalf("%d key rows after deleting the provider, want 1 (the other provider's)", n)
	}
}

// Parallel rotations of one provider (on PostgreSQL, truly concurrent) still leave exactly
// ai.MaxActiveKeys keys, each opening.
func testAIKeyConcurrentRotation(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiconrot")
	p := k.provider(t, k.a, "openai")
	k.addKey(t, k.a, p.ID, "sk-first-key-before-the-rush") // makes the keyset outside the rush
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			err := k.do(k.a, func(s sqlstore.AI) error {
				_, err := s.AddKey(ctx, p.ID, tutela.NewSecret(fmt.Sprintf("sk-parallel-key-%04d", i)), "")
				return err
			})
			if err != nil {
				t.Errorf("AddKey %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	keys := k.keys(t, k.a, p.ID)
	if len(keys) != ai.MaxActiveKeys || countRows(t, k.db, "ai_provider_keys") != ai.MaxActiveKeys {
		t.Fatalf("%d keys after parallel rotations, want %d", len(keys), ai.MaxActiveKeys)
	}
	for _, key := range keys {
		if !strings.HasPrefix(key.Secret.Reveal(), "sk-parallel-key-") {
			t.Fatalf("kept key %s is not one of the last rotations", key.ID)
		}
	}
	if recs := aiActions(t, k.db, k.a); countAction(recs, "ai.key_add") != 13 || countAction(recs, "ai.key_retire") != 11 {
		t.Fatalf("%d adds and %d retirements audited, want 13 and 11", countAction(recs, "ai.key_add"), countAction(recs, "ai.key_retire"))
	}
}

func countAction(recs []sqlstore.AuditRecord, action string) int {
	n := 0
	for _, r := range recs {
		if r.Event.Action == action {
			n++
		}
	}
	return n
}

// A sealed key opens only in its own row, under its own tenant's keyset: a ciphertext copied
// into another key's row (of another provider, or of another tenant) does not open there.
func testAIKeyAAD(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiaad")
	p1, p2 := k.provider(t, k.a, "one"), k.provider(t, k.a, "two")
	pb := k.provider(t, k.b, "one")
	k1 := k.addKey(t, k.a, p1.ID, "sk-provider-one-11111111")
	k2 := k.addKey(t, k.a, p2.ID, "sk-provider-two-22222222")
	kb := k.addKey(t, k.b, pb.ID, "sk-tenant-b-key-33333333")
	sealed := func(id string) []byte {
		var ct []byte
		if err := k.db.SQL().QueryRowContext(ctx, `SELECT ciphertext FROM ai_provider_keys WHERE id = $1`, id).Scan(&ct); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, []byte("sk-provider")) || bytes.Contains(ct, []byte("sk-tenant")) {
			t.Fatalf("key %s stored in clear", id)
		}
		return ct
	}
	set := func(id string, ct []byte) {
		if _, err := k.db.SQL().ExecContext(ctx, `UPDATE ai_provider_keys SET ciphertext = $1 WHERE id = $2`, ct, id); err != nil {
			t.Fatal(err)
		}
	}
	c1, c2, cb := sealed(k1.ID), sealed(k2.ID), sealed(kb.ID)
	set(k2.ID, c1) // provider one's key into provider two's row
	if err := k.do(k.a, func(s sqlstore.AI) error { _, err := s.Keys(ctx, p2.ID); return err }); err == nil {
		t.Fatal("a ciphertext moved to another provider's row opened")
	} else if strings.Contains(err.Error(), "sk-provider") {
		t.Fatalf("error reveals a key: %v", err)
	}
	set(k2.ID, c2)
	set(kb.ID, c1) // tenant A's key into tenant B's row
	if err := k.do(k.b, func(s sqlstore.AI) error { _, err := s.Keys(ctx, pb.ID); return err }); err == nil {
		t.Fatal("tenant A's ciphertext opened in tenant B's row")
	}
	set(kb.ID, cb)
	// Restored, every key opens again: the failures above were the moves, not the store.
	if keys := k.keys(t, k.a, p2.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-provider-two-22222222" {
		t.Fatalf("restored key: %v", keyIDs(keys))
	}
	if keys := k.keys(t, k.b, pb.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-tenant-b-key-33333333" {
		t.Fatalf("restored key of B: %v", keyIDs(keys))
	}
	// A flipped bit does not open either.
	bad := slices.Clone(c1)
	bad[len(bad)-1] ^= 1
	set(k1.ID, bad)
	if err := k.do(k.a, func(s sqlstore.AI) error { _, err := s.Keys(ctx, p1.ID); return err }); err == nil {
		t.Fatal("a tampered ciphertext opened")
	}
}

// The key's text is in no audit event and no error, whichever way the key goes through the
// store; bad keys are refused without echoing them and store nothing.
func testAIKeyNotLeaked(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aileak")
	p := k.provider(t, k.a, "openai")
	keys := []string{"sk-live-AAAAAAAAAAAAAAAAAAAAAAAA", "sk-live-BBBBBBBBBBBBBBBBBBBBBBBB", "sk-live-CCCCCCCCCCCCCCCCCCCCCCCC"}
	for _, s := range keys {
		k.addKey(t, k.a, p.ID, s)
		k.clock.Add(time.Second)
	}
	info := k.get(t, k.a, p.ID).Keys[0]
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, info.ID) })
	var errs []error
	for _, bad := range []string{"", "sk with space DDDDDDDDDDDDDD", "sk-\x00-EEEEEEEEEEEEEEEEE", "sk-é-FFFFFFFFFFFFFFFFF",
		strings.Repeat("G", ai.MaxKeyBytes+1)} {
		err := k.do(k.a, func(s sqlstore.AI) error {
			_, err := s.AddKey(ctx, p.ID, tutela.NewSecret(bad), "")
			return err
		})
		mustField(t, err, "key")
		errs = append(errs, err)
		keys = append(keys, bad)
	}
	// AddKey on an unknown or foreign provider fails without the key too.
	errs = append(errs, k.do(k.b, func(s sqlstore.AI) error {
		_, err := s.AddKey(ctx, p.ID, tutela.NewSecret("sk-live-HHHHHHHHHHHHHHHHHHHHHHHH"), "")
		return err
	}))
	keys = append(keys, "sk-live-HHHHHHHHHHHHHHHHHHHHHHHH")
	if n := countRows(t, k.db, "ai_provider_keys"); n != 1 {
		t.Fatalf("%d key rows, want 1 (refused keys stored?)", n)
	}
	k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteProvider(ctx, p.ID) })
	recs := aiActions(t, k.db, "")
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.Event.Action]++
		for _, s := range keys {
			if len(s) > 4 && bytes.Contains(r.Canonical, []byte(s[4:])) {
				t.Fatalf("%s event holds a key: %s", r.Event.Action, r.Canonical)
			}
		}
	}
	for _, err := range errs {
		for _, s := range keys {
			if len(s) > 4 && strings.Contains(err.Error()+tutela.ErrorMessage(err), s[4:]) {
				t.Fatalf("error %v holds a key", err)
			}
		}
	}
	// Every key row's audit trail is there: three adds, two retirements (one rotation, one
	// delete), and the provider's deletion naming the last key's ID.
	if seen["ai.key_add"] != 3 || seen["ai.key_retire"] != 2 || seen["ai.provider_delete"] != 1 {
		t.Fatalf("audit actions %v", seen)
	}
	// A raw look at the table too: no stored event holds a key.
	rows, err := k.db.SQL().QueryContext(ctx, `SELECT canonical FROM audit_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var c []byte
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		n++
		for _, s := range keys {
			if len(s) > 4 && bytes.Contains(c, []byte(s[4:])) {
				t.Fatalf("a stored audit event holds a key: %s", c)
			}
		}
	}
	if err := rows.Err(); err != nil || n < len(recs) {
		t.Fatalf("read %d stored events (%v), want at least %d", n, err, len(recs))
	}
}

// Rotating the tenant's ai_keys keyset, then rewrapping (AIKeysSource, as `tutela keys rewrap`
// lists it) and retiring the old key: every API key still opens.
func testAIKeysRewrap(t *testing.T, open Opener) {
	k := newAIKit(t, open, "aiwrap")
	p := k.provider(t, k.a, "openai")
	k.addKey(t, k.a, p.ID, "sk-before-rotation-000001")
	k.clock.Add(time.Second)
	k.addKey(t, k.a, p.ID, "sk-before-rotation-000002")
	pb := k.provider(t, k.b, "openai")
	k.addKey(t, k.b, pb.ID, "sk-tenant-b-untouched-0003")
	if _, err := k.vault.Rotate(ctx, k.a, vault.PurposeAIKeys); err != nil {
		t.Fatal(err)
	}
	settle(k.clock, k.vault)
	src := sqlstore.AIKeysSource(k.db)
	if n, err := k.vault.Outdated(ctx, src, k.a, vault.PurposeAIKeys); err != nil || n != 2 {
		t.Fatalf("Outdated = %d, %v; want 2", n, err)
	}
	pr, err := k.vault.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 1})
	if err != nil || pr.Rewrapped != 2 {
		t.Fatalf("rewrap: %+v, %v; want 2 rewrapped", pr, err)
	}
	if _, err := k.vault.Retire(ctx, k.a, vault.PurposeAIKeys); err != nil {
		t.Fatal(err)
	}
	keys := k.keys(t, k.a, p.ID)
	if len(keys) != 2 || keys[0].Secret.Reveal() != "sk-before-rotation-000002" || keys[1].Secret.Reveal() != "sk-before-rotation-000001" {
		t.Fatalf("keys after rewrap and retire: %v", keyIDs(keys))
	}
	if keys := k.keys(t, k.b, pb.ID); len(keys) != 1 || keys[0].Secret.Reveal() != "sk-tenant-b-untouched-0003" {
		t.Fatalf("tenant B's key after A's rotation: %v", keyIDs(keys))
	}
}

// testAIKeysGuarded: a provider's keys never follow its base URL to another host (they were
// issued for the first), the same key cannot be added twice (it would push the real fallback
// out), and only a purpose in the register may use the gateway.
func testAIKeysGuarded(t *testing.T, open Opener) {
	k := newAIKit(t, open, "ai-guard")
	p := k.provider(t, k.a, "openrouter")
	k.addKey(t, k.a, p.ID, "sk-or-first-key-0000000001")
	moved := *p
	moved.BaseURL = "https://collector.example.net/v1"
	err := k.do(k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, &moved) })
	if tutela.ErrorCode(err) != tutela.ECONFLICT || fieldOf(err) != "base_url" {
		t.Fatalf("moving a keyed provider to another host: %v", err)
	}
	if got := k.get(t, k.a, p.ID); got.BaseURL != p.BaseURL {
		t.Fatalf("base_url changed to %q", got.BaseURL)
	}
	samehost := *p
	samehost.BaseURL = "https://OPENROUTER.example.org/api/v2"
	k.must(t, k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, &samehost) })

	err = k.do(k.a, func(s sqlstore.AI) error {
		_, err := s.AddKey(ctx, p.ID, tutela.NewSecret("sk-or-first-key-0000000001"), "t")
		return err
	})
	if tutela.ErrorCode(err) != tutela.ECONFLICT || strings.Contains(err.Error(), "0000000001") {
		t.Fatalf("the same key again: %v", err)
	}
	if n := len(k.keys(t, k.a, p.ID)); n != 1 {
		t.Fatalf("%d keys after a refused duplicate", n)
	}
	// With its keys deleted, the provider may move; the new host gets new keys.
	for _, key := range k.get(t, k.a, p.ID).Keys {
		k.must(t, k.a, func(s sqlstore.AI) error { return s.DeleteKey(ctx, p.ID, key.ID) })
	}
	moved.Name = samehost.Name
	k.must(t, k.a, func(s sqlstore.AI) error { return s.UpdateProvider(ctx, &moved) })

	k.must(t, k.a, func(s sqlstore.AI) error { return s.PutModel(ctx, &ai.Model{Name: "m", ProviderID: p.ID}) })
	err = k.do(k.a, func(s sqlstore.AI) error {
		return s.PutPurpose(ctx, &ai.Purpose{Purpose: "undeclared", Models: []string{"m"}})
	})
	if tutela.ErrorCode(err) != tutela.EINVALID || fieldOf(err) != "purpose" {
		t.Fatalf("a purpose outside the register: %v", err)
	}
}

// fieldOf is the input field a *tutela.Error names ("" for any other error).
func fieldOf(err error) string {
	var e *tutela.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
