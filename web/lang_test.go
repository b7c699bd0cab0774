package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

func TestPages_LanguageChoiceAndArabicRightToLeft(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	id := e.request(nil)
	path := "/t/" + slug + "/login?id=" + id
	res, body := e.get(path, "Accept-Language", "ar-MA, fr;q=0.5")
	wantStatus(t, res, body, http.StatusOK)
	if !strings.Contains(body, `<html lang="ar" dir="rtl">`) || !strings.Contains(body, "تسجيل الدخول") {
		t.Fatalf("Arabic page not right to left or not in Arabic:\n%s", body)
	}
	_, body = e.get(path, "Accept-Language", "fr-CH, en;q=0.5")
	if !strings.Contains(body, `<html lang="fr" dir="ltr">`) || !strings.Contains(body, "Mot de passe") {
		t.Fatalf("French page:\n%s", body)
	}
	_, body = e.get(path, "Accept-Language", "de, ja")
	if !strings.Contains(body, `<html lang="en" dir="ltr">`) {
		t.Fatal("an unsupported language did not fall back to English")
	}
	// ui_locales of the relying party beats the browser's preference.
	fr := e.request(func(p *oidc.Pending) { p.UILocales = []string{"fr-CA"} })
	_, body = e.get("/t/"+slug+"/login?id="+fr, "Accept-Language", "ar")
	if !strings.Contains(body, `lang="fr"`) {
		t.Fatal("ui_locales ignored")
	}
	// Every page has the switch; using it is remembered.
	for _, want := range []string{`hreflang="en"`, `hreflang="fr"`, `hreflang="ar"`, "English", "Français", "العربية"} {
		if !strings.Contains(body, want) {
			t.Fatalf("no language switch entry %q", want)
		}
	}
	res, body = e.get(path+"&lang=ar", "Accept-Language", "en")
	if !strings.Contains(body, `dir="rtl"`) {
		t.Fatal("the switch did not change the language")
	}
	_, body = e.get(path, "Accept-Language", "en")
	if !strings.Contains(body, `lang="ar"`) {
		t.Fatalf("the switched language was not remembered (cookies %v)", res.Cookies())
	}
	// A page answering a POST keeps its request in the switch's links.
	res, body = e.post("/t/"+slug+"/login", url.Values{"id": {id}, "email": {"ann@example.org"}, "password": {"wrong"}})
	wantStatus(t, res, body, http.StatusUnauthorized)
	if !strings.Contains(body, `href="/t/acme/login?id=`+id+`&amp;lang=fr"`) {
		t.Fatalf("switch links lost the request:\n%s", body)
	}
	// The error page is localised too.
	_, body = e.get("/t/nowhere/login?lang=fr")
	if !strings.Contains(body, "Cette page n&#39;existe pas") && !strings.Contains(body, "Cette page n'existe pas") {
		t.Fatalf("error page not in French:\n%s", body)
	}
}
