package middleware

import (
	"net/http"
	"time"
)

// SessionCookie is the session cookie's name, shared by the JSON API and the hosted pages (one
// sign-in for both). The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain,
// so no sibling subdomain can set or read it.
const SessionCookie = "__Host-tutela_session"

// SetSessionCookie sets the session cookie, with the attributes every session cookie has
// (__Host-: Secure, Path=/, no Domain; HttpOnly; SameSite=Lax, so it rides along the top-level
// navigation back from a relying party but not on cross-site subrequests). An empty value with
// a zero expiry deletes it.
func SetSessionCookie(w http.ResponseWriter, value string, expires time.Time) {
	c := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Expires: expires}
	if value == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
