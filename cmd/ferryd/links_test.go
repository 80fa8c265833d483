package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/internal/testhttp"
)

// The link secrets of these tests: a rotation from linkSecretOld to
// linkSecret, the old one accepted until the grace given at start.
const (
	linkSecret    = "links-test-current-secret-0123456789abcdef"
	linkSecretOld = "links-test-previous-secret-0123456789abcdef"
	appOrigin     = "https://app.example"
)

// linkEnv is a ferryd with API keys, CORS for appOrigin and a rotated link
// secret, on one backend.
type linkEnv struct {
	be                       backendEnv
	p                        *proc
	base                     string
	keys                     string      // the keys file
	writer, reader, outsider string      // keys: write and read on photos, read on other
	current, previous        *auth.Links // sign as ferryd does with each secret
}

func newLinkEnv(t *testing.T, be backendEnv) *linkEnv {
	le := &linkEnv{be: be, keys: filepath.Join(t.TempDir(), "keys.yaml")}
	var entries []auth.Key
	for _, k := range []struct {
		to     *string
		name   string
		bucket string
		access auth.Access
	}{{&le.writer, "writer", "photos", auth.Write}, {&le.reader, "reader", "photos", auth.Read}, {&le.outsider, "outsider", "other", auth.Read}} {
		secret, entry := auth.NewKey(k.name, []string{k.bucket}, k.access)
		*k.to, entries = secret, append(entries, entry)
	}
	var file strings.Builder
	file.WriteString("keys:\n")
	for _, k := range entries {
		fmt.Fprintf(&file, "  - {name: %s, sha256: %s, buckets: [%s], access: %s}\n", k.Name, k.SHA256, k.Buckets[0], k.Access)
	}
	if err := os.WriteFile(le.keys, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	le.current, le.previous = mustLinks(t, linkSecret), mustLinks(t, linkSecretOld)
	le.start(t, time.Now().Add(time.Hour))
	return le
}

func mustLinks(t *testing.T, secret string) *auth.Links {
	l, err := auth.NewLinks(secret, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// start runs ferryd accepting the old secret until until.
func (le *linkEnv) start(t *testing.T, until time.Time) {
	le.p = startFerryd(t, le.be.args, append(le.be.env, "FERRY_API_KEYS_FILE="+le.keys, "FERRY_CORS_ORIGINS="+appOrigin,
		"FERRY_LINK_SECRET="+linkSecret, "FERRY_LINK_SECRET_PREVIOUS="+linkSecretOld,
		"FERRY_LINK_PREVIOUS_UNTIL="+until.UTC().Format(time.RFC3339))...)
	le.base = "http://" + le.p.addr
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// create makes a session with the writer key and returns its answer.
func (le *linkEnv) create(t *testing.T, key string, size int, extra string) map[string]any {
	t.Helper()
	r := testhttp.Do(t, "POST", le.base+"/v1/files", strings.NewReader(fmt.Sprintf(`{"bucket":"photos","key":%q,"size":%d%s}`, key, size, extra)), bearer(le.writer)...)
	if r.Code != 201 {
		t.Fatalf("create %s: %d %s", key, r.Code, r.Body)
	}
	return r.JSON(t)
}

// linked sends a request with no key (the link is in the URL).
func linked(t *testing.T, method, url string, body []byte, hdr ...string) testhttp.Answer {
	t.Helper()
	if body == nil {
		return testhttp.Do(t, method, url, nil, hdr...)
	}
	return testhttp.Do(t, method, url, bytes.NewReader(body), append([]string{"Content-Type", "application/octet-stream"}, hdr...)...)
}

func wantLinkCode(t *testing.T, what string, r testhttp.Answer, status int, code string) {
	t.Helper()
	if r.Code != status || code != "" && r.JSON(t)["code"] != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.Code, r.Body, status, code)
	}
	if status == 401 && r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("%s: a 401 without WWW-Authenticate", what)
	}
}

// Upload links, natively and over tus, with CORS, on both backends: a
// whole file goes up with only the link; the link reaches nothing else;
// altered, expired, revoked and retired-secret links get 401.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestUploadLinks ./cmd/ferryd/
func TestUploadLinks(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be backendEnv) {
		le := newLinkEnv(t, be)
		le.uploadWithLink(t)
		le.linkScope(t)
		le.tusLink(t)
		le.corsLink(t)
		le.presigned(t)
		le.rotationEnds(t)
	})
}

