package metrics

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
)

// Blob-backend operation label values.
const (
	opBlobPut           = "put"
	opBlobGet           = "get"
	opBlobHead          = "head"
	opBlobDelete        = "delete"
	opBlobList          = "list"
	opCreateMultipart   = "create_multipart"
	opUploadPart        = "upload_part"
	opCompleteMultipart = "complete_multipart"
	opAbortMultipart    = "abort_multipart"
	opListMultipart     = "list_multipart"
	opCopyPart          = "copy_part"
	opStageWrite        = "stage_write"
	opStageCommit       = "stage_commit"
	opStageCheck        = "stage_check"
	opStageDiscard      = "stage_discard"
	opBlobPing          = "ping"
)

type blobMetrics struct {
	ops      *prometheus.CounterVec // {operation, result}, curried with backend
	duration prometheus.ObserverVec // {operation}, curried with backend
	in, out  prometheus.Counter
}

// Backend returns c with every call counted and timed, labelled with
// backend=kind ("s3" or "filesystem"):
//
//	ferry_blob_operations_total{backend,operation,result}
//	ferry_blob_operation_duration_seconds{backend,operation}
//	ferry_blob_bytes_total{backend,direction}   in: read from the caller's body by
//	                                            Put, UploadPart and StageWrite; out: read by
//	                                            the caller from Get's body
//
// result is ok, not_found, invalid_range, key_conflict, invalid_key,
// short_body (the caller's body ended or failed before its declared size),
// canceled or error. Get's duration is the time to open the object, not to
// read it.
//
// Each capability of c is wrapped on its own, and one c lacks stays nil;
// Closer passes through unmeasured.
func Backend(c bucket.Composer, kind string, reg prometheus.Registerer) bucket.Composer {
	ops := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_blob_operations_total",
		Help: "Blob backend calls by backend, operation and result (ok, not_found, invalid_range, key_conflict, invalid_key, short_body, canceled, error).",
	}, []string{"backend", "operation", "result"}))
	duration := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_blob_operation_duration_seconds",
		Help:    "Blob backend call latency by backend and operation (for get, until the body is open).",
		Buckets: storageBuckets,
	}, []string{"backend", "operation"}))
	bytes := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_blob_bytes_total",
		Help: "Bytes moved through the blob backend: in = read from the caller's body, out = read by the caller from an object.",
	}, []string{"backend", "direction"}))
	l := prometheus.Labels{"backend": kind}
	core := &blobCore{c: c, m: &blobMetrics{
		ops: ops.MustCurryWith(l), duration: duration.MustCurryWith(l),
		in: bytes.WithLabelValues(kind, "in"), out: bytes.WithLabelValues(kind, "out"),
	}}

	// Signing a URL is local, with nothing to count: it passes through.
	out := bucket.Composer{Backend: blobBase{core}, Closer: c.Closer, Presigner: c.Presigner}
	names := []string{opBlobPut, opBlobGet, opBlobHead, opBlobDelete, opBlobList}
	if c.Multipart != nil {
		out.Multipart = multipartMethods{core}
		names = append(names, opCreateMultipart, opUploadPart, opCompleteMultipart, opAbortMultipart, opListMultipart)
	}
	if c.PartCopier != nil {
		out.PartCopier = copierMethods{core}
		names = append(names, opCopyPart)
	}
	if c.Staging != nil {
		out.Staging = stagingMethods{core}
		names = append(names, opStageWrite, opStageCheck, opStageCommit, opStageDiscard)
	}
	if c.Pinger != nil {
		out.Pinger = pingerMethods{core}
		names = append(names, opBlobPing)
	}
	for _, op := range names {
		core.m.ops.WithLabelValues(op, resultOK)
		core.m.ops.WithLabelValues(op, resultError)
	}
	return out
}

