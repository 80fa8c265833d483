package tus_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/httpapi"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metrics"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/tus"
)

// instance is one ferryd's handlers over shared stores.
type instance struct {
	srv      *httptest.Server
	sessions *session.Service
	tus      *tus.Handler
	metrics  *prometheus.Registry
}

// serve starts one instance over s, as ferryd wires it.
func serve(t testing.TB, s testsvc.Stores, cfg session.Config) *instance {
	return serveTus(t, s, cfg, tus.Config{})
}

// serveTus is serve with the tus handler's settings.
func serveTus(t testing.TB, s testsvc.Stores, cfg session.Config, tc tus.Config) *instance {
	t.Helper()
	return serveWith(t, s, cfg, tc, nil)
}

// serveWith is serveTus with more of the HTTP layer's settings (API keys).
func serveWith(t testing.TB, s testsvc.Stores, cfg session.Config, tc tus.Config, deps func(*httpapi.Deps)) *instance {
	t.Helper()
	comp := bucket.Compose(s.Blobs)
	places := registry.NewResolver(s.Meta, comp, registry.Locations{})
	files := registry.New(s.Meta, places)
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	sessions, err := session.New(s.Meta, places, files, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	tc.Bucket, tc.MaxSize, tc.Logger = "tus", 1<<40, log
	h, err := tus.New(sessions, files, s.Meta, tc)
	if err != nil {
		t.Fatal(err)
	}
	d := httpapi.Deps{Store: s.Meta, Blobs: comp, Sessions: sessions, Files: files,
		Tus: h, Metrics: reg, Logger: log, ReadIdleTimeout: tc.NetworkTimeout} // one timeout, as ferryd passes it
	if deps != nil {
		deps(&d)
	}
	srv := httptest.NewServer(httpapi.New(d))
	t.Cleanup(srv.Close)
	return &instance{srv: srv, sessions: sessions, tus: h, metrics: reg}
}

// req sends one tus request; hdr alternates names and values.
func req(t testing.TB, method, url string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Tus-Resumable", "1.0.0")
	if body != nil {
		r.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func wantStatus(t testing.TB, resp *http.Response, want int, what string) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d (%v)", what, resp.StatusCode, want, resp.Header)
	}
}

// metadata encodes Upload-Metadata from name, value pairs.
func metadata(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// create makes an upload and returns its URL.
func create(t testing.TB, in *instance, size int64, meta string, hdr ...string) string {
	t.Helper()
	h := append([]string{"Upload-Length", strconv.FormatInt(size, 10), "Upload-Metadata", meta}, hdr...)
	resp := req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, h...)
	wantStatus(t, resp, http.StatusCreated, "POST")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, in.srv.URL+tus.BasePath) {
		t.Fatalf("Location %q is not under %s", loc, in.srv.URL+tus.BasePath)
	}
	return loc
}

func patch(t testing.TB, url string, offset int64, body []byte, hdr ...string) *http.Response {
	t.Helper()
	return req(t, http.MethodPatch, url, body, append([]string{"Upload-Offset", strconv.FormatInt(offset, 10)}, hdr...)...)
}

