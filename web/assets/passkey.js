// Passkeys on the hosted pages (WebAuthn). The page holds the options the server made in
// #passkey's data-options; this script converts them for the browser API, runs
// navigator.credentials.get (data-mode="get": a second factor) or .create (data-mode="create":
// enrolment), and posts the result in the form named by data-form (field "webauthn"). It is the
// only script of the pages, loaded with the CSP nonce; it adds no other script.
(function () {
  'use strict';
  var box = document.getElementById('passkey');
  if (!box || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  var button = document.getElementById('passkey-button');
  var status = document.getElementById('passkey-status');
  var form = document.getElementById(box.dataset.form);
  if (!button || !form) {
    return;
  }
  button.hidden = false;

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

  button.addEventListener('click', function () {
    status.textContent = '';
    var opts = JSON.parse(box.dataset.options);
    var pk = opts.publicKey;
    pk.challenge = toBuf(pk.challenge);
    var creating = box.dataset.mode === 'create';
    var p;
    if (creating) {
      pk.user.id = toBuf(pk.user.id);
      (pk.excludeCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
      p = navigator.credentials.create({ publicKey: pk });
    } else {
      (pk.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
      p = navigator.credentials.get({ publicKey: pk });
    }
    p.then(function (cred) {
      var r = cred.response, out = { id: cred.id, rawId: toB64u(cred.rawId), type: cred.type, response: {} };
      out.response.clientDataJSON = toB64u(r.clientDataJSON);
      if (creating) {
        out.response.attestationObject = toB64u(r.attestationObject);
        if (r.getTransports) { out.response.transports = r.getTransports(); }
        form.elements.namedItem('name').value = box.dataset.name || '';
      } else {
        out.response.authenticatorData = toB64u(r.authenticatorData);
        out.response.signature = toB64u(r.signature);
        out.response.userHandle = toB64u(r.userHandle);
      }
      form.elements.namedItem('webauthn').value = JSON.stringify(out);
      form.submit();
    }).catch(function () {
      status.textContent = box.dataset.error;
    });
  });
}());
