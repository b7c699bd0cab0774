package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"tutela"
)

// S3 limits (docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
const (
	// DefaultPartSize is the multipart part size, and so the memory one upload holds.
	DefaultPartSize = 8 << 20
	minPartSize     = 5 << 20 // every part but the last
	maxPartSize     = 5 << 30
	maxParts        = 10000
	// maxCopySize is the most one CopyObject copies; Commit copies the finished temporary to
	// its content address, so it bounds a blob's size.
	maxCopySize = 5 << 30
	// cleanupTimeout bounds the requests that remove an abandoned upload, which run even when
	// the upload's context was cancelled (the client went away).
	cleanupTimeout = time.Minute
)

// S3Config says where an S3 store keeps its blobs.
type S3Config struct {
	Bucket string
	// Prefix is prepended to every object name ("tutela/" keeps blobs under tutela/blobs/ and
	// temporaries under tutela/tmp/); a missing trailing slash is added.
	Prefix string
	Region string
	// Endpoint is the URL of an S3-compatible service (MinIO, Ceph, gofakes3); empty is AWS.
	Endpoint     string
	UsePathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials; both empty uses the SDK's
	// default chain (environment, shared files, instance or task role).
	AccessKeyID     string
	SecretAccessKey tutela.Secret
	// PartSize is the multipart part size (DefaultPartSize when zero; 5 MiB to 5 GiB).
	PartSize int64
}

// Validate returns every problem with c at once, nil when there is none.
func (c S3Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("blob: s3 bucket is required"))
	}
	if strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, errors.New("blob: s3 prefix must not start with a slash"))
	}
	if (c.AccessKeyID == "") != c.SecretAccessKey.IsZero() {
		errs = append(errs, errors.New("blob: s3 access key ID and secret access key go together"))
	}
	if c.PartSize != 0 && (c.PartSize < minPartSize || c.PartSize > maxPartSize) {
		errs = append(errs, fmt.Errorf("blob: s3 part size must be between %d and %d bytes", int64(minPartSize), int64(maxPartSize)))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("blob: s3 endpoint must be an http(s) URL"))
		}
	}
	return errors.Join(errs...)
}

// S3 stores blobs in an S3-compatible bucket: prefix + "blobs/<key>", temporaries under
// prefix + "tmp/". Server-side encryption is not relied on: blobs arrive encrypted.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int64
	maxSize  int64            // largest blob a Writer accepts
	now      func() time.Time // CleanTemp's clock
}

var _ Store = (*S3)(nil)

// NewS3 returns a store for cfg. It makes no request; Check does.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey.Reveal(), "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("blob: s3 configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("blob: s3 region is required (configure it or set AWS_REGION)")
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.UsePathStyle
	})
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	part := cfg.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	return &S3{client: client, bucket: cfg.Bucket, prefix: prefix, partSize: part,
		maxSize: min(maxCopySize, part*maxParts), now: time.Now}, nil
}

func (s *S3) blobKey(key string) string { return s.prefix + "blobs/" + key }

// Create starts an upload to a random temporary name. Nothing is sent until PartSize bytes
// arrive: a blob smaller than that is one PutObject straight to its content address at Commit.
func (s *S3) Create(ctx context.Context) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := randomName()
	if err != nil {
		return nil, fmt.Errorf("blob: naming a temporary: %w", err)
	}
	return &s3Writer{s: s, ctx: ctx, tmp: s.prefix + "tmp/" + name, h: sha256.New()}, nil
}

// s3Writer holds one part in memory: the whole buffer is uploaded as a part only when more
// bytes follow, so the last part is never empty and a blob of at most PartSize bytes needs no
// multipart upload.
type s3Writer struct {
	s        *S3
	ctx      context.Context // the upload's; parts are sent from Write, which has none
	tmp      string
	h        hash.Hash
	buf      []byte
	size     int64
	uploadID string
	parts    []types.CompletedPart
	complete bool  // the multipart upload was completed: tmp is an object now
	err      error // sticky: a blob missing a part must not be committed
	done     bool  // committed or aborted
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.s.maxSize-w.size {
		w.err = fmt.Errorf("blob: larger than the S3 store's limit of %d bytes", w.s.maxSize)
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, w.s.partSize)
		}
		if len(w.buf) == cap(w.buf) {
			if err := w.uploadPart(); err != nil {
				w.err = err
				return written, err
			}
		}
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		w.h.Write(p[:n])
		w.size += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