func (le *linkEnv) uploadWithLink(t *testing.T) {
	data := randomData(300 << 10)
	s := le.create(t, "up.bin", len(data), "")
	link, _ := s["upload_url"].(string)
	if !strings.HasPrefix(link, s["url"].(string)+"?upload_token=") {
		t.Fatalf("upload_url %q is not the session's url with a token", link)
	}
	if r := linked(t, "GET", link, nil); r.Code != 200 || r.JSON(t)["offset"] != float64(0) {
		t.Fatalf("session info with the link: %d %s", r.Code, r.Body)
	}
	if r := linked(t, "POST", link, data[:100<<10], "Upload-Offset", "0"); r.Code != 200 || r.JSON(t)["upload_url"] == "" {
		t.Fatalf("first chunk with the link: %d %s", r.Code, r.Body)
	}
	if r := linked(t, "POST", link, data[100<<10:], "Upload-Offset", strconv.Itoa(100<<10)); r.Code != 200 || r.JSON(t)["bytes"] != float64(len(data)) {
		t.Fatalf("last chunk with the link: %d %s", r.Code, r.Body)
	}
	if r := testhttp.Do(t, "GET", le.base+"/v1/files/photos/up.bin:content", nil, bearer(le.reader)...); r.Code != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("reading it back with a key: %d, %d bytes", r.Code, len(r.Body))
	}
	// Parallel parts take the same link, on the part's URL.
	s = le.create(t, "part.bin", 10, `,"part_size":10`)
	url, query, _ := strings.Cut(s["upload_url"].(string), "?")
	if r := linked(t, "PUT", url+"/parts/1?"+query, []byte("0123456789")); r.Code != 200 || r.JSON(t)["bytes"] != float64(10) {
		t.Fatalf("a part with the link: %d %s", r.Code, r.Body)
	}
}

func (le *linkEnv) linkScope(t *testing.T) {
	s := le.create(t, "scope.bin", 10, "")
	id, link := s["id"].(string), s["upload_url"].(string)
	_, query, _ := strings.Cut(link, "?")
	other := le.create(t, "other.bin", 10, "")["url"].(string)
	wantLinkCode(t, "another session's URL", linked(t, "GET", other+"?"+query, nil), 401, "LINK_INVALID")
	wantLinkCode(t, "an append to another session", linked(t, "POST", other+"?"+query, []byte("x")), 401, "LINK_INVALID")
	for _, c := range []struct{ method, path string }{{"GET", "/v1/files"}, {"GET", "/v1/files/photos"}, {"POST", "/v1/files"},
		{"GET", "/v1/files/photos/up.bin"}, {"GET", "/v1/files/photos/up.bin:content"}, {"DELETE", "/v1/files/photos/up.bin"},
		{"POST", "/v1/files/photos/up.bin:presign"}} {
		wantLinkCode(t, c.method+" "+c.path+" with a link", linked(t, c.method, le.base+c.path+"?"+query, nil), 403, "FORBIDDEN")
	}
	tampered := link[:len(link)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(link, "A")]
	wantLinkCode(t, "an altered link", linked(t, "GET", tampered, nil), 401, "LINK_INVALID")
	ref := auth.UploadRef{Session: id, Bucket: "photos", Key: "scope.bin"}
	expired := s["url"].(string) + "?upload_token=" + le.current.UploadToken(ref, time.Now().Add(-time.Second))
	wantLinkCode(t, "an expired link", linked(t, "GET", expired, nil), 401, "LINK_EXPIRED")
	old := s["url"].(string) + "?upload_token=" + le.previous.UploadToken(ref, time.Now().Add(time.Hour))
	if r := linked(t, "GET", old, nil); r.Code != 200 {
		t.Fatalf("a link signed with the previous secret, in its grace: %d %s", r.Code, r.Body)
	}
	if r := linked(t, "DELETE", link, nil); r.Code != 204 {
		t.Fatalf("abort with the link: %d %s", r.Code, r.Body)
	}
	wantLinkCode(t, "the link after the abort", linked(t, "GET", link, nil), 401, "LINK_REVOKED")
	wantLinkCode(t, "an append after the abort", linked(t, "POST", link, []byte("x")), 401, "LINK_REVOKED")
}

