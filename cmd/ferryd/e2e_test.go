package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
)

const MiB = 1 << 20

// backendEnv is how a ferryd process is configured for one storage mode.
type backendEnv struct {
	name   string
	args   string   // --data-dir for the embedded mode
	env    []string // FERRY_* for Redis + S3
	bucket string   // the S3 bucket, for direct comparisons
}

// s3Client returns a reader of whole objects straight from the mode's S3
// bucket, bypassing ferryd.
func s3Client(t testing.TB, be backendEnv) func(testing.TB, string) int {
	c, err := s3blob.NewClient(context.Background(), testsvc.S3Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return func(t testing.TB, key string) int {
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &be.bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		return int(drain(out.Body))
	}
}

func embeddedEnv(t testing.TB) backendEnv {
	return backendEnv{name: "embedded", args: "--data-dir " + t.TempDir()}
}

// s3Env makes a fresh bucket on the test S3 server and returns it with
// the environment that points ferryd at it.
func s3Env(t testing.TB) (bkt string, env []string) {
	s3cfg := testsvc.S3Config(t)
	_, bkt = testsvc.S3(t)
	return bkt, []string{
		"FERRY_S3_ENDPOINT=" + s3cfg.Endpoint,
		"FERRY_S3_REGION=" + s3cfg.Region,
		"FERRY_S3_BUCKET=" + bkt,
		"FERRY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretAccessKey,
	}
}

func redisS3Env(t testing.TB) backendEnv {
	bkt, env := s3Env(t)
	return backendEnv{name: "redis+s3", args: "--data-dir " + t.TempDir(), bucket: bkt, env: append(env,
		"FERRY_REDIS_URL="+testsvc.RedisURL(t),
		"FERRY_REDIS_PREFIX="+testsvc.Unique("e2e")+":",
	)}
}

// eachBackend runs fn against a fresh ferryd on each storage mode.
func eachBackend(t *testing.T, fn func(t *testing.T, be backendEnv)) {
	t.Run("embedded", func(t *testing.T) { t.Parallel(); fn(t, embeddedEnv(t)) })
	t.Run("redis+s3", func(t *testing.T) { t.Parallel(); fn(t, redisS3Env(t)) })
}

func (be backendEnv) start(t *testing.T) *proc { return startFerryd(t, be.args, be.env...) }

func createSession(t testing.TB, p *proc, bkt, key string, size int) map[string]any {
	t.Helper()
	r := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files", strings.NewReader(
		fmt.Sprintf(`{"bucket":%q,"key":%q,"mime_type":"application/x-e2e","size":%d}`, bkt, key, size)))
	if r.Code != 201 {
		t.Fatalf("create session: %d %s", r.Code, r.Body)
	}
	s := r.JSON(t)
	if s["url"] != "http://"+p.addr+"/v1/files/session:"+s["id"].(string) || s["offset"] != float64(0) || s["size"] != float64(size) {
		t.Fatalf("create session response = %v", s)
	}
	return s
}

func sendChunk(t testing.TB, p *proc, id string, offset int, chunk []byte) testhttp.Answer {
	t.Helper()
	return testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files/session:"+id, bytes.NewReader(chunk),
		"Upload-Offset", strconv.Itoa(offset), "Content-Type", "application/octet-stream")
}

