package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tutela/files"
	"tutela/files/blob"
	"tutela/files/clamd/clamdtest"
	"tutela/files/inspect/corpus"
	"tutela/files/intake"
	"tutela/httpapi"
	"tutela/jobs"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// fileEnv is a subject env whose server takes files into a local blob store, scanned by a real
// clamd started for the test.
type fileEnv struct {
	*subjectEnv
	blobs *blob.Local
	clamd *clamdtest.Server
	svc   *intake.Service
	keys  *vault.Vault
}

func newFileEnv(t *testing.T, d sqlstore.Dialect, mods ...func(*httpapi.Deps)) *fileEnv {
	t.Helper()
	fe := &fileEnv{}
	bl, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fe.blobs, fe.clamd = bl, clamdtest.Start(t, clamdtest.Options{})
	fe.subjectEnv = newSubjectEnv(t, d, func(deps *httpapi.Deps) {
		fe.svc = &intake.Service{DB: deps.DB, Blobs: bl, Scanner: fe.clamd.Client(), ScanTimeout: 30 * time.Second}
		// The vault on the test's clock, so a key rotation can settle without waiting.
		deps.Keys = sqltest.AttachVaultAt(t, deps.DB, deps.Clock)
		deps.Files, fe.keys = fe.svc, deps.Keys
		for _, m := range mods {
			m(deps)
		}
	})
	return fe
}

// permissive lets every supported type in, so a hostile file is refused for what it holds.
func (fe *fileEnv) permissive(t *testing.T) {
	t.Helper()
	p := files.DefaultPolicy()
	p.AllowedTypes = files.SupportedTypes()
	b, _ := json.Marshal(p)
	if res, body := fe.req(t, "PUT", fe.base+"/files/policy", string(b), "", fe.admin); res.StatusCode != 200 {
		t.Fatalf("policy: %d %s", res.StatusCode, body)
	}
}

// multipartBody is a multipart/form-data body with one part "file".
func multipartBody(name, typ string, content []byte) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	if typ != "" {
		h.Set("Content-Type", typ)
	}
	pw, _ := mw.CreatePart(h)
	pw.Write(content)
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// upload sends content as a multipart upload with query (may be "") and returns the answer.
func (fe *fileEnv) upload(t *testing.T, name, typ string, content []byte, query string, auth any) (*http.Response, []byte) {
	t.Helper()
	ct, body := multipartBody(name, typ, content)
	r := httptest.NewRequest("POST", fe.base+"/files"+query, bytes.NewReader(body))
	r.Header.Set("Content-Type", ct)
	r.RemoteAddr = "192.0.2.1:40000"
	if a, ok := auth.(string); ok {
		r.Header.Set("Authorization", "Bearer "+a)
	}
	rec := httptest.NewRecorder()
	fe.srv.ServeHTTP(rec, r)
	return rec.Result(), rec.Body.Bytes()
}

func (fe *fileEnv) mustUpload(t *testing.T, name, typ string, content []byte, query string) files.File {
	t.Helper()
	res, b := fe.upload(t, name, typ, content, query, fe.operator)
	if res.StatusCode != 201 {
		t.Fatalf("upload %s: %d %s", name, res.StatusCode, b)
	}
	var f files.File
	mustUnmarshal(t, b, &f)
	return f
}

type linkAnswer struct {
	ID    string `json:"id"`
	URL   string `json:"url"`
	Token string `json:"token"`
}

func (fe *fileEnv) link(t *testing.T, fileID, body string, auth any) linkAnswer {
	t.Helper()
	res, b := fe.req(t, "POST", fe.base+"/files/"+fileID+"/links", body, "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("link: %d %s", res.StatusCode, b)
	}
	var l linkAnswer
	mustUnmarshal(t, b, &l)
	return l
}

func (fe *fileEnv) objects(t *testing.T) []string {
	t.Helper()
	objs, err := fe.blobs.Objects(ctxBG)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func errorReason(t *testing.T, b []byte) (code, reason string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Reason string }
	}
	mustUnmarshal(t, b, &e)
	return e.Error.Code, e.Error.Reason
}

// declaredType is what a browser would send for a name (the extension's type).
func declaredType(name string) string {
	for typ, exts := range files.Extensions {
		for _, e := range exts {
			if strings.EqualFold(filepath.Ext(name), e) {
				return typ
			}
		}
	}
	return "application/octet-stream"
}

