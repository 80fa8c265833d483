package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket/s3blob"
)

// s3Ops are the operation label values: the SDK method names.
var s3Ops = []string{"PutObject", "GetObject", "HeadObject", "DeleteObject", "ListObjectsV2",
	"CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload",
	"ListMultipartUploads", "HeadBucket"}

type s3Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// S3API returns api with every S3 call counted and timed, labelled with the
// SDK method name, so a dashboard shows what each append costs in S3
// requests:
//
//	ferry_s3_requests_total{operation,result}
//	ferry_s3_request_duration_seconds{operation}
//
// result is ok, not_found (a 404 for an object or upload: a missing bucket
// is an error), invalid_range (416), key_conflict (a posix gateway refusing
// "a" next to "a/b"), short_body (the caller's body broke off), canceled or
// error. A call is counted once however many times the SDK retried it;
// s3blob turns retries off for the streamed PutObject and UploadPart.
func S3API(api s3blob.API, reg prometheus.Registerer) s3blob.API {
	m := &s3Metrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_s3_requests_total",
			Help: "S3 API calls by SDK operation and result (ok, not_found, invalid_range, key_conflict, short_body, canceled, error).",
		}, []string{"operation", "result"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_s3_request_duration_seconds",
			Help:    "S3 API call latency by SDK operation (for GetObject, until the body starts).",
			Buckets: storageBuckets,
		}, []string{"operation"})),
	}
	for _, op := range s3Ops {
		m.requests.WithLabelValues(op, resultOK)
		m.requests.WithLabelValues(op, resultError)
	}
	return &s3API{next: api, m: m}
}

// s3Result classifies from the HTTP status and S3 error code, the way
// s3blob maps errors, so expected answers stay out of "error". body is the
// watched request body of PutObject and UploadPart, else nil.
func s3Result(op string, err error, body *watchedBody) string {
	var (
		status interface{ HTTPStatusCode() int }
		api    smithy.APIError
	)
	switch {
	case err == nil:
		return resultOK
	case canceled(err):
		return resultCanceled
	case body != nil && body.failed.Load():
		// The upload's body gave out (a dropped client), not S3.
		return resultShortBody
	case errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound &&
		op != "HeadBucket" && !(errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket"):
		// A missing object or upload; a missing bucket is misconfiguration.
		return resultNotFound
	case errors.As(err, &status) && status.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable:
		return "invalid_range"
	case errors.As(err, &api) && (api.ErrorCode() == "ExistingObjectIsDirectory" || api.ErrorCode() == "ObjectParentIsFile"):
		return "key_conflict"
	}
	return resultError
}

type s3API struct {
	next s3blob.API
	m    *s3Metrics
}

// call times and counts one SDK call.
func call[I, O any](ctx context.Context, a *s3API, op string, in I, opts []func(*s3.Options),
	f func(context.Context, I, ...func(*s3.Options)) (O, error), body *watchedBody) (O, error) {
	start := time.Now()
	out, err := f(ctx, in, opts...)
	a.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	a.m.requests.WithLabelValues(op, s3Result(op, err, body)).Inc()
	return out, err
}

// watchedBody tells a request body that failed (the client's upload broke
// off) from S3 failing. The flag is atomic because the HTTP transport may
// still be reading the body after the call returns.
type watchedBody struct {
	r      io.Reader
	failed atomic.Bool
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF {
		w.failed.Store(true)
	}
	return n, err
}

// watch wraps *body in place. Seekable bodies are left alone: the SDK
// rewinds and measures those, and a wrapper would hide that they can be.
// s3blob's streamed bodies are never seekable.
func watch(body *io.Reader) *watchedBody {
	if *body == nil {
		return nil
	}
	if _, ok := (*body).(io.Seeker); ok {
		return nil
	}
	w := &watchedBody{r: *body}
	*body = w
	return w
}

func (a *s3API) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	cp := *in // the caller's input stays as it was
	body := watch(&cp.Body)
	return call(ctx, a, "PutObject", &cp, o, a.next.PutObject, body)
}

func (a *s3API) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return call(ctx, a, "GetObject", in, o, a.next.GetObject, nil)
}

func (a *s3API) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return call(ctx, a, "HeadObject", in, o, a.next.HeadObject, nil)
}

func (a *s3API) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return call(ctx, a, "DeleteObject", in, o, a.next.DeleteObject, nil)
}

func (a *s3API) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return call(ctx, a, "ListObjectsV2", in, o, a.next.ListObjectsV2, nil)
}

func (a *s3API) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return call(ctx, a, "CreateMultipartUpload", in, o, a.next.CreateMultipartUpload, nil)
}

func (a *s3API) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	cp := *in
	body := watch(&cp.Body)
	return call(ctx, a, "UploadPart", &cp, o, a.next.UploadPart, body)
}

func (a *s3API) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, o ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	return call(ctx, a, "UploadPartCopy", in, o, a.next.UploadPartCopy, nil)
}

func (a *s3API) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return call(ctx, a, "CompleteMultipartUpload", in, o, a.next.CompleteMultipartUpload, nil)
}

func (a *s3API) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return call(ctx, a, "AbortMultipartUpload", in, o, a.next.AbortMultipartUpload, nil)
}

func (a *s3API) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, o ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	return call(ctx, a, "ListMultipartUploads", in, o, a.next.ListMultipartUploads, nil)
}

func (a *s3API) HeadBucket(ctx context.Context, in *s3.HeadBucketInput, o ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return call(ctx, a, "HeadBucket", in, o, a.next.HeadBucket, nil)
}
