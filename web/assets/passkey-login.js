// Passkey sign-in on the sign-in page (WebAuthn conditional mediation). When the browser can
// offer passkeys in the e-mail field's autofill (autocomplete="username webauthn"), this script
// fetches request options from /t/{t}/passkey/options, waits for the user to pick a passkey, and
// posts the assertion to /t/{t}/passkey with the sign-in form's request id and CSRF token. The
// password form keeps working without it. Loaded with the CSP nonce; it adds no other script.
(function () {
  'use strict';
  var login = document.querySelector('form[action$="/login"]');
  if (!login || !window.PublicKeyCredential || !navigator.credentials ||
      !PublicKeyCredential.isConditionalMediationAvailable) {
    return;
  }
  // Only where the e-mail field offers passkeys (autocomplete="username webauthn").
  if (!login.querySelector('input[autocomplete~="webauthn"]')) {
    return;
  }
  var m = location.pathname.match(/^\/t\/[a-z0-9-]+/);
  if (!m) { return; }
  var base = m[0];

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

  PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
    if (!ok) { return null; }
    return fetch(base + '/passkey/options', { credentials: 'same-origin', cache: 'no-store' });
  }).then(function (res) {
    if (!res || !res.ok) { return null; }
    return res.json();
  }).then(function (data) {
    if (!data) { return null; }
    var pk = data.options.publicKey;
    pk.challenge = toBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return navigator.credentials.get({ publicKey: pk, mediation: 'conditional' }).then(function (cred) {
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
    });
  }).catch(function () {
    // The user dismissed the prompt or the browser refused: the password form stays.
  });
}());
