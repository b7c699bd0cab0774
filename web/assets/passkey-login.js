// Passkey sign-in on the sign-in pages (WebAuthn). Where the e-mail field offers passkeys
// (autocomplete="username webauthn"), this script fetches request options from
// /t/{t}/passkey/options and
//   - when the browser supports conditional mediation, waits for the user to pick a passkey in
//     the field's autofill (navigator.credentials.get({mediation: "conditional"}));
//   - adds a button #passkey-signin (its label comes with the options, in the page's language)
//     that asks for a passkey at once, for browsers without autofill support and for people who
//     prefer a button.
// The assertion is posted to /t/{t}/passkey with the sign-in form's CSRF token and request id
// (or next=account). The password form keeps working without it. Loaded with the CSP nonce; it
// adds no other script.
(function () {
  'use strict';
  var login = document.querySelector('form[action$="/login"]');
  if (!login || !window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    return;
  }
  if (!login.querySelector('input[autocomplete~="webauthn"]')) {
    return;
  }
  var m = location.pathname.match(/^\/t\/[a-z0-9-]+/);
  if (!m) { return; }
  var base = m[0];
  var pending = null; // the conditional request, aborted when the button is used

  function toBuf(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) { s += '='; }
    var b = atob(s), u = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) { u[i] = b.charCodeAt(i); }
    return u.buffer;
  }
  function toB64u(buf) {
    if (!buf) { return undefined; }
    var u = new Uint8Array(buf), s = '';
    for (var i = 0; i < u.length; i++) { s += String.fromCharCode(u[i]); }
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function hidden(form, name, value) {
    var i = document.createElement('input');
    i.type = 'hidden';
    i.name = name;
    i.value = value;
    form.appendChild(i);
  }
  function options() {
    return fetch(base + '/passkey/options', { credentials: 'same-origin', cache: 'no-store' }).then(function (res) {
      if (!res.ok) { throw new Error('options'); }
      return res.json();
    });
  }
  function submit(data, cred) {
    var r = cred.response;
    var out = { id: cred.id, rawId: toB64u(cred.rawId), type: cred.type, response: {
      clientDataJSON: toB64u(r.clientDataJSON), authenticatorData: toB64u(r.authenticatorData),
      signature: toB64u(r.signature), userHandle: toB64u(r.userHandle) } };
    var form = document.createElement('form');
    form.method = 'post';
    form.action = base + '/passkey';
    form.id = 'passkey-login-form';
    hidden(form, 'csrf', login.elements.namedItem('csrf').value);
    ['id', 'next'].forEach(function (n) {
      var f = login.elements.namedItem(n);
      if (f) { hidden(form, n, f.value); }
    });
    hidden(form, 'challenge_id', data.challenge_id);
    hidden(form, 'webauthn', JSON.stringify(out));
    document.body.appendChild(form);
    form.submit();
  }
  function get(data, mediation, signal) {
    var pk = data.options.publicKey;
    pk.challenge = toBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    var req = { publicKey: pk };
    if (mediation) { req.mediation = mediation; }
    if (signal) { req.signal = signal; }
    return navigator.credentials.get(req).then(function (cred) { submit(data, cred); });
  }

  options().then(function (data) {
    var button = document.createElement('button');
    button.type = 'button';
    button.id = 'passkey-signin';
    button.className = 'secondary';
    button.textContent = data.label;
    login.parentNode.insertBefore(button, login.nextSibling);
    button.addEventListener('click', function () {
      if (pending) { pending.abort(); }
      options().then(function (fresh) { return get(fresh); }).catch(function () {});
    });
    if (!PublicKeyCredential.isConditionalMediationAvailable) { return null; }
    return PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) { return null; }
      pending = window.AbortController ? new AbortController() : null;
      return get(data, 'conditional', pending && pending.signal);
    });
  }).catch(function () {
    // Dismissed, aborted or refused: the password form stays.
  });
}());