func randomData(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// uploadHTTP sends data in chunk sizes cycled from chunks and checks the
// final response is the FileResponse.
func uploadHTTP(t testing.TB, p *proc, bkt, key string, data []byte, chunks ...int) map[string]any {
	t.Helper()
	id := createSession(t, p, bkt, key, len(data))["id"].(string)
	off, i := 0, 0
	for {
		n := min(chunks[i%len(chunks)], len(data)-off)
		r := sendChunk(t, p, id, off, data[off:off+n])
		if r.Code != 200 {
			t.Fatalf("chunk at %d: %d %s", off, r.Code, r.Body)
		}
		off += n
		i++
		body := r.JSON(t)
		if off == len(data) {
			if body["bytes"] != float64(len(data)) || body["key"] != key || body["bucket"] != bkt {
				t.Fatalf("last chunk answered %v, want the FileResponse", body)
			}
			return body
		}
		if body["offset"] != float64(off) {
			t.Fatalf("after a chunk at %d the session says %v", off-n, body)
		}
	}
}

func download(t *testing.T, url string) []byte {
	t.Helper()
	r := testhttp.Do(t, "GET", url, nil)
	if r.Code != 200 {
		t.Fatalf("GET %s: %d %s", url, r.Code, r.Body)
	}
	return r.Body
}

func TestE2EUploadSizes(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		for _, tc := range []struct {
			name   string
			size   int
			chunks []int
		}{
			{"zero", 0, []int{1}},
			{"one", 1, []int{1}},
			{"5MiB_minus_1", 5*MiB - 1, []int{2 * MiB, 1*MiB + 3}},
			{"5MiB", 5 * MiB, []int{5 * MiB}},
			{"5MiB_plus_1", 5*MiB + 1, []int{4 * MiB, 1*MiB + 1}},
			{"100MiB", 100*MiB + 12345, []int{7*MiB + 13, 900 * 1024, 16*MiB + 1, 3 * MiB}},
		} {
			data := randomData(tc.size)
			file := uploadHTTP(t, p, "sizes", "dir/"+tc.name+".bin", data, tc.chunks...)
			got := download(t, file["url"].(string))
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("%s: downloaded %d bytes with a different SHA-256", tc.name, len(got))
			}
			info := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/sizes/dir/"+tc.name+".bin", nil).JSON(t)
			if info["bytes"] != float64(tc.size) || info["mime_type"] != "application/x-e2e" || info["url"] != file["url"] {
				t.Fatalf("%s: file info = %v", tc.name, info)
			}
		}
	})
}

// A connection dropped in the middle of a chunk stores nothing of it; the
// client asks for the offset and resends.
func TestE2EResumeAfterDroppedConnection(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		data := randomData(12 * MiB)
		id := createSession(t, p, "resume", "file", len(data))["id"].(string)
		if r := sendChunk(t, p, id, 0, data[:6*MiB]); r.Code != 200 {
			t.Fatalf("first chunk: %d %s", r.Code, r.Body)
		}
		dropMidChunk(t, p.addr, id, 6*MiB, data[6*MiB:], 2*MiB)
		info := waitOffset(t, p, id, 6*MiB)
		off := int(info["offset"].(float64))
		if r := sendChunk(t, p, id, off, data[off:]); r.Code != 200 {
			t.Fatalf("resend: %d %s", r.Code, r.Body)
		}
		got := download(t, "http://"+p.addr+"/v1/files/resume/file:content")
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatal("bytes differ after resuming")
		}
	})
}

