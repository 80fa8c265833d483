package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testserver"
	"github.com/ferryhq/ferry/internal/testsvc"
)

const MiB = 1 << 20

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// faulty breaks some requests on purpose: cut picks requests whose body is
// cut off half-way (the server must keep nothing of them), lose picks
// requests that reach the server whole but whose answer is lost.
type faulty struct {
	cut, lose func(n int64, r *http.Request) bool
	n         atomic.Int64
	faults    atomic.Int64
}

var errInjected = errors.New("injected fault")

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	n := f.n.Add(1)
	if f.cut != nil && f.cut(n, r) && r.ContentLength > 1 {
		f.faults.Add(1)
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(io.MultiReader(io.LimitReader(r.Body, r.ContentLength/2), errReader{}))
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			resp.Body.Close()
		}
		return nil, errInjected
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && f.lose != nil && f.lose(n, r) {
		f.faults.Add(1)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errInjected
	}
	return resp, err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errInjected }

func appends(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/session:")
}

// Enough tries for a cut request's handler to let go of the session (SESSION_BUSY
// until then) on a loaded machine: 1 ms doubling, about 1 s in all.
var fast = client.Retry{Attempts: 10, Wait: time.Millisecond}

func eachBackend(t *testing.T, fn func(t *testing.T, url string)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		fn(t, testserver.Serve(t, s).URL)
	})
}

// Cut bodies and lost answers cost retries, never bytes: the upload asks
// for the offset (or takes it from the 409) and goes on.
func TestUploadThroughFaults(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		tr := &faulty{
			cut:  func(n int64, r *http.Request) bool { return appends(r) && n%3 == 0 },
			lose: func(n int64, r *http.Request) bool { return appends(r) && n%4 == 0 },
		}
		c := client.New(url, &http.Client{Transport: tr})
		data := randomBytes(26 * MiB)
		var sessions []string
		var last int64
		f, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), "b", "dir/flaky.bin", client.UploadOptions{
			ChunkSize: 5 * MiB, Retry: fast,
			OnSession: func(s client.Session) { sessions = append(sessions, s.ID) },
			Progress: func(done, total int64) {
				if done < last || total != int64(len(data)) {
					t.Errorf("progress went from %d to %d of %d", last, done, total)
				}
				last = done
			}})
		if err != nil {
			t.Fatal(err)
		}
		if f.Bytes != int64(len(data)) || f.Bucket != "b" || f.Key != "dir/flaky.bin" || len(sessions) != 1 || last != f.Bytes {
			t.Fatalf("file = %+v, sessions %v, last progress %d", f, sessions, last)
		}
		if tr.faults.Load() < 3 {
			t.Fatalf("only %d faults were injected", tr.faults.Load())
		}
		got := download(t, client.New(url, nil), "b", "dir/flaky.bin")
		if !bytes.Equal(got, data) {
			t.Fatal("the uploaded bytes differ")
		}
	})
}

func download(t *testing.T, c *client.Client, bucket, key string) []byte {
	t.Helper()
	body, err := c.Read(context.Background(), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A session is resumed from its server offset, and a session of another
// file is refused.
func TestUploadResumesSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		data := randomBytes(12 * MiB)
		s, err := c.CreateSession(ctx, "b", "resumed", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Append(ctx, s.ID, 0, bytes.NewReader(data[:5*MiB]), 5*MiB); err != nil {
			t.Fatal(err)
		}
		var from int64 = -1
		f, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), "b", "resumed", client.UploadOptions{Session: s.ID,
			OnSession: func(s client.Session) { from = s.Offset }})
		if err != nil || from != 5*MiB || f.Bytes != int64(len(data)) {
			t.Fatalf("resume from %d: %+v, %v", from, f, err)
		}
		if !bytes.Equal(download(t, c, "b", "resumed"), data) {
			t.Fatal("bytes differ after resume")
		}
		other, _ := c.CreateSession(ctx, "b", "other", "", 3)
		if _, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), "b", "resumed", client.UploadOptions{Session: other.ID}); err == nil ||
			!strings.Contains(err.Error(), "not 12582912 bytes to b/resumed") {
			t.Fatalf("resuming another file's session: %v", err)
		}
	})
}

// An answer that retrying cannot change comes back at once, typed.
func TestClientErrorsAreNotRetried(t *testing.T) {
	url := testserver.Start(t, "embedded").URL
	tr := &faulty{}
	c := client.New(url, &http.Client{Transport: tr})
	_, err := c.Upload(context.Background(), strings.NewReader("x"), 1, "bad.bucket", "k", client.UploadOptions{Retry: client.Retry{Wait: time.Hour}})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Code != "INVALID_BUCKET" || tr.n.Load() != 1 {
		t.Fatalf("err = %v after %d requests, want one INVALID_BUCKET", err, tr.n.Load())
	}
	if _, err := c.Stat(context.Background(), "b", "missing"); !client.IsNotFound(err) {
		t.Fatalf("stat of a missing file: %v", err)
	}
}

// A download cut off goes on with Range from where it stopped; one whose
// file changed since the bytes on disk starts over.
func TestDownloadResumes(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		v1 := randomBytes(9 * MiB)
		if _, err := c.Upload(ctx, bytes.NewReader(v1), int64(len(v1)), "b", "d.bin", client.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		var ranged atomic.Int64
		tr := &faulty{lose: func(n int64, r *http.Request) bool {
			if r.Header.Get("Range") != "" {
				ranged.Add(1)
			}
			return false
		}}
		cutter := &cutBody{RoundTripper: tr, after: 2 * MiB, times: 2}
		out, err := os.Create(filepath.Join(t.TempDir(), "d.part"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		var etags []string
		etag, err := client.New(url, &http.Client{Transport: cutter}).Download(ctx, "b", "d.bin", out, client.DownloadOptions{Retry: fast,
			OnETag: func(e string) { etags = append(etags, e) }})
		if err != nil || etag == "" || len(etags) != 1 || etags[0] != etag {
			t.Fatalf("download: etag %q (told %v), %v", etag, etags, err)
		}
		if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, v1) || ranged.Load() != 2 {
			t.Fatalf("after two cuts: %d bytes, %d ranged requests", len(got), ranged.Load())
		}

		// Half of v1 on disk, then the file is replaced: resuming with v1's
		// ETag must fetch all of v2, not v1's first half + v2's second.
		if err := out.Truncate(int64(len(v1) / 2)); err != nil {
			t.Fatal(err)
		}
		v2 := randomBytes(7 * MiB)
		if _, err := c.Upload(ctx, bytes.NewReader(v2), int64(len(v2)), "b", "d.bin", client.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		etag2, err := c.Download(ctx, "b", "d.bin", out, client.DownloadOptions{ETag: etag})
		if err != nil || etag2 == etag {
			t.Fatalf("download after replace: %q, %v", etag2, err)
		}
		if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, v2) {
			t.Fatalf("after replace: %d bytes, not v2's %d", len(got), len(v2))
		}
	})
}

// cutBody ends the first times response bodies after `after` bytes.
type cutBody struct {
	http.RoundTripper
	after int64
	times int
}

func (c *cutBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.RoundTripper.RoundTrip(r)
	if err != nil || c.times == 0 || resp.ContentLength <= c.after {
		return resp, err
	}
	c.times--
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(resp.Body, c.after), errReader{}), resp.Body}
	return resp, nil
}