// offsetOf is HEAD's Upload-Offset.
func offsetOf(t *testing.T, url string) int64 {
	t.Helper()
	resp := req(t, http.MethodHead, url, nil)
	wantStatus(t, resp, http.StatusOK, "HEAD")
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("HEAD Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("HEAD Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return n
}

// fileResponse is the native API's file info, as far as the tests read it.
type fileResponse struct {
	Bytes    int64  `json:"bytes"`
	MimeType string `json:"mime_type"`
}

// nativeFile reads a file through the native API: its info and its bytes.
func nativeFile(t *testing.T, in *instance, bkt, key string) (fileResponse, []byte) {
	t.Helper()
	resp, err := http.Get(in.srv.URL + "/v1/files/" + bkt + "/" + key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f fileResponse
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s/%s: %d %s", bkt, key, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(in.srv.URL + "/v1/files/" + bkt + "/" + key + ":content")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return f, b
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func idOf(url string) string { return url[strings.LastIndex(url, "/")+1:] }

// TestProtocol walks tusd's own handler tests that apply to tus 1.0 (OPTIONS,
// POST, HEAD, PATCH, termination, deferred length), on every store.
func TestProtocol(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		in := serve(t, s, session.Config{})

		t.Run("options", func(t *testing.T) {
			resp := req(t, http.MethodOptions, in.srv.URL+tus.BasePath, nil)
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
				t.Fatalf("OPTIONS: %d", resp.StatusCode)
			}
			if v := resp.Header.Get("Tus-Version"); v != "1.0.0" {
				t.Errorf("Tus-Version %q", v)
			}
			ext := "," + resp.Header.Get("Tus-Extension") + ","
			for _, e := range []string{"creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"} {
				if !strings.Contains(ext, ","+e+",") {
					t.Errorf("Tus-Extension %q lacks %s", ext, e)
				}
			}
			if v := resp.Header.Get("Tus-Max-Size"); v != strconv.Itoa(1<<40) {
				t.Errorf("Tus-Max-Size %q", v)
			}
			if v := resp.Header.Get("Tus-Checksum-Algorithm"); !strings.Contains(v, "sha1") {
				t.Errorf("Tus-Checksum-Algorithm %q", v)
			}
			// CORS is the server's policy, not tusd's: it lets no origin in.
			resp = req(t, http.MethodOptions, in.srv.URL+tus.BasePath, nil, "Origin", "https://app.example", "Access-Control-Request-Method", "PATCH")
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("tusd answered CORS itself: Access-Control-Allow-Origin %q", v)
			}
		})

		t.Run("post", func(t *testing.T) {
			url := create(t, in, 300, metadata("bucket", "photos", "key", "2026/a.bin", "filetype", "image/png"))
			if got := offsetOf(t, url); got != 0 {
				t.Errorf("new upload at offset %d", got)
			}
			resp := req(t, http.MethodHead, url, nil)
			if resp.Header.Get("Upload-Length") != "300" || resp.Header.Get("Upload-Expires") == "" {
				t.Errorf("HEAD headers %v", resp.Header)
			}
			if m := resp.Header.Get("Upload-Metadata"); !strings.Contains(m, "bucket "+base64.StdEncoding.EncodeToString([]byte("photos"))) {
				t.Errorf("HEAD Upload-Metadata %q", m)
			}
			wantStatus(t, req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Length", "10", "Tus-Resumable", ""),
				http.StatusPreconditionFailed, "POST without Tus-Resumable")
			wantStatus(t, req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Length", "-3"), http.StatusBadRequest, "POST Upload-Length -3")
			wantStatus(t, req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil), http.StatusBadRequest, "POST without a length")
			wantStatus(t, req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Length", strconv.Itoa(1<<40+1)),
				http.StatusRequestEntityTooLarge, "POST over Tus-Max-Size")
			wantStatus(t, req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Length", "1", "Upload-Metadata", metadata("bucket", "no/slash")),
				http.StatusBadRequest, "POST naming an invalid bucket")
			wantStatus(t, req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Length", "1", "Upload-Metadata", metadata("key", "../up")),
				http.StatusBadRequest, "POST naming an invalid key")
		})

		t.Run("post with body", func(t *testing.T) {
			body := []byte("all of it in the creation request")
			resp := req(t, http.MethodPost, in.srv.URL+tus.BasePath, body, "Upload-Length", strconv.Itoa(len(body)),
				"Upload-Metadata", metadata("bucket", "docs", "key", "whole.txt", "mime_type", "text/plain"))
			wantStatus(t, resp, http.StatusCreated, "POST with body")
			if resp.Header.Get("Upload-Offset") != strconv.Itoa(len(body)) {
				t.Errorf("POST with body: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
			}
			f, got := nativeFile(t, in, "docs", "whole.txt")
			if !bytes.Equal(got, body) || f.MimeType != "text/plain" {
				t.Errorf("native file %+v %q", f, got)
			}
			// A part of the file in the creation request, the rest by PATCH.
			resp = req(t, http.MethodPost, in.srv.URL+tus.BasePath, body[:5], "Upload-Length", strconv.Itoa(len(body)),
				"Upload-Metadata", metadata("bucket", "docs", "key", "half.txt"))
			wantStatus(t, resp, http.StatusCreated, "POST with part of the body")
			url := resp.Header.Get("Location")
			if got := offsetOf(t, url); got != 5 {
				t.Fatalf("offset %d after 5 bytes in the POST", got)
			}
			wantStatus(t, patch(t, url, 5, body[5:]), http.StatusNoContent, "PATCH the rest")
			if _, got := nativeFile(t, in, "docs", "half.txt"); !bytes.Equal(got, body) {
				t.Errorf("native bytes %q", got)
			}
		})

		t.Run("empty upload", func(t *testing.T) {
			create(t, in, 0, metadata("bucket", "docs", "key", "empty"))
			if f, got := nativeFile(t, in, "docs", "empty"); f.Bytes != 0 || len(got) != 0 {
				t.Errorf("empty file %+v %q", f, got)
			}
		})

		t.Run("patch", func(t *testing.T) {
			data := randomBytes(t, 7<<20+12345) // one full part and held-back tails on S3
			url := create(t, in, int64(len(data)), metadata("filename", "report 2026.pdf"))
			wantStatus(t, patch(t, url, 0, data[:1000]), http.StatusNoContent, "PATCH 1000")
			wantStatus(t, patch(t, url, 0, data[:1000]), http.StatusConflict, "PATCH again at 0")
			wantStatus(t, patch(t, url, 5000, data[5000:6000]), http.StatusConflict, "PATCH past the offset")
			wantStatus(t, req(t, http.MethodPatch, url, data[1000:2000], "Upload-Offset", "1000", "Content-Type", "application/octet-stream"),
				http.StatusBadRequest, "PATCH without the tus Content-Type")
			wantStatus(t, req(t, http.MethodPatch, url, data[1000:2000]), http.StatusBadRequest, "PATCH without Upload-Offset")
			wantStatus(t, patch(t, url, 1000, make([]byte, len(data))), http.StatusRequestEntityTooLarge, "PATCH past the length")
			if got := offsetOf(t, url); got != 1000 {
				t.Fatalf("offset %d after refused PATCHes, want 1000", got)
			}
			resp := patch(t, url, 1000, data[1000:6<<20])
			wantStatus(t, resp, http.StatusNoContent, "PATCH 6 MiB")
			if resp.Header.Get("Upload-Offset") != strconv.Itoa(6<<20) || resp.Header.Get("Upload-Expires") == "" {
				t.Errorf("PATCH headers %v", resp.Header)
			}
			wantStatus(t, patch(t, url, 6<<20, data[6<<20:]), http.StatusNoContent, "PATCH the rest")
			if got := offsetOf(t, url); got != int64(len(data)) {
				t.Errorf("offset %d after the last PATCH", got)
			}
			f, got := nativeFile(t, in, "tus", "report_2026.pdf")
			if !bytes.Equal(got, data) || f.MimeType != "application/pdf" {
				t.Errorf("native file %+v, %d bytes (equal: %v)", f, len(got), bytes.Equal(got, data))
			}
			// The same filename again does not replace it: the key gets the id.
			url2 := create(t, in, 3, metadata("filename", "report 2026.pdf"))
			wantStatus(t, patch(t, url2, 0, []byte("abc")), http.StatusNoContent, "PATCH the second")
			if _, got := nativeFile(t, in, "tus", "report_2026-"+idOf(url2)[:8]+".pdf"); string(got) != "abc" {
				t.Errorf("second upload's bytes %q", got)
			}
			if _, got := nativeFile(t, in, "tus", "report_2026.pdf"); !bytes.Equal(got, data) {
				t.Error("the first upload was replaced")
			}
			// No metadata at all: the key is the upload id.
			url3 := create(t, in, 2, "")
			wantStatus(t, patch(t, url3, 0, []byte("hi")), http.StatusNoContent, "PATCH unnamed")
			if _, got := nativeFile(t, in, "tus", idOf(url3)); string(got) != "hi" {
				t.Errorf("unnamed upload's bytes %q", got)
			}
			// A completed upload takes no more bytes but HEAD still answers.
			if got := offsetOf(t, url3); got != 2 {
				t.Errorf("completed upload at offset %d", got)
			}
		})

		t.Run("deferred length", func(t *testing.T) {
			data := randomBytes(t, 6<<20+777)
			resp := req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Defer-Length", "1",
				"Upload-Metadata", metadata("bucket", "streams", "key", "live.bin"))
			wantStatus(t, resp, http.StatusCreated, "POST deferred")
			url := resp.Header.Get("Location")
			resp = req(t, http.MethodHead, url, nil)
			if resp.Header.Get("Upload-Defer-Length") != "1" || resp.Header.Get("Upload-Length") != "" {
				t.Errorf("HEAD of a deferred upload: %v", resp.Header)
			}
			wantStatus(t, patch(t, url, 0, data[:100]), http.StatusNoContent, "PATCH deferred 100")
			wantStatus(t, patch(t, url, 100, data[100:6<<20]), http.StatusNoContent, "PATCH deferred 6 MiB")
			wantStatus(t, patch(t, url, 6<<20, data[6<<20:], "Upload-Length", "5"), http.StatusBadRequest, "Upload-Length below the offset")
			wantStatus(t, patch(t, url, 6<<20, data[6<<20:], "Upload-Length", strconv.Itoa(len(data))), http.StatusNoContent, "PATCH declaring the length")
			resp = req(t, http.MethodHead, url, nil)
			if resp.Header.Get("Upload-Length") != strconv.Itoa(len(data)) || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
				t.Errorf("HEAD after the last PATCH: %v", resp.Header)
			}
			if _, got := nativeFile(t, in, "streams", "live.bin"); !bytes.Equal(got, data) {
				t.Errorf("deferred upload: %d bytes back, equal %v", len(got), bytes.Equal(got, data))
			}
			// The length declared by an empty PATCH once every byte is in.
			resp = req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil, "Upload-Defer-Length", "1",
				"Upload-Metadata", metadata("bucket", "streams", "key", "late.bin"))
			url = resp.Header.Get("Location")
			wantStatus(t, patch(t, url, 0, []byte("late")), http.StatusNoContent, "PATCH late")
			wantStatus(t, patch(t, url, 4, []byte{}, "Upload-Length", "4"), http.StatusNoContent, "empty PATCH declaring the length")
			if _, got := nativeFile(t, in, "streams", "late.bin"); string(got) != "late" {
				t.Errorf("late-declared upload %q", got)
			}
		})

		t.Run("checksum", func(t *testing.T) {
			url := create(t, in, 10, metadata("bucket", "docs", "key", "sum.txt"))
			sum := func(b []byte) string { h := sha1.Sum(b); return "sha1 " + base64.StdEncoding.EncodeToString(h[:]) }
			wantStatus(t, patch(t, url, 0, []byte("01234"), "Upload-Checksum", sum([]byte("xxxxx"))), 460, "PATCH with a wrong checksum")
			if got := offsetOf(t, url); got != 0 {
				t.Fatalf("a refused checksum kept %d bytes", got)
			}
			wantStatus(t, patch(t, url, 0, []byte("01234"), "Upload-Checksum", "whirlpool AAAA"), http.StatusBadRequest, "PATCH with an unknown algorithm")
			wantStatus(t, patch(t, url, 0, []byte("01234"), "Upload-Checksum", sum([]byte("01234"))), http.StatusNoContent, "PATCH with its checksum")
			wantStatus(t, patch(t, url, 5, []byte("56789"), "Upload-Checksum", sum([]byte("56789"))), http.StatusNoContent, "last PATCH with its checksum")
			if _, got := nativeFile(t, in, "docs", "sum.txt"); string(got) != "0123456789" {
				t.Errorf("checksummed upload %q", got)
			}
		})

		t.Run("termination", func(t *testing.T) {
			url := create(t, in, 100, metadata("bucket", "docs", "key", "gone.txt"))
			wantStatus(t, patch(t, url, 0, []byte("some")), http.StatusNoContent, "PATCH")
			wantStatus(t, req(t, http.MethodDelete, url, nil), http.StatusNoContent, "DELETE")
			wantStatus(t, req(t, http.MethodHead, url, nil), http.StatusNotFound, "HEAD after DELETE")
			wantStatus(t, patch(t, url, 4, []byte("more")), http.StatusNotFound, "PATCH after DELETE")
			wantStatus(t, req(t, http.MethodDelete, url, nil), http.StatusNotFound, "DELETE again")
		})

		t.Run("not a tus upload", func(t *testing.T) {
			native, err := in.sessions.Create(context.Background(), "docs", "native.bin", "", 10)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, req(t, http.MethodHead, in.srv.URL+tus.BasePath+native.ID, nil), http.StatusNotFound, "HEAD of a native session")
			wantStatus(t, req(t, http.MethodHead, in.srv.URL+tus.BasePath+"nothex", nil), http.StatusNotFound, "HEAD of a malformed id")
			wantStatus(t, req(t, http.MethodGet, in.srv.URL+tus.BasePath+native.ID, nil), http.StatusMethodNotAllowed, "GET (download disabled)")
		})

		t.Run("bucket of a creation", func(t *testing.T) {
			url := create(t, in, 5, metadata("bucket", "scoped", "key", "k"))
			for _, tc := range []struct {
				method, path, meta, want string
				ok                       bool
			}{
				{http.MethodPost, tus.BasePath, metadata("bucket", "scoped"), "scoped", true},
				{http.MethodPost, tus.BasePath, metadata("filename", "a.txt"), "tus", true},
				{http.MethodPatch, tus.BasePath + idOf(url), "", "", false},
				{http.MethodHead, tus.BasePath + idOf(url), "", "", false},
				{http.MethodOptions, tus.BasePath, "", "", false},
			} {
				r := httptest.NewRequest(tc.method, tc.path, nil)
				r.Header.Set("Upload-Metadata", tc.meta)
				if got, ok := in.tus.CreationBucket(r); got != tc.want || ok != tc.ok {
					t.Errorf("CreationBucket(%s %s %q) = %q, %v; want %q, %v", tc.method, tc.path, tc.meta, got, ok, tc.want, tc.ok)
				}
			}
		})

		t.Run("metrics", func(t *testing.T) {
			// Completed above: post with body (2), empty, patch (3), deferred (2), checksum.
			if n := countersBy(t, in.metrics, "ferry_sessions_completed_total", "protocol")["tus"]; n != 9 {
				t.Errorf("tus sessions completed: %v, want 9", n)
			}
			if n := countersBy(t, in.metrics, "ferry_sessions_created_total", "protocol")["native"]; n != 1 {
				t.Errorf("native sessions created: %v, want 1", n)
			}
			if n := countersBy(t, in.metrics, "ferry_sessions_aborted_total", "protocol")["tus"]; n != 1 {
				t.Errorf("tus sessions aborted: %v, want 1", n)
			}
		})
	})
}