func (le *linkEnv) tusLink(t *testing.T) {
	r := testhttp.Do(t, "POST", le.base+"/v1/tus/", nil, append([]string{"Tus-Resumable", "1.0.0", "Upload-Length", "5",
		"Upload-Metadata", "bucket cGhvdG9z,filename dHVzLnR4dA=="}, bearer(le.writer)...)...) // photos, tus.txt
	loc := r.Header.Get("Location")
	if r.Code != 201 || !strings.Contains(loc, "?upload_token=") {
		t.Fatalf("tus creation with a key: %d, Location %q", r.Code, loc)
	}
	tus := []string{"Tus-Resumable", "1.0.0"}
	if r := linked(t, "HEAD", loc, nil, tus...); r.Code != 200 || r.Header.Get("Upload-Offset") != "0" {
		t.Fatalf("tus HEAD with the link: %d %v", r.Code, r.Header)
	}
	patch := append([]string{"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"}, tus...)
	if r := testhttp.Do(t, "PATCH", loc, strings.NewReader("tusok"), patch...); r.Code != 204 {
		t.Fatalf("tus PATCH with the link: %d %s", r.Code, r.Body)
	}
	if r := testhttp.Do(t, "GET", le.base+"/v1/files/photos/tus.txt:content", nil, bearer(le.reader)...); string(r.Body) != "tusok" {
		t.Fatalf("the tus upload read back: %d %q", r.Code, r.Body)
	}
	_, query, _ := strings.Cut(loc, "?")
	if r := linked(t, "POST", le.base+"/v1/tus/?"+query, nil, append([]string{"Upload-Length", "5"}, tus...)...); r.Code != 403 {
		t.Fatalf("tus creation with a link: %d %s", r.Code, r.Body)
	}
}

// A page on the allowed origin uploads with only the link; another
// origin's page gets no CORS headers, so the browser keeps it out.
func (le *linkEnv) corsLink(t *testing.T) {
	link := le.create(t, "cors.txt", 5, "")["upload_url"].(string)
	preflight := func(origin string) testhttp.Answer {
		return testhttp.Do(t, "OPTIONS", link, nil, "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "content-type,upload-offset")
	}
	r := preflight(appOrigin)
	if r.Code/100 != 2 || r.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "upload-offset") {
		t.Fatalf("preflight from %s: %d %v", appOrigin, r.Code, r.Header)
	}
	if r := preflight("https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin was allowed: %v", r.Header)
	}
	r = linked(t, "POST", link, []byte("hello"), "Origin", appOrigin, "Upload-Offset", "0")
	if r.Code != 200 || r.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Upload-Offset") {
		t.Fatalf("append from %s with the link: %d %v %s", appOrigin, r.Code, r.Header, r.Body)
	}
	if r := linked(t, "GET", link, nil, "Origin", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin's request got CORS headers: %v", r.Header)
	}
}

// rotationEnds restarts ferryd with the previous secret's grace over: its
// links are refused, the current secret's still work.
func (le *linkEnv) rotationEnds(t *testing.T) {
	s := le.create(t, "rotated.bin", 10, "")
	ref := auth.UploadRef{Session: s["id"].(string), Bucket: "photos", Key: "rotated.bin"}
	stopGracefully(t, le.p)
	le.start(t, time.Now().Add(-time.Minute))
	url := le.base + "/v1/files/session:" + ref.Session + "?upload_token="
	wantLinkCode(t, "the previous secret's link after the grace", linked(t, "GET", url+le.previous.UploadToken(ref, time.Now().Add(time.Hour)), nil), 401, "LINK_INVALID")
	if r := linked(t, "GET", url+le.current.UploadToken(ref, time.Now().Add(time.Hour)), nil); r.Code != 200 {
		t.Fatalf("the current secret's link after a restart: %d %s", r.Code, r.Body)
	}
}

// Presigned downloads: the URL reads the file with no key (Range too)
// until it expires, only for that version of the file, and only a key
// with read on the bucket may make one.
func (le *linkEnv) presigned(t *testing.T) {
	le.uploadKeyed(t, "p.bin", []byte("0123456789abcdefghij"))
	presign := func(key, query, body string) testhttp.Answer {
		var b *strings.Reader
		if body != "" {
			b = strings.NewReader(body)
		}
		if b == nil {
			return testhttp.Do(t, "POST", le.base+"/v1/files/photos/p.bin:presign"+query, nil, bearer(key)...)
		}
		return testhttp.Do(t, "POST", le.base+"/v1/files/photos/p.bin:presign"+query, b, bearer(key)...)
	}
	r := presign(le.reader, "", `{"ttl_seconds": 60}`)
	url, _ := r.JSON(t)["url"].(string)
	if exp := r.JSON(t)["expires_at"].(float64); r.Code != 200 || exp < float64(time.Now().Unix()+55) || exp > float64(time.Now().Unix()+65) {
		t.Fatalf("presign: %d %s", r.Code, r.Body)
	}
	got := testhttp.Do(t, "GET", url, nil)
	if got.Code != 200 || string(got.Body) != "0123456789abcdefghij" || got.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET the presigned URL: %d %q %v", got.Code, got.Body, got.Header)
	}
	if r := testhttp.Do(t, "GET", url, nil, "Range", "bytes=10-14"); r.Code != 206 || string(r.Body) != "abcde" {
		t.Fatalf("a range of the presigned URL: %d %q", r.Code, r.Body)
	}
	if r := presign(le.reader, "?ttl=1h", ""); r.Code != 200 {
		t.Fatalf("presign ?ttl=1h: %d %s", r.Code, r.Body)
	}
	wantLinkCode(t, "?ttl=0s", presign(le.reader, "?ttl=0s", ""), 400, "INVALID_REQUEST")
	wantLinkCode(t, "ttl_seconds past 7 days", presign(le.reader, "", `{"ttl_seconds": 700000}`), 400, "INVALID_REQUEST")
	wantLinkCode(t, "a key without read on the bucket", presign(le.outsider, "", ""), 403, "FORBIDDEN")
	wantLinkCode(t, "an altered presigned URL", testhttp.Do(t, "GET", strings.Replace(url, "signature=", "signature=A", 1), nil), 401, "LINK_INVALID")
	ref := auth.DownloadRef{Bucket: "photos", Key: "p.bin", Version: auth.FileVersion(got.Header.Get("ETag"))}
	past := time.Now().Add(-time.Second)
	expired := fmt.Sprintf("%s/v1/files/photos/p.bin:content?expires=%d&version=%s&signature=%s", le.base, past.Unix(), ref.Version, le.current.DownloadSignature(ref, past))
	wantLinkCode(t, "an expired presigned URL", testhttp.Do(t, "GET", expired, nil), 401, "LINK_EXPIRED")
	le.uploadKeyed(t, "p.bin", []byte("replaced"))
	wantLinkCode(t, "the presigned URL of a replaced file", testhttp.Do(t, "GET", url, nil), 410, "LINK_STALE")
}