// dropMidChunk declares the whole chunk but sends only `send` bytes of it,
// then closes the connection.
func dropMidChunk(t *testing.T, addr, id string, offset int, chunk []byte, send int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/files/session:%s HTTP/1.1\r\nHost: %s\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n", id, addr, offset, len(chunk))
	if _, err := conn.Write(chunk[:send]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server start streaming it
	conn.Close()
}

// waitOffset polls the session until the server has given up on a dropped
// chunk (its lock is free) and reports offset want.
func waitOffset(t *testing.T, p *proc, id string, want int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/session:"+id, nil)
		if r.Code != 200 {
			t.Fatalf("session info: %d %s", r.Code, r.Body)
		}
		info := r.JSON(t)
		if info["offset"] != float64(want) {
			t.Fatalf("offset after a dropped chunk = %v, want %d", info["offset"], want)
		}
		// An empty append tells us whether the dropped request still holds the lock.
		if probe := sendChunk(t, p, id, want, nil); probe.Code == 200 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatal("the session stayed busy after the connection dropped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill -9 mid-chunk, restart on the same storage, resume from the offset
// the new process reports.
func TestE2EKillAndRestart(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		data := randomData(17*MiB + 5)
		// The session computes a SHA-256, whose state must survive the kill.
		cr := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files", strings.NewReader(
			fmt.Sprintf(`{"bucket":"crash","key":"big.bin","size":%d,"checksum_algorithm":"sha256"}`, len(data))))
		if cr.Code != 201 {
			t.Fatalf("create: %d %s", cr.Code, cr.Body)
		}
		id := cr.JSON(t)["id"].(string)
		for off := 0; off < 8*MiB; off += 2 * MiB { // leaves a held-back tail on S3
			if r := sendChunk(t, p, id, off, data[off:off+2*MiB]); r.Code != 200 {
				t.Fatalf("chunk at %d: %d %s", off, r.Code, r.Body)
			}
		}
		// A chunk is half-way through the wire when the process dies.
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/files/session:%s HTTP/1.1\r\nHost: x\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n", id, 8*MiB, 6*MiB)
		_, _ = conn.Write(data[8*MiB : 11*MiB])
		time.Sleep(100 * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
		p.done <- nil
		conn.Close()

		p2 := startFerryd(t, be.args, be.env...)
		r := testhttp.Do(t, "GET", "http://"+p2.addr+"/v1/files/session:"+id, nil)
		if r.Code != 200 {
			t.Fatalf("session after restart: %d %s", r.Code, r.Body)
		}
		off := int(r.JSON(t)["offset"].(float64))
		if off != 8*MiB {
			t.Fatalf("offset after kill -9 = %d, want %d (the acknowledged bytes)", off, 8*MiB)
		}
		// The dead process's lease may still hold the session (Redis) for
		// up to the lock TTL; a client retries on 409 SESSION_BUSY.
		deadline := time.Now().Add(20 * time.Second)
		var last map[string]any
		for off < len(data) {
			n := min(5*MiB, len(data)-off)
			r := sendChunk(t, p2, id, off, data[off:off+n])
			if r.Code == 409 && r.JSON(t)["code"] == "SESSION_BUSY" && r.Header.Get("Retry-After") != "" && time.Now().Before(deadline) {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if r.Code != 200 {
				t.Fatalf("chunk at %d after restart: %d %s", off, r.Code, r.Body)
			}
			off += n
			last = r.JSON(t)
		}
		got := download(t, "http://"+p2.addr+"/v1/files/crash/big.bin:content")
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatal("bytes differ after kill -9 and resume")
		}
		sum := sha256.Sum256(data)
		if sums, _ := last["checksums"].(map[string]any); sums == nil || sums["sha256"] != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Fatalf("the SHA-256 across the kill: %v, want %s", last["checksums"], base64.StdEncoding.EncodeToString(sum[:]))
		}
	})
}

// Two ferryd processes sharing one Redis and one S3 take alternate chunks.
func TestE2ETwoInstances(t *testing.T) {
	be := redisS3Env(t)
	a, b := be.start(t), be.start(t)
	data := randomData(23*MiB + 77)
	id := createSession(t, a, "shared", "split.bin", len(data))["id"].(string)
	sizes := []int{5 * MiB, MiB, 3*MiB + 1, 6 * MiB, 2 * MiB}
	off := 0
	for i := 0; off < len(data); i++ {
		p := []*proc{a, b}[i%2]
		n := min(sizes[i%len(sizes)], len(data)-off)
		if r := sendChunk(t, p, id, off, data[off:off+n]); r.Code != 200 {
			t.Fatalf("chunk %d at %d on instance %d: %d %s", i, off, i%2, r.Code, r.Body)
		}
		off += n
	}
	for _, p := range []*proc{a, b} {
		got := download(t, "http://"+p.addr+"/v1/files/shared/split.bin:content")
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatal("bytes differ after splitting chunks across instances")
		}
	}
}

