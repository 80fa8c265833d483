package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/tus"
)

// hostile is one malformed request and the status it must get.
type hostile struct {
	name   string
	want   int
	method string
	path   string // may name {session}, {file}, {upload}, {vs}, {batch}
	hdr    []string
	body   string
	// big, when set, is the body instead: a stream of n bytes (-1:
	// chunked), never held in the test's memory.
	big  func() io.Reader
	n    int64
	as   string // the key it is sent with: admin when empty, none when "-"
	host string // the Host header; the server's own when empty
	// raw is the whole request as written on the wire ({host} is the
	// server's), for what no client would send.
	raw string
}

// writes are the calls that change the metadata store or the blob backend.
// Lock, Refresh and Unlock are left out: an append takes the session's
// lease before it checks the offset (the offset is the server's truth
// under that lease), and a lease leaves nothing behind.
var writes = faults.Methods("Put", "Delete", "IndexPut", "IndexDelete",
	"CreateMultipart", "UploadPart", "CompleteMultipart", "AbortMultipart", "StageWrite", "StageCommit", "StageDiscard")

// The hostile-input corpus: malformed names, keys, sizes, offsets, headers,
// JSON, forms, filters, locations, hosts, content types, oversized bodies
// and headers, traversal attempts and bad ids, each sent over real HTTP on
// both backends. Each gets the 4xx it names; afterwards no store or blob
// write happened, the listings are as before, and memory did not grow with
// the bodies.
func TestHostileInput(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		in := faults.New()
		comp := faults.Backend(bucket.Compose(blobs), in)
		// file:// registration is on, under root: root/data may be
		// registered, root/out links outside it, to a directory beside it.
		root, outside := t.TempDir(), t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "data", "f.txt"), []byte("f"), 0o644); err != nil {
			t.Fatal(err)
		}
		d := apiDepsOver(t, faults.Store(store, in), comp, registry.Locations{Roots: []string{root}, OpenDir: openDir})
		keys, secrets := testKeyring(t)
		d.Keys, d.AllowedHosts = keys, []string{"127.0.0.1"}
		tusd, err := tus.New(d.Sessions, d.Files, d.Store, tus.Config{Bucket: "tus", MaxSize: 1 << 40, Logger: d.Logger})
		if err != nil {
			t.Fatal(err)
		}
		d.Tus = tusd
		srv := httptest.NewServer(New(d))
		t.Cleanup(srv.Close)
		as := func(key string) caller { return caller{t: t, base: srv.URL, secret: secrets[key]} }
		fx := makeAuthFixture(t, as("admin"), as("wa"))
		ids := strings.NewReplacer("{session}", fx.sessions["b"], "{file}", fx.fileID, "{upload}", fx.uploadID,
			"{vs}", fx.vsID, "{batch}", fx.batchID, "{root}", root, "{outside}", outside)
		ctx := context.Background()
		objects := func() string {
			objs, _, err := comp.Backend.List(ctx, "", "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(objs)
		}
		before, beforeObjs := snapshot(t, as("admin"), fx), objects()
		in.Reset()

		// Memory is the Go heap in use (MemStats.HeapInuse), not VmRSS: under
		// -race (make test) the detector's shadow memory makes the resident
		// set several times the heap. Each request runs after a GC and is
		// measured right after its answer, before the next GC could free
		// what it allocated; and the heap after a final GC shows what stayed.
		// Bound: the large bodies below are 128 MiB streams, so a handler
		// that buffered one would add at least that much, and one that kept
		// it would add it for good. 64 MiB leaves room for the test's own
		// strings (2 MiB headers, 1 MiB JSON), the pooled 1 MiB copy and
		// 8 MiB append buffers, and what the package's other parallel tests
		// allocate meanwhile, without hiding such a buffer.
		const bound = 64 << 20
		corpus := hostileCorpus()
		heap0 := heapInuse(true)
		var worst uint64
		worstCase := ""
		byStatus := map[int]int{}
		for _, c := range corpus {
			wrote := in.Count(writes)
			base := heapInuse(true)
			code := c.send(t, srv, secrets, ids)
			if after := heapInuse(false); after > base && after-base > worst {
				worst, worstCase = after-base, c.name
			}
			byStatus[code]++
			if w := in.Calls(writes); len(w) > wrote {
				t.Errorf("%s: refused with %d but wrote: %v", c.name, code, w[wrote:])
			}
			if code != c.want {
				t.Errorf("%s: %s %.80q → %d, want %d", c.name, c.method, c.path, code, c.want)
			}
		}
		heap1 := heapInuse(true)
		t.Logf("%d hostile requests, answered %v; heap in use %d MiB before, %d MiB after; the most one request added: %d MiB (%s)",
			len(corpus), byStatus, heap0>>20, heap1>>20, worst>>20, worstCase)
		if worst > bound {
			t.Errorf("%q grew the heap by %d MiB (bound %d MiB): its body was buffered", worstCase, worst>>20, bound>>20)
		}
		if heap1 > heap0+bound {
			t.Errorf("the heap grew by %d MiB over the corpus (bound %d MiB): something kept the bodies", (heap1-heap0)>>20, bound>>20)
		}
		if w := in.Calls(writes); len(w) > 0 {
			t.Errorf("refused requests wrote %d times: %v", len(w), w)
		}
		if after := snapshot(t, as("admin"), fx); after != before {
			t.Errorf("refused requests changed the listings:\nbefore %s\nafter  %s", before, after)
		}
		if after := objects(); after != beforeObjs {
			t.Errorf("refused requests changed the stored objects:\nbefore %s\nafter  %s", beforeObjs, after)
		}
	})
}

