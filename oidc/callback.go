package oidc

import "net/http"

// noCallback answers the library's authorization callback route. The hosted pages send the
// browser back to the client themselves (Provider.Complete and Deny return the response URL),
// so the code only ever reaches the browser that signed in; a callback anyone could call with
// a request ID would hand the code to whoever asked first.
func noCallback(w http.ResponseWriter, _ *http.Request) {
	writeOAuthError(w, http.StatusNotFound, "invalid_request", "no such endpoint")
}