// Two clients appending at once: one wins, the other gets a 409; the bytes
// are never interleaved.
func TestE2EConcurrentAppends(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		id := createSession(t, p, "race", "f", 16*MiB)["id"].(string)
		chunks := [][]byte{bytes.Repeat([]byte("a"), 8*MiB), bytes.Repeat([]byte("b"), 8*MiB)}
		codes := make([]int, 2)
		var wg sync.WaitGroup
		for i := range chunks {
			wg.Add(1)
			go func() { defer wg.Done(); codes[i] = sendChunk(t, p, id, 0, chunks[i]).Code }()
		}
		wg.Wait()
		if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
			t.Fatalf("concurrent appends answered %v, want one 200 and one 409", codes)
		}
		winner := chunks[0]
		if codes[1] == 200 {
			winner = chunks[1]
		}
		if r := sendChunk(t, p, id, 8*MiB, bytes.Repeat([]byte("c"), 8*MiB)); r.Code != 200 {
			t.Fatalf("second chunk: %d %s", r.Code, r.Body)
		}
		got := download(t, "http://"+p.addr+"/v1/files/race/f:content")
		if !bytes.Equal(got[:8*MiB], winner) {
			t.Fatal("the first 8 MiB are not exactly the winning chunk")
		}
	})
}

func TestE2EReadAndList(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		base := "http://" + p.addr + "/v1/files"
		data := []byte("0123456789abcdefghij")
		uploadHTTP(t, p, "docs", "a/content", data, 7)               // a key whose last segment is "content"
		uploadHTTP(t, p, "docs", "a.b", []byte("not the same"), 100) // and a neighbour
		for i := 0; i < 5; i++ {
			uploadHTTP(t, p, "docs", fmt.Sprintf("p/%d.txt", i), []byte{byte('0' + i)}, 1)
		}
		uploadHTTP(t, p, "other", "x", []byte("x"), 1)

		if got := download(t, base+"/docs/a/content:content"); !bytes.Equal(got, data) {
			t.Fatalf("a/content reads %q", got)
		}
		info := testhttp.Do(t, "GET", base+"/docs/a/content", nil).JSON(t)
		if info["key"] != "a/content" || info["bytes"] != float64(len(data)) {
			t.Fatalf("info for a/content = %v", info)
		}

		// Range, ETag, Last-Modified, Content-Type.
		r := testhttp.Do(t, "GET", base+"/docs/a/content:content", nil, "Range", "bytes=5-9")
		if r.Code != 206 || string(r.Body) != "56789" || r.Header.Get("Content-Range") != "bytes 5-9/20" {
			t.Fatalf("range: %d %q %v", r.Code, r.Body, r.Header)
		}
		if r.Header.Get("Content-Type") != "application/x-e2e" || r.Header.Get("ETag") == "" || r.Header.Get("Last-Modified") == "" {
			t.Fatalf("headers: %v", r.Header)
		}
		if r := testhttp.Do(t, "GET", base+"/docs/a/content:content", nil, "Range", "bytes=-3"); r.Code != 206 || string(r.Body) != "hij" {
			t.Fatalf("suffix range: %d %q", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "GET", base+"/docs/a/content:content", nil, "Range", "bytes=20-"); r.Code != 416 || r.Header.Get("Content-Range") != "bytes */20" {
			t.Fatalf("unsatisfiable range: %d %v", r.Code, r.Header)
		}
		if r2 := testhttp.Do(t, "GET", base+"/docs/a/content:content", nil, "If-None-Match", r.Header.Get("ETag")); r.Header.Get("ETag") != "" && r2.Code != 304 {
			t.Fatalf("If-None-Match: %d", r2.Code)
		}
		etag := testhttp.Do(t, "HEAD", base+"/docs/a/content:content", nil).Header.Get("ETag")
		if r := testhttp.Do(t, "GET", base+"/docs/a/content:content", nil, "If-None-Match", etag); r.Code != 304 {
			t.Fatalf("If-None-Match %s: %d", etag, r.Code)
		}

		// Listing: buckets, then files paginated with a cursor and a prefix.
		buckets := testhttp.Do(t, "GET", base, nil).JSON(t)
		if fmt.Sprint(buckets["data"]) != "[map[name:docs] map[name:other]]" {
			t.Fatalf("buckets = %v", buckets)
		}
		var keys []string
		after := ""
		for {
			page := testhttp.Do(t, "GET", base+"/docs?prefix=p/&limit=2&after="+after, nil).JSON(t)
			for _, f := range page["data"].([]any) {
				keys = append(keys, f.(map[string]any)["key"].(string))
			}
			if page["has_more"] != true {
				break
			}
			after = page["next"].(string)
		}
		if strings.Join(keys, ",") != "p/0.txt,p/1.txt,p/2.txt,p/3.txt,p/4.txt" {
			t.Fatalf("paged keys = %v", keys)
		}

		// Delete, then it is gone everywhere.
		if r := testhttp.Do(t, "DELETE", base+"/docs/a/content", nil); r.Code != 204 {
			t.Fatalf("delete: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "GET", base+"/docs/a/content", nil); r.Code != 404 {
			t.Fatalf("info after delete: %d", r.Code)
		}
		if r := testhttp.Do(t, "GET", base+"/docs/a/content:content", nil); r.Code != 404 {
			t.Fatalf("content after delete: %d", r.Code)
		}
		if got := download(t, base+"/docs/a.b:content"); string(got) != "not the same" {
			t.Fatalf("deleting a/content touched a.b: %q", got)
		}

		// A key that would be both a file and a directory: a clear 409, at
		// create where the storage is Ferry's filesystem, else at the last
		// byte, and then the session keeps its bytes.
		uploadHTTP(t, p, "docs", "dir/file", []byte("x"), 1)
		if be.name != "redis+s3" {
			r = testhttp.Do(t, "POST", base, strings.NewReader(`{"bucket":"docs","key":"dir","size":1}`))
			if r.Code != 409 || r.JSON(t)["code"] != "KEY_CONFLICT" {
				t.Fatalf("create of a file over a directory: %d %s", r.Code, r.Body)
			}
			return
		}
		id := createSession(t, p, "docs", "dir", 1)["id"].(string)
		r = sendChunk(t, p, id, 0, []byte("y"))
		if be.name == "redis+s3" && r.Code == 200 {
			return // a real S3 holds both; only posix-backed storage refuses
		}
		if r.Code != 409 || r.JSON(t)["code"] != "KEY_CONFLICT" {
			t.Fatalf("file over a directory: %d %s", r.Code, r.Body)
		}
	})
}

