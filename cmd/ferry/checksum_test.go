package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/testserver"
)

// sumCheck records each append's or part's Upload-Checksum next to the
// CRC-32C of the bytes it carried; flip damages the ones it picks on the
// way.
type sumCheck struct {
	flip   func(n int) bool
	mu     sync.Mutex
	n      int
	bad    []string // appends whose header does not match their bytes
	status []int
}

func (s *sumCheck) RoundTrip(r *http.Request) (*http.Response, error) {
	sends := r.Method == http.MethodPost || r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/parts/")
	if !sends || !strings.Contains(r.URL.Path, "/session:") || r.ContentLength <= 0 {
		return http.DefaultTransport.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	sum := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	want := "crc32c " + base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
	s.mu.Lock()
	s.n++
	n := s.n
	if got := r.Header.Get("Upload-Checksum"); got != want {
		s.bad = append(s.bad, got+" for "+want)
	}
	s.mu.Unlock()
	if s.flip != nil && s.flip(n) {
		body = bytes.Clone(body)
		body[0] ^= 1
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		s.mu.Lock()
		s.status = append(s.status, resp.StatusCode)
		s.mu.Unlock()
	}
	return resp, err
}

// in5MiB is how the checksum tests send 12 MiB + 1: three chunks in
// order, or three parts at once.
var in5MiB = map[string][]string{
	"chunks": {"--parallel", "1", "--chunk-size", "5MiB"},
	"parts":  {"--parallel", "4", "--part-size", "5MiB"},
}

// `ferry upload` sends the CRC-32C of every chunk and part.
func TestUploadSendsChecksums(t *testing.T) {
	url := testserver.Start(t, "embedded").URL
	for name, flags := range in5MiB {
		t.Run(name, func(t *testing.T) {
			tr := &sumCheck{}
			f := ferry{url: url, state: t.TempDir(), hc: &http.Client{Transport: tr}}
			src := filepath.Join(t.TempDir(), "a.bin")
			data := writeRandom(t, src, 12*MiB+1)
			f.must(t, append(append([]string{"upload"}, flags...), "--quiet", src, "b/a.bin")...)
			if tr.n != 3 || len(tr.bad) > 0 {
				t.Fatalf("%d requests with bytes; checksums missing or wrong: %q", tr.n, tr.bad)
			}
			dst := filepath.Join(t.TempDir(), "a.out")
			f.must(t, "download", "--quiet", "b/a.bin", dst)
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Fatal("bytes differ")
			}
		})
	}
}

// Needs the session engine to verify Chunk.Checksum (the lead's change):
// a chunk or part damaged on the way is refused and resent from the file.
func TestUploadResendsDamagedChunk(t *testing.T) {
	url := testserver.Start(t, "redis+s3").URL
	for name, flags := range in5MiB {
		t.Run(name, func(t *testing.T) {
			tr := &sumCheck{flip: func(n int) bool { return n == 2 }}
			f := ferry{url: url, state: t.TempDir(), hc: &http.Client{Transport: tr}}
			src := filepath.Join(t.TempDir(), "a.bin")
			data := writeRandom(t, src, 12*MiB+1)
			f.must(t, append(append([]string{"upload"}, flags...), "--quiet", src, "b/a.bin")...)
			dst := filepath.Join(t.TempDir(), "a.out")
			f.must(t, "download", "--quiet", "b/a.bin", dst)
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Fatal("the damaged request was stored: bytes differ")
			}
			refused := 0
			for _, s := range tr.status {
				if s == http.StatusBadRequest {
					refused++
				}
			}
			// In order, the damaged one is the second answer; parts answer in any order.
			if len(tr.status) != 4 || refused != 1 || name == "chunks" && tr.status[1] != http.StatusBadRequest {
				t.Fatalf("answers %v: want the damaged second request refused, then resent", tr.status)
			}
		})
	}
}
