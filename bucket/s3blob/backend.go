// Package s3blob is the S3 blob backend: any S3-compatible endpoint, one
// bucket, keys under an optional prefix. Object names are "<prefix><key>"
// where prefix is "" or "a/b/" (New normalises it); nothing else is ever
// written (no metadata objects: sessions keep their state in the metadata
// store). Keys are checked with bucket.ValidateKey like on the filesystem,
// so both backends accept the same keys.
package s3blob

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/crc32c"
)

// API is the part of *s3.Client the backend uses, so a counting or
// fault-injecting wrapper can stand in.
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

// Backend stores objects in one S3 bucket under a prefix.
type Backend struct {
	api    API
	bucket string
	prefix string // "" or ending in "/"
}

var (
	_ bucket.Backend    = (*Backend)(nil)
	_ bucket.Multipart  = (*Backend)(nil)
	_ bucket.PartCopier = (*Backend)(nil)
	_ bucket.Pinger     = (*Backend)(nil)
)

// New returns a backend for bucket, with every key under prefix. The
// prefix is cleaned: "", "/" and "." mean none; "a/b", "/a/b/" and "a//b"
// all mean "a/b/".
func New(api API, bkt, prefix string) *Backend {
	return &Backend{api: api, bucket: bkt, prefix: cleanPrefix(prefix)}
}

// cleanPrefix is "" or a clean path ending in "/".
func cleanPrefix(prefix string) string {
	prefix = strings.Trim(path.Clean("/"+prefix), "/")
	if prefix != "" {
		prefix += "/"
	}
	return prefix
}

func (b *Backend) name(key string) *string { return aws.String(b.prefix + key) }

// mapErr turns S3's not-found and range errors into the bucket sentinels.
// A missing bucket is a configuration fault, not a missing object, so it
// stays a plain error (it must not become a 404 for the caller).
func mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var (
		nsk  *types.NoSuchKey
		nsu  *types.NoSuchUpload
		nf   *types.NotFound
		resp *awshttp.ResponseError
		api  smithy.APIError
	)
	code, status := "", 0
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("s3 %s %s: %w: %w", op, key, bucket.ErrNoBucket, err)
	case code == "AccessDenied", status == http.StatusForbidden:
		return fmt.Errorf("s3 %s %s: %w: %w", op, key, bucket.ErrAccessDenied, err)
	case errors.As(err, &nsk), errors.As(err, &nsu), errors.As(err, &nf),
		code == "NoSuchKey", code == "NoSuchUpload", code == "NotFound",
		status == http.StatusNotFound: // HEAD has no body, so no code
		return fmt.Errorf("s3 %s %s: %w", op, key, bucket.ErrNotFound)
	case code == "InvalidRange", status == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("s3 %s %s: %w", op, key, bucket.ErrInvalidRange)
	case code == "BadDigest", code == "InvalidDigest", code == "XAmzContentChecksumMismatch",
		code == "XAmzContentSHA256Mismatch", code == "InvalidChecksum":
		return fmt.Errorf("s3 %s %s: %w (%v)", op, key, bucket.ErrBadDigest, err)
	case code == "ExistingObjectIsDirectory", code == "ObjectParentIsFile":
		// Posix-backed gateways (versitygw) cannot hold both "a" and "a/b".
		return fmt.Errorf("s3 %s %s: %w (%v)", op, key, bucket.ErrKeyConflict, err)
	}
	return fmt.Errorf("s3 %s %s: %w", op, key, err)
}

// checkKey refuses what bucket.ValidateKey refuses, as the filesystem does.
func checkKey(op, key string) error {
	if err := bucket.ValidateKey(key); err != nil {
		return fmt.Errorf("s3 %s: %w: %v", op, bucket.ErrInvalidKey, err)
	}
	return nil
}

// exactly yields size bytes of r and fails if r ends early, so a short
// body is an error instead of a short object. It remembers that it ran
// short, because the SDK's wrapping of the error is not something to parse.
type exactly struct {
	r     io.Reader
	left  int64
	short bool
}

func (e *exactly) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.short = true
		return n, io.ErrUnexpectedEOF
	}
	if e.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// check reports a short body as io.ErrUnexpectedEOF.
func (e *exactly) check(err error) error {
	if err != nil && e.short && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", io.ErrUnexpectedEOF, err)
	}
	return err
}