// countersBy sums the counter family name in reg by the value of one label.
func countersBy(t testing.TB, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestExpiry: an upload past its session's TTL answers 410 until the purger
// frees it, then 404. Only its creation, which sets the expiry, comes
// before the TTL ends, so no step races the 300 ms however slow it is.
func TestExpiry(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		const ttl = 300 * time.Millisecond
		in := serve(t, s, session.Config{TTL: ttl})
		before := time.Now()
		resp := req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil,
			"Upload-Length", "10", "Upload-Metadata", metadata("bucket", "docs", "key", "late.txt"))
		after := time.Now()
		wantStatus(t, resp, http.StatusCreated, "POST")
		url := resp.Header.Get("Location")
		exp, err := http.ParseTime(resp.Header.Get("Upload-Expires"))
		if err != nil || exp.Before(before.Add(ttl).Truncate(time.Second)) || exp.After(after.Add(ttl)) {
			t.Errorf("Upload-Expires %q, want the create's time + %v", resp.Header.Get("Upload-Expires"), ttl)
		}
		time.Sleep(time.Until(after.Add(ttl + 50*time.Millisecond)))
		wantStatus(t, req(t, http.MethodHead, url, nil), http.StatusGone, "HEAD after the TTL")
		wantStatus(t, patch(t, url, 0, []byte("01234")), http.StatusGone, "PATCH after the TTL")
		if _, err := in.sessions.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, req(t, http.MethodHead, url, nil), http.StatusNotFound, "HEAD after the purge")
	})
}

