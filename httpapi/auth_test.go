package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
)

// testKeys are the matrix's keys: name → access and bucket patterns.
var testKeys = []struct {
	name    string
	access  auth.Access
	buckets []string
}{
	{"admin", auth.Admin, nil},
	{"wa", auth.Write, []string{"a*"}},  // owns the OpenAI objects below
	{"ra", auth.Read, []string{"a*"}},   // may read a*, owns nothing
	{"wb", auth.Write, []string{"b"}},   // another tenant
	{"wall", auth.Write, []string{"*"}}, // every bucket but the OpenAI adapter's
	{"rall", auth.Read, []string{"*"}},
}

// writeTestKeys writes testKeys to a keys file and opens it.
func writeTestKeys(t *testing.T) *auth.Keyring {
	t.Helper()
	ring, _ := testKeyring(t)
	return ring
}

// withKeys serves the whole API over store and blobs with testKeys in
// force, and returns each key's secret by name.
func withKeys(t *testing.T, store metastore.Store, blobs bucket.Backend) (*httptest.Server, *mux.Router, map[string]string) {
	t.Helper()
	keys, secrets := testKeyring(t)
	d := apiDeps(t, store, blobs)
	d.Keys = keys
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	return srv, newRouter(d), secrets
}

// testKeyring is testKeys in force, and each key's secret by name.
func testKeyring(t testing.TB) (*auth.Keyring, map[string]string) {
	t.Helper()
	secrets := map[string]string{}
	var entries []auth.Key
	for _, k := range testKeys {
		secret, key := auth.NewKey(k.name, k.buckets, k.access)
		secrets[k.name] = secret
		entries = append(entries, key)
	}
	path := filepath.Join(t.TempDir(), "keys.yaml")
	data, err := yaml.Marshal(map[string][]auth.Key{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return keys, secrets
}

// Every route is mounted through the guard, so none lacks a policy.
func TestEveryRouteHasAPolicy(t *testing.T) {
	meta, blobs := testsvc.Embedded(t)
	d := apiDeps(t, meta, blobs)
	n := 0
	err := newRouter(d).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, _ := route.GetPathTemplate()
		if route.GetHandler() == nil {
			return nil // a subrouter's prefix
		}
		if _, ok := route.GetHandler().(*guarded); !ok {
			t.Errorf("route %s is mounted without a policy: use guard.with", tpl)
		}
		n++
		return nil
	})
	if err != nil || n < 40 {
		t.Fatalf("walked %d routes: %v", n, err)
	}
}

// caller sends requests as one key (or none, or a wrong one).
type caller struct {
	t      testing.TB
	base   string
	secret string
}

