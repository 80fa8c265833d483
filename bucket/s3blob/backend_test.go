package s3blob_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/backendtest"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) bucket.Composer {
		client, bkt := testsvc.S3(t)
		return bucket.Compose(s3blob.New(client, bkt, "some/prefix/"))
	})
}

// request is what the fake server saw.
type request struct {
	method, path, query string
	header              http.Header
	body                []byte
	chunked             bool
}

// fake answers every request with the status and body of reply, and
// records what it was asked.
func fake(t *testing.T, reply func(r *http.Request) (int, string)) (*s3blob.Backend, func() []request) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen []request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body,
			len(r.TransferEncoding) > 0})
		mu.Unlock()
		status, xml := reply(r)
		if strings.HasPrefix(xml, "Content-Range:") {
			h, rest, _ := strings.Cut(xml, "\n")
			w.Header().Set("Content-Range", strings.TrimSpace(strings.TrimPrefix(h, "Content-Range:")))
			xml = rest
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, xml)
	}))
	t.Cleanup(srv.Close)
	client, err := s3blob.NewClient(context.Background(), s3blob.ClientConfig{
		Endpoint: srv.URL, Region: "us-east-1", PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return s3blob.New(client, "bkt", "/pre//fix/"), func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), seen...)
	}
}

func s3Error(code string) string {
	return fmt.Sprintf(`<Error><Code>%s</Code><Message>m</Message></Error>`, code)
}

// Faults a real server will not produce on demand map to the right
// sentinel, or to none.
func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	b, _ := fake(t, func(r *http.Request) (int, string) {
		switch {
		case r.Method == http.MethodHead:
			return http.StatusNotFound, "" // HEAD: no body, no code
		case r.URL.Query().Has("partNumber"):
			return http.StatusInternalServerError, s3Error("InternalError")
		case r.Method == http.MethodDelete && r.URL.Query().Has("uploadId"):
			return http.StatusNotFound, s3Error("NoSuchUpload")
		case r.URL.Path == "/bkt/pre/fix/nobucket":
			return http.StatusNotFound, s3Error("NoSuchBucket")
		case r.Header.Get("Range") != "":
			return http.StatusRequestedRangeNotSatisfiable, s3Error("InvalidRange")
		case r.Method == http.MethodPut:
			return http.StatusConflict, s3Error("ObjectParentIsFile")
		}
		return http.StatusNotFound, s3Error("NoSuchKey")
	})
	if _, err := b.Head(ctx, "x"); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("HEAD 404: %v, want ErrNotFound", err)
	}
	if _, _, err := b.Get(ctx, "x", nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("GET NoSuchKey: %v, want ErrNotFound", err)
	}
	if _, _, err := b.Get(ctx, "nobucket", nil); err == nil || errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("NoSuchBucket: %v, want an error that is not ErrNotFound", err)
	}
	if _, _, err := b.Get(ctx, "x", &bucket.Range{Offset: 9, Length: 1}); !errors.Is(err, bucket.ErrInvalidRange) {
		t.Errorf("416: %v, want ErrInvalidRange", err)
	}
	if _, err := b.Put(ctx, "x/y", strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrKeyConflict) {
		t.Errorf("ObjectParentIsFile: %v, want ErrKeyConflict", err)
	}
	_, err := b.UploadPart(ctx, "x", "up", 1, strings.NewReader("data"), 4, nil)
	var api interface{ ErrorCode() string }
	if err == nil || errors.Is(err, bucket.ErrNotFound) || !errors.As(err, &api) || api.ErrorCode() != "InternalError" {
		t.Errorf("500 UploadPart: %v, want the server's error, unmapped", err)
	}
	if err := b.AbortMultipart(ctx, "x", "up"); err != nil {
		t.Errorf("abort of an unknown upload: %v", err)
	}
}

