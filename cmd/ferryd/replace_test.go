package main

// kill -9 around the completion of an upload that replaces a file on S3
// (issue 26, "no replacement window"): one ferryd's S3 traffic goes
// through a proxy that holds the completing request (CompleteMultipartUpload,
// or the PutObject of a small file) before or after S3 carried it out, and
// the process is killed there. A second ferryd on the same Redis and S3
// reads the key throughout: every answer is the old version or the new
// one, byte-exact, none is refused, and the key reads as the new version
// from the first read after storage took it.

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/metastore"
)

// completionTrap is an S3 proxy that holds the first request completing
// an object whose key ends with suffix, before forwarding it or after.
type completionTrap struct {
	suffix string
	after  bool // forward it to S3 first, then hold the answer
	caught chan struct{}
	once   sync.Once
	proxy  *httputil.ReverseProxy
	target *url.URL
}

func (c *completionTrap) completes(r *http.Request) bool {
	if !strings.HasSuffix(r.URL.Path, c.suffix) {
		return false
	}
	q := r.URL.Query()
	return r.Method == http.MethodPost && q.Has("uploadId") || // CompleteMultipartUpload
		r.Method == http.MethodPut && !q.Has("uploadId") && !q.Has("partNumber") // PutObject
}

func (c *completionTrap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	first := false
	if c.completes(r) {
		c.once.Do(func() { first = true })
	}
	if !first {
		c.proxy.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body) // the server notices the client go only once the body is read
	if err != nil {
		return
	}
	if c.after {
		out := r.Clone(r.Context())
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.RequestURI, out.URL.Scheme, out.URL.Host = "", c.target.Scheme, c.target.Host
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err == nil {
			resp.Body.Close()
		}
	}
	close(c.caught)
	select { // held until the process that sent it is killed
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

func TestKillDuringReplacement(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		after bool
	}{
		{"multipart/before-s3", 6 * MiB, false}, {"multipart/after-s3", 6 * MiB, true},
		{"put/before-s3", 4 << 10, false}, {"put/after-s3", 4 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := redisS3Env(t)
			reader := be.start(t)
			old := randomData(3 << 10)
			uploadHTTP(t, reader, "b", "replaced", old, len(old))

			target, err := url.Parse(envValue(be.env, "FERRY_S3_ENDPOINT"))
			if err != nil {
				t.Fatal(err)
			}
			trap := &completionTrap{suffix: "/b/replaced", after: tc.after, caught: make(chan struct{}),
				proxy: httputil.NewSingleHostReverseProxy(target), target: target}
			srv := httptest.NewServer(trap)
			defer srv.Close()
			writer := startFerryd(t, be.args, append(be.env, "FERRY_S3_ENDPOINT="+srv.URL)...)

			data := randomData(tc.size)
			id := createSession(t, writer, "b", "replaced", len(data))["id"].(string)
			last := 0
			if tc.size > 5*MiB {
				if r := sendChunk(t, writer, id, 0, data[:5*MiB]); r.Code != 200 {
					t.Fatalf("first chunk: %d %s", r.Code, r.Body)
				}
				last = 5 * MiB
			}
			go func() {
				_, _ = testhttp.Try("POST", "http://"+writer.addr+"/v1/files/session:"+id, bytes.NewReader(data[last:]), "Upload-Offset", strconv.Itoa(last))
			}()
			select {
			case <-trap.caught:
			case <-time.After(30 * time.Second):
				t.Fatal("the completing request never reached S3's proxy")
			}
			if err := writer.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			<-writer.done
			writer.done <- nil

			// Read through the other instance until the dead process's key
			// lease and more have passed.
			var refused []time.Duration
			sawNew := false
			for time.Since(killed) < metastore.RequestLease+3*time.Second {
				r := testhttp.Do(t, "GET", "http://"+reader.addr+"/v1/files/b/replaced:content", nil)
				switch {
				case r.Code == 503:
					refused = append(refused, time.Since(killed))
				case r.Code != 200:
					t.Fatalf("read %v after the kill: %d %s", time.Since(killed), r.Code, r.Body)
				case bytes.Equal(r.Body, data):
					sawNew = true
				case !bytes.Equal(r.Body, old):
					t.Fatalf("read %v after the kill: %d bytes, neither version", time.Since(killed), len(r.Body))
				case sawNew || tc.after:
					t.Fatalf("read %v after the kill: the old version, which storage no longer holds", time.Since(killed))
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("%d reads refused with 503; new version read: %v", len(refused), sawNew)
			if len(refused) > 0 {
				t.Errorf("%d reads were refused after the kill (the first %v after it)", len(refused), refused[0].Round(10*time.Millisecond))
			}
			if tc.after != sawNew {
				t.Errorf("storage took the new version: %v; reads saw it: %v", tc.after, sawNew)
			}
			// Once the dead process's lease ran out, a read published what
			// storage holds: the record says so too.
			want := len(old)
			if tc.after {
				want = len(data)
			}
			if r := testhttp.Do(t, "GET", "http://"+reader.addr+"/v1/files/b/replaced", nil); r.Code != 200 || r.JSON(t)["bytes"] != float64(want) {
				t.Errorf("the file's record after the lease: %d %s, want %d bytes", r.Code, r.Body, want)
			}

			// The client asks for the offset and resumes through the live
			// instance: the last chunk was acknowledged to the record before
			// the completion, so an empty append at the end completes it.
			r := testhttp.Do(t, "GET", "http://"+reader.addr+"/v1/files/session:"+id, nil)
			if off := r.JSON(t)["offset"]; r.Code != 200 || off != float64(len(data)) {
				t.Fatalf("session after the kill: %d, offset %v, want %d", r.Code, off, len(data))
			}
			if r := sendChunk(t, reader, id, len(data), nil); r.Code != 200 || r.JSON(t)["bytes"] != float64(len(data)) {
				t.Fatalf("resume: %d %s", r.Code, r.Body)
			}
			if got := download(t, "http://"+reader.addr+"/v1/files/b/replaced:content"); !bytes.Equal(got, data) {
				t.Fatal("after the resume the file is not the new version")
			}
		})
	}
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