func (w *s3Writer) uploadPart() error {
	c, b := w.s.client, aws.String(w.s.bucket)
	if w.uploadID == "" {
		// The algorithm is declared up front: S3 refuses parts carrying a checksum the upload
		// was not created with, and the SDK adds one to every part by default.
		out, err := c.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket: b, Key: aws.String(w.tmp), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return fmt.Errorf("blob: s3 starting an upload: %w", err)
		}
		w.uploadID = aws.ToString(out.UploadId)
	}
	num := int32(len(w.parts) + 1) // #nosec G115 -- a part number; S3 allows at most 10,000 parts per upload
	out, err := c.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket: b, Key: aws.String(w.tmp), UploadId: aws.String(w.uploadID), PartNumber: aws.Int32(num),
		Body: bytes.NewReader(w.buf), ContentLength: aws.Int64(int64(len(w.buf))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("blob: s3 uploading part %d: %w", num, err)
	}
	// The part's checksum goes back into the completion, which S3 checks against what it
	// stored (transport integrity; the content address is checked on every read).
	w.parts = append(w.parts, types.CompletedPart{
		PartNumber: aws.Int32(num), ETag: out.ETag,
		ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C, ChecksumCRC64NVME: out.ChecksumCRC64NVME,
		ChecksumSHA1: out.ChecksumSHA1, ChecksumSHA256: out.ChecksumSHA256,
	})
	w.buf = w.buf[:0]
	return nil
}

// Commit stores the blob under its content address: one PutObject for a small blob; for a
// large one the last part, the multipart completion, a copy from the temporary to the content
// address, and the temporary's deletion. On failure nothing is left but what Abort could not
// remove.
func (w *s3Writer) Commit(ctx context.Context) (string, int64, error) {
	if w.done {
		return "", 0, errFinished
	}
	key, err := w.commit(ctx)
	if err != nil {
		_ = w.Abort()
		return "", 0, err
	}
	w.done, w.buf = true, nil
	return key, w.size, nil
}

func (w *s3Writer) commit(ctx context.Context) (string, error) {
	if w.err != nil {
		return "", w.err
	}
	c, b := w.s.client, aws.String(w.s.bucket)
	key := hex.EncodeToString(w.h.Sum(nil))
	final := aws.String(w.s.blobKey(key))
	if w.uploadID == "" {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: b, Key: final, Body: bytes.NewReader(w.buf), ContentLength: aws.Int64(int64(len(w.buf))),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return "", fmt.Errorf("blob: s3 storing: %w", err)
		}
		return key, nil
	}
	w.ctx = ctx // the last part belongs to Commit's context
	if err := w.uploadPart(); err != nil {
		return "", err
	}
	_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: b, Key: aws.String(w.tmp), UploadId: aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil {
		return "", fmt.Errorf("blob: s3 completing an upload: %w", err)
	}
	w.complete = true
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: final, CopySource: aws.String(copySource(w.s.bucket, w.tmp))})
	if err != nil {
		return "", fmt.Errorf("blob: s3 copying into place: %w", err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String(w.tmp)}); err != nil {
		return "", fmt.Errorf("blob: s3 removing a temporary: %w", err)
	}
	return key, nil
}

// copySource is CopyObject's "bucket/key", URL-encoded segment by segment as S3 requires.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return url.PathEscape(bucket) + "/" + strings.Join(segs, "/")
}

// Abort aborts the multipart upload or deletes the completed temporary. It runs under its own
// deadline, not the upload's context: an upload is aborted precisely when its client has gone.
func (w *s3Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done, w.buf = true, nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), cleanupTimeout)
	defer cancel()
	c, b := w.s.client, aws.String(w.s.bucket)
	switch {
	case w.complete:
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String(w.tmp)}); err != nil {
			return fmt.Errorf("blob: s3 removing a temporary: %w", err)
		}
	case w.uploadID != "":
		_, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String(w.tmp), UploadId: aws.String(w.uploadID)})
		if err != nil && errorCode(err) != "NoSuchUpload" {
			return fmt.Errorf("blob: s3 aborting an upload: %w", err)
		}
	}
	return nil
}

