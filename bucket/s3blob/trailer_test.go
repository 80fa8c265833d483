package s3blob

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/crc32c"
)

// The encoding is as long as encodedLength says (the request's
// Content-Length), and decodes to the bytes and their CRC32C.
func TestCRCTrailerEncoding(t *testing.T) {
	for _, size := range []int{0, 1, trailerChunk - 1, trailerChunk, trailerChunk + 1, 3*trailerChunk + 17} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		enc, err := io.ReadAll(iotestHalfReader{newCRCTrailer(bytes.NewReader(data), int64(size))})
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(enc)) != encodedLength(int64(size)) {
			t.Fatalf("%d bytes: encoded to %d, encodedLength says %d", size, len(enc), encodedLength(int64(size)))
		}
		got, trailer := decodeChunked(t, enc)
		if !bytes.Equal(got, data) || trailer != trailerHeader+":"+crc32c.Encode(crc32c.Checksum(data)) {
			t.Fatalf("%d bytes: decoded %d bytes (equal: %v), trailer %q", size, len(got), bytes.Equal(got, data), trailer)
		}
	}
}

// iotestHalfReader reads at most half of what is asked, as a transport
// with a small buffer does.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) { return h.r.Read(p[:(len(p)+1)/2]) }

func decodeChunked(t *testing.T, enc []byte) ([]byte, string) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(enc))
	var out []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(line, "\r\n"), 16, 64)
		if err != nil {
			t.Fatalf("chunk size line %q: %v", line, err)
		}
		if n == 0 {
			trailer, _ := r.ReadString('\n')
			if end, _ := r.ReadString('\n'); end != "\r\n" {
				t.Fatalf("no blank line after the trailer: %q", end)
			}
			return out, strings.TrimSuffix(trailer, "\r\n")
		}
		chunk := make([]byte, n+2)
		if _, err := io.ReadFull(r, chunk); err != nil || string(chunk[n:]) != "\r\n" {
			t.Fatalf("chunk of %d: %v", n, err)
		}
		out = append(out, chunk[:n]...)
	}
}

// BenchmarkCRCTrailer: ferryd's own cost of sending a part with its CRC32C.
func BenchmarkCRCTrailer(b *testing.B) {
	data := make([]byte, 8<<20)
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{newCRCTrailer(bytes.NewReader(data), int64(len(data)))}, buf); err != nil {
			b.Fatal(err)
		}
	}
}
