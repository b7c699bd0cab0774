package compliance_test

import (
	"bytes"
	"encoding/base64"
	"testing"

	"tutela/audit"
	"tutela/compliance"
	"tutela/config"
)

// A compliance report's signature is a note signed with the audit key under its own origin.
// Wrapped in an audit bundle (what `tutela audit verify --bundle F --key K` reads), it must not
// verify as the audit log's checkpoint, whichever origin the bundle names.
func TestSignHTML_SignatureDoesNotVerifyAsAuditBundle(t *testing.T) {
	t.Parallel()
	signer, vkey := newSigner(t)
	rep := compliance.Build(config.Default(), compliance.Runtime{}, state(), false, now)
	page, err := compliance.RenderHTML(rep)
	if err != nil {
		t.Fatal(err)
	}
	file, err := compliance.SignHTML(page, signer, now)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(file, []byte("<!-- tutela-compliance-signature "))
	if i < 0 {
		t.Fatal("no signature in the signed page")
	}
	sig := bytes.TrimSuffix(file[i+len("<!-- tutela-compliance-signature "):], []byte(" -->\n"))
	note, err := base64.StdEncoding.DecodeString(string(sig))
	if err != nil {
		t.Fatal(err)
	}
	for _, origin := range []string{compliance.SignatureOrigin, audit.LogOrigin} {
		var buf bytes.Buffer
		if err := audit.WriteBundle(&buf, audit.Bundle{Origin: origin, PublicKey: vkey, Checkpoint: note}); err != nil {
			t.Fatal(err)
		}
		b, err := audit.ReadBundle(&buf)
		if err != nil {
			t.Fatal(err)
		}
		r, err := audit.VerifyBundle(b, vkey, audit.LogOrigin)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || !hasKind(r, audit.KindBadSignature) {
			t.Errorf("bundle naming %q: a compliance-report signature verifies as an audit bundle: OK=%v size=%d failures=%+v",
				origin, r.OK, r.Size, r.Failures)
		}
	}
}

func hasKind(r *audit.Report, kind string) bool {
	for _, f := range r.Failures {
		if f.Kind == kind {
			return true
		}
	}
	return false
}
