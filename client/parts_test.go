package client_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/client"
)

func parts(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/parts/")
}

// Parts in flight at once, some cut half-way and some whose answer is lost:
// retries cost no bytes, and the file is byte-exact.
func TestParallelUploadThroughFaults(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		tr := &faulty{
			cut:  func(n int64, r *http.Request) bool { return parts(r) && n%3 == 0 },
			lose: func(n int64, r *http.Request) bool { return parts(r) && n%4 == 0 },
		}
		c := client.New(url, &http.Client{Transport: tr})
		data := randomBytes(26 * MiB)
		var (
			mu   sync.Mutex
			last int64
		)
		f, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), "b", "par/flaky.bin", client.UploadOptions{
			Parallel: 4, PartSize: 5 * MiB, Retry: fast,
			Progress: func(done, total int64) {
				mu.Lock()
				defer mu.Unlock()
				if done < 0 || done > total || total != int64(len(data)) {
					t.Errorf("progress %d of %d", done, total)
				}
				last = done
			}})
		if err != nil {
			t.Fatal(err)
		}
		if f.Bytes != int64(len(data)) || last != f.Bytes {
			t.Fatalf("file = %+v, last progress %d", f, last)
		}
		if tr.faults.Load() < 2 {
			t.Fatalf("only %d faults were injected", tr.faults.Load())
		}
		if !bytes.Equal(download(t, client.New(url, nil), "b", "par/flaky.bin"), data) {
			t.Fatal("the uploaded bytes differ")
		}
	})
}

// A resumed parallel upload sends only the parts the session lacks.
func TestParallelUploadResumesMissingParts(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		var puts atomic.Int64
		c := client.New(url, &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			if parts(r) {
				puts.Add(1)
			}
			return http.DefaultTransport.RoundTrip(r)
		})})
		data := randomBytes(5*5*MiB + 100)
		s, err := c.Create(ctx, client.NewSession{Bucket: "b", Key: "par/resumed", Size: int64(len(data)), PartSize: 5 * MiB})
		if err != nil || s.PartCount != 6 || s.PartSize != 5*MiB {
			t.Fatalf("create: %+v %v", s, err)
		}
		for _, n := range []int{2, 5} {
			off := int64(n-1) * 5 * MiB
			if _, _, err := c.PutPart(ctx, s.ID, n, bytes.NewReader(data[off:off+5*MiB]), 5*MiB); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := c.Session(ctx, s.ID); err != nil || !got.Parallel || len(got.Parts) != 2 || got.Offset != 0 {
			t.Fatalf("session after parts 2 and 5: %+v %v", got, err)
		}
		puts.Store(0)
		f, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), "b", "par/resumed", client.UploadOptions{Session: s.ID, Parallel: 3})
		if err != nil || f.Bytes != int64(len(data)) {
			t.Fatalf("resume: %+v %v", f, err)
		}
		if n := puts.Load(); n != 4 {
			t.Fatalf("the resume sent %d parts, want the 4 missing", n)
		}
		if !bytes.Equal(download(t, c, "b", "par/resumed"), data) {
			t.Fatal("bytes differ after resume")
		}
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