// checksumFields places c in the request field S3 verifies it from:
// Content-MD5, or the x-amz-checksum header of its algorithm.
func checksumFields(c *bucket.Checksum) (md5, crc32c, sha1, sha256 *string) {
	v := aws.String(c.Base64())
	switch c.Algo {
	case "md5":
		md5 = v
	case "crc32c":
		crc32c = v
	case "sha1":
		sha1 = v
	case "sha256":
		sha256 = v
	}
	return
}

// noRetry: a streamed body cannot be rewound, so the SDK must not retry it;
// the client resends the chunk instead.
func noRetry(o *s3.Options) { o.Retryer = aws.NopRetryer{} }

// Put streams r as the request body with Content-Length size: nothing is
// buffered, so r need not be seekable. ObjectInfo.LastModified is left zero
// (PutObject does not return it; a Head would cost a request).
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	if err := checkKey("put", key); err != nil {
		return bucket.ObjectInfo{}, err
	}
	if size < 0 || size > bucket.MaxPutSize {
		return bucket.ObjectInfo{}, fmt.Errorf("s3 put %s: size %d is outside 0..%d, the single-request limit; use a multipart upload", key, size, bucket.MaxPutSize)
	}
	body := &exactly{r: r, left: size}
	in := &s3.PutObjectInput{Bucket: &b.bucket, Key: b.name(key), Body: body, ContentLength: aws.Int64(size)}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if c := opts.Checksum; c != nil {
		in.ContentMD5, in.ChecksumCRC32C, in.ChecksumSHA1, in.ChecksumSHA256 = checksumFields(c)
	}
	if opts.CRC32C != nil && in.ChecksumCRC32C == nil {
		in.ChecksumCRC32C = aws.String(crc32c.Encode(*opts.CRC32C))
	}
	out, err := b.api.PutObject(ctx, in, noRetry)
	if err != nil {
		return bucket.ObjectInfo{}, body.check(mapErr("put", key, err))
	}
	return bucket.ObjectInfo{Key: key, Size: size, ETag: aws.ToString(out.ETag), ContentType: opts.ContentType}, nil
}

// rangeHeader is the HTTP Range for rng. Ranges S3 would answer with the
// whole object or a 400 (negative offset, zero length) are refused here.
func rangeHeader(rng *bucket.Range) (string, error) {
	if rng.Offset < 0 || rng.Length == 0 {
		return "", fmt.Errorf("range %d+%d selects no bytes: %w", rng.Offset, rng.Length, bucket.ErrInvalidRange)
	}
	if rng.Length < 0 {
		return fmt.Sprintf("bytes=%d-", rng.Offset), nil
	}
	if rng.Length > math.MaxInt64-rng.Offset {
		return fmt.Sprintf("bytes=%d-", rng.Offset), nil // to the end anyway
	}
	return fmt.Sprintf("bytes=%d-%d", rng.Offset, rng.Offset+rng.Length-1), nil
}

// totalSize reads the object size from a Content-Range "bytes a-b/total".
func totalSize(contentRange string) (int64, bool) {
	i := strings.LastIndexByte(contentRange, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(contentRange[i+1:], 10, 64)
	return n, err == nil
}

func (b *Backend) Get(ctx context.Context, key string, rng *bucket.Range) (io.ReadCloser, bucket.ObjectInfo, error) {
	if err := checkKey("get", key); err != nil {
		return nil, bucket.ObjectInfo{}, err
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: b.name(key)}
	if rng != nil {
		h, err := rangeHeader(rng)
		if err != nil {
			return nil, bucket.ObjectInfo{}, fmt.Errorf("s3 get %s: %w", key, err)
		}
		in.Range = aws.String(h)
	}
	out, err := b.api.GetObject(ctx, in)
	if err != nil {
		return nil, bucket.ObjectInfo{}, mapErr("get", key, err)
	}
	info := bucket.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified), ContentType: aws.ToString(out.ContentType)}
	if n, ok := totalSize(aws.ToString(out.ContentRange)); ok {
		info.Size = n // ContentLength is the range's; Size is the object's
	}
	return out.Body, info, nil
}

func (b *Backend) Head(ctx context.Context, key string) (bucket.ObjectInfo, error) {
	if err := checkKey("head", key); err != nil {
		return bucket.ObjectInfo{}, err
	}
	out, err := b.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: b.name(key)})
	if err != nil {
		return bucket.ObjectInfo{}, mapErr("head", key, err)
	}
	return bucket.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified), ContentType: aws.ToString(out.ContentType)}, nil
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	_, err := b.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: b.name(key)})
	if err = mapErr("delete", key, err); errors.Is(err, bucket.ErrNotFound) {
		return nil
	}
	return err
}

