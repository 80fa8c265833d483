package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/tus"
)

// An incoming X-Request-Id goes into every log line and back out as a
// header, so an adopted one must be short and of a few safe characters
// (no CR/LF, no quotes, nothing a log parser splits on); any other is
// replaced by a fresh 24-hex-digit id.
func FuzzValidRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "req-1_2.3", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", "a b", "a\r\nSet-Cookie: x=y", "a\x00",
		"é", "a\"b", "a=b", "../..", "%0d%0a", "\u2028"} {
		f.Add(s)
	}
	echo := requestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f.Fuzz(func(t *testing.T, id string) {
		ok := validRequestID(id)
		if ok {
			if len(id) == 0 || len(id) > 64 {
				t.Fatalf("accepted a %d-byte id", len(id))
			}
			for i := 0; i < len(id); i++ {
				if c := id[i]; !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
					t.Fatalf("accepted id %q with byte %q", id, c)
				}
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Header[RequestIDHeader] = []string{id}
		rec := httptest.NewRecorder()
		echo.ServeHTTP(rec, req)
		got := rec.Header().Get(RequestIDHeader)
		switch {
		case ok && got != id:
			t.Fatalf("valid id %q answered as %q", id, got)
		case !ok && (len(got) != 24 || strings.Trim(got, "0123456789abcdef") != ""):
			t.Fatalf("invalid id %q replaced by %q, want 24 hex digits", id, got)
		}
	})
}

// fuzzMethods are what FuzzAPI's method byte picks from (its top bit
// sends the body chunked): the API's methods and two it has no route for.
var fuzzMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"}

// fuzzRequest is one FuzzAPI input, named for the seeds' sake.
type fuzzRequest struct {
	method                                                       uint8
	path                                                         string
	contentType, uploadOffset, contentRange, rng, checksum, auth string
	uploadLength, uploadMetadata                                 string // tus
	body                                                         string
}

func fuzzMethod(m string, chunked bool) uint8 {
	for i, x := range fuzzMethods {
		if x == m {
			if chunked {
				return uint8(i) | 0x80
			}
			return uint8(i)
		}
	}
	panic(m)
}

