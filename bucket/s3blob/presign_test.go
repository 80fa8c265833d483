package s3blob_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// A presigned URL reads the object under the backend's prefix without
// credentials, with the response headers asked for, honours Range, and
// stops working when it expires.
func TestPresignGet(t *testing.T) {
	client, bkt := testsvc.S3(t)
	ctx := context.Background()
	b := s3blob.New(client, bkt, "pre/")
	if _, err := b.Put(ctx, "dir/a.html", strings.NewReader("<p>hello</p>"), 12, bucket.PutOptions{ContentType: "text/html"}); err != nil {
		t.Fatal(err)
	}
	p := s3blob.NewPresigner(client, bkt, "pre/")
	url, err := p.PresignGet(ctx, "dir/a.html", time.Minute, bucket.PresignOptions{
		ContentType: "text/html", ContentDisposition: `attachment; filename="a.html"`})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string, hdr ...string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get(url)
	if resp.StatusCode != 200 || body != "<p>hello</p>" || resp.Header.Get("Content-Disposition") != `attachment; filename="a.html"` {
		t.Fatalf("presigned GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := get(url, "Range", "bytes=3-7"); resp.StatusCode != 206 || body != "hello" {
		t.Fatalf("ranged: %d %q", resp.StatusCode, body)
	}
	if _, err := p.PresignGet(ctx, "../x", time.Minute, bucket.PresignOptions{}); err == nil {
		t.Fatal("an invalid key was signed")
	}

	short, err := p.PresignGet(ctx, "dir/a.html", time.Second, bucket.PresignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if resp, _ := get(short); resp.StatusCode != 403 {
		t.Fatalf("an expired URL answered %d", resp.StatusCode)
	}
}