// TestTwoInstances: two ferryd handlers over the same stores, as behind a
// round-robin balancer, take turns on one upload: PATCHes alternate, small
// chunks held back by one are completed by the other, and a request on one
// waits while the other holds the upload's tus lock.
func TestTwoInstances(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{Cluster: true}, func(t *testing.T, s testsvc.Stores) {
		a, b := serve(t, s, session.Config{}), serve(t, s, session.Config{})
		data := randomBytes(t, 14<<20+4321)
		url := create(t, a, int64(len(data)), metadata("bucket", "shared", "key", "both.bin"))
		urlB := b.srv.URL + tus.BasePath + idOf(url)
		cuts := []int{0, 3 << 20, 5<<20 + 1, 5<<20 + 100<<10, 9 << 20, 13 << 20, len(data)}
		for i := 0; i+1 < len(cuts); i++ {
			on, other := url, urlB
			if i%2 == 1 {
				on, other = urlB, url
			}
			wantStatus(t, patch(t, on, int64(cuts[i]), data[cuts[i]:cuts[i+1]]), http.StatusNoContent, fmt.Sprintf("PATCH %d", i))
			if got := offsetOf(t, other); got != int64(cuts[i+1]) {
				t.Fatalf("after PATCH %d the other instance sees offset %d, want %d", i, got, cuts[i+1])
			}
		}
		if _, got := nativeFile(t, b, "shared", "both.bin"); !bytes.Equal(got, data) {
			t.Fatalf("native :content: %d bytes, equal %v", len(got), bytes.Equal(got, data))
		}

		// While a's PATCH streams, b's HEAD waits for the tus lock and then
		// sees every byte of it.
		url = create(t, a, 2<<20, metadata("bucket", "shared", "key", "locked.bin"))
		urlB = b.srv.URL + tus.BasePath + idOf(url)
		body := randomBytes(t, 2<<20)
		pr, pw := io.Pipe()
		r, err := http.NewRequest(http.MethodPatch, url, pr)
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = int64(len(body))
		r.Header.Set("Tus-Resumable", "1.0.0")
		r.Header.Set("Upload-Offset", "0")
		r.Header.Set("Content-Type", "application/offset+octet-stream")
		patched := make(chan int, 1)
		go func() {
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				patched <- 0
				return
			}
			resp.Body.Close()
			patched <- resp.StatusCode
		}()
		t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
		if _, err := pw.Write(body[:1<<20]); err != nil {
			t.Fatal(err)
		}
		waitLocked(t, s.Meta, "tus/"+idOf(url)) // the name package tus documents
		headed := make(chan int64, 1)
		go func() {
			r, _ := http.NewRequest(http.MethodHead, urlB, nil)
			r.Header.Set("Tus-Resumable", "1.0.0")
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				headed <- -1
				return
			}
			resp.Body.Close()
			n, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
			headed <- n
		}()
		select {
		case n := <-headed:
			t.Fatalf("HEAD on b answered (offset %d) while a's PATCH held the upload", n)
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := pw.Write(body[1<<20:]); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		if code := <-patched; code != http.StatusNoContent {
			t.Fatalf("streamed PATCH: %d", code)
		}
		if n := <-headed; n != int64(len(body)) {
			t.Fatalf("HEAD on b after the PATCH: offset %d, want %d", n, len(body))
		}
		if _, got := nativeFile(t, a, "shared", "locked.bin"); !bytes.Equal(got, body) {
			t.Fatal("locked.bin differs")
		}
	})
}

