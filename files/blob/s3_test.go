package blob

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"tutela"
	"tutela/clocktest"
)

// newFakeS3 starts an in-process S3 (gofakes3, memory backend) and returns its URL.
func newFakeS3(t testing.TB) string {
	t.Helper()
	fake := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(fake.Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

func testS3Config(endpoint string) S3Config {
	return S3Config{
		Bucket: "tutela-files", Prefix: "tenant-a", Region: "eu-central-1", Endpoint: endpoint,
		UsePathStyle: true, AccessKeyID: "test", SecretAccessKey: tutela.NewSecret("test-secret"),
	}
}

// newTestS3 returns a store on a fresh fake S3 with its bucket created.
func newTestS3(t testing.TB) *S3 {
	t.Helper()
	ctx := context.Background()
	s, err := NewS3(ctx, testS3Config(newFakeS3(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		t.Fatal(err)
	}
	return s
}

func putRaw(t testing.TB, s *S3, key string, data []byte) {
	t.Helper()
	_, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestS3_Conformance(t *testing.T) {
	s := newTestS3(t)
	// An object of someone else's beside the prefix: Objects must not count it, nor any
	// operation touch it.
	putRaw(t, s, "other/blobs/x", []byte("not ours"))
	testStore(t, s, func(t *testing.T, key string, data []byte) {
		putRaw(t, s, s.blobKey(key), data)
	})
	out, err := s.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String("other/blobs/x")})
	if err != nil {
		t.Fatalf("object outside the prefix: %v", err)
	}
	out.Body.Close()
}

func TestS3_BlobsLiveUnderThePrefix(t *testing.T) {
	s := newTestS3(t)
	ctx := context.Background()
	small, _ := put(t, s, []byte("small"))
	large, _ := put(t, s, testData(DefaultPartSize+1, 1))
	list, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	slices.Sort(keys)
	want := []string{"tenant-a/blobs/" + small, "tenant-a/blobs/" + large}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("bucket holds %q, want %q (no temporary left)", keys, want)
	}
}

// One upload holds one part in memory, however large the blob.
func TestS3_WriterHoldsOnePart(t *testing.T) {
	s := newTestS3(t)
	w, err := s.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	chunk := testData(1<<20, 2)
	for range 20 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	sw := w.(*s3Writer)
	if int64(cap(sw.buf)) != s.partSize || len(sw.parts) != 2 {
		t.Fatalf("buffer cap %d, %d parts sent; want %d and 2", cap(sw.buf), len(sw.parts), s.partSize)
	}
}

func TestS3_TooLargeRefusedAndNothingLeft(t *testing.T) {
	s := newTestS3(t)
	s.maxSize = DefaultPartSize + 100
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(testData(DefaultPartSize+50, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 51)); err == nil {
		t.Fatal("a write past the size limit succeeded")
	}
	if _, err := w.Write(make([]byte, 1)); err == nil {
		t.Fatal("a write after a failed write succeeded")
	}
	if _, _, err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after a failed write succeeded")
	}
	mustBeEmpty(t, s)
}

func TestS3_ObjectsListsUnfinishedUploads(t *testing.T) {
	s := newTestS3(t)
	w, err := s.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(testData(DefaultPartSize+1, 4)); err != nil {
		t.Fatal(err)
	}
	objs := objects(t, s)
	if len(objs) != 1 || objs[0] != "multipart:"+strings.TrimPrefix(w.(*s3Writer).tmp, s.prefix) {
		t.Fatalf("Objects = %q, want the unfinished multipart upload", objs)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	mustBeEmpty(t, s)
}

func TestS3_CheckFailsForAMissingBucket(t *testing.T) {
	cfg := testS3Config(newFakeS3(t))
	s, err := NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err == nil {
		t.Fatal("Check passed without a bucket")
	}
}

func TestS3Config_ValidateReportsEveryProblem(t *testing.T) {
	cfg := S3Config{Prefix: "/abs", AccessKeyID: "id", PartSize: 1 << 20, Endpoint: "ftp://x"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate passed")
	}
	for _, want := range []string{"bucket", "prefix", "secret access key", "part size", "endpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %q, missing the %s problem", err, want)
		}
	}
	if _, err := NewS3(context.Background(), cfg); err == nil {
		t.Fatal("NewS3 accepted an invalid config")
	}
	ok := testS3Config("http://127.0.0.1:9000")
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	secretOnly := ok
	secretOnly.AccessKeyID = ""
	if err := secretOnly.Validate(); err == nil {
		t.Fatal("a secret without a key ID passed")
	}
}

func TestS3Config_SecretNotPrinted(t *testing.T) {
	cfg := testS3Config("http://127.0.0.1:9000")
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "test-secret") {
			t.Fatalf("config prints its secret: %s", s)
		}
	}
}

// CleanTemp aborts the multipart upload and removes the temporary a crash left (writers never
// committed nor aborted) once they are old enough, and leaves recent ones and blobs.
func TestS3_CleanTempRemovesOnlyOldLeftovers(t *testing.T) {
	s := newTestS3(t)
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(testData(DefaultPartSize+1, 5)); err != nil { // a multipart upload begun
		t.Fatal(err)
	}
	putRaw(t, s, s.prefix+"tmp/completed-not-copied", []byte("x"))
	blob, _ := put(t, s, []byte("a committed blob"))
	putRaw(t, s, "other/tmp/not-ours", []byte("y"))

	// Against the fake's own clock the leftovers are fresh: an upload may still be running.
	s.now = time.Now
	if n, err := s.CleanTemp(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("CleanTemp of fresh leftovers = %d, %v; want 0", n, err)
	}
	if objs := objects(t, s); len(objs) != 3 {
		t.Fatalf("after a CleanTemp that removes nothing: %q", objs)
	}
	s.now = clocktest.New(time.Now().Add(2 * time.Hour)).Now
	if n, err := s.CleanTemp(ctx, time.Hour); err != nil || n != 2 {
		t.Fatalf("CleanTemp = %d, %v; want 2 removed", n, err)
	}
	if objs := objects(t, s); len(objs) != 1 || objs[0] != "blobs/"+blob {
		t.Fatalf("after CleanTemp: %q, want only the blob", objs)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String("other/tmp/not-ours")})
	if err != nil {
		t.Fatalf("object outside the prefix: %v", err)
	}
	out.Body.Close()
}