// uploadKeyed stores data at photos/key with the writer key.
func (le *linkEnv) uploadKeyed(t *testing.T, key string, data []byte) {
	t.Helper()
	s := le.create(t, key, len(data), "")
	r := testhttp.Do(t, "POST", s["url"].(string), bytes.NewReader(data), append([]string{"Content-Type", "application/octet-stream", "Upload-Offset", "0"}, bearer(le.writer)...)...)
	if r.Code != 200 {
		t.Fatalf("upload %s: %d %s", key, r.Code, r.Body)
	}
}

// Without auth.link_secret, ferryd makes one in the data directory, mode
// 0600, and keeps it: a link from before a restart still works.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestLinkSecretGenerated ./cmd/ferryd/
func TestLinkSecretGenerated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startFerryd(t, "--data-dir "+dir)
	s := createSession(t, p, "photos", "a.txt", 5)
	path := filepath.Join(dir, "link_secret")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v", path, err, fi)
	}
	first, _ := os.ReadFile(path)
	stopGracefully(t, p)
	p = startFerryd(t, "--data-dir "+dir)
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) || len(bytes.TrimSpace(first)) != 64 {
		t.Fatalf("the secret changed across a restart, or is not 32 bytes in hex: %q then %q", first, again)
	}
	link := strings.Replace(s["upload_url"].(string), s["url"].(string), "http://"+p.addr+"/v1/files/session:"+s["id"].(string), 1)
	if r := linked(t, "POST", link, []byte("hello"), "Upload-Offset", "0"); r.Code != 200 || r.JSON(t)["bytes"] != float64(5) {
		t.Fatalf("a link from before the restart: %d %s", r.Code, r.Body)
	}
}

// A data directory ferryd cannot write: the embedded store needs it for
// the secret, so ferryd refuses to start, and says what to do.
func TestLinkSecretUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = file
	if _, err := openLinks(t.Context(), cfg, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "FERRY_LINK_SECRET") {
		t.Fatalf("embedded, unwritable data dir: %v", err)
	}
}

// On Redis the generated secret lives in the metadata store, so two
// instances with their own data directories take each other's links, and
// a restart keeps them.
func TestLinkSecretShared(t *testing.T) {
	be := redisS3Env(t)
	a := be.start(t)
	other := be
	other.args = "--data-dir " + t.TempDir()
	b := other.start(t)
	s := createSession(t, a, "photos", "shared.txt", 5)
	link := strings.Replace(s["upload_url"].(string), s["url"].(string), "http://"+b.addr+"/v1/files/session:"+s["id"].(string), 1)
	if r := linked(t, "POST", link, []byte("hello"), "Upload-Offset", "0"); r.Code != 200 || r.JSON(t)["bytes"] != float64(5) {
		t.Fatalf("a link made by one instance, used on another: %d %s", r.Code, r.Body)
	}
	for _, dir := range []string{strings.TrimPrefix(be.args, "--data-dir "), strings.TrimPrefix(other.args, "--data-dir ")} {
		if _, err := os.Stat(filepath.Join(dir, "link_secret")); !os.IsNotExist(err) {
			t.Fatalf("an instance on Redis wrote a secret of its own into %s: %v", dir, err)
		}
	}
}
