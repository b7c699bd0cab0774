package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/vault"
)

// Regression: `keys rotate` then at once `keys rewrap` / `keys retire` of a tenant's blind_index
// and tokens keysets, while a node still had the old keys cached, lost data. Both are now
// refused until vault.cache_ttl (as configured: 2m here) plus the margin after the rotation as
// stored, with a message naming the keyset, the rotation time and the earliest time; after
// that they run. The tenant is given by slug.
func TestKeysCommands_RewrapRetireWaitForCacheTTLAfterRotation(t *testing.T) {
	environ := append(baseEnv(t), "TUTELA_VAULT_CACHE_TTL=2m")
	start := time.Now().UTC().Truncate(time.Second)
	clock := clocktest.New(start)
	ctx := context.Background()
	m, v, err := openKeys(&env{ctx: ctx, environ: environ, stdout: io.Discard, stderr: io.Discard, clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tn := &tutela.Tenant{Slug: "relief", Name: "Relief", Region: "eu-west"}
	u := &tutela.User{Email: "ada@example.org", DisplayName: "Ada"}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
		t.Fatal(err)
	}
	if err := m.DB.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Create(ctx, u) }); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rotate(ctx, tn.ID, vault.PurposeTokens); err != nil { // creates the keyset
		t.Fatal(err)
	}
	m.Close()
	clock.Add(time.Hour)
	run := func(cmd interface{ Run(*env) error }) (string, error) {
		t.Helper()
		out, _, err := runSubAt(t, environ, clock.Now, cmd)
		return out, err
	}

	rotatedAt := clock.Now()
	ids := map[string]string{}
	for _, p := range []string{vault.PurposeBlindIndex, vault.PurposeTokens} {
		out, err := run(keysRotateCmd{Purpose: p, Tenant: "relief"})
		if err != nil || !strings.Contains(out, "1 keyset(s) rotated; after 2m30s") {
			t.Fatalf("rotate %s --tenant relief: %v\n%s", p, err, out)
		}
		ks, err := sqlstore.KeysetStore{DB: openDB(t, environ)}.GetKeyset(ctx, tn.ID, p)
		if err != nil || !ks.RotatedAt.Equal(rotatedAt) {
			t.Fatalf("%s rotated_at %v, %v; want %v", p, ks.RotatedAt, err, rotatedAt)
		}
		ids[p] = ks.ID
	}
	notBefore := rotatedAt.Add(2*time.Minute + vault.RotationSettleMargin)
	refusal := func(op, purpose string) string {
		return fmt.Sprintf("%s refused: keyset %s (%s, tenant %s) was rotated at %s and nodes may still use its old "+
			"primary key for up to vault.cache_ttl; run %s at or after %s (restarting every node also makes them "+
			"reload the keyset, but this wait still applies)", op, ids[purpose], purpose, tn.ID,
			rotatedAt.Format(time.RFC3339), op, notBefore.Format(time.RFC3339))
	}
	for _, at := range []time.Time{rotatedAt, notBefore.Add(-time.Second)} {
		clock.Set(at)
		if _, err := run(keysRewrapCmd{Source: "users.email_digest"}); err == nil ||
			!strings.HasPrefix(err.Error(), refusal("rewrap", vault.PurposeBlindIndex)) {
			t.Fatalf("rewrap at %v: %v\nwant %s", at, err, refusal("rewrap", vault.PurposeBlindIndex))
		}
		if _, err := run(keysRetireCmd{Purpose: vault.PurposeTokens, Tenant: "relief"}); err == nil ||
			err.Error() != refusal("retire", vault.PurposeTokens) {
			t.Fatalf("retire at %v: %v\nwant %s", at, err, refusal("retire", vault.PurposeTokens))
		}
	}

	clock.Set(notBefore)
	if out, err := run(keysRewrapCmd{}); err != nil || !strings.Contains(out, "users.email_digest: done, 1 rows checked, 1 re-encrypted") {
		t.Fatalf("rewrap after the TTL: %v\n%s", err, out)
	}
	for _, p := range []string{vault.PurposeBlindIndex, vault.PurposeTokens} {
		if out, err := run(keysRetireCmd{Purpose: p, Tenant: "relief"}); err != nil || !strings.Contains(out, "1 key(s) left") {
			t.Fatalf("retire %s after the TTL: %v\n%s", p, err, out)
		}
	}
}

// An unknown --tenant (slug or ID) is an error with exit code 1, never "0 keyset(s) rotated".
func TestKeysCommands_UnknownTenantRefused(t *testing.T) {
	environ := baseEnv(t)
	for _, args := range [][]string{
		{"keys", "rotate", "--tenant", "relief"},
		{"keys", "rotate", "--tenant", tutela.NewID()},
		{"keys", "retire", "--purpose", vault.PurposeBlindIndex, "--tenant", "relief"},
	} {
		code, out, stderr := runCmd(t, environ, args...)
		if code != 1 || !strings.Contains(stderr, fmt.Sprintf("--tenant %q: no such tenant", args[len(args)-1])) ||
			strings.Contains(out, "rotated") {
			t.Fatalf("%v: exit %d\nstdout %s\nstderr %s", args, code, out, stderr)
		}
	}
}

// openDB opens the store of environ for a direct look at stored keysets.
func openDB(t *testing.T, environ []string) *sqlstore.DB {
	t.Helper()
	m, err := open(&env{ctx: context.Background(), environ: environ, stdout: io.Discard, stderr: io.Discard}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.DB
}