func (c caller) do(method, path string, body []byte, hdr ...string) testhttp.Answer {
	c.t.Helper()
	if c.secret != "" {
		hdr = append(hdr, "Authorization", "Bearer "+c.secret)
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return testhttp.Do(c.t, method, c.base+path, r, hdr...)
}

func (c caller) ok(method, path string, body []byte, hdr ...string) map[string]any {
	c.t.Helper()
	a := c.do(method, path, body, hdr...)
	if a.Code/100 != 2 {
		c.t.Fatalf("%s %s: %d %s", method, path, a.Code, a.Body)
	}
	if len(a.Body) == 0 || a.Body[0] != '{' {
		return nil
	}
	return a.JSON(c.t)
}

// fixture is what the matrix aims at: in each bucket a file and a
// session, and OpenAI objects owned by "wa".
type authFixture struct {
	sessions map[string]string // bucket → session id
	fileID   string            // OpenAI file of wa
	uploadID string
	vsID     string
	batchID  string
}

var matrixBuckets = []string{"a1", "b", "openai"}

func makeAuthFixture(t testing.TB, admin, wa caller) authFixture {
	f := authFixture{sessions: map[string]string{}}
	for _, b := range matrixBuckets {
		if b != "openai" {
			id := admin.ok("POST", "/v1/files", []byte(fmt.Sprintf(`{"bucket":%q,"key":"f.txt","size":5}`, b)))["id"].(string)
			admin.ok("POST", "/v1/files/session:"+id, []byte("hello"), "Upload-Offset", "0")
		}
		f.sessions[b] = admin.ok("POST", "/v1/files", []byte(fmt.Sprintf(`{"bucket":%q,"key":"s.bin","size":10}`, b)))["id"].(string)
	}
	var form bytes.Buffer
	form.WriteString("--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n" +
		"--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.txt\"\r\nContent-Type: text/plain\r\n\r\nnotes of wa\r\n--X--\r\n")
	f.fileID = wa.ok("POST", "/v1/openai/v1/files", form.Bytes(), "Content-Type", "multipart/form-data; boundary=X")["id"].(string)
	f.uploadID = wa.ok("POST", "/v1/openai/v1/uploads", []byte(`{"filename":"u.txt","purpose":"assistants","bytes":3,"mime_type":"text/plain"}`),
		"Content-Type", "application/json")["id"].(string)
	f.vsID = wa.ok("POST", "/v1/openai/v1/vector_stores", []byte(fmt.Sprintf(`{"name":"wa's","file_ids":[%q]}`, f.fileID)),
		"Content-Type", "application/json")["id"].(string)
	f.batchID = wa.ok("POST", "/v1/openai/v1/vector_stores/"+f.vsID+"/file_batches", []byte(fmt.Sprintf(`{"file_ids":[%q]}`, f.fileID)),
		"Content-Type", "application/json")["id"].(string)
	return f
}

var pathVar = regexp.MustCompile(`\{([a-z_]+)(:(?:[^{}]|\{[^}]*\})*)?\}`)

// request fills a route template for target bucket bkt and gives a body
// that would succeed if the caller were allowed.
func (f authFixture) request(tpl, method, bkt string) (string, []byte, []string) {
	_, openAI := cutOpenAIPrefix(tpl)
	path := pathVar.ReplaceAllStringFunc(tpl, func(v string) string {
		switch name := pathVar.FindStringSubmatch(v)[1]; {
		case name == "bucket":
			return bkt
		case name == "key":
			return "f.txt"
		case name == "id" && strings.Contains(tpl, "session:"):
			return f.sessions[bkt]
		case name == "n":
			return "1"
		case name == "id" && strings.Contains(tpl, "/uploads/"):
			return f.uploadID
		case name == "id", name == "file_id":
			return f.fileID
		case name == "vector_store_id":
			return f.vsID
		case name == "batch_id":
			return f.batchID
		}
		return v
	})
	json := []string{"Content-Type", "application/json"}
	switch {
	case method == "POST" && path == "/v1/files":
		return path, []byte(fmt.Sprintf(`{"bucket":%q,"key":"new.txt","size":1}`, bkt)), json
	case strings.Contains(tpl, "session:") && (method == "POST" || method == "PUT"):
		return path, []byte("0123456789"), []string{"Upload-Offset", "0"}
	case method == "PUT" && strings.HasSuffix(tpl, "{bucket}"):
		return path, []byte(`{"location":"file:///tmp"}`), json
	case openAI && strings.HasSuffix(tpl, "/files") && method == "POST" && !strings.Contains(tpl, "vector_stores"):
		return path, []byte("--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n--X\r\n" +
			"Content-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nx\r\n--X--\r\n"), []string{"Content-Type", "multipart/form-data; boundary=X"}
	case openAI && strings.HasSuffix(tpl, "/parts"):
		return path, []byte("--X\r\nContent-Disposition: form-data; name=\"data\"; filename=\"p\"\r\n\r\nabc\r\n--X--\r\n"),
			[]string{"Content-Type", "multipart/form-data; boundary=X"}
	case openAI && method == "POST":
		return path, []byte(fmt.Sprintf(`{"file_id":%q,"file_ids":[%q],"attributes":{},"query":"notes","name":"x","filename":"x","purpose":"assistants","bytes":1,"mime_type":"text/plain"}`,
			f.fileID, f.fileID)), json
	}
	return path, nil, nil
}

// want is what the matrix expects of one request: 401, 403, 404 (another
// key's OpenAI object), "list" (200 without wa's objects) or 0 (allowed).
func want(key, tpl, method, bkt string) int {
	p := routePolicy(tpl, method)
	if p.access == 0 {
		return 0
	}
	if key == "" {
		return http.StatusUnauthorized
	}
	var k auth.Caller
	for _, tk := range testKeys {
		if tk.name == key {
			k = auth.Caller{Name: tk.name, Access: tk.access, Buckets: tk.buckets}
		}
	}
	if !k.Can(p.access) {
		return http.StatusForbidden
	}
	if _, ok := cutOpenAIPrefix(tpl); ok {
		if key == "admin" || key == "wa" {
			return 0
		}
		switch {
		case strings.Contains(tpl, "{"):
			return http.StatusNotFound
		case method == "GET":
			return wantList
		}
		return 0 // creates its own
	}
	if tpl == "/v1/files" && method == "GET" || tpl == "/v1/events" {
		return 0 // lists only the key's buckets (checked by checkEventScope)
	}
	if key != "admin" && (bkt == "openai" || !k.InBucket(bkt)) {
		return http.StatusForbidden
	}
	return 0
}

const wantList = 1

// checkEventScope fails if key's pull stream shows an event of a bucket
// the key may not use; an admin sees several buckets' events.
func checkEventScope(t *testing.T, key string, body []byte) {
	t.Helper()
	var page struct {
		Data []struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("events as %q: %v", key, err)
	}
	var k auth.Caller
	for _, tk := range testKeys {
		if tk.name == key {
			k = auth.Caller{Name: tk.name, Access: tk.access, Buckets: tk.buckets}
		}
	}
	seen := map[string]bool{}
	for _, e := range page.Data {
		bkt, _ := e.Data["bucket"].(string)
		if name, ok := e.Data["name"].(string); ok && bkt == "" {
			bkt = name
		}
		seen[bkt] = true
		if k.Access < auth.Admin && (bkt == "openai" || !k.InBucket(bkt)) {
			t.Errorf("events as %q show a %s of bucket %q", key, e.Type, bkt)
		}
	}
	if key == "admin" && len(seen) < 2 {
		t.Errorf("events as admin show buckets %v, want the fixture's several", seen)
	}
}

// routePolicy is the matrix's own statement of each route's policy,
// written apart from the router so a route that changes policy fails.
func routePolicy(tpl, method string) policy {
	switch {
	case tpl == "/healthz", tpl == "/readyz", tpl == "/openapi.json":
		return public
	case tpl == "/metrics", tpl == "/v1/sessions", strings.HasPrefix(tpl, "/v1/events/webhooks/"):
		return admin
	case isOpenAITemplate(tpl):
		if method == "GET" || method == "HEAD" || strings.HasSuffix(tpl, "/search") {
			return openAIRead
		}
		return openAIWrite
	case method == "POST" && strings.HasSuffix(tpl, ":presign"): // makes a link to what the key may read
		return policy{access: auth.Read}
	case method == "PUT" && strings.Contains(tpl, "session:"): // a part
		return policy{access: auth.Write}
	case method == "PUT", method == "DELETE" && tpl == "/v1/files/{bucket}":
		return admin
	case method == "GET" || method == "HEAD":
		return policy{access: auth.Read}
	}
	return policy{access: auth.Write}
}

// The auth matrix: every key (and none, and a wrong one) × every route of
// the router × buckets in and out of scope. A refused request is a 401 or
// 403 (404 for another key's OpenAI object, as OpenAI does across
// projects) and changes nothing; an allowed one is never refused.
func TestAuthMatrix(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		srv, router, secrets := withKeys(t, store, blobs)
		as := func(key string) caller { return caller{t: t, base: srv.URL, secret: secrets[key]} }
		fx := makeAuthFixture(t, as("admin"), as("wa"))
		before := snapshot(t, as("admin"), fx)

		type route struct{ tpl, method string }
		var routes []route
		_ = router.Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			tpl, _ := r.GetPathTemplate()
			methods, _ := r.GetMethods()
			for _, m := range methods {
				routes = append(routes, route{tpl, m})
			}
			return nil
		})
		checked := 0
		for _, rt := range routes {
			for _, bkt := range matrixBuckets {
				if !strings.Contains(rt.tpl, "{bucket}") && !strings.Contains(rt.tpl, "session:") && rt.tpl != "/v1/files" && bkt != "a1" {
					continue // the bucket is not part of this route
				}
				for _, key := range []string{"", "wrong", "admin", "wa", "ra", "wb", "wall", "rall"} {
					path, body, hdr := fx.request(rt.tpl, rt.method, bkt)
					w := want(key, rt.tpl, rt.method, bkt)
					if key == "wrong" {
						w = http.StatusUnauthorized
					}
					safe := rt.method == "GET" || rt.method == "HEAD" || strings.HasSuffix(rt.tpl, "/search")
					if w == 0 && !safe {
						continue // allowed and would change state: TestAuthFlows covers these
					}
					c := as(key)
					if key == "wrong" {
						c.secret = "fry_not-a-key"
					}
					a := c.do(rt.method, path, body, hdr...)
					checked++
					if rt.tpl == "/v1/events" && a.Code == 200 {
						checkEventScope(t, key, a.Body)
					}
					what := fmt.Sprintf("%s %s (bucket %s) as %q", rt.method, path, bkt, key)
					switch w {
					case 0:
						if a.Code == 401 || a.Code == 403 {
							t.Errorf("%s: refused %d %s, want allowed", what, a.Code, a.Body)
						}
					case wantList:
						if a.Code != 200 || bytes.Contains(a.Body, []byte(fx.fileID)) || bytes.Contains(a.Body, []byte(fx.vsID)) {
							t.Errorf("%s: %d %s; want 200 without wa's objects", what, a.Code, a.Body)
						}
					default:
						if a.Code != w {
							t.Errorf("%s: %d %s, want %d", what, a.Code, a.Body, w)
						}
						if w == 401 && a.Header.Get("WWW-Authenticate") == "" {
							t.Errorf("%s: 401 without WWW-Authenticate", what)
						}
					}
				}
			}
		}
		if checked < 500 {
			t.Fatalf("only %d requests checked", checked)
		}
		if after := snapshot(t, as("admin"), fx); after != before {
			t.Fatalf("refused requests changed state:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// snapshot is what refused requests must not change, as admin sees it.
func snapshot(t *testing.T, admin caller, fx authFixture) string {
	var b strings.Builder
	for _, path := range []string{"/v1/files", "/v1/files/a1", "/v1/files/b", "/v1/files/openai",
		"/v1/openai/v1/files", "/v1/openai/v1/vector_stores", "/v1/openai/v1/vector_stores/" + fx.vsID + "/files"} {
		m := admin.ok("GET", path, nil)
		for _, d := range m["data"].([]any) {
			e := d.(map[string]any)
			fmt.Fprintf(&b, "%s:%v/%v/%v ", path, e["name"], e["key"], e["id"])
		}
	}
	for _, bkt := range matrixBuckets {
		m := admin.ok("GET", "/v1/files/session:"+fx.sessions[bkt], nil)
		fmt.Fprintf(&b, "session %s:%v ", bkt, m["offset"])
	}
	return b.String()
}

// What keys may do, done: a write key uploads, reads and deletes in its
// buckets and lists only them; OpenAI objects are their creator's; a key
// removed from the file stops working once the file is reloaded.
func TestAuthFlows(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		srv, _, secrets := withKeys(t, store, blobs)
		as := func(key string) caller { return caller{t: t, base: srv.URL, secret: secrets[key]} }
		wa, wb, admin := as("wa"), as("wb"), as("admin")

		id := wa.ok("POST", "/v1/files", []byte(`{"bucket":"a-photos","key":"p.jpg","size":3}`))["id"].(string)
		if a := wb.do("POST", "/v1/files/session:"+id, []byte("abc"), "Upload-Offset", "0"); a.Code != 403 {
			t.Fatalf("another tenant appended to wa's session: %d %s", a.Code, a.Body)
		}
		wa.ok("POST", "/v1/files/session:"+id, []byte("abc"), "Upload-Offset", "0")
		if a := wa.do("GET", "/v1/files/a-photos/p.jpg:content", nil); a.Code != 200 || string(a.Body) != "abc" {
			t.Fatalf("download: %d %q", a.Code, a.Body)
		}
		wb.ok("POST", "/v1/files/session:"+wb.ok("POST", "/v1/files", []byte(`{"bucket":"b","key":"x","size":1}`))["id"].(string),
			[]byte("x"), "Upload-Offset", "0")
		var names []string
		for _, d := range wa.ok("GET", "/v1/files", nil)["data"].([]any) {
			names = append(names, d.(map[string]any)["name"].(string))
		}
		if !slices.Equal(names, []string{"a-photos"}) {
			t.Fatalf("wa lists buckets %v, want only its own", names)
		}
		if a := wa.do("DELETE", "/v1/files/a-photos/p.jpg", nil); a.Code != 204 && a.Code != 200 {
			t.Fatalf("delete in its bucket: %d %s", a.Code, a.Body)
		}

		// OpenAI: wa's file is wa's and admin's to see.
		form := []byte("--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n" +
			"--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.txt\"\r\n\r\nwa\r\n--X--\r\n")
		mp := []string{"Content-Type", "multipart/form-data; boundary=X"}
		fileID := wa.ok("POST", "/v1/openai/v1/files", form, mp...)["id"].(string)
		wbFile := wb.ok("POST", "/v1/openai/v1/files", form, mp...)["id"].(string)
		list := func(c caller) string { return string(c.do("GET", "/v1/openai/v1/files", nil).Body) }
		if l := list(wa); !strings.Contains(l, fileID) || strings.Contains(l, wbFile) {
			t.Fatalf("wa's list: %s", l)
		}
		if l := list(admin); !strings.Contains(l, fileID) || !strings.Contains(l, wbFile) {
			t.Fatalf("admin's list: %s", l)
		}
		if a := wb.do("DELETE", "/v1/openai/v1/files/"+fileID, nil); a.Code != 404 {
			t.Fatalf("wb deleted wa's file: %d %s", a.Code, a.Body)
		}
		if a := wb.do("GET", "/v1/openai/v1/files/"+fileID+"/content", nil); a.Code != 404 {
			t.Fatalf("wb read wa's file: %d %s", a.Code, a.Body)
		}
		// Naming another key's file fails it as an unknown id would.
		a := wb.do("POST", "/v1/openai/v1/vector_stores", []byte(fmt.Sprintf(`{"file_ids":[%q]}`, fileID)), "Content-Type", "application/json")
		if counts, _ := a.JSON(t)["file_counts"].(map[string]any); a.Code != 200 || counts["failed"] != 1.0 || counts["completed"] != 0.0 {
			t.Fatalf("wb attached wa's file to a store: %d %s", a.Code, a.Body)
		}
		wa.ok("DELETE", "/v1/openai/v1/files/"+fileID, nil)

		// The natively served OpenAI bucket is admin's only.
		if a := as("wall").do("GET", "/v1/files/openai", nil); a.Code != 403 {
			t.Fatalf("a * key listed the OpenAI bucket natively: %d %s", a.Code, a.Body)
		}
		if a := admin.do("GET", "/metrics", nil); a.Code != 200 {
			t.Fatalf("admin /metrics: %d", a.Code)
		}
		if a := wa.do("GET", "/metrics", nil); a.Code != 403 {
			t.Fatalf("wa /metrics: %d", a.Code)
		}
		if a := (caller{t: t, base: srv.URL}).do("GET", "/healthz", nil); a.Code != 200 {
			t.Fatalf("/healthz without a key: %d", a.Code)
		}
	})
}