// Every bad input gets a 4xx that says what is wrong, and changes nothing.
func TestE2EBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		base := "http://" + p.addr + "/v1/files"
		long := strings.Repeat("k", 1025)
		for _, tc := range []struct {
			name, body string
			code       int
			mention    string
		}{
			{"bucket chars", `{"bucket":"bad.bucket","key":"k","size":1}`, 400, "bucket"},
			{"empty bucket", `{"bucket":"","key":"k","size":1}`, 400, "bucket"},
			{"dot-dot key", `{"bucket":"b","key":"a/../etc","size":1}`, 400, ".."},
			{"leading slash", `{"bucket":"b","key":"/etc/passwd","size":1}`, 400, "'/'"},
			{"NUL in key", `{"bucket":"b","key":"a\u0000b","size":1}`, 400, "not allowed"},
			{"control char", `{"bucket":"b","key":"a\u0007b","size":1}`, 400, "not allowed"},
			{"key too long", `{"bucket":"b","key":"` + long + `","size":1}`, 400, "limit"},
			{"negative size", `{"bucket":"b","key":"k","size":-5}`, 400, "negative"},
			{"missing size", `{"bucket":"b","key":"k"}`, 400, "size is missing"},
			{"size over max", `{"bucket":"b","key":"k","size":99999999999999999}`, 413, "limit"},
			{"malformed JSON", `{"bucket":"b",`, 400, "JSON"},
			{"unknown field", `{"bucket":"b","key":"k","size":1,"sise":2}`, 400, "sise"},
			{"wrong type", `{"bucket":"b","key":"k","size":"1"}`, 400, "JSON"},
		} {
			r := testhttp.Do(t, "POST", base, strings.NewReader(tc.body))
			body := r.JSON(t)
			detail, _ := body["detail"].(string)
			if r.Code != tc.code || !strings.Contains(detail, tc.mention) || body["status"] != float64(tc.code) {
				t.Errorf("%s: %d %v; want %d mentioning %q", tc.name, r.Code, body, tc.code, tc.mention)
			}
		}
		// Unknown sessions and a body on a completed one.
		for _, id := range []string{"nope", strings.Repeat("ab", 16)} {
			if r := sendChunk(t, p, id, 0, []byte("x")); r.Code != 404 {
				t.Errorf("append to unknown session %s: %d %s", id, r.Code, r.Body)
			}
		}
		uploadHTTP(t, p, "b", "done", []byte("abc"), 3)
		id := createSession(t, p, "b", "small", 4)["id"].(string)
		if r := sendChunk(t, p, id, 0, []byte("abcde")); r.Code != 413 {
			t.Errorf("chunk past the size: %d %s", r.Code, r.Body)
		}
		r := sendChunk(t, p, id, 2, []byte("ab"))
		if r.Code != 409 || r.JSON(t)["offset"] != float64(0) || r.Header.Get("Upload-Offset") != "0" {
			t.Errorf("wrong offset: %d %s %v", r.Code, r.Body, r.Header)
		}
		if r := testhttp.Do(t, "POST", base+"/session:"+id, strings.NewReader("ab"), "Content-Range", "bytes 0-1/5"); r.Code != 400 {
			t.Errorf("Content-Range total differing from the size: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "POST", base+"/session:"+id, strings.NewReader("ab"), "Upload-Offset", "-1"); r.Code != 400 {
			t.Errorf("negative Upload-Offset: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "POST", base+"/session:"+id, strings.NewReader("abcd"), "Content-Range", "bytes 0-3/4"); r.Code != 200 {
			t.Fatalf("good Content-Range chunk: %d %s", r.Code, r.Body)
		}
		r = sendChunk(t, p, id, 4, []byte("more"))
		if r.Code != 409 || r.JSON(t)["code"] != "SESSION_COMPLETED" {
			t.Errorf("body on a completed session: %d %s", r.Code, r.Body)
		}
		// Nothing above changed state: only the two good files exist.
		list := testhttp.Do(t, "GET", base+"/b", nil).JSON(t)
		if n := len(list["data"].([]any)); n != 2 {
			t.Errorf("bucket b holds %d files after bad input, want 2: %v", n, list)
		}
		if got := download(t, base+"/b/small:content"); string(got) != "abcd" {
			t.Errorf("small reads %q", got)
		}
		if r := testhttp.Do(t, "GET", base+"/bad.bucket", nil); r.Code != 400 {
			t.Errorf("list of an invalid bucket: %d", r.Code)
		}
		if r := testhttp.Do(t, "GET", base+"/nosuch", nil); r.Code != 404 {
			t.Errorf("list of a missing bucket: %d", r.Code)
		}
	})
}

