package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/backendtest"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metrics"
)

func openFS(t *testing.T) *fsblob.Backend {
	t.Helper()
	b, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// capabilities lists which optional capabilities c has.
func capabilities(c bucket.Composer) (multipart, staging, pinger, closer bool) {
	return c.Multipart != nil, c.Staging != nil, c.Pinger != nil, c.Closer != nil
}

// Stand-ins for every combination of capabilities; their methods are never
// called, only asserted.
type (
	onlyBackend struct{ bucket.Backend }
	withMP      struct{ bucket.Multipart }
	withST      struct{ bucket.Staging }
	withPing    struct{ bucket.Pinger }

	mpBackend struct {
		onlyBackend
		withMP
	}
	stBackend struct {
		onlyBackend
		withST
	}
	pingBackend struct {
		onlyBackend
		withPing
	}
	mpSTBackend struct {
		mpBackend
		withST
	}
	mpPingBackend struct {
		mpBackend
		withPing
	}
	stPingBackend struct {
		stBackend
		withPing
	}
	allBackend struct {
		mpSTBackend
		withPing
	}
)

// The session engine picks staging or multipart by the composer's fields,
// so the wrapper must offer exactly what the wrapped backend offers.
func TestBackendKeepsCapabilities(t *testing.T) {
	s3b := s3blob.New(s3.New(s3.Options{Region: "us-east-1"}), "bkt", "")
	for name, tc := range map[string]struct {
		b                     bucket.Backend
		multipart, staging, p bool
	}{
		"s3blob":                 {s3b, true, false, true},
		"fsblob":                 {openFS(t), true, true, true},
		"none":                   {onlyBackend{}, false, false, false},
		"multipart":              {mpBackend{}, true, false, false},
		"staging":                {stBackend{}, false, true, false},
		"pinger":                 {pingBackend{}, false, false, true},
		"multipart+staging":      {mpSTBackend{}, true, true, false},
		"multipart+pinger":       {mpPingBackend{}, true, false, true},
		"staging+pinger":         {stPingBackend{}, false, true, true},
		"multipart+staging+ping": {allBackend{}, true, true, true},
	} {
		t.Run(name, func(t *testing.T) {
			raw := bucket.Compose(tc.b)
			mp, st, p, c := capabilities(raw)
			if mp != tc.multipart || st != tc.staging || p != tc.p {
				t.Fatalf("fixture: raw capabilities %v %v %v", mp, st, p)
			}
			w := metrics.Backend(raw, "test", prometheus.NewRegistry())
			wmp, wst, wp, wc := capabilities(w)
			if wmp != mp || wst != st || wp != p {
				t.Errorf("wrapped: multipart=%v staging=%v pinger=%v, raw: %v %v %v", wmp, wst, wp, mp, st, p)
			}
			if wc != c {
				t.Errorf("wrapped: closer=%v, raw: %v", wc, c)
			}
		})
	}
}

// The decorated backends still pass the whole conformance suite.
func TestBackendConformance(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) bucket.Composer {
			return metrics.Backend(bucket.Compose(openFS(t)), "filesystem", prometheus.NewRegistry())
		})
	})
	t.Run("s3", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) bucket.Composer {
			client, bkt := testsvc.S3(t)
			reg := prometheus.NewRegistry()
			return metrics.Backend(bucket.Compose(s3blob.New(metrics.S3API(client, reg), bkt, "p/")), "s3", reg)
		})
	})
}

func TestBackendCounts(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		testBackendCounts(t, reg, "filesystem", metrics.Backend(bucket.Compose(openFS(t)), "filesystem", reg))
	})
	t.Run("s3", func(t *testing.T) {
		client, bkt := testsvc.S3(t)
		reg := prometheus.NewRegistry()
		testBackendCounts(t, reg, "s3", metrics.Backend(bucket.Compose(s3blob.New(client, bkt, "")), "s3", reg))
	})
}

