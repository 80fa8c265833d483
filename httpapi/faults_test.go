package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/metrics"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/vectorstore"
)

// The tests in this file run the whole handler over real stores: bbolt and
// the filesystem, the shared test Redis and versitygw, or a redis-server or
// versitygw of their own that they stop and start again.

const mib = 1 << 20

// serveAPI serves the native and OpenAI routes over store and blobs,
// wrapped in the metrics decorators as ferryd wraps them (their errors
// must still be recognised through the wrapping).
func serveAPI(t *testing.T, store metastore.Store, blobs bucket.Backend, idle time.Duration) *httptest.Server {
	t.Helper()
	d := apiDeps(t, store, blobs)
	d.ReadIdleTimeout = idle
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	return srv
}

// apiDeps builds every service over store and blobs, with metrics.
func apiDeps(t testing.TB, store metastore.Store, blobs bucket.Backend) Deps {
	return apiDepsOver(t, store, bucket.Compose(blobs), registry.Locations{})
}

// apiDepsOver is apiDeps over a composed backend (a decorated one, the
// faults package's, keeps its capabilities only when passed this way) and
// with the locations that may be registered.
func apiDepsOver(t testing.TB, store metastore.Store, blobs bucket.Composer, locs registry.Locations) Deps {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	store = metrics.Store(store, reg)
	comp := metrics.Backend(blobs, "test", reg)
	places := registry.NewResolver(store, comp, locs)
	files := registry.New(store, places)
	sessions, err := session.New(store, places, files, session.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	oai := openai.New(sessions, files, store, openai.Config{}, log)
	vs := vectorstore.New(oai, store, vectorstore.Config{}, log)
	files.Subscribe(vs.OnFileEvent)
	links, err := auth.NewLinks("httpapi-tests-link-secret-0123456789abcdef", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Store: store, Blobs: comp, Sessions: sessions, Files: files, OpenAI: oai, VectorStores: vs, Logger: log,
		Metrics: reg, OpenAIBuckets: []string{oai.Bucket(), "openai-uploads"}, Links: links}
}

// eachStore runs fn on the shared real services, in both storage modes.
func eachStore(t *testing.T, fn func(t *testing.T, store metastore.Store, blobs bucket.Backend)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) { fn(t, s.Meta, s.Blobs) })
}

func newSession(t *testing.T, base, bkt, key string, size int) (testhttp.Answer, string) {
	t.Helper()
	a := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(fmt.Sprintf(`{"bucket":%q,"key":%q,"size":%d}`, bkt, key, size)))
	if a.Code != 201 {
		return a, ""
	}
	return a, a.JSON(t)["id"].(string)
}

func appendChunk(t *testing.T, base, id string, offset int, chunk []byte, hdr ...string) testhttp.Answer {
	t.Helper()
	return testhttp.Do(t, "POST", base+"/v1/files/session:"+id, bytes.NewReader(chunk),
		append([]string{"Upload-Offset", strconv.Itoa(offset), "Content-Type", "application/octet-stream"}, hdr...)...)
}

