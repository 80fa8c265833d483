package main

import (
	"bytes"
	"crypto/sha256"
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

// tampering flips one byte of every GET :content answer's body on the way.
type tampering struct{}

func (tampering) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, ":content") || resp.StatusCode >= 300 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		body[len(body)/2] ^= 1
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// An upload prints the file's checksums, and a download whose bytes do not
// match the file's Repr-Digest fails loudly, keeping the .part; the next
// run downloads the file anew.
func TestDownloadVerifiesDigests(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src.bin")
		data := writeRandom(t, src, 6*MiB+1)
		sha := sha256.Sum256(data)
		out := f.must(t, "upload", "--parallel", "1", src, "b/v.bin")
		if !strings.Contains(out, `"sha256": "`+base64.StdEncoding.EncodeToString(sha[:])+`"`) {
			t.Fatalf("upload output does not give the file's SHA-256:\n%s", out)
		}
		if out := f.must(t, "verify", "b/v.bin", src); !strings.Contains(out, "matches b/v.bin") {
			t.Fatalf("verify of the same file: %q", out)
		}
		other := filepath.Join(dir, "other.bin")
		writeRandom(t, other, len(data))
		if _, _, err := f.run(t, "verify", "b/v.bin", other); err == nil || !strings.Contains(err.Error(), "differs from b/v.bin") {
			t.Fatalf("verify of another file: %v", err)
		}
		dest := filepath.Join(dir, "v.bin")
		for _, parallel := range []string{"1", "3"} {
			bad := f
			bad.hc = &http.Client{Transport: tampering{}}
			_, errOut, err := bad.run(t, "download", "--parallel", parallel, "--part-size", "2MiB", "b/v.bin", dest)
			if err == nil || !strings.Contains(err.Error(), "do not match") || !strings.Contains(err.Error(), "kept for inspection") {
				t.Fatalf("--parallel %s: a tampered download: %v\n%s", parallel, err, errOut)
			}
			if _, err := os.Stat(dest + ".part"); err != nil {
				t.Fatalf("--parallel %s: the .part was not kept: %v", parallel, err)
			}
			if _, err := os.Stat(dest); !os.IsNotExist(err) {
				t.Fatalf("--parallel %s: the tampered file was renamed into place", parallel)
			}
		}
		f.must(t, "download", "b/v.bin", dest)
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("the run after the tampered one did not download the file anew")
		}
	})
}