// List asks for one key more than limit, so `more` is exact without
// trusting IsTruncated on a page that happens to end at the limit. Names
// that are not valid keys (a console's "dir/" markers, say) are skipped:
// no other method could take them.
func (b *Backend) List(ctx context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	if limit <= 0 {
		limit = 1000
	}
	in := &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: aws.String(b.prefix + prefix),
		MaxKeys: aws.Int32(int32(min(limit, 999) + 1))}
	if after != "" {
		in.StartAfter = aws.String(b.prefix + after)
	}
	var objs []bucket.ObjectInfo
	for {
		out, err := b.api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, false, mapErr("list", prefix, err)
		}
		for _, o := range out.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), b.prefix)
			if !ok || bucket.ValidateKey(key) != nil {
				continue
			}
			if len(objs) == limit {
				return objs, true, nil
			}
			objs = append(objs, bucket.ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified)})
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return objs, false, nil
		}
		in.ContinuationToken, in.StartAfter = out.NextContinuationToken, nil
	}
}

func (b *Backend) CreateMultipart(ctx context.Context, key string, opts bucket.PutOptions) (string, error) {
	if err := checkKey("create multipart", key); err != nil {
		return "", err
	}
	in := &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: b.name(key)}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if opts.FullObjectCRC32C {
		fullObject(in)
	}
	out, err := b.api.CreateMultipartUpload(ctx, in)
	if err != nil && opts.FullObjectCRC32C {
		return "", unsupported(key, err)
	}
	if err != nil {
		return "", mapErr("create multipart", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// UploadPart streams r like Put does.
func (b *Backend) UploadPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64, sum *bucket.Checksum) (bucket.Part, error) {
	if err := checkKey("upload part", key); err != nil {
		return bucket.Part{}, err
	}
	if n < 1 || n > bucket.MaxParts {
		return bucket.Part{}, fmt.Errorf("s3 upload part %s: part number %d is outside 1..%d", key, n, bucket.MaxParts)
	}
	if size < 0 || size > bucket.MaxPartSize {
		return bucket.Part{}, fmt.Errorf("s3 upload part %s: size %d is outside 0..%d", key, size, bucket.MaxPartSize)
	}
	body := &exactly{r: r, left: size}
	in := &s3.UploadPartInput{Bucket: &b.bucket, Key: b.name(key), UploadId: &uploadID,
		PartNumber: aws.Int32(int32(n)), Body: body, ContentLength: aws.Int64(size)}
	opts := []func(*s3.Options){noRetry}
	var trailer *crcTrailer
	switch {
	case sum == bucket.ComputeCRC32C:
		trailer = newCRCTrailer(body, size)
		in.Body, in.ContentLength = trailer, aws.Int64(encodedLength(size))
		opts = append(opts, withTrailer(size))
	case sum != nil:
		in.ContentMD5, in.ChecksumCRC32C, in.ChecksumSHA1, in.ChecksumSHA256 = checksumFields(sum)
	}
	out, err := b.api.UploadPart(ctx, in, opts...)
	if err != nil {
		return bucket.Part{}, body.check(mapErr("upload part", key, err))
	}
	p := bucket.Part{Number: n, ETag: aws.ToString(out.ETag), Size: size}
	switch {
	case trailer != nil:
		p.CRC32C = &trailer.crc // what storage checked the part against
	case sum != nil && sum.Algo == "crc32c" && len(sum.Sum) == 4:
		p.CRC32C = new(binary.BigEndian.Uint32(sum.Sum))
	}
	return p, nil
}

// CopyPart makes part n from a range of another object in the bucket.
func (b *Backend) CopyPart(ctx context.Context, key, uploadID string, n int, src string, rng bucket.Range) (bucket.Part, error) {
	if err := checkKey("copy part", key); err != nil {
		return bucket.Part{}, err
	}
	if err := checkKey("copy part", src); err != nil {
		return bucket.Part{}, err
	}
	if n < 1 || n > bucket.MaxParts || rng.Offset < 0 || rng.Length < 1 || rng.Length > bucket.MaxPartSize {
		return bucket.Part{}, fmt.Errorf("s3 copy part %s: part %d of %+v is outside S3's limits", key, n, rng)
	}
	source := url.PathEscape(b.bucket) + "/" + (&url.URL{Path: b.prefix + src}).EscapedPath()
	out, err := b.api.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &b.bucket, Key: b.name(key), UploadId: &uploadID,
		PartNumber: aws.Int32(int32(n)), CopySource: &source,
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", rng.Offset, rng.Offset+rng.Length-1))})
	if err != nil {
		return bucket.Part{}, mapErr("copy part", src, err)
	}
	var etag string
	if out.CopyPartResult != nil {
		etag = aws.ToString(out.CopyPartResult.ETag)
	}
	return bucket.Part{Number: n, ETag: etag, Size: rng.Length}, nil
}

// CompleteMultipart reports Size as the sum of the parts' Size (S3 does not
// return it and a Head would cost a request) and leaves LastModified zero.
func (b *Backend) CompleteMultipart(ctx context.Context, key, uploadID string, parts []bucket.Part) (bucket.ObjectInfo, error) {
	if err := checkKey("complete multipart", key); err != nil {
		return bucket.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return bucket.ObjectInfo{}, fmt.Errorf("s3 complete multipart %s: no parts", key)
	}
	var size int64
	for _, p := range parts {
		size += p.Size
	}
	cp, whole := completedParts(parts)
	in := &s3.CompleteMultipartUploadInput{Bucket: &b.bucket, Key: b.name(key),
		UploadId: &uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: cp}}
	if whole != nil {
		in.ChecksumCRC32C, in.ChecksumType = aws.String(crc32c.Encode(*whole)), types.ChecksumTypeFullObject
	}
	out, err := b.api.CompleteMultipartUpload(ctx, in)
	if err != nil {
		// Some gateways (versitygw) answer for a gone upload with
		// InvalidPart, as if only the parts were wrong; AWS says
		// NoSuchUpload. Telling them apart costs a request on this error
		// path only.
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "InvalidPart" {
			found, lerr := b.uploadExists(ctx, key, uploadID)
			if lerr == nil && !found {
				return bucket.ObjectInfo{}, fmt.Errorf("s3 complete multipart %s: upload %s: %w", key, uploadID, bucket.ErrNotFound)
			}
			if lerr == nil { // the parts it holds are not the ETags and CRC32Cs listed
				return bucket.ObjectInfo{}, fmt.Errorf("s3 complete multipart %s: %w (%v)", key, bucket.ErrBadDigest, err)
			}
		}
		return bucket.ObjectInfo{}, mapErr("complete multipart", key, err)
	}
	return bucket.ObjectInfo{Key: key, Size: size, ETag: aws.ToString(out.ETag)}, nil
}