// waitLocked returns once the lock name is held by someone else.
func waitLocked(t *testing.T, store metastore.Store, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		l, err := store.Lock(context.Background(), name, time.Second)
		if errors.Is(err, metastore.ErrLocked) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Unlock(context.Background())
	}
	t.Fatalf("nobody took the lock %s", name)
}

// TestCutPatchKeepsPieces: a PATCH whose connection breaks keeps every whole
// 32 MiB piece that arrived, as tusd's own stores keep what arrived, and the
// client resumes from there.
func TestCutPatchKeepsPieces(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		in := serve(t, s, session.Config{})
		data := randomBytes(t, 40<<20)
		url := create(t, in, int64(len(data)), metadata("bucket", "docs", "key", "cut.bin"))
		conn := rawPatch(t, in, url, fmt.Sprintf("Content-Length: %d", len(data)))
		if _, err := conn.Write(data[:35<<20]); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if got := offsetOf(t, url); got != 32<<20 {
			t.Fatalf("after a PATCH cut at 35 MiB the upload is at %d, want the whole piece (32 MiB)", got)
		}
		wantStatus(t, patch(t, url, 32<<20, data[32<<20:]), http.StatusNoContent, "PATCH the rest")
		if _, got := nativeFile(t, in, "docs", "cut.bin"); !bytes.Equal(got, data) {
			t.Fatal("cut.bin differs")
		}
	})
}

