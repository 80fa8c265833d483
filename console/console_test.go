package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The console is served with its security headers and ETags, only to GET
// and HEAD, and every module index.html names is embedded.
func TestHandler(t *testing.T) {
	h := Handler()
	get := func(method, path string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, path := range []string{"/console/", "/console/app.js", "/console/app.css"} {
		w := get("GET", path)
		hd := w.Header()
		if w.Code != 200 || hd.Get("Content-Security-Policy") != csp || hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("ETag") == "" {
			t.Fatalf("GET %s: %d %v", path, w.Code, hd)
		}
		if again := get("GET", path, "If-None-Match", hd.Get("ETag")); again.Code != http.StatusNotModified {
			t.Fatalf("GET %s with its ETag: %d, want 304", path, again.Code)
		}
	}
	if ct := get("GET", "/console/app.js").Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Fatalf("app.js is served as %q: a module needs a JavaScript type under nosniff", ct)
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Fatalf("the CSP allows %s", bad)
		}
	}
	if w := get("POST", "/console/"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", w.Code, w.Header())
	}
	if w := get("GET", "/console"); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != Prefix {
		t.Fatalf("GET /console: %d %v", w.Code, w.Header())
	}
	index, err := fs.ReadFile(files, "static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(string(index), `href="`)[1:] {
		name := part[:strings.IndexByte(part, '"')]
		if strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".css") {
			if w := get("GET", Prefix+name); w.Code != 200 {
				t.Fatalf("index.html names %s, which answers %d", name, w.Code)
			}
		}
	}
}
