package httpapi_test

// Regression test for a review finding (fixed): GET /v1/tenants/{t}/files authorizes READ on files
// at GREEN only (authorize with no classification) and then lists every file of the tenant,
// RED ones included, with their sha256, size, detected type, subject_id and uploader. GET of the
// same file is refused (403: RED needs RED clearance). A YELLOW-cleared operator thus learns the
// content hash of RED documents (confirm-a-file attacks), which subjects have RED files, etc.

import (
	"strings"
	"testing"

	"tutela/sqlstore"
)

func TestFiles_ListHidesRedFilesFromAYellowOperator(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	// The super-admin (RED clearance) stores a RED file in acme.
	res, b := fe.upload(t, "secret.png", "image/png", pngBytes, "?classification=RED", fe.root)
	if res.StatusCode != 201 {
		t.Fatalf("RED upload as root: %d %s", res.StatusCode, b)
	}
	var f struct {
		ID     string `json:"id"`
		SHA256 string `json:"sha256"`
	}
	mustUnmarshal(t, b, &f)
	// The operator (YELLOW clearance) may not read it...
	if res, b := fe.req(t, "GET", fe.base+"/files/"+f.ID+"?purpose=x", "", "", fe.operator); res.StatusCode != 403 {
		t.Fatalf("GET RED file as operator: %d %s (want 403)", res.StatusCode, b)
	}
	// ...but the listing hands over its metadata, hash included.
	res, b = fe.req(t, "GET", fe.base+"/files", "", "", fe.operator)
	if res.StatusCode != 200 {
		t.Fatalf("list: %d %s", res.StatusCode, b)
	}
	if strings.Contains(string(b), f.ID) || strings.Contains(string(b), f.SHA256) {
		t.Fatalf("the list shows a RED file (id %s, sha256 %s) to a YELLOW-cleared operator: %s", f.ID, f.SHA256, b)
	}
}