// The whole handler (every service, API keys in force) on the embedded
// stores, fed fuzzed requests: it must never panic and never answer a
// 5xx. Nothing in bbolt or the filesystem is unavailable or overloaded,
// so even a 503 would be a bug here. Paths may name the fixture's objects
// as {session}, {file}, {upload}, {vs} and {batch}, and Authorization its
// keys as {admin}, {wa}, {ra} and {wb}, so inputs get past the 404s and
// 401s to the handlers' own parsing.
//
// The stores live in one temporary directory per fuzz process; inputs
// change them (a session may be deleted, files uploaded), so a failure
// that depends on earlier inputs may not replay alone: its message has
// the whole request.
func FuzzAPI(f *testing.F) {
	meta, blobs := testsvc.Embedded(f)
	keys, secrets := testKeyring(f)
	d := apiDeps(f, meta, blobs)
	d.Keys = keys
	tusd, err := tus.New(d.Sessions, d.Files, d.Store, tus.Config{Bucket: "tus", MaxSize: 1 << 40, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	d.Tus = tusd
	h := New(d)
	srv := httptest.NewServer(h)
	f.Cleanup(srv.Close)
	as := func(key string) caller { return caller{t: f, base: srv.URL, secret: secrets[key]} }
	fx := makeAuthFixture(f, as("admin"), as("wa"))
	paths := strings.NewReplacer("{session}", fx.sessions["b"], "{file}", fx.fileID, "{upload}", fx.uploadID,
		"{vs}", fx.vsID, "{batch}", fx.batchID)
	var pairs []string
	for _, k := range testKeys {
		pairs = append(pairs, "{"+k.name+"}", secrets[k.name])
	}
	auths := strings.NewReplacer(pairs...)

	const admin, json, form = "Bearer {admin}", "application/json", "multipart/form-data; boundary=X"
	mpFile := "--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n--X\r\n" +
		"Content-Disposition: form-data; name=\"file\"; filename=\"../../n.txt\"\r\nContent-Type: text/plain\r\n\r\nnotes\r\n--X--\r\n"
	for _, s := range []fuzzRequest{
		{method: fuzzMethod("GET", false), path: "/healthz"},
		{method: fuzzMethod("GET", false), path: "/v1/files", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/b?limit=1000&after=f.txt&prefix=f", auth: "Bearer {wb}"},
		{method: fuzzMethod("GET", false), path: "/v1/files/b?limit=0", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/f.txt", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/f.txt:content", rng: "bytes=1-3", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/f.txt:content", rng: "bytes=-0", auth: admin},
		{method: fuzzMethod("HEAD", false), path: "/v1/files/b/f.txt:content", rng: "bytes=99999999999999999999-", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/../a1/f.txt", auth: "Bearer {wb}"},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/a%2F..%2F..%2Fetc", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/a%00b", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/openai", auth: "Bearer {wa}"},
		{method: fuzzMethod("POST", false), path: "/v1/files", contentType: json, auth: admin, body: `{"bucket":"b","key":"new.bin","size":3}`},
		{method: fuzzMethod("POST", false), path: "/v1/files", contentType: json, auth: admin, body: `{"bucket":"b","key":"x","size":-1}`},
		{method: fuzzMethod("POST", false), path: "/v1/files", contentType: json, auth: admin, body: `{"bucket":"b","key":"x","size":1e30}`},
		{method: fuzzMethod("POST", false), path: "/v1/files", contentType: json, auth: admin, body: `{"bucket":"b","key":"x","size":9223372036854775807}`},
		{method: fuzzMethod("POST", false), path: "/v1/files", contentType: json, auth: admin, body: `{"bucket":"b","key":"a/.ferry-staging/x","size":1,"mime_type":"text/plain; charset"}`},
		{method: fuzzMethod("POST", false), path: "/v1/files", contentType: "text/plain", auth: admin, body: `{"bucket":"b","key":"x","size":1}`},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", uploadOffset: "0", auth: admin, body: "01234"},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", contentRange: "bytes 5-9/10", auth: admin, body: "56789"},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", uploadOffset: "3", contentRange: "bytes 5-9/10", auth: admin, body: "56789"},
		{method: fuzzMethod("POST", true), path: "/v1/files/session:{session}", uploadOffset: "0", auth: admin, body: "0123456789abc"},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", uploadOffset: "0", checksum: "sha256 AAAA", auth: admin, body: "0"},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", uploadOffset: "0", checksum: "crc32c AAAAAA==", auth: admin, body: "0123456789"},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", uploadOffset: "-1", auth: admin},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}", uploadOffset: "0", auth: "Bearer {wb}", body: "0"},
		{method: fuzzMethod("GET", false), path: "/v1/files/session:{session}", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/files/session:{session}?upload_token=1.x"},
		{method: fuzzMethod("POST", false), path: "/v1/files/session:{session}?upload_token=99999999999.AAAA", uploadOffset: "0", body: "0"},
		{method: fuzzMethod("GET", false), path: "/v1/files/b/f.txt:content?expires=1&version=x&signature=y"},
		{method: fuzzMethod("GET", false), path: "/v1/files?upload_token=1.x&expires=2"},
		{method: fuzzMethod("POST", false), path: "/v1/files/b/f.txt:presign?ttl=1h", auth: admin},
		{method: fuzzMethod("POST", false), path: "/v1/files/b/f.txt:presign", contentType: json, auth: admin, body: `{"ttl_seconds":-1}`},
		{method: fuzzMethod("GET", false), path: "/v1/files/session:0123456789abcdef0123456789abcdeg", auth: admin},
		{method: fuzzMethod("DELETE", false), path: "/v1/files/session:..%2F..", auth: admin},
		{method: fuzzMethod("PUT", false), path: "/v1/files/reg", contentType: json, auth: admin, body: `{"location":"file:///etc"}`},
		{method: fuzzMethod("PUT", false), path: "/v1/files/reg", contentType: json, auth: admin, body: `{"location":"s3://10.0.0.1:9000/x"}`},
		{method: fuzzMethod("PUT", false), path: "/v1/files/reg", contentType: json, auth: admin, body: `{"location":"file:///srv/a%2541"}`},
		{method: fuzzMethod("PUT", false), path: "/v1/files/b/f.txt", auth: admin},
		{method: fuzzMethod("DELETE", false), path: "/v1/files/nope/f.txt", auth: admin},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/files", contentType: form, auth: "Bearer {wa}", body: mpFile},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/files", contentType: form, auth: admin,
			body: strings.Replace(mpFile, "assistants", "assistants\r\n--X\r\nContent-Disposition: form-data; name=\"expires_after[anchor]\"\r\n\r\ncreated_at", 1)},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/files", contentType: "multipart/form-data", auth: admin, body: mpFile},
		{method: fuzzMethod("GET", false), path: "/v1/openai/v1/files?limit=10001&order=sideways", auth: admin},
		{method: fuzzMethod("GET", false), path: "/v1/openai/v1/files/{file}/content", rng: "bytes=0-0", auth: "Bearer {wa}"},
		{method: fuzzMethod("GET", false), path: "/v1/openAi/v1/files/{file}", auth: "Bearer {wb}"},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/uploads", contentType: json, auth: admin, body: `{"filename":"u","purpose":"batch","bytes":3,"mime_type":"text/plain","expires_after":{"anchor":"created_at","seconds":1}}`},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/uploads/{upload}/parts", contentType: form, auth: "Bearer {wa}",
			body: "--X\r\nContent-Disposition: form-data; name=\"data\"; filename=\"p\"\r\n\r\nabc\r\n--X--\r\n"},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/uploads/{upload}/complete", contentType: json, auth: "Bearer {wa}", body: `{"part_ids":["part_x"],"md5":"zz"}`},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/vector_stores", contentType: json, auth: admin,
			body: `{"name":"v","file_ids":["{file}"],"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":0,"chunk_overlap_tokens":1}}}`},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/vector_stores/{vs}/search", contentType: json, auth: "Bearer {wa}",
			body: `{"query":["notes",""],"max_num_results":50,"filters":{"type":"and","filters":[{"type":"eq","key":"k","value":[1,{"a":null}]}]}}`},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/vector_stores/{vs}/search", contentType: json, auth: "Bearer {wa}",
			body: `{"query":"notes","filters":{"type":"or","filters":[{"type":"or","filters":[{"type":"or","filters":[]}]}]},"ranking_options":{"score_threshold":-1e308}}`},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/vector_stores/{vs}/files/{file}", contentType: json, auth: "Bearer {wa}", body: `{"attributes":{"` + strings.Repeat("k", 65) + `":1}}`},
		{method: fuzzMethod("GET", false), path: "/v1/openai/v1/vector_stores/{vs}/files?filter=bogus&limit=100&before=x", auth: "Bearer {wa}"},
		{method: fuzzMethod("POST", false), path: "/v1/openai/v1/vector_stores/{vs}/file_batches", contentType: json, auth: "Bearer {wa}", body: `{"file_ids":["{file}"],"files":[{"file_id":"x"}]}`},
		{method: fuzzMethod("GET", false), path: "/v1/openai/v1/vector_stores/{vs}/file_batches/{batch}/files?order=asc", auth: "Bearer {wa}"},
		{method: fuzzMethod("GET", false), path: "/metrics", auth: "Basic YTpi"},
		{method: fuzzMethod("GET", false), path: "/metrics", auth: "Bearer "},
		{method: fuzzMethod("GET", false), path: "/metrics", auth: "bearer   {admin}  "},
		{method: fuzzMethod("OPTIONS", false), path: "*"},
		{method: fuzzMethod("PROPFIND", false), path: "//v1//files", auth: admin},
		{method: fuzzMethod("PATCH", false), path: "/v1/openai/v1/nowhere", auth: admin},
		{method: fuzzMethod("POST", false), path: "/v1/tus/", auth: admin, uploadLength: "10", uploadMetadata: "bucket Yg==,filename Li4vLi4vZXRj"},
		{method: fuzzMethod("POST", false), path: "/v1/tus/", auth: admin, uploadLength: "-1", uploadMetadata: "bucket,filename !!!"},
		{method: fuzzMethod("POST", false), path: "/v1/tus/", auth: admin, uploadLength: "99999999999999999999", uploadMetadata: "bucket YQ=="},
		{method: fuzzMethod("PATCH", false), path: "/v1/tus/0123456789abcdef0123456789abcdef", auth: admin, uploadOffset: "0",
			contentType: "application/offset+octet-stream", checksum: "sha1 AAAA", body: "0123456789"},
		{method: fuzzMethod("HEAD", false), path: "/v1/tus/{session}", auth: admin},
		{method: fuzzMethod("DELETE", false), path: "/v1/tus/..%2F..", auth: admin},
	} {
		f.Add(s.method, s.path, s.contentType, s.uploadOffset, s.contentRange, s.rng, s.checksum, s.auth, s.uploadLength, s.uploadMetadata, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, m uint8, path, contentType, uploadOffset, contentRange, rng, checksum, authz, uploadLength, uploadMetadata string, body []byte) {
		in := fuzzRequest{method: m, path: paths.Replace(path), contentType: contentType, uploadOffset: uploadOffset,
			contentRange: contentRange, rng: rng, checksum: checksum, auth: auths.Replace(authz), uploadLength: uploadLength,
			uploadMetadata: uploadMetadata, body: paths.Replace(string(body))}
		req, ok := in.parse()
		if !ok {
			return // net/http answers 400 itself; no handler runs
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s → %d %s", in, rec.Code, rec.Body)
		}
		if rec.Header().Get(RequestIDHeader) == "" {
			t.Fatalf("%s → %d without %s", in, rec.Code, RequestIDHeader)
		}
	})
}

