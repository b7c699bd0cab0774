package httpapi_test

// Regression test for a review finding (fixed): the download route is registered as GET, which
// http.ServeMux also matches for HEAD. downloadFile then runs in full for a HEAD: the single-use
// link is spent and file.downloaded audited although no byte is delivered (the body write fails,
// logged as "download failed mid-stream"). A link-preview or mail-security scanner that sends
// HEAD burns the recipient's single-use link, and the audit trail records a download that never
// happened. HEAD (and anything but GET) should be refused or answered without using the link.

import (
	"testing"

	"tutela/sqlstore"
)

func TestFiles_HeadNeverSpendsASingleUseLink(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	f := fe.mustUpload(t, "logo.png", "image/png", pngBytes, "")
	l := fe.link(t, f.ID, `{"audience":"anyone","single_use":true}`, fe.admin)
	fe.req(t, "HEAD", l.URL, "", "", nil)
	if res, b := fe.req(t, "GET", l.URL, "", "", nil); res.StatusCode != 200 {
		t.Fatalf("GET after a HEAD: %d %s — the HEAD spent the single-use link", res.StatusCode, b)
	}
}
