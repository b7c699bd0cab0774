package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tutela/httpapi"
	"tutela/sqlstore"
)

// Upload bodies that lie about themselves, sent over a real connection (the in-process recorder
// cannot cut a body short or stream a gigabyte).

// genReader produces up to limit bytes of CSV text and counts what was taken.
type genReader struct {
	limit int64
	taken atomic.Int64
}

func (g *genReader) Read(p []byte) (int, error) {
	left := g.limit - g.taken.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), left)
	for i := range p[:n] {
		p[i] = "a,b,c\n"[i%6]
	}
	g.taken.Add(n)
	return int(n), nil
}

// rawPost sends head and then body on a fresh connection, half-closes it, and reads the answer.
func rawPost(t *testing.T, addr, head string, body []byte) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestFiles_LyingBodiesAreRefusedEarlyAndLeaveNothing(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite)
	ts := httptest.NewServer(fe.srv.Server)
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")

	post := func(query string, body io.Reader) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+fe.base+"/files"+query, body)
		req.ContentLength = -1 // chunked: the server cannot know the size in advance
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Authorization", "Bearer "+fe.operator)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatalf("post %s: %v", query, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	// 1 GiB declared as 1 KiB: refused at byte 1025, long before the gigabyte.
	g := &genReader{limit: 1 << 30}
	if code, b := post("?name=big.csv&size=1024", g); code != 422 || !strings.Contains(b, `"reason":"size_mismatch"`) {
		t.Fatalf("1 GiB declared as 1 KiB: %d %s", code, b)
	}
	if n := g.taken.Load(); n > 64<<20 {
		t.Errorf("the server let the client send %d MiB of a body declared as 1 KiB", n>>20)
	}
	// 1 GiB with no size: refused at the tenant's limit (25 MiB by default).
	g = &genReader{limit: 1 << 30}
	if code, b := post("?name=big.csv", g); code != 422 || !strings.Contains(b, `"reason":"too_large"`) {
		t.Fatalf("1 GiB undeclared: %d %s", code, b)
	}
	if n := g.taken.Load(); n > 128<<20 {
		t.Errorf("the server let the client send %d MiB past a 25 MiB limit", n>>20)
	}

	// Truncated: Content-Length promises 100000 bytes, 50000 come, then the client stops.
	head := fmt.Sprintf("POST %s/files?name=cut.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: text/csv\r\nContent-Length: 100000\r\n\r\n", fe.base, fe.operator)
	res, b := rawPost(t, addr, head, []byte(strings.Repeat("a,b,c\n", 50000/6)))
	if res.StatusCode != 422 || !strings.Contains(b, `"reason":"truncated"`) {
		t.Fatalf("truncated raw upload: %d %s", res.StatusCode, b)
	}
	// Truncated multipart: the body ends without its closing boundary.
	ct, mp := multipartBody("cut.csv", "text/csv", []byte(strings.Repeat("a,b,c\n", 1000)))
	mp = mp[:len(mp)-len("--\r\n")-40]
	head = fmt.Sprintf("POST %s/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: %s\r\nContent-Length: %d\r\n\r\n", fe.base, fe.operator, ct, len(mp))
	res, b = rawPost(t, addr, head, mp)
	if res.StatusCode != 422 || !strings.Contains(b, `"reason":"truncated"`) {
		t.Fatalf("truncated multipart upload: %d %s", res.StatusCode, b)
	}
	// An unauthenticated upload is refused before its body is read.
	g = &genReader{limit: 1 << 30}
	req, _ := http.NewRequest("POST", ts.URL+fe.base+"/files?name=x.csv", g)
	req.ContentLength = -1
	if res, err := ts.Client().Do(req); err == nil {
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("unauthenticated upload: %d", res.StatusCode)
		}
	}
	if n := g.taken.Load(); n > 64<<20 {
		t.Errorf("an unauthenticated client sent %d MiB", n>>20)
	}
	if objs := fe.objects(t); len(objs) != 0 {
		t.Fatalf("refused uploads left %v", objs)
	}
}

// A stalled upload holds its slot only until it has sent nothing for FileIdleTimeout; while it
// holds the node's only slot, another upload is turned away with 503 and Retry-After.
func TestFiles_StalledUploadEndsAndUploadSlotsAreBounded(t *testing.T) {
	t.Parallel()
	fe := newFileEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) {
		d.MaxConcurrentUploads, d.FileIdleTimeout = 1, 4*time.Second
	})
	ts := httptest.NewServer(fe.srv.Server)
	t.Cleanup(ts.Close) // after the connections below are closed (cleanups run last first)
	stall := func() net.Conn {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST %s/files?name=slow.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: text/csv\r\nContent-Length: 100000\r\n\r\na,b,c\n", fe.base, fe.operator)
		return c
	}
	c := stall()

	post := func() *http.Response {
		req, _ := http.NewRequest("POST", ts.URL+fe.base+"/files?name=ok.csv", strings.NewReader("a,b\n1,2\n"))
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Authorization", "Bearer "+fe.operator)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	// The stalled upload takes the slot as soon as its handler runs. A probe that finds the slot
	// free may have held it just when the stalled one arrived, which was then turned away (its
	// answer waits, unsent, for the body it will never get): stall again and give it time.
	var refused *http.Response
	for range 50 {
		time.Sleep(50 * time.Millisecond)
		if res := post(); res.StatusCode == 503 {
			refused = res
			break
		}
		c.Close()
		c = stall()
	}
	if refused == nil || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("a second upload while the only slot is held: %v", refused)
	}
	// The stalled one ends, refused as truncated, once it has been idle long enough.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the stalled upload was never ended: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 422 || !strings.Contains(string(b), `"reason":"truncated"`) {
		t.Fatalf("stalled upload: %d %s", res.StatusCode, b)
	}
	if res := post(); res.StatusCode != 201 {
		t.Fatalf("an upload after the slot was freed: %d", res.StatusCode)
	}
	if objs := fe.objects(t); len(objs) != 1 {
		t.Fatalf("objects: %v (want only the accepted upload)", objs)
	}
}