// parse turns the input into a request as ferryd's http.Server would: the
// bytes on the wire read by http.ReadRequest, then its own checks. ok is
// false for what the server refuses before calling the handler.
func (in fuzzRequest) parse() (*http.Request, bool) {
	chunked := in.method&0x80 != 0
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: ferry.test\r\nTus-Resumable: 1.0.0\r\n", fuzzMethods[int(in.method&0x7f)%len(fuzzMethods)], in.path)
	for _, hv := range [][2]string{{"Content-Type", in.contentType}, {"Upload-Offset", in.uploadOffset}, {"Content-Range", in.contentRange},
		{"Range", in.rng}, {"Upload-Checksum", in.checksum}, {"Authorization", in.auth}, {"Upload-Length", in.uploadLength},
		{"Upload-Metadata", in.uploadMetadata}} {
		if hv[1] == "" {
			continue
		}
		for i := 0; i < len(hv[1]); i++ { // the server's httpguts.ValidHeaderFieldValue
			if c := hv[1][i]; c < ' ' && c != '\t' || c == 0x7f {
				return nil, false
			}
		}
		fmt.Fprintf(&b, "%s: %s\r\n", hv[0], hv[1])
	}
	if chunked {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(in.body) > 0 {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(in.body), in.body)
		}
		b.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(in.body), in.body)
	}
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil || req.Method == "CONNECT" || req.Method == "OPTIONS" && req.RequestURI == "*" {
		return nil, false
	}
	req.RemoteAddr = "192.0.2.1:1234"
	return req, true
}