func TestFiles_HostileCorpusRefusedAndNothingRemains(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	fe.permissive(t)
	dir, err := os.ReadDir(corpus.Dir("hostile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dir) != len(corpus.Hostile) {
		t.Fatalf("testdata/hostile has %d files, the table %d", len(dir), len(corpus.Hostile))
	}
	for _, de := range dir {
		want := corpus.Hostile[de.Name()]
		content, err := os.ReadFile(filepath.Join(corpus.Dir("hostile"), de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		res, b := fe.upload(t, de.Name(), declaredType(de.Name()), content, "", fe.operator)
		code, reason := errorReason(t, b)
		if res.StatusCode != 422 || code != "file_refused" || reason != want {
			t.Errorf("%s: %d %s/%s, want 422 file_refused/%s", de.Name(), res.StatusCode, code, reason, want)
		}
	}
	if objs := fe.objects(t); len(objs) != 0 {
		t.Fatalf("refused files left %d objects in the blob store: %v", len(objs), objs)
	}
	// The good corpus goes in and comes out byte for byte.
	good, _ := os.ReadDir(corpus.Dir("good"))
	for _, de := range good {
		content, _ := os.ReadFile(filepath.Join(corpus.Dir("good"), de.Name()))
		f := fe.mustUpload(t, de.Name(), declaredType(de.Name()), content, "")
		if f.Status != files.StatusAvailable || f.ScanResult != "clean" {
			t.Fatalf("%s: %+v", de.Name(), f)
		}
		l := fe.link(t, f.ID, "", fe.operator)
		res, b := fe.req(t, "GET", l.URL, "", "", fe.operator)
		if res.StatusCode != 200 || !bytes.Equal(b, content) {
			t.Fatalf("%s: download %d, %d bytes of %d", de.Name(), res.StatusCode, len(b), len(content))
		}
	}
	audit := fe.auditText(t)
	for _, want := range []string{`"file.refused"`, `"file.malware_found"`, `"file.uploaded"`, `"file.downloaded"`, `"pdf_javascript"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
}

// auditText is the tenant's audit log as JSON text.
func (fe *fileEnv) auditText(t *testing.T) string {
	t.Helper()
	recs, _, err := fe.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: fe.tenant.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		j, _ := json.Marshal(r.Event)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

var pngBytes = func() []byte {
	b, err := os.ReadFile(filepath.Join(corpus.Dir("good"), "image.png"))
	if err != nil {
		panic(err)
	}
	return b
}()

func TestFiles_LinkIsSignedExpiresAndIsForItsAudience(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	f := fe.mustUpload(t, "logo été.png", "image/png", pngBytes, "")

	l := fe.link(t, f.ID, "", fe.operator)
	res, b := fe.req(t, "GET", l.URL, "", "", fe.operator)
	if res.StatusCode != 200 || !bytes.Equal(b, pngBytes) {
		t.Fatalf("download: %d %s", res.StatusCode, b)
	}
	for h, want := range map[string]string{
		"Content-Disposition":    `attachment; filename="logo _t_.png"; filename*=UTF-8''logo%20%C3%A9t%C3%A9.png`,
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		"Content-Type": "image/png", "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
	} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	// A user link: not without credentials, not for another user of the tenant.
	if res, _ := fe.req(t, "GET", l.URL, "", "", nil); res.StatusCode != 401 {
		t.Errorf("without a token: %d", res.StatusCode)
	}
	if res, _ := fe.req(t, "GET", l.URL, "", "", fe.admin); res.StatusCode != 403 {
		t.Errorf("as another user: %d", res.StatusCode)
	}
	// Altered: every byte position of the token, one at a time, refused as not found.
	for i := len("fl1."); i < len(l.Token); i += 7 {
		tok := []byte(l.Token)
		if tok[i] == 'A' {
			tok[i] = 'B'
		} else {
			tok[i] = 'A'
		}
		if res, _ := fe.req(t, "GET", "/v1/files/download/"+string(tok), "", "", fe.operator); res.StatusCode != 404 {
			t.Fatalf("token altered at %d: %d", i, res.StatusCode)
		}
	}
	if res, _ := fe.req(t, "GET", "/v1/files/download/fl1.short", "", "", fe.operator); res.StatusCode != 404 {
		t.Errorf("malformed token: %d", res.StatusCode)
	}
	// Expired: after five minutes, gone.
	fe.clock.Add(5*time.Minute + time.Second)
	if res, b := fe.req(t, "GET", l.URL, "", "", fe.operator); res.StatusCode != 410 {
		t.Errorf("expired: %d %s", res.StatusCode, b)
	}

	// Single use: the second download is gone.
	once := fe.link(t, f.ID, `{"single_use":true,"expires_in":60}`, fe.operator)
	if res, _ := fe.req(t, "GET", once.URL, "", "", fe.operator); res.StatusCode != 200 {
		t.Fatalf("first use: %d", res.StatusCode)
	}
	if res, _ := fe.req(t, "GET", once.URL, "", "", fe.operator); res.StatusCode != 410 {
		t.Errorf("replayed single-use link: %d", res.StatusCode)
	}

	// Anyone links need EXPORT: the operator has none; the admin issues one usable without login.
	if res, _ := fe.req(t, "POST", fe.base+"/files/"+f.ID+"/links", `{"audience":"anyone"}`, "", fe.operator); res.StatusCode != 403 {
		t.Errorf("operator anyone-link: %d", res.StatusCode)
	}
	anyone := fe.link(t, f.ID, `{"audience":"anyone"}`, fe.admin)
	if res, _ := fe.req(t, "GET", anyone.URL, "", "", nil); res.StatusCode != 200 {
		t.Errorf("anyone link without login: %d", res.StatusCode)
	}
	// Revoked: gone.
	if res, b := fe.req(t, "DELETE", fe.base+"/files/"+f.ID+"/links/"+anyone.ID, "", "", fe.admin); res.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", res.StatusCode, b)
	}
	if res, _ := fe.req(t, "GET", anyone.URL, "", "", nil); res.StatusCode != 410 {
		t.Errorf("revoked link: %d", res.StatusCode)
	}

	// Old key: rotating the signing keyset keeps old links working until the old key is retired.
	old := fe.link(t, f.ID, `{"expires_in":7200}`, fe.operator)
	if _, err := fe.keys.Rotate(ctxBG, "", vault.PurposeFileLinks); err != nil {
		t.Fatal(err)
	}
	fresh := fe.link(t, f.ID, `{"expires_in":7200}`, fe.operator)
	if res, _ := fe.req(t, "GET", old.URL, "", "", fe.operator); res.StatusCode != 200 {
		t.Errorf("old-key link before retirement: %d", res.StatusCode)
	}
	fe.clock.Add(fe.keys.CacheTTL() + time.Minute) // every node has seen the new primary
	fe.operator = fe.login(t, "acme", "op@example.org", pw, "").AccessToken
	if _, err := fe.keys.Retire(ctxBG, "", vault.PurposeFileLinks); err != nil {
		t.Fatal(err)
	}
	if res, _ := fe.req(t, "GET", old.URL, "", "", fe.operator); res.StatusCode != 404 {
		t.Errorf("old-key link after retirement: %d", res.StatusCode)
	}
	if res, _ := fe.req(t, "GET", fresh.URL, "", "", fe.operator); res.StatusCode != 200 {
		t.Errorf("new-key link: %d", res.StatusCode)
	}

	// Every download is audited, with the link's ID and never its token.
	audit := fe.auditText(t)
	if n := strings.Count(audit, `"file.downloaded"`); n != 5 {
		t.Errorf("%d file.downloaded events, want 5", n)
	}
	for _, tok := range []string{l.Token, once.Token, anyone.Token, old.Token, fresh.Token} {
		if strings.Contains(audit, tok) || strings.Contains(fe.logs.String(), tok) {
			t.Fatal("a link's token reached the audit log or the logs")
		}
	}
}

func TestFiles_QuarantinedFileCannotBeDownloadedUntilScanned(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	fe.clamd.Stop()
	f := fe.mustUpload(t, "logo.png", "image/png", pngBytes, "")
	if f.Status != files.StatusQuarantined || f.QuarantineReason != files.QuarantineUnavailable {
		t.Fatalf("with clamd down: %+v", f)
	}
	res, b := fe.req(t, "POST", fe.base+"/files/"+f.ID+"/links", "", "", fe.operator)
	if code, reason := errorReason(t, b); res.StatusCode != 409 || code != "file_quarantined" || reason != files.QuarantineUnavailable {
		t.Fatalf("link to a quarantined file: %d %s", res.StatusCode, b)
	}
	// Still down: an operator's rescan leaves it quarantined.
	if res, b := fe.req(t, "POST", fe.base+"/files/"+f.ID+"/scan", "", "", fe.admin); res.StatusCode != 200 || !strings.Contains(string(b), `"quarantined"`) {
		t.Fatalf("rescan while down: %d %s", res.StatusCode, b)
	}
	fe.clamd.Restart(t)
	// The scan job (enqueued with the upload) clears it once the scanner is back.
	q := jobs.New(fe.db, nil, jobs.Options{})
	fe.svc.Register(q)
	fe.clock.Add(2 * time.Minute)
	if _, err := q.RunDue(ctxBG); err != nil {
		t.Fatal(err)
	}
	res, b = fe.req(t, "GET", fe.base+"/files/"+f.ID, "", "", fe.operator)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"status":"available"`) {
		t.Fatalf("after the scanner came back: %d %s", res.StatusCode, b)
	}
	l := fe.link(t, f.ID, "", fe.operator)
	if res, _ := fe.req(t, "GET", l.URL, "", "", fe.operator); res.StatusCode != 200 {
		t.Fatalf("download after the scan: %d", res.StatusCode)
	}
}

func TestFiles_OtherTenantSeesNothing(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.Postgres)
	f := fe.mustUpload(t, "logo.png", "image/png", pngBytes, "")
	for _, c := range []struct{ method, path, body string }{
		{"GET", fe.base + "/files/" + f.ID, ""},
		{"GET", fe.otherTenantsBase + "/files/" + f.ID, ""},
		{"POST", fe.otherTenantsBase + "/files/" + f.ID + "/links", ""},
		{"DELETE", fe.otherTenantsBase + "/files/" + f.ID, ""},
		{"GET", fe.otherTenantsBase + "/files/" + f.ID + "/links", ""},
	} {
		if res, b := fe.req(t, c.method, c.path, c.body, "", fe.otherAdmin); res.StatusCode != 404 {
			t.Errorf("%s %s as another tenant's admin: %d %s", c.method, c.path, res.StatusCode, b)
		}
	}
	res, b := fe.req(t, "GET", fe.otherTenantsBase+"/files", "", "", fe.otherAdmin)
	if res.StatusCode != 200 || strings.Contains(string(b), f.ID) {
		t.Fatalf("other tenant's list: %d %s", res.StatusCode, b)
	}
	// A link issued in acme cannot be used by the other tenant's admin either.
	l := fe.link(t, f.ID, "", fe.operator)
	if res, _ := fe.req(t, "GET", l.URL, "", "", fe.otherAdmin); res.StatusCode != 403 {
		t.Errorf("acme link as another tenant's admin: %d", res.StatusCode)
	}
}

func TestFiles_ErasingTheSubjectShredsItsFiles(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	subj := fe.create(t)
	other := fe.createWith(t, `{"values":{"full_name":"Grace Hopper"}}`)
	f := fe.mustUpload(t, "passport.png", "image/png", pngBytes, "?subject_id="+subj+"&classification=YELLOW")
	kept := fe.mustUpload(t, "other.png", "image/png", pngBytes, "?subject_id="+other)
	l := fe.link(t, f.ID, `{"expires_in":3600}`, fe.operator)
	if res, b := fe.req(t, "DELETE", fe.base+"/subjects/"+subj, `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`, "", fe.root); res.StatusCode != 200 && res.StatusCode != 204 {
		t.Fatalf("erase: %d %s", res.StatusCode, b)
	}
	res, b := fe.req(t, "GET", fe.base+"/files/"+f.ID, "", "", fe.operator)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"status":"erased"`) || strings.Contains(string(b), "passport") {
		t.Fatalf("after erasure: %d %s", res.StatusCode, b)
	}
	if res, _ := fe.req(t, "GET", l.URL, "", "", fe.operator); res.StatusCode == 200 {
		t.Fatal("a link of an erased subject's file still downloads")
	}
	// The purge job removes the blob; the other subject's file stays.
	q := jobs.New(fe.db, nil, jobs.Options{})
	fe.svc.Register(q)
	if _, err := q.RunDue(ctxBG); err != nil {
		t.Fatal(err)
	}
	if objs := fe.objects(t); len(objs) != 1 {
		t.Fatalf("objects after the purge: %v (want only the other subject's)", objs)
	}
	l2 := fe.link(t, kept.ID, "", fe.operator)
	if res, _ := fe.req(t, "GET", l2.URL, "", "", fe.operator); res.StatusCode != 200 {
		t.Fatalf("the other subject's file: %d", res.StatusCode)
	}
}

func TestFiles_DeleteRemovesBlobAndLinks(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	f := fe.mustUpload(t, "logo.png", "image/png", pngBytes, "")
	l := fe.link(t, f.ID, "", fe.operator)
	if res, _ := fe.req(t, "DELETE", fe.base+"/files/"+f.ID, "", "", fe.operator); res.StatusCode != 403 {
		t.Errorf("operator delete: %d", res.StatusCode)
	}
	if res, b := fe.req(t, "DELETE", fe.base+"/files/"+f.ID, "", "", fe.admin); res.StatusCode != 204 {
		t.Fatalf("delete: %d %s", res.StatusCode, b)
	}
	if objs := fe.objects(t); len(objs) != 0 {
		t.Fatalf("objects after delete: %v", objs)
	}
	if res, _ := fe.req(t, "GET", l.URL, "", "", fe.operator); res.StatusCode == 200 {
		t.Fatal("a deleted file's link still downloads")
	}
}

// A file for a subject that is not there, or was erased, is refused before its body is read.
func TestFiles_UploadForAMissingOrErasedSubjectRefused(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	gone := fe.create(t)
	if res, b := fe.req(t, "DELETE", fe.base+"/subjects/"+gone, `{"reason":"asked","legal_basis":"GDPR Art. 17(1)(a)"}`, "", fe.root); res.StatusCode != 200 {
		t.Fatalf("erase: %d %s", res.StatusCode, b)
	}
	other := fe.createWith(t, `{"values":{"full_name":"Grace Hopper"}}`)
	for _, id := range []string{gone, "01a24ec2-0000-7000-8000-000000000000"} {
		if res, b := fe.upload(t, "a.png", "image/png", pngBytes, "?subject_id="+id, fe.operator); res.StatusCode != 404 {
			t.Errorf("subject %s: %d %s", id, res.StatusCode, b)
		}
	}
	// Another tenant's subject is as missing as one that never was.
	if res, b := fe.upload(t, "a.png", "image/png", pngBytes, "?subject_id="+other, fe.otherAdmin); res.StatusCode != 404 {
		t.Errorf("other tenant's path: %d %s", res.StatusCode, b)
	}
	if objs := fe.objects(t); len(objs) != 0 {
		t.Fatalf("refused uploads left %v", objs)
	}
}

// An uploader's name reaches a download only inside the attachment's quoted fallback (its
// quotes, separators and non-ASCII replaced) and its percent-encoded filename*: it cannot add a
// parameter of its own.
func TestFiles_HostileNameCannotInjectIntoContentDisposition(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	f := fe.mustUpload(t, `x"; filename=evil.exe; é.png`, "image/png", pngBytes, "")
	l := fe.link(t, f.ID, "", fe.operator)
	res, _ := fe.req(t, "GET", l.URL, "", "", fe.operator)
	want := `attachment; filename="x__ filename_evil.exe_ _.png"; filename*=UTF-8''x%22%3B%20filename%3Devil.exe%3B%20%C3%A9.png`
	if got := res.Header.Get("Content-Disposition"); got != want {
		t.Fatalf("Content-Disposition = %s\nwant %s", got, want)
	}
}

// A multipart upload holds exactly one part, named file, whose name is judged as sent: a second
// part, another part name, a ?name= beside the part, a path in the part's filename, or a
// malformed Content-Disposition are refused and leave nothing behind.
func TestFiles_MultipartShapesRefused(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	build := func(parts ...[2]string) (string, []byte) { // {Content-Disposition, body}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", p[0])
			h.Set("Content-Type", "text/csv")
			w, _ := mw.CreatePart(h)
			w.Write([]byte(p[1]))
		}
		mw.Close()
		return mw.FormDataContentType(), buf.Bytes()
	}
	send := func(query, ct string, body []byte) (int, string) {
		r := httptest.NewRequest("POST", fe.base+"/files"+query, bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Authorization", "Bearer "+fe.operator)
		rec := httptest.NewRecorder()
		fe.srv.ServeHTTP(rec, r)
		return rec.Code, rec.Body.String()
	}
	good := [2]string{`form-data; name="file"; filename="a.csv"`, "a,b\n1,2\n"}
	for name, c := range map[string]struct {
		query  string
		parts  [][2]string
		status int
		reason string
	}{
		"two parts":          {"", [][2]string{good, good}, 400, ""},
		"another part name":  {"", [][2]string{{`form-data; name="upload"; filename="a.csv"`, "a,b\n"}}, 400, ""},
		"name beside a part": {"?name=b.csv", [][2]string{good}, 400, ""},
		"path in filename":   {"", [][2]string{{`form-data; name="file"; filename="../../etc/a.csv"`, "a,b\n"}}, 422, files.ReasonNameInvalid},
		"malformed header":   {"", [][2]string{{`form-data; name="file"; filename="a.csv`, "a,b\n"}}, 400, ""},
	} {
		ct, body := build(c.parts...)
		code, b := send(c.query, ct, body)
		if code != c.status || (c.reason != "" && !strings.Contains(b, `"reason":"`+c.reason+`"`)) {
			t.Errorf("%s: %d %s", name, code, b)
		}
	}
	if objs := fe.objects(t); len(objs) != 0 {
		t.Fatalf("refused uploads left %v", objs)
	}
}
