package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metrics"
)

const s3Requests = "ferry_s3_requests_total"

// requests counts every S3 call so far, whatever its operation and result.
func requests(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	return value(t, reg, s3Requests)
}

func TestS3APICounts(t *testing.T) {
	ctx := t.Context()
	client, bkt := testsvc.S3(t)
	reg := prometheus.NewRegistry()
	b := s3blob.New(metrics.S3API(client, reg), bkt, "")
	data := bytes.Repeat([]byte("x"), 1000)

	// A small file is one PutObject and nothing else.
	if _, err := b.Put(ctx, "obj", bytes.NewReader(data), int64(len(data)), bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), "obj") })
	want(t, reg, 1, s3Requests, "operation", "PutObject", "result", "ok")
	if n := requests(t, reg); n != 1 {
		t.Errorf("one Put made %v S3 requests, want 1", n)
	}

	// An append of a part is one UploadPart: one write, no reads.
	id, err := b.CreateMultipart(ctx, "multi", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := requests(t, reg)
	part, err := b.UploadPart(ctx, "multi", id, 1, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := requests(t, reg) - before; n != 1 {
		t.Errorf("one UploadPart made %v S3 requests, want 1", n)
	}
	// A client that drops mid-part is not an S3 failure.
	if _, err := b.UploadPart(ctx, "multi", id, 2, strings.NewReader("short"), 100, nil); err == nil {
		t.Fatal("short UploadPart succeeded")
	}
	want(t, reg, 1, s3Requests, "operation", "UploadPart", "result", "short_body")
	if _, err := b.CompleteMultipart(ctx, "multi", id, []bucket.Part{part}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), "multi") })

	// Expected answers are not failures either.
	if _, err := b.Head(ctx, "missing"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("Head missing: %v", err)
	}
	if _, _, err := b.Get(ctx, "obj", &bucket.Range{Offset: 5000, Length: -1}); !errors.Is(err, bucket.ErrInvalidRange) {
		t.Fatalf("Get past the end: %v", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Head(gone, "obj"); err == nil {
		t.Fatal("Head with a cancelled context succeeded")
	}
	want(t, reg, 1, s3Requests, "operation", "HeadObject", "result", "not_found")
	want(t, reg, 1, s3Requests, "operation", "GetObject", "result", "invalid_range")
	want(t, reg, 1, s3Requests, "operation", "HeadObject", "result", "canceled")
	want(t, reg, 0, s3Requests, "result", "error")
	want(t, reg, 2, "ferry_s3_request_duration_seconds", "operation", "UploadPart")
	lint(t, reg)
}

// An unreachable endpoint counts as error: this is what the S3 alert reads.
func TestS3APIError(t *testing.T) {
	client, err := s3blob.NewClient(t.Context(), s3blob.ClientConfig{
		Endpoint: "http://127.0.0.1:1", Region: "us-east-1", PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	api := metrics.S3API(client, reg)
	noRetry := func(o *s3.Options) { o.Retryer = aws.NopRetryer{} }
	if _, err := api.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String("b")}, noRetry); err == nil {
		t.Fatal("HeadBucket on a closed port succeeded")
	}
	want(t, reg, 1, s3Requests, "operation", "HeadBucket", "result", "error")
}

// A missing bucket is misconfiguration, not an expected not-found.
func TestS3APIMissingBucket(t *testing.T) {
	client, _ := testsvc.S3(t)
	reg := prometheus.NewRegistry()
	b := s3blob.New(metrics.S3API(client, reg), "no-such-bucket-"+strings.ToLower(testsvc.Unique("")), "")
	if err := b.Ping(t.Context()); err == nil {
		t.Fatal("Ping of a missing bucket succeeded")
	}
	if _, err := b.Put(t.Context(), "k", strings.NewReader("x"), 1, bucket.PutOptions{}); err == nil {
		t.Fatal("Put into a missing bucket succeeded")
	}
	want(t, reg, 1, s3Requests, "operation", "HeadBucket", "result", "error")
	want(t, reg, 1, s3Requests, "operation", "PutObject", "result", "error")
}
