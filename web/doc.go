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
//	/t/{t}/login (passkey) passkey-login.js offers passkeys in #email's autofill (conditional UI)
//	                     and adds the button #passkey-signin (a modal request) after the form:
//	                     GET /t/{t}/passkey/options → {options, challenge_id, label}; POST
//	                     /t/{t}/passkey (id or next=account, challenge_id, webauthn) from form
//	                     #passkey-login-form. Also on /t/{t}/account/login.
//	/t/{t}/account/login #email (username webauthn), #password, #submit, link #forgot; after a
//	                     right password with a second factor: #code, #submit.
//	/t/{t}/account       notice #notice (role=status). Sessions: ul#sessions > li[data-session-id]
//	                     (the current one first, marked .current; applications' client sessions
//	                     in ul.apps > li[data-session-id] under it); button #revoke-<session id>
//	                     (on the current one: sign out); #revoke-others.
//	                     Factors: ul#factors > li[data-factor-id]; #name-<factor id> and
//	                     #rename-<factor id>; #remove-<factor id>; links #add-totp and
//	                     #add-passkey; #recovery-submit.
//	                     Password: #current_password, #new_password, #confirm, #password-submit.
//	                     Applications: ul#applications > li[data-client-id];
//	                     #revoke-app-<client id>. Link #logout.
//	/t/{t}/account/reauth (shown when a change needs a fresh authentication) form #reauth-form:
//	                     #password, or #code with the passkey #passkey-button; #submit; #back.
//	/t/{t}/account/totp  img.qr, #totp-secret; form #totp-form: #code, #submit; #back.
//	/t/{t}/account/passkeys #passkey-button (creates, then posts form #passkey-form); #back.
//	account recovery     #recovery-codes (li > code), link #continue.
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