// TestDeadlinesCleared: tusd puts deadlines on the connection
// (NetworkTimeout) and leaves them there; a later request on the same
// kept-alive connection (a long download, say) must not inherit them. Today
// net/http clears both between requests; this keeps it so.
func TestDeadlinesCleared(t *testing.T) {
	in := serveTus(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}), session.Config{}, tus.Config{NetworkTimeout: 100 * time.Millisecond})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	reused := 0
	for i, url := range []string{in.srv.URL + tus.BasePath, in.srv.URL + "/healthz", in.srv.URL + "/healthz"} {
		method := http.MethodGet
		if i == 0 {
			method = http.MethodOptions
		}
		r, _ := http.NewRequest(method, url, nil)
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
			GotConn: func(c httptrace.GotConnInfo) {
				if c.Reused {
					reused++
				}
			}}))
		resp, err := client.Do(r)
		if err != nil {
			t.Fatalf("request %d on the kept-alive connection: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(300 * time.Millisecond) // past both of tusd's deadlines
	}
	if reused != 2 {
		t.Fatalf("the connection was reused %d times, want 2: the test did not test", reused)
	}
}

// TestS3RequestsPerPatch: on S3 a tus PATCH costs what a native append
// does: one UploadPart for a part's worth, nothing for a small chunk held
// back, and never a read (no ListParts, no .info object). A small chunk
// that completes a part is held back too and its part goes up in the
// background after the answer: it is counted with that PATCH once it lands.
func TestS3RequestsPerPatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := testsvc.Open(t, "redis+s3", testsvc.StoreOptions{WrapS3: func(api s3blob.API) s3blob.API { return metrics.S3API(api, reg) }})
	in := serve(t, s, session.Config{})
	const MiB = 1 << 20
	data := randomBytes(t, 23*MiB)
	before := s3Requests(t, reg)
	url := create(t, in, int64(len(data)), metadata("bucket", "counted", "key", "c.bin"))
	step := func(what string, want map[string]float64) {
		t.Helper()
		var now map[string]float64
		got := map[string]float64{}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			now = s3Requests(t, reg)
			clear(got)
			for op, n := range now {
				if d := n - before[op]; d > 0 {
					got[op] = d
				}
			}
			if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
				break
			}
		}
		before = now
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: S3 requests %v, want %v", what, got, want)
		}
	}
	step("create", map[string]float64{}) // the upload starts with the first part
	off := 0
	for _, c := range []struct {
		n    int
		want map[string]float64
	}{
		{8 * MiB, map[string]float64{"CreateMultipartUpload": 1, "UploadPart": 1}},
		{5 * MiB, map[string]float64{"UploadPart": 1}},
		{1 * MiB, map[string]float64{}},
		{1 * MiB, map[string]float64{}},
		{3 * MiB, map[string]float64{"UploadPart": 1}},
	} {
		wantStatus(t, patch(t, url, int64(off), data[off:off+c.n]), http.StatusNoContent, "PATCH")
		off += c.n
		step(fmt.Sprintf("PATCH of %d MiB", c.n/MiB), c.want)
	}
	wantStatus(t, patch(t, url, int64(off), data[off:]), http.StatusNoContent, "last PATCH")
	now := s3Requests(t, reg)
	if d := now["UploadPart"] - before["UploadPart"]; d != 1 || now["CompleteMultipartUpload"]-before["CompleteMultipartUpload"] != 1 {
		t.Errorf("last PATCH: %v UploadParts, %v completions", d, now["CompleteMultipartUpload"]-before["CompleteMultipartUpload"])
	}
	for _, op := range []string{"GetObject", "ListObjectsV2", "ListMultipartUploads"} {
		if now[op] != 0 {
			t.Errorf("the upload read S3: %s x%v", op, now[op])
		}
	}
	if _, got := nativeFile(t, in, "counted", "c.bin"); !bytes.Equal(got, data) {
		t.Fatal("c.bin differs")
	}
}

