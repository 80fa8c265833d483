package s3blob_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/backendtest"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) bucket.Backend {
		client, bkt := testsvc.S3(t)
		return s3blob.New(client, bkt, "some/prefix/")
	})
}

// Faults a real server will not produce on demand: a 500 on UploadPart and
// a bodiless 404 on HeadObject.
func TestProtocolFaults(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		case r.URL.Query().Has("partNumber"):
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`<Error><Code>InternalError</Code><Message>boom</Message></Error>`))
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	defer srv.Close()
	client, err := s3blob.NewClient(context.Background(), s3blob.ClientConfig{
		Endpoint: srv.URL, Region: "us-east-1", PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	b := s3blob.New(client, "bkt", "")
	if _, err := b.Head(context.Background(), "x"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("404 HEAD: %v, want ErrNotFound", err)
	}
	_, err = b.UploadPart(context.Background(), "x", "up", 1, strings.NewReader("data"), 4)
	if err == nil || errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("500 UploadPart: %v, want a plain error", err)
	}
}