func testBackendCounts(t *testing.T, reg *prometheus.Registry, kind string, c bucket.Composer) {
	b := c.Backend
	ctx := t.Context()
	const ops = "ferry_blob_operations_total"
	data := bytes.Repeat([]byte("ferry"), 200) // 1000 bytes

	if _, err := b.Put(ctx, "obj", bytes.NewReader(data), int64(len(data)), bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), "obj") })
	want(t, reg, 1000, "ferry_blob_bytes_total", "backend", kind, "direction", "in")

	rc, _, err := b.Get(ctx, "obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := io.Copy(&got, rc); err != nil { // through WriteTo
		t.Fatal(err)
	}
	rc.Close()
	rc, _, err = b.Get(ctx, "obj", &bucket.Range{Offset: 10, Length: 90})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(struct{ io.Reader }{rc}); err != nil { // through Read
		t.Fatal(err)
	}
	rc.Close()
	if got.Len() != 1000 {
		t.Fatalf("read back %d bytes", got.Len())
	}
	want(t, reg, 1090, "ferry_blob_bytes_total", "backend", kind, "direction", "out")
	want(t, reg, 2, ops, "backend", kind, "operation", "get", "result", "ok")

	// Expected answers are not failures.
	if _, err := b.Head(ctx, "missing"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("Head missing: %v", err)
	}
	if _, _, err := b.Get(ctx, "missing", nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if _, _, err := b.Get(ctx, "obj", &bucket.Range{Offset: 5000, Length: -1}); !errors.Is(err, bucket.ErrInvalidRange) {
		t.Fatalf("Get past the end: %v", err)
	}
	want(t, reg, 1, ops, "backend", kind, "operation", "head", "result", "not_found")
	want(t, reg, 1, ops, "backend", kind, "operation", "get", "result", "not_found")
	want(t, reg, 1, ops, "backend", kind, "operation", "get", "result", "invalid_range")

	// A client that drops mid-body: only what was read counts, and the
	// storage is not blamed.
	if _, err := b.Put(ctx, "short", strings.NewReader("only ten b"), 20, bucket.PutOptions{}); err == nil {
		t.Fatal("short Put succeeded")
	}
	want(t, reg, 1, ops, "backend", kind, "operation", "put", "result", "short_body")
	want(t, reg, 1010, "ferry_blob_bytes_total", "backend", kind, "direction", "in")

	mp := c.Multipart
	id, err := mp.CreateMultipart(ctx, "multi", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part, err := mp.UploadPart(ctx, "multi", id, 1, bytes.NewReader(data[:300]), 300, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.CompleteMultipart(ctx, "multi", id, []bucket.Part{part}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), "multi") })
	want(t, reg, 1310, "ferry_blob_bytes_total", "backend", kind, "direction", "in")
	for _, op := range []string{"create_multipart", "upload_part", "complete_multipart"} {
		want(t, reg, 1, ops, "backend", kind, "operation", op, "result", "ok")
	}

	if st := c.Staging; st != nil {
		if err := st.StageWrite(ctx, "5e551", 0, bytes.NewReader(data[:100]), 100); err != nil {
			t.Fatal(err)
		}
		if err := st.StageWrite(ctx, "5e551", 100, bytes.NewReader(data[:50]), 50); err != nil {
			t.Fatal(err)
		}
		if _, err := st.StageCommit(ctx, "5e551", "staged", 150, bucket.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Delete(context.Background(), "staged") })
		want(t, reg, 1460, "ferry_blob_bytes_total", "backend", kind, "direction", "in")
		want(t, reg, 2, ops, "backend", kind, "operation", "stage_write", "result", "ok")
	}
	if err := c.Pinger.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	want(t, reg, 1, ops, "backend", kind, "operation", "ping", "result", "ok")
	want(t, reg, 0, ops, "result", "error")
	want(t, reg, 4, "ferry_blob_operation_duration_seconds", "backend", kind, "operation", "get")
	lint(t, reg)
}

// A failing backend counts as error.
func TestBackendError(t *testing.T) {
	raw, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	b := metrics.Backend(bucket.Compose(raw), "filesystem", reg)
	if err := b.Close(); err != nil { // the wrapper passes Close through
		t.Fatal(err)
	}
	if _, err := b.Backend.Put(t.Context(), "k", strings.NewReader("x"), 1, bucket.PutOptions{}); err == nil {
		t.Fatal("Put on a closed backend succeeded")
	}
	want(t, reg, 1, "ferry_blob_operations_total", "backend", "filesystem", "operation", "put", "result", "error")
}

// Two backends of one kind on one registry share their series.
func TestBackendTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := metrics.Backend(bucket.Compose(openFS(t)), "filesystem", reg)
	b := metrics.Backend(bucket.Compose(openFS(t)), "filesystem", reg)
	for _, be := range []bucket.Backend{a.Backend, b.Backend} {
		if _, err := be.Head(t.Context(), "missing"); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatal(err)
		}
	}
	want(t, reg, 2, "ferry_blob_operations_total", "operation", "head", "result", "not_found")
	metrics.Store(openBolt(t), reg)
	metrics.Store(openBolt(t), reg)
}
