package httpapi

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/registry"
)

// The create answer carries every field the README lists, min_chunk_size
// too when it is 0 (the filesystem takes chunks of any size).
func TestCreateAnswerHasEveryField(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	srv := serveAPI(t, store, blobs, 0)
	a, _ := newSession(t, srv.URL, "b", "k", 10)
	got := a.JSON(t)
	for _, field := range []string{"id", "url", "offset", "size", "bucket", "key", "mime_type", "status", "expires_at", "min_chunk_size"} {
		if _, ok := got[field]; !ok {
			t.Errorf("the create answer lacks %s: %s", field, a.Body)
		}
	}
	if got["min_chunk_size"] != float64(0) {
		t.Errorf("min_chunk_size on the filesystem = %v, want 0", got["min_chunk_size"])
	}
}

// A session URL answers the methods it does not serve with 405, Allow and
// the method to use; a PUT (curl -T) used to be taken for a bucket
// registration and told INVALID_BUCKET.
func TestSessionURLRefusesOtherMethods(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	srv := serveAPI(t, store, blobs, 0)
	_, id := newSession(t, srv.URL, "b", "k", 10)
	for _, method := range []string{"PUT", "PATCH", "OPTIONS"} {
		a := testhttp.Do(t, method, srv.URL+"/v1/files/session:"+id, strings.NewReader("0123456789"), "Content-Type", "application/octet-stream")
		if a.Code != 405 || a.JSON(t)["code"] != "METHOD_NOT_ALLOWED" || a.Header.Get("Allow") != "GET, HEAD, POST, DELETE" ||
			!strings.Contains(a.JSON(t)["detail"].(string), "POST") {
			t.Errorf("%s of a session URL: %d, Allow %q, %s", method, a.Code, a.Header.Get("Allow"), a.Body)
		}
	}
	if off := sessionOffset(t, srv.URL, id); off != 0 {
		t.Fatalf("the refused requests moved the offset to %d", off)
	}
}

// A request that creates something answers 201 Created with its URL in
// Location: a session, a new bucket registration (a repeat is 200).
func TestCreatesAnswer201(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(apiDepsOver(t, store, bucket.Compose(blobs), registry.Locations{Roots: []string{root}, OpenDir: openDir})))
	t.Cleanup(srv.Close)

	a, id := newSession(t, srv.URL, "b", "k", 10)
	if a.Code != 201 || a.Header.Get("Location") != srv.URL+"/v1/files/session:"+id {
		t.Fatalf("session create: %d, Location %q, %s", a.Code, a.Header.Get("Location"), a.Body)
	}
	register := `{"location": "file://` + root + `"}`
	if a := testhttp.Do(t, "PUT", srv.URL+"/v1/files/reg", strings.NewReader(register)); a.Code != 201 || a.Header.Get("Location") != srv.URL+"/v1/files/reg" {
		t.Fatalf("new registration: %d, Location %q, %s", a.Code, a.Header.Get("Location"), a.Body)
	}
	if a := testhttp.Do(t, "PUT", srv.URL+"/v1/files/reg", strings.NewReader(register)); a.Code != 200 || a.Header.Get("Location") != "" {
		t.Fatalf("repeated registration: %d, Location %q, %s", a.Code, a.Header.Get("Location"), a.Body)
	}
}
