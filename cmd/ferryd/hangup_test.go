package main

// Client hang-ups in and after the final chunk of an upload that replaces
// an existing file (issue 12), over real HTTP, on both backends: the
// client cuts the body after k bytes, closes (or resets) right after the
// whole body, or goes away at each moment after the body, which a blob or
// store call stalled until the server has seen the client go makes exact.
// After each: every read is the old version or the new one, byte-exact,
// with a Content-Length equal to the bytes sent and an ETag that matches
// the file's record and storage; resuming completes to the new version;
// and nothing is left behind.
//
// The server runs in-process (httpapi over the real stores, wrapped in
// internal/faults) so that the stalls can be placed.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/httpapi"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// hangupOld is the file being replaced: 10 bytes, as in the issue.
var hangupOld = []byte("old v1 \x00\xff\n")

// hangupShape is an upload whose last chunk the client hangs up on.
type hangupShape struct {
	name   string
	chunks []int
	// parts: the chunks are parallel parts of chunks[0] bytes, sent as
	// parts 2, 3, …, then part 1 last (the one hung up on), which is why
	// chunks lists part 1's size at the end.
	parts bool
}

func (s hangupShape) size() int {
	n := 0
	for _, c := range s.chunks {
		n += c
	}
	return n
}

// The issue's 1 MiB session (one Put on S3, a staging file on the
// filesystem), a 6 MiB one whose last chunk is a part and the
// CompleteMultipart on S3, and 11 MiB of parallel parts whose last part
// completes the file.
var hangupShapes = []hangupShape{
	{"1MiB", []int{512 << 10, 512 << 10}, false},
	{"6MiB", []int{5 << 20, 1 << 20}, false},
	{"parts", []int{5 << 20, 1 << 20, 5 << 20}, true},
}

// hangupEnv is one case's server over its own stores.
type hangupEnv struct {
	t       *testing.T
	url     string
	addr    string
	in      *faults.Injector
	meta    metastore.Store // raw
	blobs   bucket.Composer // raw
	files   *registry.Registry
	staging string // the filesystem backend's staging directory; "" on S3
	track   chan *tracked
}

// tracked follows one append request the test sends with X-Hangup-Track.
type tracked struct {
	gone chan struct{} // closed when the request's context ends while the handler runs
	done chan struct{} // closed when the handler has returned
}

type hangupBackend func(t *testing.T, name string) (metastore.Store, bucket.Backend, string)

func hangupBackends(t *testing.T) map[string]hangupBackend {
	return map[string]hangupBackend{
		"embedded": func(t *testing.T, _ string) (metastore.Store, bucket.Backend, string) {
			dir := testsvc.FastDir(t)
			meta, blobs := testsvc.EmbeddedIn(t, dir)
			return meta, blobs, filepath.Join(dir, "blobs", "staging")
		},
		"redis+s3": hangupS3(t),
	}
}

// hangupS3 shares one Redis client and one S3 bucket among the cases of
// a test, each under its own prefix.
func hangupS3(t *testing.T) hangupBackend {
	var (
		once   sync.Once
		store  func(string) metastore.Store
		client s3blob.API
		bkt    string
	)
	return func(_ *testing.T, name string) (metastore.Store, bucket.Backend, string) {
		once.Do(func() {
			rc, prefix := testsvc.Redis(t)
			store = func(p string) metastore.Store { return redisstore.New(rc, prefix+p+":") }
			client, bkt = testsvc.S3(t)
		})
		return store(name), s3blob.New(client, bkt, name+"/"), ""
	}
}