func isOpenAITemplate(tpl string) bool {
	_, ok := cutOpenAIPrefix(tpl)
	return ok
}

// recordReads counts reads of session records (not their held-back tails).
type recordReads struct {
	metastore.Store
	mu sync.Mutex
	n  int
}

func (s *recordReads) Get(ctx context.Context, key string) (metastore.Record, error) {
	if strings.HasPrefix(key, "session/") && !strings.Contains(key, "/tail/") {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
	}
	return s.Store.Get(ctx, key)
}

func (s *recordReads) take() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n = 0
	return n
}

// A key limited to some buckets has its session's bucket checked as the
// session engine loads the record: a request on a session reads it once,
// as an admin's does, and another tenant is still refused.
func TestScopedSessionRequestsReadTheRecordOnce(t *testing.T) {
	meta, blobs := testsvc.Embedded(t)
	store := &recordReads{Store: meta}
	srv, _, secrets := withKeys(t, store, blobs)
	as := func(key string) caller { return caller{t: t, base: srv.URL, secret: secrets[key]} }
	wa, wb := as("wa"), as("wb")
	id := wa.ok("POST", "/v1/files", []byte(`{"bucket":"a1","key":"k","size":6}`))["id"].(string)
	for _, step := range []struct {
		method string
		body   []byte
		hdr    []string
	}{
		{"POST", []byte("abc"), []string{"Upload-Offset", "0"}},
		{"GET", nil, nil},
		{"DELETE", nil, nil},
	} {
		if a := wb.do(step.method, "/v1/files/session:"+id, step.body, step.hdr...); a.Code != http.StatusForbidden {
			t.Fatalf("%s by another tenant: %d %s", step.method, a.Code, a.Body)
		}
		store.take()
		wa.ok(step.method, "/v1/files/session:"+id, step.body, step.hdr...)
		if n := store.take(); n != 1 {
			t.Errorf("%s by a scoped key read the session record %d times, want 1", step.method, n)
		}
	}
}
