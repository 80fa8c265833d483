package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry/internal/testhttp"
)

// A page on another site uploads through an upload link alone, which CORS
// lets it read the answer of, and fetches a file through a presigned URL,
// which stops working once it expires. In a real browser, on both
// backends.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestBrowserLinksFromAnotherOrigin ./cmd/ferryd/
func TestBrowserLinksFromAnotherOrigin(t *testing.T) {
	browser := startBrowser(t)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<!doctype html><title>an application elsewhere</title>")
	}))
	t.Cleanup(elsewhere.Close)
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := startFerryd(t, be.args, append(be.env, "FERRY_CORS_ORIGINS="+elsewhere.URL)...)
		api := "http://" + p.addr
		tb := newTab(t, browser, p.addr, t.TempDir())
		tb.run(t, "open the other site", chromedp.Navigate(elsewhere.URL))

		s := createSession(t, p, "photos", "from-elsewhere.txt", 20)
		link := s["upload_url"].(string)
		status := eval[int](t, tb, `fetch(`+jsString(link)+`, {method: 'POST', headers: {'Upload-Offset': '0',
			'Content-Type': 'application/octet-stream'}, body: 'hello from elsewhere'}).then(r => r.status, () => -1)`)
		if status != 200 {
			t.Fatalf("an append through the upload link from another origin: %d (-1: refused by CORS)", status)
		}
		if got := download(t, api+"/v1/files/photos/from-elsewhere.txt:content"); string(got) != "hello from elsewhere" {
			t.Fatalf("the file the other site uploaded: %q", got)
		}

		r := testhttp.Do(t, "POST", api+"/v1/files/photos/from-elsewhere.txt:presign", strings.NewReader(`{"ttl_seconds":2}`))
		if r.Code != 200 {
			t.Fatalf("presign: %d %s", r.Code, r.Body)
		}
		var pre struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(r.Body, &pre); err != nil {
			t.Fatal(err)
		}
		fetch := `fetch(` + jsString(pre.URL) + `).then(async r => r.status + ' ' + await r.text(), () => 'refused')`
		if got := eval[string](t, tb, fetch); got != "200 hello from elsewhere" {
			t.Fatalf("the presigned URL from another origin: %q", got)
		}
		time.Sleep(3 * time.Second)
		if got := eval[string](t, tb, fetch); !strings.HasPrefix(got, "401 ") || !strings.Contains(got, "LINK_EXPIRED") {
			t.Fatalf("the presigned URL after it expired: %q, want 401 LINK_EXPIRED", got)
		}
	})
}
