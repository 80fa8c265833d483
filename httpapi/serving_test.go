package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
)

// A stored file never runs as a page of Ferry's origin: every download says
// nosniff, and types a browser renders or executes (HTML, SVG, XML,
// JavaScript) go out as an attachment in a CSP sandbox. Other types stay
// inline, as before.
func TestContentIsServedSafely(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	base := serveAPI(t, store, blobs, time.Minute).URL
	for _, tc := range []struct {
		key, mime string
		active    bool
	}{
		{"page.html", "text/html; charset=utf-8", true},
		{"page.xhtml", "application/xhtml+xml", true},
		{"pic.svg", "image/svg+xml", true},
		{"feed.atom", "application/atom+xml", true},
		{"app.js", "text/javascript", true},
		{"app2.js", "application/x-javascript", true},
		{"notes.txt", "text/plain", false},
		{"photo.png", "image/png", false},
		{"data.json", "application/json", false},
	} {
		body := "<script>alert(document.cookie)</script>"
		a := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(fmt.Sprintf(`{"bucket":"web","key":%q,"mime_type":%q,"size":%d}`, tc.key, tc.mime, len(body))))
		if a.Code != 201 {
			t.Fatalf("%s: create: %d %s", tc.key, a.Code, a.Body)
		}
		if a := appendChunk(t, base, a.JSON(t)["id"].(string), 0, []byte(body)); a.Code != 200 {
			t.Fatalf("%s: append: %d %s", tc.key, a.Code, a.Body)
		}
		for _, method := range []string{"GET", "HEAD"} {
			a := testhttp.Do(t, method, base+"/v1/files/web/"+tc.key+":content", nil)
			if a.Code != 200 {
				t.Fatalf("%s %s: %d %s", method, tc.key, a.Code, a.Body)
			}
			h := a.Header
			if h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s %s: no nosniff", method, tc.key)
			}
			disp, csp := h.Get("Content-Disposition"), h.Get("Content-Security-Policy")
			if tc.active && (!strings.HasPrefix(disp, "attachment") || !strings.Contains(disp, tc.key) || csp != "sandbox") {
				t.Errorf("%s %s (%s): Content-Disposition %q, CSP %q; want an attachment named for the key, sandboxed", method, tc.key, tc.mime, disp, csp)
			}
			if !tc.active && (disp != "" || csp != "") {
				t.Errorf("%s %s (%s): Content-Disposition %q, CSP %q; want inline", method, tc.key, tc.mime, disp, csp)
			}
		}
	}
}

// A multipart form of thousands of small fields, or of fields too large
// together, is refused before it can grow memory, on both multipart routes.
func TestMultipartFormsAreBounded(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	base := serveAPI(t, store, blobs, time.Minute).URL + "/v1/openai/v1"
	up := testhttp.Do(t, "POST", base+"/uploads", strings.NewReader(`{"filename":"a.txt","purpose":"assistants","bytes":3,"mime_type":"text/plain"}`),
		"Content-Type", "application/json")
	if up.Code != 200 {
		t.Fatalf("create upload: %d %s", up.Code, up.Body)
	}
	form := func(fields int, size int) (string, *strings.Builder) {
		var b strings.Builder
		for i := range fields {
			fmt.Fprintf(&b, "--B\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\n%s\r\n", i, strings.Repeat("x", size))
		}
		b.WriteString("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nabc\r\n--B--\r\n")
		return "multipart/form-data; boundary=B", &b
	}
	for _, route := range []string{base + "/files", base + "/uploads/" + up.JSON(t)["id"].(string) + "/parts"} {
		for _, tc := range []struct {
			fields, size int
			want         string
		}{{6000, 1, "more than 64 parts"}, {6, 60 << 10, "exceed 262144 bytes together"}} {
			ct, body := form(tc.fields, tc.size)
			a := testhttp.Do(t, "POST", route, strings.NewReader(body.String()), "Content-Type", ct)
			if a.Code != 400 || !strings.Contains(string(a.Body), tc.want) {
				t.Errorf("%s with %d fields of %d bytes: %d %s, want 400 %q", route, tc.fields, tc.size, a.Code, a.Body, tc.want)
			}
		}
	}

	// The bounds are settings: a form the defaults take is refused under
	// tighter ones.
	d := apiDeps(t, store, blobs)
	d.Metrics, d.Forms = prometheus.NewRegistry(), FormLimits{Parts: 3, Bytes: 2048}
	tight := httptest.NewServer(New(d))
	defer tight.Close()
	for _, tc := range []struct {
		fields, size int
		want         string
	}{{3, 1, "more than 3 parts"}, {2, 1500, "exceed 2048 bytes together"}} {
		ct, body := form(tc.fields, tc.size)
		if a := testhttp.Do(t, "POST", base+"/files", strings.NewReader(body.String()), "Content-Type", ct); strings.Contains(string(a.Body), "server.max_form") {
			t.Fatalf("the defaults refused %d fields of %d bytes: %s", tc.fields, tc.size, a.Body)
		}
		a := testhttp.Do(t, "POST", tight.URL+"/v1/openai/v1/files", strings.NewReader(body.String()), "Content-Type", ct)
		if a.Code != 400 || !strings.Contains(string(a.Body), tc.want) {
			t.Errorf("tight limits, %d fields of %d bytes: %d %s, want 400 %q", tc.fields, tc.size, a.Code, a.Body, tc.want)
		}
	}
}

