package webtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The self-test proves the harness before any real page relies on it: axe must see a
// violation planted on purpose, stay quiet on a clean page, run under the same strict
// Content-Security-Policy as the hosted pages, and the virtual authenticator must complete a
// real WebAuthn ceremony.

// servePage serves body under a strict nonce-based CSP like the hosted pages'; {{nonce}} in body is
// replaced by the response's nonce.
func servePage(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		nonce := base64.RawStdEncoding.EncodeToString([]byte(rand.Text()))
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+
			"' 'strict-dynamic'; style-src 'self' 'nonce-"+nonce+"'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, strings.ReplaceAll(body, "{{nonce}}", nonce))
	}
}

const cleanPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><main><h1>Sign in</h1>
<form method="post" action="/"><label for="email">E-mail</label>
<input id="email" name="email" type="email" autocomplete="username">
<button id="submit" type="submit">Continue</button></form></main>
<script nonce="{{nonce}}">document.body.dataset.ready = "yes";</script></body></html>`

// An <input> no label names is axe's critical "label" rule (WCAG 4.1.2).
const unlabelledPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><main><h1>Sign in</h1><form method="post" action="/"><input id="email" name="email" type="text">
<button type="submit">Continue</button></form></main></body></html>`

// Only moderate findings: no landmark, no level-one heading.
const moderatePage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Note</title></head>
<body><p>Nothing here.</p></body></html>`

// An inline script without the nonce: the CSP refuses it and the browser logs the refusal.
const refusedScriptPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused</title></head>
<body><main><h1>Refused</h1></main><script>document.body.dataset.ran = "yes";</script></body></html>`

