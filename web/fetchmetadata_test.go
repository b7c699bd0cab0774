package web_test

import (
	"net/http"
	"net/url"
	"testing"

	"tutela/identity"
	"tutela/oidc"
	"tutela/sqlstore"
)

// A form post from Chromium carries Sec-Fetch-Site: same-origin and, because the pages send
// Referrer-Policy: no-referrer, Origin: null. It must go through; a null Origin without Fetch
// Metadata, or Fetch Metadata naming another site, must not (TestCSRF_RefusedPostsChangeNothing
// covers those refusals; here they run beside the accepted case so the rule reads whole).
func TestCSRF_SameOriginFetchWithNullOriginAccepted(t *testing.T) {
	e := newEnv(t, sqlstore.SQLite, identity.Config{})
	id := e.request(func(p *oidc.Pending) { p.SkipConsent = true })
	token := e.csrf(e.client)
	form := url.Values{"id": {id}, "email": {"ann@example.org"}, "password": {userPW}, "csrf": {token}}
	for name, c := range map[string]struct {
		hdr  []string
		want int
	}{
		"null origin, no fetch metadata":  {[]string{"Origin", "null"}, http.StatusForbidden},
		"null origin, cross-site fetch":   {[]string{"Origin", "null", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		"same-origin fetch, other origin": {[]string{"Origin", "https://evil.example", "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		"null origin, same-origin fetch":  {[]string{"Origin", "null", "Sec-Fetch-Site", "same-origin"}, http.StatusSeeOther},
	} {
		res, _ := e.do(e.client, http.MethodPost, "/t/"+slug+"/login", form, c.hdr...)
		if res.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", name, res.StatusCode, c.want)
		}
	}
	if len(e.flow.completed) != 1 {
		t.Fatalf("%d sign-ins completed, want the one accepted post", len(e.flow.completed))
	}
}