func sessionOffset(t *testing.T, base, id string) int {
	t.Helper()
	a := testhttp.Do(t, "GET", base+"/v1/files/session:"+id, nil)
	if a.Code != 200 {
		t.Fatalf("session info: %d %s", a.Code, a.Body)
	}
	return int(a.JSON(t)["offset"].(float64))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustDownload(t *testing.T, base, bkt, key string, want []byte) {
	t.Helper()
	a := testhttp.Do(t, "GET", base+"/v1/files/"+bkt+"/"+key+":content", nil)
	if a.Code != 200 || !bytes.Equal(a.Body, want) {
		t.Fatalf("download of %s/%s: %d, %d bytes, want %d bytes byte-exact", bkt, key, a.Code, len(a.Body), len(want))
	}
}

// A client that sends half a chunk and then stalls with its connection
// open loses the request after the idle timeout: the session is free again
// at once, the resume from another connection completes byte-exact, and
// the stalled connection is told 408.
func TestStalledBodyReleasesSession(t *testing.T) {
	const idle = time.Second
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		srv := serveAPI(t, store, blobs, idle)
		data := randomBytes(2 * mib)
		_, id := newSession(t, srv.URL, "stall", "file", len(data))

		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/files/session:%s HTTP/1.1\r\nHost: x\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", id, len(data))
		if _, err := conn.Write(data[:len(data)/2]); err != nil {
			t.Fatal(err)
		}
		stalled := time.Now()
		answered := make(chan string, 1)
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(idle + 10*time.Second))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			answered <- line
		}()

		time.Sleep(idle / 5)
		if a := appendChunk(t, srv.URL, id, 0, nil); a.Code != 409 || a.JSON(t)["code"] != "SESSION_BUSY" {
			t.Fatalf("while the stalled request holds the session, a probe got %d %s; want 409 SESSION_BUSY", a.Code, a.Body)
		}
		for {
			a := appendChunk(t, srv.URL, id, 0, nil)
			if a.Code == 200 {
				break
			}
			if a.Code != 409 {
				t.Fatalf("probe: %d %s", a.Code, a.Body)
			}
			if time.Since(stalled) > idle+8*time.Second { // slack for a loaded machine; the point is that it ends
				t.Fatalf("the session is still busy %s after the body stalled (idle timeout %s)", time.Since(stalled), idle)
			}
			time.Sleep(20 * time.Millisecond)
		}
		released := time.Since(stalled)
		if released < idle*8/10 {
			t.Fatalf("released after %s, before the idle timeout %s: was the body ever held?", released, idle)
		}
		t.Logf("session released %s after the body stalled", released)
		if line := <-answered; !strings.HasPrefix(line, "HTTP/1.1 408 ") {
			t.Errorf("the stalled connection was answered %q, want 408", line)
		}

		if off := sessionOffset(t, srv.URL, id); off != 0 {
			t.Fatalf("offset after the stalled chunk = %d, want 0: nothing of it may be kept", off)
		}
		if a := appendChunk(t, srv.URL, id, 0, data); a.Code != 200 || a.JSON(t)["bytes"] != float64(len(data)) {
			t.Fatalf("resume: %d %s", a.Code, a.Body)
		}
		mustDownload(t, srv.URL, "stall", "file", data)
	})
}

// A body that arrives slowly but steadily is not cut off: the deadline is
// per read, not per request. Each pause is an eighth of the timeout, so a
// sender held up by a busy machine still keeps well within it.
func TestSlowBodyIsNotCut(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	const idle = time.Second
	srv := serveAPI(t, store, blobs, idle)
	data := randomBytes(64 << 10)
	_, id := newSession(t, srv.URL, "slow", "file", len(data))
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(data); off += 4 << 10 {
			time.Sleep(idle / 8) // 16 pauses: the whole body takes 2 idle timeouts
			if _, err := pw.Write(data[off : off+4<<10]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/files/session:"+id, pr)
	req.ContentLength = int64(len(data))
	req.Header.Set("Upload-Offset", "0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("slow but steady body: %d %s", resp.StatusCode, body)
	}
	mustDownload(t, srv.URL, "slow", "file", data)
}

// After the body is read the handler may work on for longer than the idle
// timeout (completing a large upload); that must not cancel the request.
func TestIdleDeadlineClearedAfterBody(t *testing.T) {
	const idle = 200 * time.Millisecond
	var ctxErr error
	h := boundIdleReads(idle, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("read body: %v", err)
		}
		time.Sleep(3 * idle)
		ctxErr = r.Context().Err()
	}))
	srv := httptest.NewServer(withInfo(h))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/octet-stream", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ctxErr != nil {
		t.Fatalf("the request context ended while the handler worked after reading the body: %v", ctxErr)
	}
}

// withInfo installs the reqInfo that accessLog normally provides.
func withInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = withReqInfo(r)
		next.ServeHTTP(w, r)
	})
}