func (in fuzzRequest) String() string {
	body := in.body
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return fmt.Sprintf("%s %q (Content-Type %q, Upload-Offset %q, Content-Range %q, Range %q, Upload-Checksum %q, Authorization %q, Upload-Length %q, Upload-Metadata %q, chunked %v) body %s",
		fuzzMethods[int(in.method&0x7f)%len(fuzzMethods)], in.path, in.contentType, in.uploadOffset, in.contentRange, in.rng,
		in.checksum, in.auth, in.uploadLength, in.uploadMetadata, in.method&0x80 != 0, strconv.Quote(body))
}

// Found by FuzzAPI: an empty id in a request body ({"file_ids":[""]}) went
// to bbolt as an empty index member, which it refuses, and came back as a
// 500. Ids named in bodies are looked up like any unknown id instead.
func TestEmptyIDsInBodiesAreNotServerErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		c := caller{t: t, base: serveAPI(t, store, blobs, time.Second).URL}
		fx := makeAuthFixture(t, c, c)
		oai, vs := "/v1/openai/v1", "/v1/openai/v1/vector_stores/"+fx.vsID
		for _, r := range [][2]string{
			{oai + "/vector_stores", `{"file_ids":[""]}`},
			{vs + "/files", `{"file_id":""}`},
			{vs + "/file_batches", `{"file_ids":[""]}`},
			{vs + "/file_batches", `{"files":[{"file_id":""}]}`},
			{oai + "/uploads/" + fx.uploadID + "/complete", `{"part_ids":[""]}`},
		} {
			if a := c.do("POST", r[0], []byte(r[1]), "Content-Type", "application/json"); a.Code >= 500 {
				t.Errorf("POST %s %s: %d %s", r[0], r[1], a.Code, a.Body)
			}
		}
	})
}
