package compliance_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"tutela/audit"
	"tutela/compliance"
)

// Verify's failures say what a reader of a report needs: another key is "not by this key" (not
// the audit log's checkpoint wording), a malformed key is ErrMalformedKey (not a check of the
// file), and a newline an editor added after the signature line fails as `format`, the class
// docs/compliance.md gives signature-line problems.
func TestVerify_MessagesNameTheReportAndTheDocumentedClass(t *testing.T) {
	t.Parallel()
	file, vkey := signedHTML(t)
	_, otherKey := newSigner(t)
	var ve *compliance.VerifyError

	_, err := compliance.Verify(file, otherKey)
	if !errors.As(err, &ve) || ve.Check != "signature" || !strings.Contains(ve.Detail, "the report's signature is not by this key") ||
		strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("other key: %v", err)
	}

	for _, key := range []string{"/dev/null", "", "tutela/audit+00000000+AAAA"} {
		if _, err := compliance.Verify(file, key); !errors.Is(err, compliance.ErrMalformedKey) || errors.As(err, &ve) {
			t.Errorf("key %q: %v, want ErrMalformedKey", key, err)
		}
	}

	for _, tail := range []string{"\n", "\r\n", "\n\n", " "} {
		_, err := compliance.Verify(append(bytes.Clone(file), tail...), vkey)
		if !errors.As(err, &ve) || ve.Check != "format" || !strings.Contains(ve.Detail, "follow the signature line") {
			t.Errorf("%q appended: %v, want a format failure naming the bytes after the signature line", tail, err)
		}
	}

	signer, vkey2 := newSigner(t)
	cp, err := signer.Sign(audit.Checkpoint{Origin: "tutela/audit", Size: 1, Time: now})
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte("<html>forged</html><!-- tutela-compliance-signature " + b64(cp) + " -->\n")
	if _, err := compliance.Verify(forged, vkey2); !errors.As(err, &ve) || ve.Check != "signature" ||
		!strings.Contains(ve.Detail, "not over a compliance report") {
		t.Errorf("checkpoint as report signature: %v", err)
	}
}
