package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTusRoute: ferryd serves tus 1.0 at /v1/tus/, and an upload without a
// bucket lands in FERRY_TUS_BUCKET as an ordinary file. The protocol itself
// is tested in package tus.
func TestTusRoute(t *testing.T) {
	p := startFerryd(t, "--data-dir "+t.TempDir(), "FERRY_TUS_BUCKET=incoming")
	base := "http://" + p.addr + "/v1/tus/"
	do := func(method, url string, body string, hdr ...string) *http.Response {
		t.Helper()
		r, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Tus-Resumable", "1.0.0")
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := do(http.MethodOptions, base, ""); resp.Header.Get("Tus-Version") != "1.0.0" {
		t.Fatalf("OPTIONS /v1/tus/: %d %v", resp.StatusCode, resp.Header)
	}
	resp := do(http.MethodPost, base, "hello tus", "Upload-Length", "9", "Content-Type", "application/offset+octet-stream",
		"Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("hello.txt")))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != "9" {
		t.Fatalf("POST with the whole body: %d %v", resp.StatusCode, resp.Header)
	}
	got, err := http.Get("http://" + p.addr + "/v1/files/incoming/hello.txt:content")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	if b, _ := io.ReadAll(got.Body); string(b) != "hello tus" || got.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("native :content: %d %q %v", got.StatusCode, b, got.Header)
	}
}