// Registers a discoverable, user-verified passkey, then signs in with it, as the hosted pages'
// passkey script does; the outcome lands in data attributes.
const passkeyPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Passkey</title></head>
<body><main><h1>Passkey</h1><p id="out">waiting</p></main>
<script nonce="{{nonce}}">
(async () => {
  const rnd = n => crypto.getRandomValues(new Uint8Array(n));
  const b64 = buf => btoa(String.fromCharCode(...new Uint8Array(buf)));
  try {
    const made = await navigator.credentials.create({publicKey: {
      challenge: rnd(32), rp: {name: "Tutela test", id: location.hostname},
      user: {id: rnd(16), name: "ada@example.test", displayName: "Ada"},
      pubKeyCredParams: [{type: "public-key", alg: -7}],
      authenticatorSelection: {residentKey: "required", userVerification: "required"},
    }});
    const got = await navigator.credentials.get({publicKey: {
      challenge: rnd(32), rpId: location.hostname, userVerification: "required",
    }});
    document.body.dataset.created = b64(made.rawId);
    document.body.dataset.asserted = b64(got.rawId);
    document.getElementById("out").textContent = "done";
  } catch (e) {
    document.getElementById("out").textContent = "error: " + e.name + ": " + e.message;
  }
})();
</script></body></html>`

func TestHarness(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /clean", servePage(cleanPage))
	mux.Handle("GET /unlabelled", servePage(unlabelledPage))
	mux.Handle("GET /moderate", servePage(moderatePage))
	mux.Handle("GET /refused", servePage(refusedScriptPage))
	mux.Handle("GET /passkey", servePage(passkeyPage))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// WebAuthn needs a secure context and a domain as RP ID: http://localhost is both, an IP
	// address is neither.
	base := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	b := Start(t)

	t.Run("AxeReportsUnlabelledInput", func(t *testing.T) {
		tab := b.NewTab(t)
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/unlabelled")); err != nil {
			t.Fatal(err)
		}
		vs, err := RunAxe(tab.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(vs, func(v Violation) bool { return v.ID == "label" })
		if i < 0 {
			t.Fatalf("axe missed the unlabelled input; got %v", vs)
		}
		if v := vs[i]; v.Impact != "critical" || len(v.Nodes) != 1 || !slices.Equal(v.Nodes[0].Target, []string{"#email"}) {
			t.Errorf("label violation = %s, want critical on #email", v)
		}
	})

	t.Run("AxeCleanPageUnderStrictCSP", func(t *testing.T) {
		tab := b.NewTab(t)
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/clean"),
			chromedp.WaitVisible(chromedp.ID("submit"))); err != nil {
			t.Fatal(err)
		}
		vs, err := RunAxe(tab.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 0 {
			t.Errorf("clean page: %v", vs)
		}
		// A second run reuses the injected axe and must agree.
		if vs, err := RunAxe(tab.Ctx); err != nil || len(vs) != 0 {
			t.Errorf("second run = %v, %v", vs, err)
		}
		ready, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`document.body.dataset.ready || ""`))
		if err != nil || ready != "yes" {
			t.Errorf("nonce'd script did not run under the CSP: %q, %v", ready, err)
		}
		if errs := tab.ConsoleErrors(); len(errs) != 0 {
			t.Errorf("console errors on a clean page: %q", errs)
		}
	})

	t.Run("AxeLeavesOutModerateFindings", func(t *testing.T) {
		tab := b.NewTab(t)
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/moderate")); err != nil {
			t.Fatal(err)
		}
		vs, err := RunAxe(tab.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 0 {
			t.Errorf("RunAxe returned below-serious findings: %v", vs)
		}
		// The page does break moderate rules, so the empty answer above is the filter's.
		all, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[[]Violation](axeRun, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(all, func(v Violation) bool { return v.Impact == "moderate" }) {
			t.Errorf("axe found no moderate finding on a page without landmarks: %v", all)
		}
	})

	t.Run("ConsoleErrorsReportCSPRefusal", func(t *testing.T) {
		tab := b.NewTab(t)
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/refused")); err != nil {
			t.Fatal(err)
		}
		ran, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`document.body.dataset.ran || ""`))
		if err != nil || ran != "" {
			t.Fatalf("inline script without nonce ran: %q, %v", ran, err)
		}
		if err := tab.WaitConsoleError("Content Security Policy"); err != nil {
			t.Error(err)
		}
	})

	t.Run("VirtualAuthenticatorCompletesPasskeyCeremony", func(t *testing.T) {
		tab := b.NewTab(t)
		id, err := AddPasskeyAuthenticator(tab.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/passkey")); err != nil {
			t.Fatal(err)
		}
		out, err := chromedp.Run(tab.Ctx, chromedp.Poll[string](
			`(t => t !== "waiting" && t)(document.getElementById("out").textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		if out != "done" {
			t.Fatalf("ceremony: %s; console: %q", out, tab.ConsoleErrors())
		}
		creds, err := Credentials(tab.Ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
			t.Fatalf("authenticator holds %+v, want one resident credential for localhost", creds)
		}
		want := base64.StdEncoding.EncodeToString(creds[0].CredentialID)
		for _, attr := range []string{"created", "asserted"} {
			got, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`document.body.dataset.`+attr))
			if err != nil || got != want {
				t.Errorf("%s credential = %q, %v; want the authenticator's %q", attr, got, err, want)
			}
		}
		if creds[0].SignCount < 1 {
			t.Errorf("sign count %v after an assertion", creds[0].SignCount)
		}
	})

	t.Run("ScreenshotWritesPNG", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvArtifacts, dir)
		tab := b.NewTab(t)
		if err := chromedp.Do(tab.Ctx, chromedp.Navigate(base+"/clean"), chromedp.WaitVisible(chromedp.ID("submit"))); err != nil {
			t.Fatal(err)
		}
		path, err := Screenshot(tab.Ctx, "clean-page")
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, "clean-page.png") {
			t.Errorf("path = %s", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		if r := img.Bounds(); r.Dx() != 1280 || r.Dy() < 100 {
			t.Errorf("screenshot is %v, want the 1280-wide viewport", r)
		}
		for _, bad := range []string{"../escape", "a/b", "", "UPPER", strings.Repeat("x", 65)} {
			if _, err := Screenshot(tab.Ctx, bad); err == nil {
				t.Errorf("Screenshot(%q) accepted", bad)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("artifacts folder holds %d files, want 1", len(entries))
		}
	})
}

func TestArtifactsDir_DefaultsToRepositoryRoot(t *testing.T) {
	t.Setenv(EnvArtifacts, "")
	dir, err := ArtifactsDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(dir))
	if filepath.Base(dir) != "screenshots" || filepath.Base(filepath.Dir(dir)) != "artifacts" {
		t.Errorf("ArtifactsDir = %s", dir)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Errorf("%s is not the repository root: %v", root, err)
	}
}

func TestPaths_RefuseMissingBrowserAndAxe(t *testing.T) {
	t.Setenv(EnvChromium, filepath.Join(t.TempDir(), "no-such-chromium"))
	if _, err := ChromiumPath(); err == nil {
		t.Fatal("ChromiumPath accepted a missing binary")
	}
	t.Setenv(EnvChromium, "")
	t.Setenv(EnvAxe, filepath.Join(t.TempDir(), "axe.min.js"))
	if _, err := AxePath(); err == nil {
		t.Fatal("AxePath accepted a missing file")
	}
}
