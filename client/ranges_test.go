package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/client"
)

// ranges watches a download's ranged GETs: how many, how many at once,
// the body bytes they brought, and optionally fails some before they go.
type ranges struct {
	fail func(r *http.Request) bool

	requests, bytes atomic.Int64
	mu              sync.Mutex
	inFlight, most  int
}

func (g *ranges) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Range") == "" {
		return http.DefaultTransport.RoundTrip(r)
	}
	if g.fail != nil && g.fail(r) {
		return nil, errors.New("link down")
	}
	g.requests.Add(1)
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	g.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		g.done()
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, g: g}
	return resp, nil
}

func (g *ranges) done() {
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
}

type watchedBody struct {
	io.ReadCloser
	g    *ranges
	once sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.g.bytes.Add(int64(n))
	return n, err
}

func (b *watchedBody) Close() error {
	b.once.Do(b.g.done)
	return b.ReadCloser.Close()
}

// rangeFrom is the first byte a ranged GET asks for.
func rangeFrom(r *http.Request) int64 {
	var first int64
	_, _ = fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &first)
	return first
}

func upload(t *testing.T, c *client.Client, key string, data []byte) {
	t.Helper()
	if _, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "b", key, client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func partFile(t *testing.T) *os.File {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "d.part"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return out
}

// A parallel download is byte-exact, one ranged GET per range (and the
// probe), several at once, and tells its prefix and progress as they grow.
func TestParallelDownload(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		for _, size := range []int{0, 1, MiB - 1, 10*MiB + 77} {
			data := randomBytes(size)
			key := fmt.Sprintf("par/%d.bin", size)
			upload(t, c, key, data)
			g := &ranges{}
			out := partFile(t)
			var have, done int64
			etag, err := client.New(url, &http.Client{Transport: g}).Download(ctx, "b", key, out, client.DownloadOptions{
				Parallel: 4, RangeSize: MiB, Retry: fast,
				OnHave: func(n int64) {
					if n <= have && size > 0 {
						t.Errorf("OnHave went from %d to %d", have, n)
					}
					have = n
				},
				Progress: func(d, total int64) {
					if d < done || total != int64(size) {
						t.Errorf("progress went from %d to %d of %d", done, d, total)
					}
					done = d
				}})
			if err != nil || etag == "" {
				t.Fatalf("%d bytes: etag %q, %v", size, etag, err)
			}
			if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: got %d bytes, not the file's", size, len(got))
			}
			if want := int64(1 + (size+MiB-1)/MiB); g.requests.Load() != want {
				t.Errorf("%d bytes: %d ranged GETs, want %d (a probe and one per range)", size, g.requests.Load(), want)
			}
			if have != int64(size) || done != int64(size) {
				t.Errorf("%d bytes: last OnHave %d, last progress %d", size, have, done)
			}
			if size > 4*MiB && g.most < 2 {
				t.Errorf("%d bytes: at most %d ranges at once", size, g.most)
			}
		}
	})
}

// A download cut off leaves out holding its prefix; given that prefix, a
// rerun fetches only the rest. A file replaced before the rerun is
// fetched whole, never stitched to the old prefix.
func TestParallelDownloadResumes(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		v1 := randomBytes(10*MiB + 77)
		upload(t, c, "par/r.bin", v1)

		// The link goes down for everything past 4 MiB.
		cut := func(t *testing.T, out *os.File) (etag string, have int64) {
			t.Helper()
			down := &ranges{fail: func(r *http.Request) bool { return rangeFrom(r) >= 4*MiB }}
			etag, err := client.New(url, &http.Client{Transport: down}).Download(ctx, "b", "par/r.bin", out, client.DownloadOptions{
				Parallel: 2, RangeSize: MiB, Retry: client.Retry{Attempts: 2, Wait: 100 * time.Millisecond}, // time for the ranges before 4 MiB
				OnHave: func(n int64) { have = n }})
			if err == nil {
				t.Fatal("a download over a link that went down succeeded")
			}
			if st, _ := out.Stat(); have <= 0 || have > 4*MiB || st.Size() != have {
				t.Fatalf("after the cut: prefix %d, .part %d bytes", have, st.Size())
			}
			if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, v1[:have]) {
				t.Fatal("the prefix is not the file's")
			}
			return etag, have
		}

		out := partFile(t)
		etag, have := cut(t, out)
		g := &ranges{}
		var told []string
		etag2, err := client.New(url, &http.Client{Transport: g}).Download(ctx, "b", "par/r.bin", out, client.DownloadOptions{
			Parallel: 4, RangeSize: MiB, Retry: fast, ETag: etag, Have: have,
			OnETag: func(e string) { told = append(told, e) }})
		if err != nil || etag2 != etag || len(told) != 0 {
			t.Fatalf("resume: etag %q (was %q, told %v), %v", etag2, etag, told, err)
		}
		if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, v1) {
			t.Fatal("bytes differ after the resume")
		}
		if want := int64(len(v1)) - have + 1; g.bytes.Load() != want {
			t.Fatalf("the resume read %d bytes, want the %d missing and the probe's one", g.bytes.Load(), want-1)
		}

		// Replaced between the runs: the old prefix must not survive.
		out2 := partFile(t)
		etag, have = cut(t, out2)
		v2 := randomBytes(6*MiB + 5)
		upload(t, c, "par/r.bin", v2)
		told = nil
		etag2, err = c.Download(ctx, "b", "par/r.bin", out2, client.DownloadOptions{
			Parallel: 4, RangeSize: MiB, Retry: fast, ETag: etag, Have: have,
			OnETag: func(e string) { told = append(told, e) }})
		if err != nil || etag2 == etag || len(told) != 1 || told[0] != etag2 {
			t.Fatalf("after the replace: etag %q (was %q, told %v), %v", etag2, etag, told, err)
		}
		if got, _ := os.ReadFile(out2.Name()); !bytes.Equal(got, v2) {
			t.Fatalf("after the replace: %d bytes, not v2's %d", len(got), len(v2))
		}
	})
}

// A file replaced while its ranges are in flight: the ranges after that
// see another version, and the download starts over on the new one.
func TestParallelDownloadReplacedMidway(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		v1 := randomBytes(8 * MiB)
		upload(t, c, "par/m.bin", v1)
		v2 := randomBytes(9*MiB + 3)
		var once sync.Once
		replace := roundTrip(func(r *http.Request) (*http.Response, error) {
			if rangeFrom(r) >= 4*MiB {
				once.Do(func() { upload(t, c, "par/m.bin", v2) })
			}
			return http.DefaultTransport.RoundTrip(r)
		})
		out := partFile(t)
		var told []string
		etag, err := client.New(url, &http.Client{Transport: replace}).Download(ctx, "b", "par/m.bin", out, client.DownloadOptions{
			Parallel: 2, RangeSize: MiB, Retry: fast, OnETag: func(e string) { told = append(told, e) }})
		if err != nil || len(told) != 2 || told[1] != etag || told[0] == etag {
			t.Fatalf("etag %q, told %v, %v", etag, told, err)
		}
		if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, v2) {
			t.Fatalf("%d bytes, not v2's %d", len(got), len(v2))
		}
	})
}