// heapInuse is the Go heap in use, after a collection when gc is set.
func heapInuse(gc bool) uint64 {
	if gc {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// send writes the request on a connection of its own and reads the status
// the server answers, whatever happens to the rest of the body: a refused
// upload is answered before its body is read, and then the server stops
// reading. A redirect would count as its 3xx.
func (c hostile) send(t *testing.T, srv *httptest.Server, secrets map[string]string, ids *strings.Replacer) int {
	t.Helper()
	addr := srv.Listener.Addr().String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails the case, not the run
	written := make(chan struct{})
	if c.raw != "" {
		go func() {
			defer close(written)
			_, _ = io.WriteString(conn, strings.ReplaceAll(ids.Replace(c.raw), "{host}", addr))
		}()
	} else {
		var body io.Reader = strings.NewReader(ids.Replace(c.body))
		if c.big != nil {
			body = c.big()
		}
		req, err := http.NewRequest(c.method, "http://"+addr+ids.Replace(c.path), body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.big != nil {
			req.ContentLength = c.n
			if c.n < 0 {
				req.TransferEncoding = []string{"chunked"}
			}
		}
		if c.host != "" {
			req.Host = c.host
		}
		switch c.as {
		case "":
			req.Header.Set("Authorization", "Bearer "+secrets["admin"])
		case "-":
		default:
			req.Header.Set("Authorization", "Bearer "+secrets[c.as])
		}
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		go func() {
			defer close(written)
			_ = req.Write(conn) // fails once the server has answered and closed
		}()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: c.method}) // HEAD: no body
	if err != nil {
		t.Errorf("%s: no answer: %v", c.name, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	conn.Close()
	<-written
	return resp.StatusCode
}

// repeat streams s over and over for n bytes in all.
func repeat(s string, n int64) io.Reader {
	return io.LimitReader(&repeater{s: s}, n)
}

type repeater struct {
	s   string
	off int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}

const bigBody = 128 << 20

func hostileCorpus() []hostile {
	jsonCT := []string{"Content-Type", "application/json"}
	formCT := []string{"Content-Type", "multipart/form-data; boundary=X"}
	var cs []hostile
	add := func(c hostile) { cs = append(cs, c) }
	// JSON to a route, with the JSON content type.
	js := func(name, method, path, body string, want int) {
		add(hostile{name: name, method: method, path: path, body: body, hdr: jsonCT, want: want})
	}
	create := func(name, body string, want int) { js(name, "POST", "/v1/files", body, want) }
	get := func(name, path string, want int, hdr ...string) {
		add(hostile{name: name, method: "GET", path: path, hdr: hdr, want: want})
	}
	appendTo := func(name, body string, want int, hdr ...string) {
		add(hostile{name: name, method: "POST", path: "/v1/files/session:{session}", body: body, hdr: hdr, want: want})
	}
	oai := "/v1/openai/v1"
	field := func(name, value string) string {
		return "--X\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
	}

	// Bucket names and keys of a new session.
	name := func(what, bkt, key string) {
		b, _ := json.Marshal(map[string]any{"bucket": bkt, "key": key, "size": 1})
		create(what, string(b), 400)
	}
	for _, c := range [][2]string{{"empty bucket", ""}, {"bucket with a slash", "a/b"}, {"bucket ..", ".."},
		{"bucket of 64 characters", strings.Repeat("b", 64)}, {"non-ASCII bucket", "ü"}, {"bucket with a space", "a b"},
		{"bucket with NUL", "b\x00"}, {"bucket with a colon", "session:x"}} {
		name(c[0], c[1], "k")
	}
	for _, c := range [][2]string{{"empty key", ""}, {"absolute key", "/etc/passwd"}, {"key with //", "a//b"},
		{"key climbing out", "../../etc/passwd"}, {"key with a . segment", "a/./b"}, {"key with :content", "x:content"},
		{"key of 1025 bytes", strings.Repeat("k", 1025)}, {"key segment of 256 bytes", "d/" + strings.Repeat("k", 256)},
		{"key in the staging directory", ".ferry-staging/sessions/x"}, {"key in the staging directory, upper case", "a/.FERRY-STAGING"},
		{"key with a backslash", "..\\..\\etc"}, {"key with NUL", "nul\x00.txt"}, {"key with a newline", "new\nline"},
		{"key ending in /", "dir/"}} {
		name(c[0], "b", c[1])
	}
	// Bucket names and keys in paths.
	create("bucket with invalid UTF-8", "{\"bucket\":\"b\xff\",\"key\":\"k\",\"size\":1}", 400)
	get("listing a bucket with a space", "/v1/files/bad%20name", 400)
	get("listing a bucket with NUL", "/v1/files/x%00y", 400)
	get("listing a bucket with a colon", "/v1/files/a:b", 400)
	add(hostile{name: "unregistering a bad bucket name", method: "DELETE", path: "/v1/files/bad*name", want: 400})
	js("registering a bad bucket name", "PUT", "/v1/files/bad$name", `{"location":"s3://datasets"}`, 400)
	get("key with a backslash in the path", "/v1/files/b/a%5C..%5Cb", 400)
	get("key with NUL in the path", "/v1/files/b/a%00b:content", 400)
	get("key in the staging directory in the path", "/v1/files/b/.ferry-staging/sessions", 400)
	get("encoded slash is a separator, and the key is missing", "/v1/files/b/a%2Fb", 404)
	add(hostile{name: "deleting a key with a colon", method: "DELETE", path: "/v1/files/b/x:content", want: 400})
	add(hostile{name: "registering a file with a backslash key", method: "PUT", path: "/v1/files/b/..%5C..%5Cetc", want: 400})

	// Sizes and MIME types.
	create("negative size", `{"bucket":"b","key":"k","size":-1}`, 400)
	create("no size", `{"bucket":"b","key":"k"}`, 400)
	create("size overflowing int64", `{"bucket":"b","key":"k","size":1e30}`, 400)
	create("size as a string", `{"bucket":"b","key":"k","size":"10"}`, 400)
	create("fractional size", `{"bucket":"b","key":"k","size":1.5}`, 400)
	create("size of MaxInt64", `{"bucket":"b","key":"k","size":9223372036854775807}`, 413)
	create("size of 5 TiB + 1", `{"bucket":"b","key":"k","size":5497558138881}`, 413)
	create("bad MIME type", `{"bucket":"b","key":"k","size":1,"mime_type":"text/plain; charset"}`, 400)
	create("MIME type that is not one", `{"bucket":"b","key":"k","size":1,"mime_type":"not a type"}`, 400)

	// JSON and content types.
	create("empty body", ``, 400)
	create("null", `null`, 400)
	create("array", `[]`, 400)
	create("trailing data", `{"bucket":"b","key":"k","size":1} {}`, 400)
	create("unknown field", `{"bucket":"b","key":"k","size":1,"owner":"root"}`, 400)
	create("nesting 100,000 deep", `{"bucket":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`}`, 400)
	create("JSON just over the 1 MiB cap", `{"bucket":"b","key":"k","size":1,"mime_type":"`+strings.Repeat("a", maxJSONBody)+`"}`, 413)
	add(hostile{name: "JSON as text/plain", method: "POST", path: "/v1/files", body: `{"bucket":"b","key":"k","size":1}`,
		hdr: []string{"Content-Type", "text/plain"}, want: 415})
	add(hostile{name: "JSON without a content type", method: "POST", path: "/v1/files", body: `{"bucket":"b","key":"k","size":1}`, want: 415})
	add(hostile{name: "JSON as application/jsonx", method: "POST", path: "/v1/files", body: `{"bucket":"b","key":"k","size":1}`,
		hdr: []string{"Content-Type", "application/jsonx"}, want: 415})
	add(hostile{name: "JSON as a form", method: "POST", path: "/v1/files", body: `{"bucket":"b","key":"k","size":1}`,
		hdr: []string{"Content-Type", "application/x-www-form-urlencoded"}, want: 415})
	add(hostile{name: "malformed content type", method: "POST", path: "/v1/files", body: `{"bucket":"b","key":"k","size":1}`,
		hdr: []string{"Content-Type", "application/json; ;;=="}, want: 415})
	add(hostile{name: "128 MiB of JSON", method: "POST", path: "/v1/files", hdr: jsonCT, want: 413, n: bigBody,
		big: func() io.Reader {
			return io.MultiReader(strings.NewReader(`{"bucket":"b","key":"`), repeat("k", bigBody))
		}})
	js("OpenAI JSON just over the 1 MiB cap", "POST", oai+"/vector_stores", `{"name":"`+strings.Repeat("n", maxJSONBody)+`"}`, 413)
	js("OpenAI JSON that is not an object", "POST", oai+"/vector_stores", `"store"`, 400)
	add(hostile{name: "OpenAI JSON as text/plain", method: "POST", path: oai + "/vector_stores", body: `{"name":"x"}`,
		hdr: []string{"Content-Type", "text/plain"}, want: 415})

	// Appends: offsets, ranges, checksums, lengths.
	appendTo("negative offset", "0", 400, "Upload-Offset", "-1")
	appendTo("offset with a plus sign", "0", 400, "Upload-Offset", "+0")
	appendTo("hex offset", "0", 400, "Upload-Offset", "0x0")
	appendTo("offset overflowing int64", "0", 400, "Upload-Offset", "99999999999999999999")
	appendTo("offset ahead of the session", "0", 409, "Upload-Offset", "5")
	appendTo("chunk past the declared size", "0123456789X", 413, "Upload-Offset", "0")
	appendTo("Content-Range total not the size", "0123456789", 400, "Content-Range", "bytes 0-9/11")
	appendTo("Content-Range */total", "0", 400, "Content-Range", "bytes */10")
	appendTo("Content-Range first-last/*", "0", 400, "Content-Range", "bytes 0-0/*")
	appendTo("Content-Range in items", "0", 400, "Content-Range", "items 0-0/10")
	appendTo("Content-Range reversed", "0", 400, "Content-Range", "bytes 9-0/10")
	appendTo("Content-Range and Upload-Offset disagree", "0", 400, "Content-Range", "bytes 0-0/10", "Upload-Offset", "1")
	appendTo("Content-Range longer than the body", "01234", 400, "Content-Range", "bytes 0-9/10")
	appendTo("checksum digest too short", "0", 400, "Upload-Offset", "0", "Upload-Checksum", "sha256 AAAA")
	appendTo("checksum of an unknown algorithm", "0", 400, "Upload-Offset", "0", "Upload-Checksum", "crc64 AAAAAAAAAAA=")
	appendTo("checksum without a digest", "0", 400, "Upload-Offset", "0", "Upload-Checksum", "sha256")
	appendTo("Content-MD5 not base64", "0", 400, "Upload-Offset", "0", "Content-MD5", "!!!")
	// A well-formed digest that does not match is not here: the bytes are
	// streamed into storage and checked on the way, so that refusal writes
	// (and keeps nothing: TestChecksumVerified).
	appendTo("two different digests", "0", 400, "Upload-Offset", "0", "Upload-Checksum", "md5 AAAAAAAAAAAAAAAAAAAAAA==",
		"Content-MD5", "AAAAAAAAAAAAAAAAAAAAAQ==")
	add(hostile{name: "checksum on a chunked body", method: "POST", path: "/v1/files/session:{session}", n: -1, want: 400,
		hdr: []string{"Upload-Offset", "0", "Upload-Checksum", "crc32c AAAAAA=="}, big: func() io.Reader { return strings.NewReader("0") }})
	add(hostile{name: "128 MiB chunk into a 10-byte session", method: "POST", path: "/v1/files/session:{session}", n: bigBody, want: 413,
		hdr: []string{"Upload-Offset", "0"}, big: func() io.Reader { return repeat("0123456789", bigBody) }})
	add(hostile{name: "128 MiB chunk at the wrong offset", method: "POST", path: "/v1/files/session:{session}", n: bigBody, want: 409,
		hdr: []string{"Upload-Offset", "7"}, big: func() io.Reader { return repeat("0123456789", bigBody) }})
	add(hostile{name: "128 MiB chunked body into a 10-byte session", method: "POST", path: "/v1/files/session:{session}", n: -1, want: 413,
		hdr: []string{"Upload-Offset", "0"}, big: func() io.Reader { return repeat("0123456789", bigBody) }})
	add(hostile{name: "append by a key of another tenant", method: "POST", path: "/v1/files/session:{session}", body: "0",
		hdr: []string{"Upload-Offset", "0"}, as: "wa", want: 403})

	// Session ids.
	get("session id not hex", "/v1/files/session:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 404)
	get("session id of 31 digits", "/v1/files/session:0123456789abcdef0123456789abcde", 404)
	get("session id of 33 digits", "/v1/files/session:0123456789abcdef0123456789abcdef0", 404)
	get("unknown session id", "/v1/files/session:0123456789ABCDEF0123456789ABCDEF", 404)
	get("session id NUL", "/v1/files/session:%00", 404)
	get("session id of 10,000 digits", "/v1/files/session:"+strings.Repeat("0", 10000), 404)
	get("session id with a path after it", "/v1/files/session:{session}/x", 400)
	add(hostile{name: "aborting a session id with ../", method: "DELETE", path: "/v1/files/session:..%2Fx", want: 400})
	add(hostile{name: "appending to no session", method: "POST", path: "/v1/files/session:", body: "0", want: 404})
	add(hostile{name: "HEAD of a bad session id", method: "HEAD", path: "/v1/files/session:nope", want: 404})

	// Downloads and ranges (f.txt is "hello").
	get("range reversed", "/v1/files/b/f.txt:content", 400, "Range", "bytes=4-1")
	get("range past the end", "/v1/files/b/f.txt:content", 416, "Range", "bytes=100-")
	get("empty suffix range", "/v1/files/b/f.txt:content", 416, "Range", "bytes=-0")
	get("range not numbers", "/v1/files/b/f.txt:content", 400, "Range", "bytes=a-b")
	get("range overflowing int64", "/v1/files/b/f.txt:content", 400, "Range", "bytes=99999999999999999999-")
	get("content of a missing file", "/v1/files/b/nope.txt:content", 404)
	get("OpenAI content with a reversed range", oai+"/files/{file}/content", 400, "Range", "bytes=3-2")

	// Limits, cursors and filters of listings.
	get("limit 0", "/v1/files/b?limit=0", 400)
	get("limit 1001", "/v1/files/b?limit=1001", 400)
	get("negative limit", "/v1/files/b?limit=-1", 400)
	get("limit overflowing int", "/v1/files/b?limit=99999999999999999999", 400)
	get("limit in exponent form", "/v1/files?limit=1e3", 400)
	get("OpenAI limit 10,001", oai+"/files?limit=10001", 400)
	get("OpenAI order sideways", oai+"/files?order=sideways", 400)
	get("OpenAI unknown purpose", oai+"/files?purpose=root", 400)
	get("vector store limit 101", oai+"/vector_stores?limit=101", 400)
	get("vector store file filter unknown", oai+"/vector_stores/{vs}/files?filter=bogus", 400)
	get("filter where none is supported", oai+"/vector_stores?filter=completed", 400)
	get("batch files limit 0", oai+"/vector_stores/{vs}/file_batches/{batch}/files?limit=0", 400)

	// Locations.
	reg := func(name, location string, want int) {
		js(name, "PUT", "/v1/files/reg", `{"location":`+strconv.Quote(location)+`}`, want)
	}
	reg("empty location", "", 400)
	reg("file:// outside the allowed root", "file:///etc", 403)
	reg("file:// climbing out of the root", "file://{root}/data/../../etc", 403)
	reg("file:// climbing out, encoded", "file://{root}/data/%2e%2e/%2e%2e/etc", 403)
	reg("file:// through a link out of the root", "file://{root}/out", 403)
	reg("file:// naming the link's target", "file://{outside}", 403)
	reg("file:// of a missing directory", "file://{root}/missing", 404)
	reg("file:// of a file", "file://{root}/data/f.txt", 400)
	reg("file:// with NUL", "file://{root}/data%00", 400)
	reg("file:// into the root's staging directory", "file://{root}/data/.ferry-staging", 400)
	reg("file:// on another host", "file://evil.example/etc", 400)
	reg("relative file:", "file:relative", 400)
	reg("s3:// (not configured here)", "s3://datasets", 400)
	reg("s3:// naming an endpoint", "s3://10.0.0.1:9000/x", 400)
	reg("s3:// with credentials", "s3://user:pw@datasets", 400)
	reg("s3:// with a query", "s3://datasets?versionId=1", 400)
	reg("http:// metadata endpoint", "http://169.254.169.254/latest/meta-data", 400)
	reg("location that does not parse", "%zz", 400)
	reg("javascript: location", "javascript:alert(1)", 400)
	js("location as a number", "PUT", "/v1/files/reg", `{"location":1}`, 400)
	add(hostile{name: "registering a file in an unregistered bucket", method: "PUT", path: "/v1/files/b/new.txt", want: 404})
	add(hostile{name: "unregistering an unregistered bucket", method: "DELETE", path: "/v1/files/notreg", want: 404})

	// Multipart forms.
	var fields strings.Builder
	for i := range 5000 {
		fields.WriteString(field("f"+strconv.Itoa(i), "v"))
	}
	add(hostile{name: "form of 5,000 fields", method: "POST", path: oai + "/files", hdr: formCT, body: fields.String() + "--X--\r\n", want: 400})
	add(hostile{name: "form fields over 256 KiB together", method: "POST", path: oai + "/files", hdr: formCT, want: 400,
		body: strings.Repeat(field("pad", strings.Repeat("p", 60<<10)), 5) + "--X--\r\n"})
	add(hostile{name: "form field of 128 MiB", method: "POST", path: oai + "/files", hdr: formCT, n: -1, want: 400,
		big: func() io.Reader {
			return io.MultiReader(strings.NewReader("--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"), repeat("p", bigBody))
		}})
	add(hostile{name: "form without a boundary", method: "POST", path: oai + "/files", hdr: []string{"Content-Type", "multipart/form-data"},
		body: field("purpose", "assistants") + "--X--\r\n", want: 400})
	add(hostile{name: "form with another boundary", method: "POST", path: oai + "/files", hdr: []string{"Content-Type", "multipart/form-data; boundary=Y"},
		body: field("purpose", "assistants") + "--X--\r\n", want: 400})
	add(hostile{name: "JSON where a form is expected", method: "POST", path: oai + "/files", hdr: jsonCT, body: `{"purpose":"assistants"}`, want: 400})
	add(hostile{name: "form without the file", method: "POST", path: oai + "/files", hdr: formCT, body: field("purpose", "assistants") + "--X--\r\n", want: 400})
	add(hostile{name: "form cut off mid-part", method: "POST", path: oai + "/files", hdr: formCT, body: "--X\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassis", want: 400})
	add(hostile{name: "part without the data field", method: "POST", path: oai + "/uploads/{upload}/parts", hdr: formCT, body: field("other", "x") + "--X--\r\n", as: "wa", want: 400})

	// OpenAI uploads and files.
	js("upload without bytes", "POST", oai+"/uploads", `{"filename":"u","purpose":"batch","mime_type":"text/plain"}`, 400)
	js("upload expiring in 1 s", "POST", oai+"/uploads", `{"filename":"u","purpose":"batch","bytes":3,"mime_type":"text/plain","expires_after":{"anchor":"created_at","seconds":1}}`, 400)
	js("upload of negative bytes", "POST", oai+"/uploads", `{"filename":"u","purpose":"batch","bytes":-1,"mime_type":"text/plain"}`, 400)
	js("upload of an exabyte", "POST", oai+"/uploads", `{"filename":"u","purpose":"batch","bytes":1000000000000000000,"mime_type":"text/plain"}`, 400)
	js("upload of an unknown purpose", "POST", oai+"/uploads", `{"filename":"u","purpose":"root","bytes":3,"mime_type":"text/plain"}`, 400)
	add(hostile{name: "completing with a bad md5", method: "POST", path: oai + "/uploads/{upload}/complete", hdr: jsonCT, body: `{"part_ids":["part_nope"],"md5":"zz"}`, as: "wa", want: 400})
	add(hostile{name: "cancelling an unknown upload", method: "POST", path: oai + "/uploads/upload_nope/cancel", want: 404})
	get("unknown file id", oai+"/files/file-nope", 404)
	get("file id NUL", oai+"/files/%00", 404)
	add(hostile{name: "deleting another key's file", method: "DELETE", path: oai + "/files/{file}", as: "wb", want: 404})

	// Vector stores, chunking, attributes, search filters.
	vs := oai + "/vector_stores/{vs}"
	js("static chunking of 0 tokens", "POST", oai+"/vector_stores", `{"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":0,"chunk_overlap_tokens":1}}}`, 400)
	js("overlap over half", "POST", oai+"/vector_stores", `{"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":401}}}`, 400)
	js("unknown chunking", "POST", oai+"/vector_stores", `{"chunking_strategy":{"type":"bogus"}}`, 400)
	js("metadata values not strings", "POST", oai+"/vector_stores", `{"metadata":{"a":1}}`, 400)
	js("metadata as an array", "POST", vs, `{"metadata":["a"]}`, 400)
	search := func(name, body string, want int) { js(name, "POST", vs+"/search", body, want) }
	search("max_num_results 0", `{"query":"notes","max_num_results":0}`, 400)
	search("max_num_results 51", `{"query":"notes","max_num_results":51}`, 400)
	search("query a number", `{"query":123}`, 400)
	search("filter without a value", `{"query":"notes","filters":{"type":"eq","key":"a"}}`, 400)
	search("filter of an unknown type", `{"query":"notes","filters":{"type":"regex","key":"a","value":".*"}}`, 400)
	search("filter value an object", `{"query":"notes","filters":{"type":"eq","key":"a","value":{"b":1}}}`, 400)
	search("filters nested 10,000 deep", `{"query":"notes","filters":`+strings.Repeat(`{"type":"and","filters":[`, 10000)+
		`{"type":"eq","key":"a","value":1}`+strings.Repeat(`]}`, 10000)+`}`, 400)
	search("compound filter without filters", `{"query":"notes","filters":{"type":"and"}}`, 400)
	search("unknown ranker", `{"query":"notes","ranking_options":{"ranker":"nope"}}`, 400)
	search("unknown search mode", `{"query":"notes","search_mode":"psychic"}`, 400)
	js("search of an unknown store", "POST", oai+"/vector_stores/vs_nope/search", `{"query":"notes"}`, 404)
	attrs := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `"k%d":1,`, i)
		}
		return `{"attributes":{` + strings.TrimSuffix(b.String(), ",") + `}}`
	}
	add(hostile{name: "17 attributes", method: "POST", path: vs + "/files/{file}", hdr: jsonCT, body: attrs(17), as: "wa", want: 400})
	add(hostile{name: "attribute key of 65 characters", method: "POST", path: vs + "/files/{file}", hdr: jsonCT, as: "wa", want: 400,
		body: `{"attributes":{"` + strings.Repeat("k", 65) + `":1}}`})
	add(hostile{name: "attribute value of 513 characters", method: "POST", path: vs + "/files/{file}", hdr: jsonCT, as: "wa", want: 400,
		body: `{"attributes":{"k":"` + strings.Repeat("v", 513) + `"}}`})
	add(hostile{name: "attribute value an object", method: "POST", path: vs + "/files/{file}", hdr: jsonCT, as: "wa", want: 400,
		body: `{"attributes":{"k":{"nested":true}}}`})
	add(hostile{name: "attributes a string", method: "POST", path: vs + "/files/{file}", hdr: jsonCT, body: `{"attributes":"x"}`, as: "wa", want: 400})
	add(hostile{name: "batch of file_ids and files", method: "POST", path: vs + "/file_batches", hdr: jsonCT, as: "wa", want: 400,
		body: `{"file_ids":["{file}"],"files":[{"file_id":"{file}"}]}`})
	add(hostile{name: "batch with bad chunking", method: "POST", path: vs + "/file_batches", hdr: jsonCT, as: "wa", want: 400,
		body: `{"file_ids":["{file}"],"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":99,"chunk_overlap_tokens":0}}}`})

	// Keys, hosts, methods, routes.
	get("no Authorization", "/v1/files", 401, "Authorization", "")
	add(hostile{name: "no Authorization on OpenAI", method: "GET", path: oai + "/files", as: "-", want: 401})
	get("Basic auth", "/v1/files", 401, "Authorization", "Basic YWRtaW46YWRtaW4=")
	get("Bearer without a key", "/v1/files", 401, "Authorization", "Bearer ")
	get("unknown key", "/v1/files", 401, "Authorization", "Bearer fry_not-a-key")
	get("key of 100 KiB", "/v1/files", 401, "Authorization", "Bearer "+strings.Repeat("k", 100<<10))
	add(hostile{name: "read key creating a session", method: "POST", path: "/v1/files", hdr: jsonCT, body: `{"bucket":"a1","key":"k","size":1}`, as: "ra", want: 403})
	add(hostile{name: "listing another tenant's bucket", method: "GET", path: "/v1/files/a1", as: "wb", want: 403})
	add(hostile{name: "the OpenAI bucket natively", method: "GET", path: "/v1/files/openai", as: "wall", want: 403})
	add(hostile{name: "metrics without admin", method: "GET", path: "/metrics", as: "wa", want: 403})
	add(hostile{name: "registering without admin", method: "PUT", path: "/v1/files/reg", hdr: jsonCT, body: `{"location":"s3://datasets"}`, as: "wall", want: 403})
	add(hostile{name: "another Host", method: "GET", path: "/v1/files", host: "evil.example", want: 421})
	add(hostile{name: "a Host that extends an allowed one", method: "GET", path: "/v1/files", host: "127.0.0.1.evil.example", want: 421})
	add(hostile{name: "a Host with a userinfo", method: "GET", path: "/v1/files", host: "127.0.0.1@evil.example", want: 421})
	add(hostile{name: "PATCH of the file list", method: "PATCH", path: "/v1/files", want: 404})
	add(hostile{name: "an unknown method", method: "PROPFIND", path: "/v1/files/b", want: 404})
	get("no such route", "/v1/nothing", 404)
	get("no such OpenAI route", oai+"/assistants", 404)
	get("a path of 64 KiB", "/v1/files/b/"+strings.Repeat("k/", 32<<10)+"k", 400)

	// tus.
	tusCreate := func(name, length, metadata string, want int) {
		add(hostile{name: "tus: " + name, method: "POST", path: "/v1/tus/", want: want,
			hdr: []string{"Tus-Resumable", "1.0.0", "Upload-Length", length, "Upload-Metadata", metadata}})
	}
	tusCreate("negative length", "-1", "bucket YQ==", 400)
	tusCreate("length overflowing int64", "99999999999999999999", "bucket YQ==", 400)
	tusCreate("length over the maximum", "1099511627777", "bucket YQ==", 413)
	tusCreate("bucket not base64", "10", "bucket !!!", 400)
	tusCreate("an empty metadata pair", "10", "bucket YQ==,,key YQ==", 400)
	tusCreate("bucket ..", "10", "bucket Li4=", 400)
	tusCreate("key climbing out", "10", "bucket YQ==,key Li4vLi4vZXRj", 400)
	add(hostile{name: "tus: no Tus-Resumable", method: "POST", path: "/v1/tus/", hdr: []string{"Upload-Length", "10"}, want: 412})
	add(hostile{name: "tus: PATCH of an unknown upload", method: "PATCH", path: "/v1/tus/0123456789abcdef0123456789abcdef", body: "0",
		hdr: []string{"Tus-Resumable", "1.0.0", "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"}, want: 404})

	// What no client sends: the server refuses it before any handler.
	raw := func(name, req string, want int) { add(hostile{name: name, raw: req, want: want}) }
	raw("NUL in the request target", "GET /v1/files/b/a\x00b HTTP/1.1\r\nHost: {host}\r\n\r\n", 400)
	raw("CR inside a header value", "GET /v1/files HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: a\rSet-Cookie: x\r\n\r\n", 400)
	raw("Host with a space", "GET /v1/files HTTP/1.1\r\nHost: a b\r\n\r\n", 400)
	raw("two Host headers", "GET /v1/files HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n", 400)
	raw("no Host on HTTP/1.1", "GET /v1/files HTTP/1.1\r\n\r\n", 400)
	raw("negative Content-Length", "POST /v1/files HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n\r\n", 400)
	raw("two Content-Lengths", "POST /v1/files HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400)
	raw("a header of 2 MiB", "GET /v1/files HTTP/1.1\r\nHost: {host}\r\nX-Pad: "+strings.Repeat("p", 2<<20)+"\r\n\r\n", 431)
	raw("a request line of 2 MiB", "GET /v1/files/b/"+strings.Repeat("k", 2<<20)+" HTTP/1.1\r\nHost: {host}\r\n\r\n", 431)
	raw("a malformed request line", "GET\r\nHost: {host}\r\n\r\n", 400)
	raw("a header without a colon", "GET /v1/files HTTP/1.1\r\nHost: {host}\r\nBroken\r\n\r\n", 400)
	raw("an invalid header name", "GET /v1/files HTTP/1.1\r\nHost: {host}\r\nX Y: z\r\n\r\n", 400)

	// Dot segments and empty ones: the router does not clean paths (a 301
	// to the clean one would be followed as a GET, or with the method by
	// curl -L), so they reach the handlers, whose bucket and key checks
	// refuse them.
	for _, p := range []string{"/v1/files/b/../../../etc/passwd", "/v1/files/b/%2e%2e/%2e%2e/etc", "/v1/files/b/a/..%2F..%2F..%2Fx",
		"/v1/files/b/a%2F%2Fb", "/v1/files/b/./f.txt"} {
		add(hostile{name: "dot segments " + p, method: "DELETE", path: p, want: 400})
	}
	add(hostile{name: "an empty first segment", method: "DELETE", path: "//v1/files", want: 404})
	return cs
}

// openDir serves a registered directory, as ferryd does.
func openDir(dir string) (bucket.Composer, error) {
	b, err := fsblob.NewDir(dir)
	if err != nil {
		return bucket.Composer{}, err
	}
	return bucket.Compose(b), nil
}