// Put and UploadPart stream a non-seekable body with a Content-Length
// and an unsigned payload; nothing is buffered or chunk-encoded.
func TestStreamsKnownLength(t *testing.T) {
	ctx := context.Background()
	b, seen := fake(t, func(r *http.Request) (int, string) { return http.StatusOK, "" })
	body := struct{ io.Reader }{strings.NewReader("0123456789tail")} // hides Seek
	if _, err := b.Put(ctx, "k", body, 10, bucket.PutOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPart(ctx, "k", "up", 7, struct{ io.Reader }{strings.NewReader("abc")}, 3, nil); err != nil {
		t.Fatal(err)
	}
	reqs := seen()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (no retries, no extras)", len(reqs))
	}
	for i, want := range []string{"0123456789", "abc"} {
		r := reqs[i]
		if r.path != "/bkt/pre/fix/k" || string(r.body) != want || r.chunked ||
			r.header.Get("Content-Length") != fmt.Sprint(len(want)) ||
			r.header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" ||
			r.header.Get("Content-Encoding") != "" || r.header.Get("X-Amz-Trailer") != "" {
			t.Errorf("request %d: %s %s?%s body %q chunked=%v headers %v", i, r.method, r.path, r.query, r.body, r.chunked, r.header)
		}
	}
	if reqs[0].header.Get("Content-Type") != "text/plain" || !strings.Contains(reqs[1].query, "partNumber=7") {
		t.Errorf("content type %q, part query %q", reqs[0].header.Get("Content-Type"), reqs[1].query)
	}
	if _, err := b.Put(ctx, "k", strings.NewReader(""), bucket.MaxPutSize+1, bucket.PutOptions{}); err == nil || !strings.Contains(err.Error(), "multipart") {
		t.Errorf("oversized put: %v, want a pointer to multipart", err)
	}
	if _, err := b.Put(ctx, "../k", strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
		t.Errorf("put ../k: %v, want ErrInvalidKey", err)
	}
	if n := len(seen()); n != 2 {
		t.Errorf("refused puts reached the server: %d requests", n)
	}
	// A body that ends early is an error, never a short object.
	if _, err := b.Put(ctx, "k", strings.NewReader("abc"), 10, bucket.PutOptions{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short put: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := b.UploadPart(ctx, "k", "up", 1, strings.NewReader("abc"), 10, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short part: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestRangeHeaderAndSize(t *testing.T) {
	b, seen := fake(t, func(r *http.Request) (int, string) {
		if r.Header.Get("Range") == "" {
			return http.StatusOK, "whole"
		}
		return http.StatusPartialContent, "Content-Range: bytes 10-29/1000\n" + strings.Repeat("x", 20)
	})
	ctx := context.Background()
	for _, c := range []struct {
		rng  *bucket.Range
		want string
	}{
		{&bucket.Range{Offset: 10, Length: 20}, "bytes=10-29"},
		{&bucket.Range{Offset: 5, Length: -1}, "bytes=5-"},
		{&bucket.Range{Offset: 0, Length: 1}, "bytes=0-0"},
	} {
		rc, info, err := b.Get(ctx, "k", c.rng)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		reqs := seen()
		if got := reqs[len(reqs)-1].header.Get("Range"); got != c.want || info.Size != 1000 {
			t.Errorf("range %+v: header %q (want %q), size %d (want 1000 from Content-Range)", *c.rng, got, c.want, info.Size)
		}
	}
	if _, info, err := b.Get(ctx, "k", nil); err != nil || info.Size != 5 {
		t.Errorf("unranged get size %d, %v", info.Size, err)
	}
}

// listAPI serves ListObjectsV2 from a fixed, sorted name list in pages of
// at most pageSize, whatever MaxKeys asks, as servers may.
type listAPI struct {
	s3blob.API
	names    []string
	pageSize int
	calls    int
}

func (l *listAPI) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	l.calls++
	start := aws.ToString(in.StartAfter)
	if in.ContinuationToken != nil {
		start = *in.ContinuationToken
	}
	var page []types.Object
	for _, n := range l.names {
		if n > start && strings.HasPrefix(n, aws.ToString(in.Prefix)) && len(page) < min(l.pageSize, int(aws.ToInt32(in.MaxKeys))) {
			page = append(page, types.Object{Key: aws.String(n), Size: aws.Int64(1)})
		}
	}
	out := &s3.ListObjectsV2Output{Contents: page, IsTruncated: aws.Bool(false)}
	if len(page) > 0 {
		last := aws.ToString(page[len(page)-1].Key)
		for _, n := range l.names {
			if n > last && strings.HasPrefix(n, aws.ToString(in.Prefix)) {
				out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(last)
				break
			}
		}
	}
	return out, nil
}

func TestListPagesAndPrefix(t *testing.T) {
	api := &listAPI{pageSize: 2, names: []string{
		"other", "p/a", "p/b", "p/bad key", "p/c", "p/dir/", "p/d", "p/e",
	}}
	b := s3blob.New(api, "bkt", "p")
	ctx := context.Background()
	for _, c := range []struct {
		after string
		limit int
		want  string
		more  bool
	}{
		{"", 3, "a,b,c", true},
		{"", 5, "a,b,c,d,e", false}, // "bad key" and "dir/" are no keys
		{"", 6, "a,b,c,d,e", false},
		{"c", 2, "d,e", false},
		{"b", 2, "c,d", true},
		{"e", 2, "", false},
	} {
		objs, more, err := b.List(ctx, "", c.after, c.limit)
		var got []string
		for _, o := range objs {
			got = append(got, o.Key)
		}
		if err != nil || strings.Join(got, ",") != c.want || more != c.more {
			t.Errorf("List(after %q, limit %d) = %v more=%v %v; want %s more=%v", c.after, c.limit, got, more, err, c.want, c.more)
		}
	}
}