// blobResult keeps outcomes the callers expect, or that the caller caused,
// out of "error". body is the caller's reader, when the call had one.
func blobResult(err error, body *countingReader) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, bucket.ErrNotFound):
		return resultNotFound
	case errors.Is(err, bucket.ErrInvalidRange):
		return "invalid_range"
	case errors.Is(err, bucket.ErrKeyConflict):
		return "key_conflict"
	case errors.Is(err, bucket.ErrInvalidKey):
		return "invalid_key"
	case body != nil && body.short():
		// A dropped upload connection: normal on unreliable networks, and
		// no fault of the storage.
		return resultShortBody
	case canceled(err):
		return resultCanceled
	}
	return resultError
}

type blobCore struct {
	c bucket.Composer // the wrapped backend
	m *blobMetrics
}

func (c *blobCore) observe(op string, start time.Time, err error, body *countingReader) {
	c.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	c.m.ops.WithLabelValues(op, blobResult(err, body)).Inc()
}

// body counts what the backend reads from the caller's r.
func (c *blobCore) body(r io.Reader, size int64) *countingReader {
	return &countingReader{r: r, size: size, bytes: c.m.in}
}

type blobBase struct{ c *blobCore }

func (b blobBase) Put(ctx context.Context, key string, r io.Reader, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	start, body := time.Now(), b.c.body(r, size)
	info, err := b.c.c.Backend.Put(ctx, key, body, size, opts)
	b.c.observe(opBlobPut, start, err, body)
	return info, err
}

func (b blobBase) Get(ctx context.Context, key string, rng *bucket.Range) (io.ReadCloser, bucket.ObjectInfo, error) {
	start := time.Now()
	rc, info, err := b.c.c.Backend.Get(ctx, key, rng)
	b.c.observe(opBlobGet, start, err, nil)
	if err != nil {
		return rc, info, err
	}
	return &countingReadCloser{rc: rc, n: b.c.m.out}, info, nil
}

func (b blobBase) Head(ctx context.Context, key string) (bucket.ObjectInfo, error) {
	start := time.Now()
	info, err := b.c.c.Backend.Head(ctx, key)
	b.c.observe(opBlobHead, start, err, nil)
	return info, err
}

func (b blobBase) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := b.c.c.Backend.Delete(ctx, key)
	b.c.observe(opBlobDelete, start, err, nil)
	return err
}

func (b blobBase) List(ctx context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	start := time.Now()
	objs, more, err := b.c.c.Backend.List(ctx, prefix, after, limit)
	b.c.observe(opBlobList, start, err, nil)
	return objs, more, err
}

type multipartMethods struct{ c *blobCore }

func (m multipartMethods) CreateMultipart(ctx context.Context, key string, opts bucket.PutOptions) (string, error) {
	start := time.Now()
	id, err := m.c.c.Multipart.CreateMultipart(ctx, key, opts)
	m.c.observe(opCreateMultipart, start, err, nil)
	return id, err
}

func (m multipartMethods) UploadPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64, sum *bucket.Checksum) (bucket.Part, error) {
	start, body := time.Now(), m.c.body(r, size)
	part, err := m.c.c.Multipart.UploadPart(ctx, key, uploadID, n, body, size, sum)
	m.c.observe(opUploadPart, start, err, body)
	return part, err
}

func (m multipartMethods) CompleteMultipart(ctx context.Context, key, uploadID string, parts []bucket.Part) (bucket.ObjectInfo, error) {
	start := time.Now()
	info, err := m.c.c.Multipart.CompleteMultipart(ctx, key, uploadID, parts)
	m.c.observe(opCompleteMultipart, start, err, nil)
	return info, err
}

func (m multipartMethods) AbortMultipart(ctx context.Context, key, uploadID string) error {
	start := time.Now()
	err := m.c.c.Multipart.AbortMultipart(ctx, key, uploadID)
	m.c.observe(opAbortMultipart, start, err, nil)
	return err
}