// A form field over the limit is refused once the limit is passed, without
// reading the rest of it: a client cannot make ferryd read 64 MiB to be
// told no (net/http closes the connection instead).
func TestOversizedFormFieldIsNotRead(t *testing.T) {
	srv, _, reg := served(t)
	field := io.MultiReader(strings.NewReader("--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"), repeat("p", 64<<20))
	a := testhttp.Do(t, "POST", srv.URL+"/v1/openai/v1/files", field, "Content-Type", "multipart/form-data; boundary=X")
	if a.Code != 400 || !strings.Contains(string(a.Body), "max_form_bytes") {
		t.Fatalf("a 64 MiB form field: %d %s", a.Code, a.Body)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	read := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "ferry_http_received_bytes_total" {
			for _, m := range mf.GetMetric() {
				read += m.GetCounter().GetValue()
			}
		}
	}
	if read > 4<<20 {
		t.Fatalf("ferryd read %.0f bytes of a form field it refused", read)
	}
}

// With server.allowed_hosts set, a request naming another Host (a DNS
// rebinding page) gets 421 before any route runs; listed names, with or
// without a port, and health checks pass.
func TestAllowedHosts(t *testing.T) {
	h := New(Deps{Store: upStore{}, AllowedHosts: []string{"ferry.example.com", "127.0.0.1"}})
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"ferry.example.com", "/openapi.json", 200},
		{"FERRY.example.com:8321", "/openapi.json", 200},
		{"127.0.0.1:8321", "/openapi.json", 200},
		{"evil.example", "/openapi.json", 421},
		{"evil.example:8321", "/v1/files", 421},
		{"evil.example", "/healthz", 200},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Host %s %s: %d %s, want %d", tc.host, tc.path, rec.Code, rec.Body, tc.want)
		}
		if tc.want == 421 && !strings.Contains(rec.Body.String(), "MISDIRECTED_REQUEST") {
			t.Errorf("Host %s: body %s lacks the code", tc.host, rec.Body)
		}
	}
}

// JSON routes take JSON only as application/json: a page on another site
// can send text/plain or a form without a CORS preflight. Nothing is
// created by a refused body.
func TestJSONRoutesNeedJSONContentType(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		base := serveAPI(t, store, blobs, time.Minute).URL
		body := `{"bucket":"ct","key":"a","size":1}`
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "none"} {
			hdr := []string{"Content-Type", ct}
			if ct == "none" {
				hdr = []string{"Content-Type", ""}
			}
			for _, path := range []string{"/v1/files", "/v1/openai/v1/vector_stores", "/v1/openai/v1/uploads"} {
				if path == "/v1/files" && strings.HasPrefix(ct, "multipart/") {
					continue // an OpenAI file upload at the root (TestRootServesBothAPIs)
				}
				a := testhttp.Do(t, "POST", base+path, strings.NewReader(body), hdr...)
				if a.Code != 415 || !strings.Contains(string(a.Body), "application/json") {
					t.Errorf("POST %s as %s: %d %s, want 415 naming application/json", path, ct, a.Code, a.Body)
				}
			}
			if a := testhttp.Do(t, "PUT", base+"/v1/files/reg", strings.NewReader(`{"location":"file:///tmp"}`), hdr...); a.Code != 415 {
				t.Errorf("register as %s: %d %s", ct, a.Code, a.Body)
			}
		}
		if a := testhttp.Do(t, "GET", base+"/v1/files", nil); a.Code != 200 || strings.Contains(string(a.Body), `"ct"`) {
			t.Fatalf("a refused body created something: %d %s", a.Code, a.Body)
		}
		if a := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(body), "Content-Type", "application/json; charset=utf-8"); a.Code != 201 {
			t.Fatalf("application/json with a charset: %d %s", a.Code, a.Body)
		}
	})
}

// CORS is off by default; listed origins get preflights answered (before
// any key is asked for) and may read the upload headers.
func TestCORS(t *testing.T) {
	preflight := func(h http.Handler, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("OPTIONS", "/v1/files", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	off := New(Deps{Store: upStore{}})
	if rec := preflight(off, "https://app.example.com"); rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off answered a preflight: %d %v", rec.Code, rec.Header())
	}
	keys := writeTestKeys(t)
	on := New(Deps{Store: upStore{}, CORSOrigins: []string{"https://app.example.com"}, Keys: keys})
	rec := preflight(on, "https://app.example.com")
	if rec.Code/100 != 2 || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight from a listed origin: %d %v", rec.Code, rec.Header())
	}
	if rec := preflight(on, "https://evil.example"); rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", rec.Header())
	}
	req := httptest.NewRequest("GET", "/openapi.json", nil)
	req.Header.Set("Origin", "https://app.example.com")
	rec = httptest.NewRecorder()
	on.ServeHTTP(rec, req)
	if exp := rec.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Upload-Offset") || !strings.Contains(exp, "Location") {
		t.Fatalf("exposed headers %q", exp)
	}
}

type unwrapping struct{ io.ReadCloser }

func (u unwrapping) Unwrap() io.ReadCloser { return u.ReadCloser }

// A whole file on disk, even under wrappers that Unwrap (the metrics
// decorator's body), takes the sendfile path; anything else, such as an S3
// body or a file's range, the buffered copy.
func TestIsFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name string
		r    io.Reader
		want bool
	}{
		{"file", f, true},
		{"wrapped file", unwrapping{unwrapping{f}}, true},
		{"wrapped other", unwrapping{io.NopCloser(strings.NewReader("x"))}, false},
		{"section of a file", io.NewSectionReader(f, 0, 1), false},
		{"reader", strings.NewReader("x"), false},
	} {
		if got := isFile(tc.r); got != tc.want {
			t.Errorf("isFile(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