// A body of unknown length (chunked transfer encoding, as curl -T - sends)
// is appended too.
func TestE2EChunkedBody(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		data := randomData(13*MiB + 77)
		id := createSession(t, p, "chunked", "f", len(data))["id"].(string)
		// io.MultiReader hides the length, so the client sends it chunked.
		first := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files/session:"+id, io.MultiReader(bytes.NewReader(data[:9*MiB])), "Upload-Offset", "0")
		if first.Code != 200 || first.JSON(t)["offset"] != float64(9*MiB) {
			t.Fatalf("first chunked append: %d %s", first.Code, first.Body)
		}
		if r := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files/session:"+id, io.MultiReader(bytes.NewReader(data[:MiB])), "Upload-Offset", "0"); r.Code != 409 {
			t.Fatalf("chunked replay: %d %s", r.Code, r.Body)
		}
		last := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files/session:"+id, io.MultiReader(bytes.NewReader(data[9*MiB:])), "Upload-Offset", strconv.Itoa(9*MiB))
		if last.Code != 200 || last.JSON(t)["bytes"] != float64(len(data)) {
			t.Fatalf("last chunked append: %d %s", last.Code, last.Body)
		}
		if got := download(t, "http://"+p.addr+"/v1/files/chunked/f:content"); sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatal("chunked upload differs")
		}
	})
}