func (m multipartMethods) ListMultipart(ctx context.Context, prefix string) ([]bucket.Upload, error) {
	start := time.Now()
	ups, err := m.c.c.Multipart.ListMultipart(ctx, prefix)
	m.c.observe(opListMultipart, start, err, nil)
	return ups, err
}

type copierMethods struct{ c *blobCore }

func (m copierMethods) CopyPart(ctx context.Context, key, uploadID string, n int, src string, rng bucket.Range) (bucket.Part, error) {
	start := time.Now()
	part, err := m.c.c.PartCopier.CopyPart(ctx, key, uploadID, n, src, rng)
	m.c.observe(opCopyPart, start, err, nil)
	return part, err
}

type stagingMethods struct{ c *blobCore }

func (s stagingMethods) StageWrite(ctx context.Context, id string, offset int64, r io.Reader, n int64) error {
	start, body := time.Now(), s.c.body(r, n)
	err := s.c.c.Staging.StageWrite(ctx, id, offset, body, n)
	s.c.observe(opStageWrite, start, err, body)
	return err
}

func (s stagingMethods) StageWriteAt(ctx context.Context, id string, offset int64, r io.Reader, n int64) error {
	start, body := time.Now(), s.c.body(r, n)
	err := s.c.c.Staging.StageWriteAt(ctx, id, offset, body, n)
	s.c.observe(opStageWrite, start, err, body)
	return err
}

func (s stagingMethods) StageCheck(ctx context.Context, key string) error {
	start := time.Now()
	err := s.c.c.Staging.StageCheck(ctx, key)
	s.c.observe(opStageCheck, start, err, nil)
	return err
}

func (s stagingMethods) StageCommit(ctx context.Context, id, key string, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	start := time.Now()
	info, err := s.c.c.Staging.StageCommit(ctx, id, key, size, opts)
	s.c.observe(opStageCommit, start, err, nil)
	return info, err
}

func (s stagingMethods) StageDiscard(ctx context.Context, id string) error {
	start := time.Now()
	err := s.c.c.Staging.StageDiscard(ctx, id)
	s.c.observe(opStageDiscard, start, err, nil)
	return err
}

type pingerMethods struct{ c *blobCore }

func (p pingerMethods) Ping(ctx context.Context) error {
	start := time.Now()
	err := p.c.c.Pinger.Ping(ctx)
	p.c.observe(opBlobPing, start, err, nil)
	return err
}

// countingReader counts the bytes a backend consumes from the caller's body
// as they flow, so long uploads show up in rate() while they run, and
// remembers whether the body gave out before size bytes. Its state is
// atomic because an HTTP transport may still be reading the body after the
// call that handed it over has returned.
type countingReader struct {
	r      io.Reader
	size   int64
	bytes  prometheus.Counter
	read   atomic.Int64
	failed atomic.Bool // r returned an error, or EOF before size bytes
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	read := c.read.Add(int64(n))
	c.bytes.Add(float64(n))
	if err != nil && (err != io.EOF || read < c.size) {
		c.failed.Store(true)
	}
	return n, err
}

func (c *countingReader) short() bool { return c.failed.Load() }

// countingReadCloser counts the bytes the caller reads from Get's body.
type countingReadCloser struct {
	rc io.ReadCloser
	n  prometheus.Counter
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(float64(n))
	return n, err
}

// WriteTo hands io.Copy the original body, so the fast paths it would have
// taken without the wrapper (an *os.File's sendfile to the response) still
// apply; the bytes are counted when the copy ends.
func (c *countingReadCloser) WriteTo(w io.Writer) (int64, error) {
	n, err := io.Copy(w, c.rc)
	c.n.Add(float64(n))
	return n, err
}

func (c *countingReadCloser) Close() error { return c.rc.Close() }

// Unwrap lets a caller see what the body is (a file can go out with sendfile).
func (c *countingReadCloser) Unwrap() io.ReadCloser { return c.rc }