func startHangup(t *testing.T, be hangupBackend, name string) *hangupEnv {
	meta, raw, staging := be(t, name)
	blobs := bucket.Compose(raw)
	in := faults.New()
	store, fblobs := faults.Store(meta, in), faults.Backend(blobs, in)
	places := registry.NewResolver(store, fblobs, registry.Locations{})
	files := registry.New(store, places)
	// The server's errors (a 500 names only its request id) are shown
	// when the case fails.
	errs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(errs, &slog.HandlerOptions{Level: slog.LevelError}))
	t.Cleanup(func() {
		if t.Failed() && errs.String() != "" {
			t.Logf("server errors:\n%s", errs)
		}
	})
	// A short lease, so that a lock whose holder hung up frees soon, but
	// one a loaded machine still refreshes in time (2 s ran out under -race
	// with the rest of cmd/ferryd running).
	sessions, err := session.New(store, places, files, session.Config{LockTTL: 4 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	env := &hangupEnv{t: t, in: in, meta: meta, blobs: blobs, files: registry.New(meta, registry.NewResolver(meta, blobs, registry.Locations{})), staging: staging,
		track: make(chan *tracked, 4)}
	h := httpapi.New(httpapi.Deps{Store: store, Blobs: fblobs, Sessions: sessions, Files: files, Logger: log})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hangup-Track") == "" {
			h.ServeHTTP(w, r)
			return
		}
		tr := &tracked{gone: make(chan struct{}), done: make(chan struct{})}
		env.track <- tr
		go func() {
			select {
			case <-r.Context().Done():
				close(tr.gone)
			case <-tr.done:
			}
		}()
		defer close(tr.done)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	env.url, env.addr = srv.URL, strings.TrimPrefix(srv.URL, "http://")
	return env
}

// hangupResp is an answer, and the error that cut it short if one did.
type hangupResp struct {
	testhttp.Answer
	err error
}

func (e *hangupEnv) do(method, path string, body []byte, hdr ...string) hangupResp {
	e.t.Helper()
	a, err := testhttp.Try(method, e.url+path, bytes.NewReader(body), hdr...)
	return hangupResp{a, err}
}