// Open streams key's blob, verifying it against its name at the end.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if !ValidKey(key) {
		return nil, ErrInvalidKey
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.blobKey(key))})
	if isNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blob: s3 opening: %w", err)
	}
	return newVerifyingReader(out.Body, key), nil
}

func isNotFound(err error) bool {
	code := errorCode(err)
	return code == "NoSuchKey" || code == "NotFound"
}

// errorCode returns the S3 error code of err ("NoSuchKey", ...), "" for none. The code, not
// the SDK's typed errors, because S3-compatible services answer errors the SDK does not model
// for the operation.
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Delete removes key's blob; a missing blob is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return ErrInvalidKey
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.blobKey(key))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("blob: s3 deleting: %w", err)
	}
	return nil
}

// Objects lists every object under the prefix ("blobs/<key>", "tmp/<name>", relative to the
// prefix) and every unfinished multipart upload, as "multipart:tmp/<name>": an aborted upload
// that S3 still holds parts of is a leftover too.
func (s *S3) Objects(ctx context.Context) ([]string, error) {
	var out []string
	b, p := aws.String(s.bucket), aws.String(s.prefix)
	objects := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: b, Prefix: p})
	for objects.HasMorePages() {
		page, err := objects.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("blob: s3 listing objects: %w", err)
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(aws.ToString(o.Key), s.prefix))
		}
	}
	uploads := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{Bucket: b, Prefix: p})
	for uploads.HasMorePages() {
		page, err := uploads.NextPage(ctx)
		if errorCode(err) == "NoSuchUpload" {
			break // gofakes3's answer for a bucket that never had an upload: there is none
		}
		if err != nil {
			return nil, fmt.Errorf("blob: s3 listing multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			out = append(out, "multipart:"+strings.TrimPrefix(aws.ToString(u.Key), s.prefix))
		}
	}
	return out, nil
}

// Check reports whether the bucket answers and these credentials reach it.
func (s *S3) Check(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("blob: s3 bucket not reachable: %w", err)
	}
	return nil
}

// CleanTemp removes what uploads left behind when the process died between Create and Commit
// or Abort: multipart uploads started, and temporaries written, more than olderThan ago. Call
// it at start-up, with olderThan longer than any upload may stall. It returns how many it
// removed. A bucket lifecycle rule (AbortIncompleteMultipartUpload, and expiry under
// prefix + "tmp/") does the same without the process.
func (s *S3) CleanTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := s.now().Add(-olderThan)
	b, tmp := aws.String(s.bucket), aws.String(s.prefix+"tmp/")
	removed := 0
	uploads := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{Bucket: b, Prefix: tmp})
	for uploads.HasMorePages() {
		page, err := uploads.NextPage(ctx)
		if errorCode(err) == "NoSuchUpload" {
			break // gofakes3: no upload ever
		}
		if err != nil {
			return removed, fmt.Errorf("blob: s3 listing multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			if u.Initiated == nil || !u.Initiated.Before(cutoff) {
				continue
			}
			_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: u.Key, UploadId: u.UploadId})
			if err != nil && errorCode(err) != "NoSuchUpload" {
				return removed, fmt.Errorf("blob: s3 aborting an abandoned upload: %w", err)
			}
			removed++
		}
	}
	objects := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: b, Prefix: tmp})
	for objects.HasMorePages() {
		page, err := objects.NextPage(ctx)
		if err != nil {
			return removed, fmt.Errorf("blob: s3 listing temporaries: %w", err)
		}
		for _, o := range page.Contents {
			if o.LastModified == nil || !o.LastModified.Before(cutoff) {
				continue
			}
			if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: o.Key}); err != nil {
				return removed, fmt.Errorf("blob: s3 removing an abandoned temporary: %w", err)
			}
			removed++
		}
	}
	return removed, nil
}