// --- Checksums ---

// failReader fails the test if the handler reads the body.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("the body was read though the request had to be refused first")
	return 0, io.ErrUnexpectedEOF
}

func TestChecksumHeadersRefusedBeforeReading(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	srv := serveAPI(t, store, blobs, time.Second)
	h := srv.Config.Handler
	_, id := newSession(t, srv.URL, "sums", "file", 10)
	cases := []struct {
		name, header, value, code string
		length                    int64
	}{
		{"unknown algorithm", "Upload-Checksum", "crc64 AAAAAAAAAAA=", "INVALID_CHECKSUM", 10},
		{"no digest", "Upload-Checksum", "sha256", "INVALID_CHECKSUM", 10},
		{"digest too short", "Upload-Checksum", "sha256 " + base64.StdEncoding.EncodeToString([]byte("short")), "INVALID_CHECKSUM", 10},
		{"not base64", "Content-MD5", "!!!", "INVALID_CHECKSUM", 10},
		{"chunked body", "Upload-Checksum", "crc32c AAAAAA==", "INVALID_REQUEST", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/files/session:"+id, failReader{t})
			req.ContentLength = tc.length
			req.Header.Set("Upload-Offset", "0")
			req.Header.Set(tc.header, tc.value)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var body map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != 400 || body["code"] != tc.code {
				t.Fatalf("%s: %q → %d %s, want 400 %s", tc.header, tc.value, rec.Code, rec.Body, tc.code)
			}
		})
	}
	if off := sessionOffset(t, srv.URL, id); off != 0 {
		t.Fatalf("offset = %d after refused chunks", off)
	}
}

// Needs the session engine to verify Chunk.Checksum (the lead's change):
// a chunk whose digest does not match is refused whole.
func TestChecksumVerified(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		srv := serveAPI(t, store, blobs, 5*time.Second)
		data := randomBytes(6*mib + 100)
		_, id := newSession(t, srv.URL, "sums", "file", len(data))
		first, rest := data[:6*mib], data[6*mib:]

		sum := sha256.Sum256(first)
		sum[0] ^= 1
		a := appendChunk(t, srv.URL, id, 0, first, "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:]))
		if a.Code != 400 || a.JSON(t)["code"] != "CHECKSUM_MISMATCH" {
			t.Fatalf("wrong sha256: %d %s, want 400 CHECKSUM_MISMATCH", a.Code, a.Body)
		}
		if off := sessionOffset(t, srv.URL, id); off != 0 {
			t.Fatalf("offset after a mismatched chunk = %d, want 0", off)
		}
		sum[0] ^= 1
		if a := appendChunk(t, srv.URL, id, 0, first, "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:])); a.Code != 200 {
			t.Fatalf("right sha256: %d %s", a.Code, a.Body)
		}
		m := md5.Sum(rest)
		m[3] ^= 0x80
		if a := appendChunk(t, srv.URL, id, 6*mib, rest, "Content-MD5", base64.StdEncoding.EncodeToString(m[:])); a.Code != 400 || a.JSON(t)["code"] != "CHECKSUM_MISMATCH" {
			t.Fatalf("wrong Content-MD5: %d %s, want 400 CHECKSUM_MISMATCH", a.Code, a.Body)
		}
		m[3] ^= 0x80
		if a := appendChunk(t, srv.URL, id, 6*mib, rest, "Content-MD5", base64.StdEncoding.EncodeToString(m[:])); a.Code != 200 || a.JSON(t)["bytes"] != float64(len(data)) {
			t.Fatalf("right Content-MD5: %d %s", a.Code, a.Body)
		}
		mustDownload(t, srv.URL, "sums", "file", data)
	})
}

