package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testhttp"
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

	// Into the OpenAI bucket it is an OpenAI file, which a vector store
	// attaches and searches like any other.
	resp = do(http.MethodPost, base, "refunds take five days", "Upload-Length", "22", "Content-Type", "application/offset+octet-stream",
		"Upload-Metadata", "bucket "+base64.StdEncoding.EncodeToString([]byte("openai"))+",filename "+base64.StdEncoding.EncodeToString([]byte("policy.txt")))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST into the OpenAI bucket: %d", resp.StatusCode)
	}
	r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/openai/policy.txt", nil)
	if r.Code != 200 {
		t.Fatalf("file info: %d %s", r.Code, r.Body)
	}
	id := r.JSON(t)["file_id"].(string)
	r = testhttp.Do(t, "POST", "http://"+p.addr+"/v1/openai/v1/vector_stores", strings.NewReader(`{"name":"kb","file_ids":["`+id+`"]}`))
	if r.Code != 200 {
		t.Fatalf("a store with the tus upload: %d %s", r.Code, r.Body)
	}
	vs := r.JSON(t)["id"].(string)
	waitFor(t, "the tus upload to be indexed", func() bool {
		r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/openai/v1/vector_stores/"+vs+"/files/"+id, nil)
		return r.Code == 200 && r.JSON(t)["status"] == "completed"
	})
	r = testhttp.Do(t, "POST", "http://"+p.addr+"/v1/openai/v1/vector_stores/"+vs+"/search", strings.NewReader(`{"query":"refunds"}`))
	if r.Code != 200 || !strings.Contains(string(r.Body), "five days") {
		t.Fatalf("search: %d %s", r.Code, r.Body)
	}
}