// TestChunkedPatchCutByClient: a PATCH of unknown length (chunked) keeps
// what arrived when the client resets the connection (tusd's body reader
// ends it cleanly there), the client resumes from that offset, and the
// request counts as the client's (499), not as a 5xx of ferryd's.
func TestChunkedPatchCutByClient(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		in := serve(t, s, session.Config{})
		data := randomBytes(t, 20<<20)
		url := create(t, in, int64(len(data)), metadata("bucket", "docs", "key", "chunked.bin"))
		conn := rawPatch(t, in, url, "Transfer-Encoding: chunked")
		sent := data[:9<<20]
		for len(sent) > 0 {
			n := min(len(sent), 1<<20)
			fmt.Fprintf(conn, "%x\r\n", n)
			if _, err := conn.Write(sent[:n]); err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(conn, "\r\n")
			sent = sent[n:]
		}
		_ = conn.SetLinger(0) // a reset, as a dropped network gives
		conn.Close()
		got := offsetOf(t, url)
		if got > 9<<20 {
			t.Fatalf("after a chunked PATCH cut at 9 MiB the upload is at %d", got)
		}
		wantStatus(t, patch(t, url, got, data[got:]), http.StatusNoContent, "PATCH the rest")
		if _, back := nativeFile(t, in, "docs", "chunked.bin"); !bytes.Equal(back, data) {
			t.Fatalf("chunked.bin differs after resuming at %d", got)
		}
		for code, n := range countersBy(t, in.metrics, "ferry_http_requests_total", "code") {
			if strings.HasPrefix(code, "5") && n > 0 {
				t.Errorf("%v requests counted as %s", n, code)
			}
		}
	})
}

