// Package web is Tutela's hosted pages: sign-in, second factor and step-up, first-time MFA
// enrolment, consent, forgot/reset password, logout, and the error page. They are
// server-rendered html/template pages with embedded templates, catalogues and assets (no
// front-end build step, no CDN), served per tenant under /t/{tenant-slug}/.
//
// The OpenID Provider (package oidc) sends the browser to /t/{tenant}/login?id=<auth request>;
// the pages call back through Flow (Pending, Complete, Deny).
//
// # Form controls (stable ids and names, for browser tests)
//
//	/t/{t}/login?id=     form: hidden id; #email (name=email, autocomplete="username webauthn");
//	                     #password (current-password); #submit. Link #forgot.
//	/t/{t}/mfa?id=       form #factor-form: hidden id, hidden webauthn; #code (one-time-code: TOTP or
//	                     recovery code); #submit. Passkey: #passkey-button (shown when the browser
//	                     supports WebAuthn and the user has a passkey), status #passkey-status.
//	/t/{t}/enroll?id=    QR img.qr, key #totp-secret; form #enroll-form: hidden id, factor_id,
//	                     webauthn, name; #enrollment_code (only after an administrator's reset);
//	                     #code; #submit. Passkey: #passkey-button.
//	                     Success shows #recovery-codes (li > code) and the link #continue.
//	/t/{t}/consent?id=   buttons #allow and #deny (name=decision, value allow|deny).
//	/t/{t}/forgot        #email, #submit; then the link #reset.
//	/t/{t}/reset         #code, #password, #confirm (new-password), #submit.
//	/t/{t}/logout        #submit (signs out); then /t/{t}/logged-out.
//	every page           skip link .skip → #main; language switch nav.languages (links with
//	                     ?lang=en|fr|ar); errors in #form-error (role=alert), linked from the
//	                     inputs by aria-describedby.
//
// # Adding a page (the framework)
//
//  1. Write templates/<name>.html defining {{define "content"}}…{{end}}; the layout (html lang
//     and dir, branding, language switch, skip link, scripts) wraps it. Every text is
//     {{.T "key"}} (or {{.T "key" arg…}} with fmt verbs); put the key in locales/en.json,
//     fr.json and ar.json. Page data is {{.Data}}; keys handed from Go are msgKey constants in
//     messages.go. The tests fail on a key missing in a language and on text written into a
//     template.
//  2. Every POST form includes {{template "csrf" .}}. Page wraps handlers: it resolves the
//     tenant (unknown or disabled: 404 page), sets the CSP with a fresh nonce, no-store and
//     no-referrer, limits the body, parses the form and refuses a POST without a valid CSRF
//     token or from another origin (403 page) before the handler runs.
//  3. Register it in Routes: mux.Handle("GET /t/{tenant}/<path>", p.page(p.handler)), where the
//     handler takes *Request (tenant, language, nonce, CSRF token) and ends with
//     p.render(pr, status, "<name>", titleKey, data, scripts…) or p.fail(pr, status, msgKey).
//  4. Scripts are files in assets/ named in render's scripts argument; they get the nonce. No
//     inline script or style attribute anywhere: the CSP refuses them.
//  5. The signed-in user is p.session(pr) (the shared session cookie of this tenant, nil
//     otherwise); set a new or renewed session secret with setSession.
//
// Language: ?lang= (the switch, remembered in a cookie), the request's ui_locales, the cookie,
// then Accept-Language; Arabic pages are dir="rtl".
package web
