package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testserver"
)

func crc32cHeader(b []byte) string {
	sum := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return "crc32c " + base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
}

// checksums records, for each append, the Upload-Checksum sent and the
// one its bytes really have; flip, when set, damages one byte of the
// appends it picks on the way (after the client computed the checksum).
type checksums struct {
	flip     func(n int64) bool
	n        atomic.Int64
	mu       sync.Mutex
	sent     []string
	real     []string
	statuses []int
}

func (c *checksums) RoundTrip(r *http.Request) (*http.Response, error) {
	if !appends(r) || r.ContentLength <= 0 {
		return http.DefaultTransport.RoundTrip(r)
	}
	n := c.n.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.sent = append(c.sent, r.Header.Get("Upload-Checksum"))
	c.real = append(c.real, crc32cHeader(body))
	c.mu.Unlock()
	if c.flip != nil && c.flip(n) {
		body = bytes.Clone(body)
		body[len(body)/3] ^= 0x20
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.statuses = append(c.statuses, resp.StatusCode)
		c.mu.Unlock()
	}
	return resp, err
}

// Every chunk the client sends carries the CRC-32C of its bytes.
func TestUploadSendsChecksums(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		tr := &checksums{}
		c := client.New(url, &http.Client{Transport: tr})
		data := randomBytes(11*MiB + 7)
		if _, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "b", "summed", client.UploadOptions{ChunkSize: 5 * MiB}); err != nil {
			t.Fatal(err)
		}
		if len(tr.sent) != 3 {
			t.Fatalf("%d appends, want 3", len(tr.sent))
		}
		for i := range tr.sent {
			if tr.sent[i] == "" || tr.sent[i] != tr.real[i] {
				t.Fatalf("append %d sent Upload-Checksum %q; its bytes have %q", i, tr.sent[i], tr.real[i])
			}
		}
		if !bytes.Equal(download(t, c, "b", "summed"), data) {
			t.Fatal("bytes differ")
		}
	})
}

// A body that is not a Seeker cannot be read twice, so it goes without a
// checksum rather than being buffered whole.
func TestAppendWithoutSeekerSendsNoChecksum(t *testing.T) {
	url := testserver.Start(t, "embedded").URL
	tr := &checksums{}
	c := client.New(url, &http.Client{Transport: tr})
	ctx := context.Background()
	s, err := c.CreateSession(ctx, "b", "plain", "", 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, f, err := c.Append(ctx, s.ID, 0, io.MultiReader(strings.NewReader("hello")), 5); err != nil || f == nil {
		t.Fatalf("append: %v %v", f, err)
	}
	if len(tr.sent) != 1 || tr.sent[0] != "" {
		t.Fatalf("Upload-Checksum sent: %q", tr.sent)
	}
}

// Needs the session engine to verify Chunk.Checksum (the lead's change).
// A byte flipped on the way is caught by the server (400
// CHECKSUM_MISMATCH, nothing kept); the client reads the chunk again and
// resends it, and the file arrives byte-exact.
func TestUploadResendsDamagedChunk(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		tr := &checksums{flip: func(n int64) bool { return n == 2 || n == 4 }}
		c := client.New(url, &http.Client{Transport: tr})
		data := randomBytes(16 * MiB)
		f, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "b", "damaged", client.UploadOptions{ChunkSize: 5 * MiB, Retry: fast})
		if err != nil {
			t.Fatal(err)
		}
		if f.Bytes != int64(len(data)) || !bytes.Equal(download(t, c, "b", "damaged"), data) {
			t.Fatal("the damaged chunks were stored: bytes differ")
		}
		mismatches := 0
		for _, s := range tr.statuses {
			if s == http.StatusBadRequest {
				mismatches++
			}
		}
		if mismatches != 2 || len(tr.statuses) != 6 {
			t.Fatalf("answers %v: want the 2 damaged appends refused and resent (6 in all)", tr.statuses)
		}
	})
}

// Needs the engine change too. A chunk that is damaged every time is
// given up on, not resent forever.
func TestUploadGivesUpOnAlwaysDamagedChunk(t *testing.T) {
	url := testserver.Start(t, "embedded").URL
	tr := &checksums{flip: func(int64) bool { return true }}
	c := client.New(url, &http.Client{Transport: tr})
	data := randomBytes(MiB)
	_, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "b", "hopeless", client.UploadOptions{Retry: fast})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "CHECKSUM_MISMATCH" {
		t.Fatalf("err = %v, want CHECKSUM_MISMATCH in the end", err)
	}
	if n := tr.n.Load(); n < 2 || n > 10 {
		t.Fatalf("%d attempts: want a few resends, bounded", n)
	}
}

// A 503's Retry-After sets the wait before the next attempt.
func TestRetryAfterHonoured(t *testing.T) {
	url := testserver.Start(t, "embedded").URL
	var first atomic.Bool
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if appends(r) && first.CompareAndSwap(false, true) {
			_, _ = io.Copy(io.Discard, r.Body)
			return &http.Response{StatusCode: 503, Request: r, Header: http.Header{"Retry-After": {"1"}, "Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{"code":"UNAVAILABLE","status":503,"detail":"injected"}`))}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c := client.New(url, &http.Client{Transport: tr})
	start := time.Now()
	if _, err := c.Upload(context.Background(), strings.NewReader("x"), 1, "b", "later", client.UploadOptions{Retry: fast}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %s, before the server's Retry-After of 1s", d)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