// TestPatchStalled: a PATCH that stalls with less than net/http's 256 KiB
// discard limit left gets its answer within the idle timeout (net/http
// would first read the rest of the body, with no deadline), keeps nothing,
// and is counted as the 408 it is.
func TestPatchStalled(t *testing.T) {
	const idle = 500 * time.Millisecond
	in := serveTus(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}), session.Config{}, tus.Config{NetworkTimeout: idle})
	url := create(t, in, 1000, metadata("bucket", "docs", "key", "stall.bin"))
	conn := rawPatch(t, in, url, "Content-Length: 1000")
	if _, err := conn.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(idle + 5*time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer %s after the PATCH stalled: %v", time.Since(start), err)
	}
	resp.Body.Close()
	if got := offsetOf(t, url); got != 0 {
		t.Fatalf("the stalled PATCH left the upload at %d, want 0", got)
	}
	if got := fmt.Sprint(waitPatchCodes(t, in)); got != "map[408:1]" {
		t.Fatalf("the stalled PATCH (answered %s) was counted as %s, want map[408:1]", resp.Status, got)
	}
}

// TestPatchCutByClient: a PATCH whose client closes the connection mid-body
// (curl killed) is counted as the client's 499, not as the SHORT_BODY the
// session made of it.
func TestPatchCutByClient(t *testing.T) {
	in := serve(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}), session.Config{})
	url := create(t, in, 1000, metadata("bucket", "docs", "key", "cut.bin"))
	conn := rawPatch(t, in, url, "Content-Length: 1000")
	if _, err := conn.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the 100 bytes are read
	conn.Close()
	if got := fmt.Sprint(waitPatchCodes(t, in)); got != "map[499:1]" {
		t.Fatalf("a PATCH cut by its client was counted as %s, want map[499:1]", got)
	}
}

// waitPatchCodes waits for a request other than the creations (201) and
// the HEADs (200) to be counted, and returns the counts by status.
func waitPatchCodes(t *testing.T, in *instance) map[string]float64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		codes := countersBy(t, in.metrics, "ferry_http_requests_total", "code")
		delete(codes, "201")
		delete(codes, "200")
		if len(codes) > 0 || time.Now().After(deadline) {
			return codes
		}
	}
}

// rawPatch opens a connection and sends the head of a PATCH at offset 0 of
// the upload at url, framed by framing; the test writes (and cuts) the body.
func rawPatch(t *testing.T, in *instance, url, framing string) *net.TCPConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"+
		"Content-Type: application/offset+octet-stream\r\n%s\r\n\r\n", tus.BasePath+idOf(url), framing)
	return conn.(*net.TCPConn)
}

// A metadata store that cannot be reached makes a tus request a 503 with
// Retry-After, as on the native routes, never a 500.
func TestStoreOutageIs503(t *testing.T) {
	s := testsvc.Open(t, "embedded", testsvc.StoreOptions{})
	in := faults.New()
	s.Meta = faults.Store(s.Meta, in)
	srv := serve(t, s, session.Config{})
	url := create(t, srv, 10, metadata("filename", "a.txt"))
	in.Arm(faults.Fault{N: 1, Match: faults.Methods("Get"), Mode: faults.Fail,
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}})
	resp := req(t, "HEAD", url, nil, "Tus-Resumable", "1.0.0")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HEAD with the store down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	wantStatus(t, req(t, "HEAD", url, nil, "Tus-Resumable", "1.0.0"), 200, "HEAD once it is back")
}