// --- Outages ---

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// daemon is a server process this test started and may kill.
type daemon struct {
	t    *testing.T
	name string
	port int
	argv []string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

func startDaemon(t *testing.T, name string, port int, env []string, argv ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, name: name, port: port, argv: argv, env: env}
	d.start()
	t.Cleanup(d.kill)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	path, err := exec.LookPath(d.argv[0])
	if err != nil {
		if gp := os.Getenv("GOPATH"); gp != "" {
			path, err = exec.LookPath(filepath.Join(gp, "bin", d.argv[0]))
		}
		if err != nil {
			path, err = exec.LookPath(filepath.Join(os.Getenv("HOME"), "go", "bin", d.argv[0]))
		}
	}
	if err != nil {
		d.t.Fatalf("%s is not installed: %v", d.argv[0], err)
	}
	d.log = &bytes.Buffer{}
	d.cmd = exec.Command(path, d.argv[1:]...)
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("%s exited at start: %s", d.name, d.log)
		default:
		}
		if time.Now().After(deadline) {
			d.kill()
			d.t.Fatalf("%s did not listen on %s: %s", d.name, addr, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the process with SIGKILL, as a crash would, and waits for it.
func (d *daemon) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// wantUnavailable checks a 503 UNAVAILABLE with Retry-After in the native
// or the OpenAI envelope.
func wantUnavailable(t *testing.T, what string, a testhttp.Answer, openAI bool) {
	t.Helper()
	if a.Code != 503 || a.Header.Get("Retry-After") != retryAfterUnavailable {
		t.Fatalf("%s during the outage: %d (Retry-After %q) %s; want 503 with Retry-After %s",
			what, a.Code, a.Header.Get("Retry-After"), a.Body, retryAfterUnavailable)
	}
	body := a.JSON(t)
	if openAI {
		e, _ := body["error"].(map[string]any)
		if e["code"] != "unavailable" || e["type"] != "server_error" {
			t.Fatalf("%s: OpenAI envelope %v, want code unavailable type server_error", what, body)
		}
		return
	}
	if body["code"] != "UNAVAILABLE" || body["status"] != float64(503) {
		t.Fatalf("%s: body %v, want code UNAVAILABLE", what, body)
	}
}

// waitReady polls /readyz until it answers want.
func waitReady(t *testing.T, base string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a := testhttp.Do(t, "GET", base+"/readyz", nil)
		if a.Code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s, want %d within %s", a.Code, a.Body, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Redis stopped: creates, appends and OpenAI routes answer 503 with
// Retry-After; /readyz says so; when the same Redis comes back (AOF on)
// readiness returns without a restart and the upload completes byte-exact.
func TestRedisOutageIs503(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	rd := startDaemon(t, "redis-server", port, nil, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes")
	store, err := redisstore.Open(fmt.Sprintf("redis://127.0.0.1:%d/0", port), "outage:") // as ferryd opens it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	blobs, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := serveAPI(t, store, blobs, 5*time.Second)
	waitReady(t, srv.URL, 200, 5*time.Second)

	data := randomBytes(3 * mib)
	_, id := newSession(t, srv.URL, "outage", "file", len(data))
	if a := appendChunk(t, srv.URL, id, 0, data[:mib]); a.Code != 200 {
		t.Fatalf("first chunk: %d %s", a.Code, a.Body)
	}

	rd.kill()
	down := time.Now()
	a, _ := newSession(t, srv.URL, "outage", "other", 10)
	wantUnavailable(t, "create", a, false)
	wantUnavailable(t, "append", appendChunk(t, srv.URL, id, mib, data[mib:2*mib]), false)
	wantUnavailable(t, "session info", testhttp.Do(t, "GET", srv.URL+"/v1/files/session:"+id, nil), false)
	wantUnavailable(t, "OpenAI file list", testhttp.Do(t, "GET", srv.URL+"/v1/openai/v1/files", nil), true)
	waitReady(t, srv.URL, 503, time.Second)
	t.Logf("the outage's requests took %s", time.Since(down))

	rd.start()
	up := time.Now()
	waitReady(t, srv.URL, 200, 10*time.Second)
	t.Logf("ready again %s after Redis restarted", time.Since(up))
	off := sessionOffset(t, srv.URL, id)
	if off != mib {
		t.Fatalf("offset after the outage = %d, want %d (the chunk sent during it kept nothing)", off, mib)
	}
	if a := appendChunk(t, srv.URL, id, off, data[off:]); a.Code != 200 || a.JSON(t)["bytes"] != float64(len(data)) {
		t.Fatalf("resume after the outage: %d %s", a.Code, a.Body)
	}
	mustDownload(t, srv.URL, "outage", "file", data)
}

// The S3 server stopped (its port refuses connections): a request that
// reaches S3 answers 503 with Retry-After; when it is back /readyz
// recovers without a restart and the upload completes byte-exact.
func TestS3OutageIs503(t *testing.T) {
	rc, prefix := testsvc.Redis(t)
	dir, port := t.TempDir(), freePort(t)
	const key, secret = "outagekey", "outagesecret"
	gw := startDaemon(t, "versitygw", port, []string{"ROOT_ACCESS_KEY_ID=" + key, "ROOT_SECRET_ACCESS_KEY=" + secret},
		"versitygw", "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", dir)
	ctx := context.Background()
	c, err := s3blob.NewClient(ctx, s3blob.ClientConfig{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Region: "us-east-1",
		PathStyle: true, AccessKeyID: key, SecretAccessKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("outage")}); err != nil {
		t.Fatal(err)
	}
	api := metrics.S3API(c, prometheus.NewRegistry()) // as ferryd wraps it
	srv := serveAPI(t, redisstore.New(rc, prefix), s3blob.New(api, "outage", ""), 5*time.Second)
	waitReady(t, srv.URL, 200, 5*time.Second)

	data := randomBytes(6*mib + 10)
	_, id := newSession(t, srv.URL, "outage", "file", len(data))
	gw.kill()
	wantUnavailable(t, "append of a part", appendChunk(t, srv.URL, id, 0, data[:6*mib]), false)
	waitReady(t, srv.URL, 503, time.Second)

	gw.start()
	up := time.Now()
	waitReady(t, srv.URL, 200, 10*time.Second)
	t.Logf("ready again %s after the S3 server restarted", time.Since(up))
	off := sessionOffset(t, srv.URL, id)
	if off != 0 {
		t.Fatalf("offset after the outage = %d, want 0", off)
	}
	for off < len(data) {
		n := min(6*mib, len(data)-off)
		if a := appendChunk(t, srv.URL, id, off, data[off:off+n]); a.Code != 200 {
			t.Fatalf("chunk at %d after the outage: %d %s", off, a.Code, a.Body)
		}
		off += n
	}
	mustDownload(t, srv.URL, "outage", "file", data)
}

// An S3 server that answers but cannot serve (SlowDown, InternalError,
// ServiceUnavailable) is an outage too. A real server won't do that on
// demand, so an httptest server plays it, behind the real SDK.
func TestS3ErrorAnswersAre503(t *testing.T) {
	rc, prefix := testsvc.Redis(t)
	for _, tc := range []struct {
		status int
		code   string
	}{{503, "SlowDown"}, {500, "InternalError"}, {503, "ServiceUnavailable"}} {
		t.Run(tc.code, func(t *testing.T) {
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, tc.code)
			}))
			defer fake.Close()
			c, err := s3blob.NewClient(context.Background(), s3blob.ClientConfig{Endpoint: fake.URL, Region: "us-east-1",
				PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
			if err != nil {
				t.Fatal(err)
			}
			srv := serveAPI(t, redisstore.New(rc, prefix+tc.code+":"), s3blob.New(c, "fake", ""), 5*time.Second)
			data := randomBytes(10)
			_, id := newSession(t, srv.URL, "fake", "small", len(data))
			wantUnavailable(t, "the last chunk of a small file", appendChunk(t, srv.URL, id, 0, data), false)
		})
	}
}
