package httpapi_test

// Regression test for a review finding (fixed): downloadFile (httpapi/files_links.go, the
// AudienceUser branch) checks only that the signed-in user is the one the link was issued to.
// It never decides READ on files again, so a user whose access to files was withdrawn (here an
// explicit deny on files READ; equally a role removed, clearance lowered, or the file
// reclassified RED) keeps downloading with links issued before, for up to 24 h. "anyone" links
// likewise outlive their creator's EXPORT right. ASVS 8.3.x: authorization changes apply at once.

import (
	"testing"

	"tutela/sqlstore"
)

func TestFiles_UserLinkDiesWithWithdrawnAccess(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	f := fe.mustUpload(t, "logo.png", "image/png", pngBytes, "")
	l := fe.link(t, f.ID, `{"expires_in":86400}`, fe.operator) // a user link for the operator

	res, b := fe.req(t, "GET", "/v1/auth/me", "", "", fe.operator)
	if res.StatusCode != 200 {
		t.Fatalf("me: %d %s", res.StatusCode, b)
	}
	var me struct {
		ID     string `json:"id"`
		UserID string `json:"user_id"`
		User   struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	mustUnmarshal(t, b, &me)
	id := me.ID
	if id == "" {
		id = me.UserID
	}
	if id == "" {
		id = me.User.ID
	}
	// The administrator withdraws the operator's access to files.
	if res, b := fe.req(t, "POST", fe.base+"/users/"+id+"/permissions",
		`{"resource":"files","action":"READ","effect":"deny"}`, "", fe.admin); res.StatusCode != 201 {
		t.Fatalf("deny: %d %s", res.StatusCode, b)
	}
	// The API agrees the operator may no longer read the file...
	if res, _ := fe.req(t, "GET", fe.base+"/files/"+f.ID, "", "", fe.operator); res.StatusCode != 403 {
		t.Fatalf("metadata after deny: %d (want 403)", res.StatusCode)
	}
	// ...but the old link still hands over the bytes.
	if res, _ := fe.req(t, "GET", l.URL, "", "", fe.operator); res.StatusCode == 200 {
		t.Fatalf("download through a link issued before the deny: 200; access withdrawal is not enforced on links")
	}
}