func (b *Backend) uploadExists(ctx context.Context, key, uploadID string) (bool, error) {
	found := false
	err := b.eachUpload(ctx, key, func(name, id string, _ time.Time) bool {
		found = name == b.prefix+key && id == uploadID
		return !found
	})
	return found, err
}

// eachUpload calls fn with the object name and id of each upload in
// progress under prefix, until fn returns false.
func (b *Backend) eachUpload(ctx context.Context, prefix string, fn func(name, id string, initiated time.Time) bool) error {
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: aws.String(b.prefix + prefix)}
	for {
		out, err := b.api.ListMultipartUploads(ctx, in)
		if err != nil {
			return mapErr("list multipart", prefix, err)
		}
		for _, u := range out.Uploads {
			if !fn(aws.ToString(u.Key), aws.ToString(u.UploadId), aws.ToTime(u.Initiated)) {
				return nil
			}
		}
		// A truncated page without a marker would loop forever.
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextKeyMarker) == "" && aws.ToString(out.NextUploadIdMarker) == "" {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

func (b *Backend) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := checkKey("abort multipart", key); err != nil {
		return err
	}
	_, err := b.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: b.name(key), UploadId: &uploadID})
	if err = mapErr("abort multipart", key, err); errors.Is(err, bucket.ErrNotFound) {
		return nil
	}
	return err
}

func (b *Backend) ListMultipart(ctx context.Context, prefix string) ([]bucket.Upload, error) {
	var ups []bucket.Upload
	err := b.eachUpload(ctx, prefix, func(name, id string, initiated time.Time) bool {
		if key, ok := strings.CutPrefix(name, b.prefix); ok {
			ups = append(ups, bucket.Upload{Key: key, UploadID: id, Initiated: initiated})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return ups, nil
}

// Ping checks that the bucket exists and the credentials reach it.
func (b *Backend) Ping(ctx context.Context) error {
	_, err := b.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if err != nil {
		return fmt.Errorf("s3 bucket %s: %w", b.bucket, err)
	}
	return nil
}
