package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testhttp"
)

// downloads.redirect: presigned answers content GETs with a 307 to S3,
// which serves the bytes (and Range) under the headers ferryd would send;
// HEAD, and files on the filesystem, stay proxied.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestPresignedDownloads ./cmd/ferryd/
func TestPresignedDownloads(t *testing.T) {
	t.Parallel()
	be := redisS3Env(t)
	p := startFerryd(t, be.args, append(be.env, "FERRY_DOWNLOADS_REDIRECT=presigned")...)
	base := "http://" + p.addr
	data := randomData(3<<20 + 7)
	uploadHTTP(t, p, "dl", "dir/a.bin", data, 1<<20)
	page := []byte("<script>alert(1)</script>")
	r := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(`{"bucket":"dl","key":"page.html","mime_type":"text/html","size":25}`))
	if r.Code != 201 || sendChunk(t, p, r.JSON(t)["id"].(string), 0, page).Code != 200 {
		t.Fatalf("upload the page: %d %s", r.Code, r.Body)
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c *http.Client, method, url string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, _ := get(noFollow, "GET", base+"/v1/files/dl/dir/a.bin:content")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 307 || !strings.Contains(loc, "X-Amz-Signature=") || !strings.Contains(loc, "/dir/a.bin") {
		t.Fatalf("GET content: %d Location %q", resp.StatusCode, loc)
	}
	if resp, b := get(http.DefaultClient, "GET", base+"/v1/files/dl/dir/a.bin:content"); resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Fatalf("following the redirect: %d, %d bytes", resp.StatusCode, len(b))
	}
	if resp, b := get(http.DefaultClient, "GET", base+"/v1/files/dl/dir/a.bin:content", "Range", "bytes=100-199"); resp.StatusCode != 206 || !bytes.Equal(b, data[100:200]) {
		t.Fatalf("a range through the redirect: %d, %d bytes", resp.StatusCode, len(b))
	}
	if resp, _ := get(noFollow, "HEAD", base+"/v1/files/dl/dir/a.bin:content"); resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	// A presigned Ferry URL goes on to S3 the same way.
	link := testhttp.Do(t, "POST", base+"/v1/files/dl/dir/a.bin:presign?ttl=5m", nil).JSON(t)["url"].(string)
	if resp, _ := get(noFollow, "GET", link); resp.StatusCode != 307 || !strings.Contains(resp.Header.Get("Location"), "X-Amz-Signature=") {
		t.Fatalf("GET a presigned Ferry URL: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, b := get(http.DefaultClient, "GET", link, "Range", "bytes=5-9"); resp.StatusCode != 206 || !bytes.Equal(b, data[5:10]) {
		t.Fatalf("a range of a presigned Ferry URL through the redirect: %d, %d bytes", resp.StatusCode, len(b))
	}
	// A page is still a download, never rendered: S3 is told to say so.
	if resp, _ := get(http.DefaultClient, "GET", base+"/v1/files/dl/page.html:content"); !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("HTML through the redirect: %v", resp.Header)
	}

	// OpenAI content: the SDKs follow the redirect.
	var form bytes.Buffer
	form.WriteString("--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n--X\r\n" +
		"Content-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\r\nsome notes\r\n--X--\r\n")
	r = testhttp.Do(t, "POST", base+"/v1/openai/v1/files", &form, "Content-Type", "multipart/form-data; boundary=X")
	if r.Code != 200 {
		t.Fatalf("OpenAI upload: %d %s", r.Code, r.Body)
	}
	id := r.JSON(t)["id"].(string)
	if resp, _ := get(noFollow, "GET", base+"/v1/openai/v1/files/"+id+"/content"); resp.StatusCode != 307 {
		t.Fatalf("OpenAI content: %d", resp.StatusCode)
	}
	if resp, b := get(http.DefaultClient, "GET", base+"/v1/openai/v1/files/"+id+"/content"); string(b) != "some notes" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "notes.txt") {
		t.Fatalf("OpenAI content through the redirect: %q %v", b, resp.Header)
	}

	// The embedded default keeps streaming: the filesystem has no URLs.
	q := startFerryd(t, "--data-dir "+t.TempDir(), "FERRY_DOWNLOADS_REDIRECT=presigned")
	uploadHTTP(t, q, "dl", "a.bin", data[:1000], 1000)
	if resp, b := get(noFollow, "GET", "http://"+q.addr+"/v1/files/dl/a.bin:content"); resp.StatusCode != 200 || !bytes.Equal(b, data[:1000]) {
		t.Fatalf("filesystem download: %d, %d bytes", resp.StatusCode, len(b))
	}
}
