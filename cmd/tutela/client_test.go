package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

var (
	clientIDRE     = regexp.MustCompile(`client_id:\s+([0-9a-f]{32})`)
	clientSecretRE = regexp.MustCompile(`client_secret: (\S+)`)
)

func TestClientCLI_CreateListRotateDisableDelete(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd(t, environ, "client", "create", "--tenant", "acme", "--name", "Case portal", "--type", "web",
		"--redirect-uri", "https://portal.example.org/cb", "--redirect-uri", "http://127.0.0.1:8080/cb",
		"--post-logout-uri", "https://portal.example.org/bye", "--scope", "openid", "--scope", "email", "--require-dpop")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	id, secret := clientIDRE.FindStringSubmatch(stdout), clientSecretRE.FindStringSubmatch(stdout)
	if id == nil || secret == nil {
		t.Fatalf("output %q", stdout)
	}
	if strings.Contains(stderr, secret[1]) {
		t.Fatal("secret written to the log stream")
	}
	code, stdout, stderr = runCmd(t, environ, "client", "create", "--tenant", "acme", "--name", "Mobile", "--type", "native",
		"--redirect-uri", "org.example.mobile:/cb")
	if code != 0 || clientSecretRE.MatchString(stdout) || !strings.Contains(stdout, "none") {
		t.Fatalf("public client: exit %d %q %s", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, environ, "client", "list", "--tenant", "acme")
	if code != 0 || !strings.Contains(stdout, id[1]) || !strings.Contains(stdout, "Mobile") || strings.Contains(stdout, secret[1]) {
		t.Fatalf("list: exit %d %q", code, stdout)
	}
	code, stdout, stderr = runCmd(t, environ, "client", "rotate-secret", "--tenant", "acme", "--client", id[1], "--overlap", "1h")
	second := clientSecretRE.FindStringSubmatch(stdout)
	if code != 0 || second == nil || second[1] == secret[1] {
		t.Fatalf("rotate: exit %d %q %s", code, stdout, stderr)
	}
	if code, _, _ := runCmd(t, environ, "client", "rotate-secret", "--tenant", "acme", "--client", id[1], "--overlap", "721h"); code != 1 {
		t.Fatal("an overlap over 30 days was accepted")
	}
	if code, stdout, stderr := runCmd(t, environ, "client", "disable", "--tenant", "acme", "--client", id[1]); code != 0 ||
		!strings.Contains(stdout, "disabled") {
		t.Fatalf("disable: exit %d %q %s", code, stdout, stderr)
	}

	db := openDB(t, environ)
	ctx := context.Background()
	tn := tenantID(t, &Main{DB: db}, "acme")
	var c *sqlstore.OIDCClient
	var oldOK, newOK bool
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		cs := tx.OIDCClients(tn)
		if c, err = cs.Get(ctx, id[1]); err != nil {
			return err
		}
		if oldOK, err = cs.VerifySecret(ctx, id[1], tutela.NewSecret(secret[1])); err != nil {
			return err
		}
		newOK, err = cs.VerifySecret(ctx, id[1], tutela.NewSecret(second[1]))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if c.Status != sqlstore.ClientDisabled || !c.RequireDPoP || len(c.RedirectURIs) != 2 || len(c.PostLogoutRedirectURIs) != 1 ||
		strings.Join(c.Scopes, " ") != "openid email" || !oldOK || !newOK {
		t.Fatalf("stored %+v; old secret %v, new %v (both within the overlap)", c, oldOK, newOK)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, r := range recs {
		actions[r.Event.Action] = true
		if bytes.Contains(r.Canonical, []byte(secret[1])) || bytes.Contains(r.Canonical, []byte(second[1])) {
			t.Fatalf("%s event holds a secret", r.Event.Action)
		}
	}
	for _, a := range []string{"oidc_client.create", "oidc_client.secret_rotate", "oidc_client.status"} {
		if !actions[a] {
			t.Errorf("no %s event", a)
		}
	}

	if code, _, stderr := runCmd(t, environ, "client", "enable", "--tenant", "acme", "--client", id[1]); code != 0 {
		t.Fatalf("enable: %s", stderr)
	}
	if code, _, stderr := runCmd(t, environ, "client", "delete", "--tenant", "acme", "--client", id[1]); code != 0 {
		t.Fatalf("delete: %s", stderr)
	}
	if code, _, _ := runCmd(t, environ, "client", "delete", "--tenant", "acme", "--client", id[1]); code != 1 {
		t.Fatal("deleting a deleted client succeeded")
	}
}

// A bad registration prints every problem and stores nothing; an unknown tenant is an error.
func TestClientCLI_RefusesBadRegistration(t *testing.T) {
	t.Parallel()
	environ := baseEnv(t)
	if code, _, stderr := runCmd(t, environ, "bootstrap", "--tenant", "acme", "--email", "root@example.org"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd(t, environ, "client", "create", "--tenant", "acme", "--name", "Bad", "--type", "web",
		"--redirect-uri", "http://portal.example.org/cb", "--redirect-uri", "https://localhost/cb#x", "--scope", "email")
	if code != 1 || clientIDRE.MatchString(stdout) {
		t.Fatalf("exit %d %q", code, stdout)
	}
	if strings.Count(stderr, "redirect_uris:") != 2 || !strings.Contains(stderr, "scopes:") {
		t.Fatalf("not every problem reported: %s", stderr)
	}
	if code, _, _ := runCmd(t, environ, "client", "create", "--tenant", "nope", "--name", "X", "--type", "web",
		"--redirect-uri", "https://x.example/cb"); code != 1 {
		t.Fatal("unknown tenant accepted")
	}
	if code, stdout, _ := runCmd(t, environ, "client", "list", "--tenant", "acme"); code != 0 || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("a refused registration was stored: %q", stdout)
	}
}
