package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tutela/clocktest"
	"tutela/password"
	"tutela/vault"
)

func postJSON(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(url, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&e)
	return res.StatusCode, e.Error.Code
}

// The password pepper end to end (ASVS 4.0.3 2.4.5): a password set through the API is stored
// peppered under the vault's pepper key, and the stored hash alone verifies nothing; a legacy
// (imported bcrypt) hash signs in and is replaced by a peppered one; after a pepper rotation,
// `keys retire` refuses while a hash still names the old key, sign-in moves the hash to the new
// key, and retire then succeeds without locking anyone out.
func TestPepper_SetLegacyUpgradeRotateRetire(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	dataDir := strings.TrimPrefix(env[0], "TUTELA_DATA_DIR=")
	code, stdout, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org")
	if code != 0 {
		t.Fatalf("bootstrap exit %d: %s", code, stderr)
	}
	token := tokenRE.FindString(stdout)
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "tutela.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storedHash := func() string {
		t.Helper()
		var h string
		if err := db.QueryRow(`SELECT password_hash FROM users WHERE password_hash IS NOT NULL -- the one user; e-mails are sealed (issue 13)`).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	pepperKey := func(h string) uint32 {
		t.Helper()
		id, ok := password.PepperKeyID(h)
		if !ok {
			t.Fatalf("stored hash has no pepper: %q", h)
		}
		return id
	}
	const pw, legacyPW = "bR4ve-new_wOrld:kiln 93", "an imported passphrase 4 kiln"
	login := func(addr, pw string) {
		t.Helper()
		status, code := postJSON(t, "http://"+addr+"/v1/auth/login", map[string]string{"tenant": "acme", "email": "root@example.org", "password": pw})
		if status == http.StatusUnauthorized || status/100 == 5 || code == "invalid_credentials" {
			t.Fatalf("sign-in: status %d, %q", status, code)
		}
	}

	addr, _, stop := startServe(t, env)
	if status, code := postJSON(t, "http://"+addr+"/v1/auth/setup", map[string]string{"token": token, "password": pw}); status/100 != 2 {
		t.Fatalf("setup: %d %q", status, code)
	}
	stop()
	first := storedHash()
	key1 := pepperKey(first)
	// A copy of the database is not enough: without the vault's key nothing verifies.
	plain, err := password.NewHasher(password.DefaultParams(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := plain.Verify(context.Background(), pw, first); ok || !errors.Is(err, password.ErrPepperUnavailable) {
		t.Fatalf("stored hash verified without the pepper: %v, %v", ok, err)
	}

	// An imported bcrypt hash signs in and comes out peppered.
	legacy, _ := bcrypt.GenerateFromPassword([]byte(legacyPW), bcrypt.MinCost)
	if _, err := db.Exec(`UPDATE users SET password_hash = ?`, string(legacy)); err != nil {
		t.Fatal(err)
	}
	addr, _, stop = startServe(t, env)
	login(addr, legacyPW)
	stop()
	if got := pepperKey(storedHash()); got != key1 {
		t.Fatalf("legacy hash rehashed under key %d, want the primary %d", got, key1)
	}

	// Rotate the pepper: retiring the old key is refused while the hash still names it.
	clock := clocktest.New(time.Now().UTC())
	if _, errs, err := runSubAt(t, env, clock.Now, keysRotateCmd{Purpose: vault.PurposePasswordPepper}); err != nil {
		t.Fatalf("rotate: %v %s", err, errs)
	}
	if _, _, err := runSubAt(t, env, clock.Now, keysRetireCmd{Purpose: vault.PurposePasswordPepper}); err == nil ||
		!strings.Contains(err.Error(), "1 stored password hash(es) still use an old pepper key") {
		t.Fatalf("retire with a hash under the old key: %v", err)
	}
	addr, _, stop = startServe(t, env)
	login(addr, legacyPW)
	stop()
	if key2 := pepperKey(storedHash()); key2 == key1 {
		t.Fatal("sign-in after rotation kept the old pepper key")
	}
	settleRotation(clock)
	if out, errs, err := runSubAt(t, env, clock.Now, keysRetireCmd{Purpose: vault.PurposePasswordPepper}); err != nil {
		t.Fatalf("retire after every hash moved: %v %s%s", err, out, errs)
	}
	addr, _, _ = startServe(t, env)
	login(addr, legacyPW)
}

// A pepper keyset lost from beside stored hashes made under it (a partial restore, a deleted
// row) is not replaced at start-up by a new one, under which every peppered hash would fail and
// each sign-in count as a wrong password until users were locked out: serve refuses, naming the
// keyset and the fix, and creates nothing. Without any peppered hash a missing keyset is a first
// start and is created.
func TestServe_MissingPepperKeysetBesidePepperedHashesRefused(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	code, stdout, stderr := runCmd(t, env, "bootstrap", "--tenant", "acme", "--email", "root@example.org")
	if code != 0 {
		t.Fatalf("bootstrap exit %d: %s", code, stderr)
	}
	addr, _, stop := startServe(t, env)
	if status, code := postJSON(t, "http://"+addr+"/v1/auth/setup", map[string]string{"token": tokenRE.FindString(stdout),
		"password": "bR4ve-new_wOrld:kiln 93"}); status/100 != 2 {
		t.Fatalf("setup: %d %q", status, code)
	}
	stop()
	db, err := sql.Open("sqlite", filepath.Join(dataDirOf(env), "tutela.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var h string
	if err := db.QueryRow(`SELECT password_hash FROM users WHERE password_hash IS NOT NULL -- the one user; e-mails are sealed (issue 13)`).Scan(&h); err != nil {
		t.Fatal(err)
	}
	id, ok := password.PepperKeyID(h)
	if !ok {
		t.Fatalf("stored hash has no pepper: %q", h)
	}
	if _, err := db.Exec(`DELETE FROM keysets WHERE purpose = ?`, vault.PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, env, "the password_pepper keyset is missing", fmt.Sprintf("pepper key %d", id),
		"restore the database (keysets table included) from a backup")
	keysets := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM keysets WHERE purpose = ?`, vault.PurposePasswordPepper).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if keysets() != 0 {
		t.Fatal("a new pepper keyset was created beside peppered hashes")
	}
	// Nor does `keys rotate` make one: it would lock out every peppered hash just the same.
	if _, _, err := runSub(t, env, keysRotateCmd{Purpose: vault.PurposePasswordPepper}); err == nil ||
		!strings.Contains(err.Error(), "password_pepper keyset does not exist") {
		t.Fatalf("keys rotate of a missing pepper keyset: %v", err)
	}
	if keysets() != 0 {
		t.Fatal("keys rotate created a pepper keyset beside peppered hashes")
	}
	// No stored hash needs a pepper key (here: an imported bcrypt hash): a new keyset is made.
	legacy, _ := bcrypt.GenerateFromPassword([]byte("an imported passphrase 4 kiln"), bcrypt.MinCost)
	if _, err := db.Exec(`UPDATE users SET password_hash = ?`, string(legacy)); err != nil {
		t.Fatal(err)
	}
	servedOnce(t, env)
	if keysets() != 1 {
		t.Fatal("no pepper keyset created for a deployment without peppered hashes")
	}
}