// create starts a session for key.
func (e *hangupEnv) create(key string, size int) string {
	e.t.Helper()
	r := e.do("POST", "/v1/files", []byte(fmt.Sprintf(`{"bucket":"b","key":%q,"size":%d}`, key, size)))
	if r.Code != 201 {
		e.t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	return r.JSON(e.t)["id"].(string)
}

func (e *hangupEnv) send(id string, off int, chunk []byte) hangupResp {
	return e.do("POST", "/v1/files/session:"+id, chunk, "Upload-Offset", strconv.Itoa(off))
}

// upload sends whole chunks and checks the last answer is the file.
func (e *hangupEnv) upload(key string, data []byte, chunks []int) {
	e.t.Helper()
	id := e.create(key, len(data))
	off := 0
	for _, n := range chunks {
		if r := e.send(id, off, data[off:off+n]); r.Code != 200 {
			e.t.Fatalf("chunk at %d: %d %s", off, r.Code, r.Body)
		}
		off += n
	}
	if r := e.do("DELETE", "/v1/files/session:"+id, nil); r.Code != 204 {
		e.t.Fatalf("forget the old version's session: %d %s", r.Code, r.Body)
	}
}

// hangupPoint is one way of going away during the last chunk.
type hangupPoint struct {
	name  string
	sent  int           // bytes of the last chunk the client sends; -1: all
	wait  time.Duration // pause between the last byte sent and the close
	reset bool          // close with RST instead of FIN
	stall *faults.Call  // go away while this call of the request is stalled after it ran
	n     int           // the stalled call's number among the request's calls
}

// state is what a read returned.
type readState int

const (
	readOld readState = iota
	readNew
	readBad
)

// hangupCase is one hang-up and its checks.
type hangupCase struct {
	*hangupEnv
	shape    hangupShape
	key      string
	data     []byte
	newSHA   [32]byte
	sawNew   bool
	problems []string
}

func (c *hangupCase) problem(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	c.problems = append(c.problems, msg)
	c.t.Error(msg)
}

// read downloads the file and checks it against its record and storage.
func (c *hangupCase) read(when string) readState {
	c.t.Helper()
	ctx := context.Background()
	r := c.do("GET", "/v1/files/b/"+c.key+":content", nil)
	rec, rerr := c.files.Get(ctx, "b", c.key)
	head, herr := c.blobs.Backend.Head(ctx, registry.ObjectKey("b", c.key))
	if r.err != nil && r.Code == 0 {
		c.problem("%s: GET: %v", when, r.err)
		return readBad
	}
	cl, _ := strconv.Atoi(r.Header.Get("Content-Length"))
	isOld, isNew := bytes.Equal(r.Body, hangupOld), sha256.Sum256(r.Body) == c.newSHA
	etag := func(s string) string { return `"` + strings.Trim(s, `"`) + `"` }
	switch {
	case r.Code != 200:
		c.problem("%s: GET answered %d %s", when, r.Code, r.Body)
	case r.err != nil || cl != len(r.Body):
		c.problem("%s: Content-Length %d, but %d bytes came (%v); the record says %d bytes, storage holds %d (old=%v new=%v)",
			when, cl, len(r.Body), r.err, rec.Bytes, head.Size, isOld, isNew)
	case !isOld && !isNew:
		c.problem("%s: the %d bytes read are neither the old version nor the new one", when, len(r.Body))
	case rerr != nil || herr != nil:
		c.problem("%s: record %v, storage %v", when, rerr, herr)
	case r.Header.Get("ETag") != etag(rec.ETag) || etag(head.ETag) != etag(rec.ETag) || head.Size != rec.Bytes || int64(cl) != rec.Bytes:
		c.problem("%s: read %d bytes with ETag %s; the record says %d bytes, ETag %s; storage holds %d bytes, ETag %s",
			when, cl, r.Header.Get("ETag"), rec.Bytes, rec.ETag, head.Size, head.ETag)
	case isOld && c.sawNew:
		c.problem("%s: the file reads as its old version after the new one was read", when)
	case isNew:
		c.sawNew = true
		return readNew
	default:
		return readOld
	}
	return readBad
}

// hangUp sends the last chunk over a raw connection and goes away as p says.
func (c *hangupCase) hangUp(id string, off int, p hangupPoint) {
	c.t.Helper()
	chunk := c.data[off:]
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	var trig *faults.Trigger
	if p.stall != nil {
		// Armed before the request starts: its calls are numbered from here.
		trig = c.in.Arm(faults.Fault{N: p.n, Match: hangupCalls, Mode: faults.StallAfter})
		defer c.in.Disarm()
	}
	if c.shape.parts { // part 1
		chunk = c.data[:c.shape.chunks[0]]
		fmt.Fprintf(conn, "PUT /v1/files/session:%s/parts/1 HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Hangup-Track: 1\r\n\r\n",
			id, c.addr, len(chunk))
	} else {
		fmt.Fprintf(conn, "POST /v1/files/session:%s HTTP/1.1\r\nHost: %s\r\nUpload-Offset: %d\r\nContent-Length: %d\r\nX-Hangup-Track: 1\r\n\r\n",
			id, c.addr, off, len(chunk))
	}
	var tr *tracked
	select {
	case tr = <-c.track:
	case <-time.After(10 * time.Second):
		c.t.Fatal("the server never started the request")
	}
	sent := len(chunk)
	if p.sent >= 0 {
		sent = p.sent
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := conn.Write(chunk[:sent])
		writeErr <- err
	}()
	if trig != nil {
		select {
		case <-trig.Fired():
		case <-tr.done:
			c.problem("the request ended before reaching %s", p.stall)
			return
		case <-time.After(15 * time.Second):
			c.problem("the request never reached %s", p.stall)
			return
		}
	}
	select {
	case err := <-writeErr:
		if err != nil {
			c.t.Fatalf("sending the last chunk: %v", err)
		}
	case <-time.After(time.Second):
		// Stalled before it read the body: the client gives up sending.
	}
	time.Sleep(p.wait)
	if p.reset {
		_ = conn.(*net.TCPConn).SetLinger(0)
	}
	conn.Close()
	if trig != nil {
		// Let the server see the client go, then let the stalled work on.
		// Before the body is read the server cannot see it go (Go's server
		// watches the connection only once the body is consumed).
		select {
		case <-tr.gone:
		case <-tr.done:
		case <-time.After(500 * time.Millisecond):
		}
		trig.Release()
	}
	select {
	case <-tr.done:
	case <-time.After(30 * time.Second):
		c.problem("the request still runs 30 s after its client went away")
	}
}

// resume asks for the offset and sends what is missing until the upload
// completes.
func (c *hangupCase) resume(id string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.do("GET", "/v1/files/session:"+id, nil)
		if r.Code != 200 {
			c.problem("session after the hang-up: %d %s", r.Code, r.Body)
			return
		}
		info := r.JSON(c.t)
		if info["status"] == "completed" {
			return
		}
		off := int(info["offset"].(float64))
		if c.shape.parts {
			// Part 1 again (acknowledged again if it landed), or an empty
			// append once every part is in: either completes the file.
			if off == 0 {
				r = c.do("PUT", "/v1/files/session:"+id+"/parts/1", c.data[:c.shape.chunks[0]])
			} else {
				r = c.send(id, 0, nil)
			}
		} else {
			r = c.send(id, off, c.data[off:])
		}
		if r.Code == 200 {
			if m := r.JSON(c.t); m["bytes"] != float64(len(c.data)) {
				c.problem("resuming at %d answered %s, not the file", off, r.Body)
			}
			return
		}
		if (r.Code != 409 && r.Code != 503) || time.Now().After(deadline) { // busy, or a lease that ran out: a client retries both
			c.problem("resuming at %d: %d %s", off, r.Code, r.Body)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftovers checks that the finished session, once forgotten, leaves no
// multipart upload, staging file or held-back segment.
func (c *hangupCase) leftovers(id string) {
	c.t.Helper()
	ctx := context.Background()
	r := c.do("DELETE", "/v1/files/session:"+id, nil)
	for try := 0; r.Code == 503 && try < 5; try++ { // a lease that ran out on a loaded machine: a client retries
		time.Sleep(time.Second)
		r = c.do("DELETE", "/v1/files/session:"+id, nil)
	}
	if r.Code != 204 {
		c.problem("forget the session: %d %s", r.Code, r.Body)
	}
	if mp := c.blobs.Multipart; mp != nil {
		if ups, err := mp.ListMultipart(ctx, ""); err != nil || len(ups) != 0 {
			c.problem("multipart uploads left: %v %v", ups, err)
		}
	}
	if c.staging != "" {
		_ = filepath.WalkDir(c.staging, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				c.problem("staging file left: %s", p)
			}
			return nil
		})
	}
	for _, call := range c.in.Calls(faults.Methods("Put")) {
		if call.Kind == faults.KindStore && strings.HasPrefix(call.Key, "session/") {
			if _, err := c.meta.Get(ctx, call.Key); !errors.Is(err, metastore.ErrNotFound) {
				c.problem("record %s left (%v)", call.Key, err)
			}
		}
	}
}

// prepare publishes the old version, then sends every chunk of the new one
// but the last; it returns the session and the last chunk's offset.
func (c *hangupCase) prepare(shape hangupShape) (string, int) {
	c.upload(c.key, hangupOld, []int{len(hangupOld)})
	if c.read("before the upload") != readOld {
		c.t.FailNow()
	}
	if shape.parts {
		return c.prepareParts(shape), 0
	}
	id := c.create(c.key, len(c.data))
	off := 0
	for _, n := range shape.chunks[:len(shape.chunks)-1] {
		if r := c.send(id, off, c.data[off:off+n]); r.Code != 200 {
			c.t.Fatalf("chunk at %d: %d %s", off, r.Code, r.Body)
		}
		off += n
	}
	if c.read("before the last chunk") != readOld {
		c.t.FailNow()
	}
	return id, off
}

// prepareParts starts a session of parallel parts and sends every part but
// part 1.
func (c *hangupCase) prepareParts(shape hangupShape) string {
	ps := shape.chunks[0]
	r := c.do("POST", "/v1/files", []byte(fmt.Sprintf(`{"bucket":"b","key":%q,"size":%d,"part_size":%d}`, c.key, len(c.data), ps)))
	if r.Code/100 != 2 {
		c.t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	id := r.JSON(c.t)["id"].(string)
	for n := 2; (n-1)*ps < len(c.data); n++ {
		if r := c.do("PUT", fmt.Sprintf("/v1/files/session:%s/parts/%d", id, n), c.data[(n-1)*ps:min(n*ps, len(c.data))]); r.Code != 200 {
			c.t.Fatalf("part %d: %d %s", n, r.Code, r.Body)
		}
	}
	if c.read("before the last part") != readOld {
		c.t.FailNow()
	}
	return id
}

// runHangup is one case: hang up at p, read, resume, read, check leftovers.
func runHangup(t *testing.T, be hangupBackend, shape hangupShape, p hangupPoint, data []byte) []string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(shape.name + "-" + p.name)
	c := &hangupCase{hangupEnv: startHangup(t, be, name), shape: shape, key: "h/" + name, data: data, newSHA: sha256.Sum256(data)}
	id, off := c.prepare(shape)
	c.hangUp(id, off, p)
	for i := range 3 {
		c.read(fmt.Sprintf("read %d after the hang-up", i+1))
	}
	c.resume(id)
	if c.read("after resuming") != readNew {
		c.problem("after resuming the file is not the new version")
	}
	c.leftovers(id)
	return c.problems
}

var (
	hangupDataMu sync.Mutex
	hangupDataBy = map[int][]byte{}
)

func hangupData(n int) []byte {
	hangupDataMu.Lock()
	defer hangupDataMu.Unlock()
	if b, ok := hangupDataBy[n]; ok {
		return b
	}
	b := make([]byte, n)
	_, _ = rand.Read(b)
	hangupDataBy[n] = b
	return b
}

// hangupMoments records the calls of a clean last chunk: each is a moment
// to go away after, before the body is read (the client sent it all but
// the server had not read it yet) or after (the server has it). The short
// matrix keeps the first and last of a run of like calls (the 16 deletes
// of held-back segments). It returns the moments and how many come after
// the body.
func hangupMoments(t *testing.T, be hangupBackend, shape hangupShape, data []byte) ([]hangupPoint, int) {
	c := &hangupCase{hangupEnv: startHangup(t, be, shape.name+"-clean"), shape: shape, key: "h/clean", data: data, newSHA: sha256.Sum256(data)}
	id, off := c.prepare(shape)
	c.in.Reset()
	var last hangupResp
	if shape.parts {
		last = c.do("PUT", "/v1/files/session:"+id+"/parts/1", data[:shape.chunks[0]])
	} else {
		last = c.send(id, off, data[off:])
	}
	if last.Code != 200 {
		t.Fatalf("clean last chunk: %d %s", last.Code, last.Body)
	}
	calls := c.in.Calls(hangupCalls)
	if c.read("after a clean upload") != readNew {
		t.Fatal("a clean upload does not read back")
	}
	c.leftovers(id)
	first := -1
	for i, call := range calls {
		if call.Kind == faults.KindBlob && (call.Method == "Put" || call.Method == "UploadPart" || call.Method == "StageWrite" || call.Method == "StageWriteAt") {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("no call stores the last chunk's body: %v", calls)
	}
	like := func(a, b faults.Call) bool {
		return a.Kind == b.Kind && a.Method == b.Method && strings.TrimRight(a.Key, "0123456789") == strings.TrimRight(b.Key, "0123456789")
	}
	var points []hangupPoint
	after := 0
	for i := range calls {
		if os.Getenv("FERRY_FAULTS") != "long" && i > 0 && i+1 < len(calls) && like(calls[i-1], calls[i]) && like(calls[i], calls[i+1]) {
			continue
		}
		call := calls[i]
		points = append(points, hangupPoint{name: fmt.Sprintf("after-%02d-%s.%s", i+1, call.Kind, call.Method), sent: -1, stall: &call, n: i + 1})
		if i >= first {
			after++
		}
	}
	return points, after
}

// shortParts thins the parts shape's points for the short run: a part's
// body is cut and read as an append's is (the other shapes cover those
// points), so it keeps the cut at half, the hang-ups after the whole body,
// and the calls after the body was read (the first before of the stall
// points come before it).
func shortParts(points []hangupPoint, before int) []hangupPoint {
	var out []hangupPoint
	moments := 0
	for _, p := range points {
		switch {
		case p.stall != nil:
			if moments++; moments > before {
				out = append(out, p)
			}
		case p.name == "cut-at-half" || p.name == "whole-body-then-close" || p.name == "whole-body-then-reset":
			out = append(out, p)
		}
	}
	return out
}

// hangupCalls are the calls a hang-up point is numbered among: not the
// lease's refreshes nor the held-bytes ledger's reads (once a second),
// whose counts depend on timing.
var hangupCalls = faults.All(faults.Not(faults.Background),
	faults.Not(faults.All(faults.Methods("IndexList"), faults.KeyPrefix("session/held"))))

// TestHangupInAndAfterLastChunk: at least 20 points per backend and shape.
func TestHangupInAndAfterLastChunk(t *testing.T) {
	for name, be := range hangupBackends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			var (
				mu     sync.Mutex
				cases  int
				failed = map[string][]string{}
			)
			for _, shape := range hangupShapes {
				data := hangupData(shape.size())
				last := shape.chunks[len(shape.chunks)-1]
				points := []hangupPoint{
					{name: "cut-at-0", sent: 0},
					{name: "cut-at-1", sent: 1},
					{name: "cut-at-64KiB", sent: 64 << 10},
					{name: "cut-at-half", sent: last / 2},
					{name: "cut-1-short", sent: last - 1},
					{name: "whole-body-then-close", sent: -1},
					{name: "whole-body-then-reset", sent: -1, reset: true},
					{name: "whole-body-1ms-then-close", sent: -1, wait: time.Millisecond},
					{name: "whole-body-5ms-then-close", sent: -1, wait: 5 * time.Millisecond},
					{name: "whole-body-20ms-then-close", sent: -1, wait: 20 * time.Millisecond},
				}
				var (
					moments []hangupPoint
					after   int
				)
				if !t.Run(shape.name+"/clean", func(t *testing.T) { moments, after = hangupMoments(t, be, shape, data) }) {
					continue
				}
				points = append(points, moments...)
				t.Logf("%s: %d hang-up points: %d in the body, %d at a call before the body was read, %d after it",
					shape.name, len(points), len(points)-len(moments), len(moments)-after, after)
				if shape.parts && os.Getenv("FERRY_FAULTS") != "long" {
					points = shortParts(points, len(moments)-after)
					t.Logf("%s: the short run takes %d of them", shape.name, len(points))
				}
				sem := make(chan struct{}, 4)
				var wg sync.WaitGroup
				for _, p := range points {
					sem <- struct{}{}
					wg.Add(1)
					go func() {
						defer func() { <-sem; wg.Done() }()
						t.Run(shape.name+"/"+p.name, func(t *testing.T) {
							problems := runHangup(t, be, shape, p, data)
							mu.Lock()
							defer mu.Unlock()
							cases++
							if len(problems) > 0 {
								failed[shape.name+"/"+p.name] = problems
							}
						})
					}()
				}
				wg.Wait()
			}
			t.Logf("hang-ups: %d cases, %d failed, in %v", cases, len(failed), time.Since(start).Round(time.Millisecond))
			for k, v := range failed {
				t.Logf("  %s: %s", k, v[0])
			}
		})
	}
}

// TestHangupIssue12Reproduction is the issue's first report as it was
// reproduced: replace a 10-byte file with a 1 MiB session; the client
// sends the whole last chunk and closes before the answer, 20 times.
func TestHangupIssue12Reproduction(t *testing.T) {
	shape := hangupShapes[0]
	for name, be := range hangupBackends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := hangupData(shape.size())
			broke := 0
			for i := range 20 {
				t.Run(strconv.Itoa(i), func(t *testing.T) {
					if len(runHangup(t, be, shape, hangupPoint{name: fmt.Sprintf("repro-%02d", i), sent: -1}, data)) > 0 {
						broke++
					}
				})
			}
			if broke > 0 {
				t.Errorf("the file broke %d times out of 20", broke)
			}
		})
	}
}
