package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash/crc32"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/client"
)

// changing serves data, except that once the first read past half the
// file has been served, later reads of that region see it changed: a
// local file written while it uploads.
type changing struct {
	data    []byte
	touched atomic.Bool
}

func (c *changing) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, c.data[min(off, int64(len(c.data))):])
	if off+int64(n) > int64(len(c.data)/2) && c.touched.Swap(true) {
		for i := range n {
			if off+int64(i) == int64(len(c.data)/2) {
				p[i] ^= 0x40
			}
		}
	}
	if n < len(p) {
		return n, errors.New("EOF")
	}
	return n, nil
}

// With Verify the server publishes the file only if it is the one the
// client read: in order it computes and checks the SHA-256 the client
// declares with the last chunk, with parts the CRC32C declared at create.
// A file that changes under the upload is refused and nothing published.
func TestUploadVerify(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		data := randomBytes(13*MiB + 5)
		sha := sha256.Sum256(data)
		crc := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
		wantCRC := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
		for _, parallel := range []int{1, 3} {
			f, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), "b", "verified", client.UploadOptions{Verify: true, Parallel: parallel, ChunkSize: 5 * MiB, PartSize: 5 * MiB})
			if err != nil || f.Checksums == nil || f.Checksums.CRC32C != wantCRC {
				t.Fatalf("parallel %d: %+v, %v; want crc32c %s", parallel, f.Checksums, err, wantCRC)
			}
			if wantSHA := base64.StdEncoding.EncodeToString(sha[:]); parallel == 1 && f.Checksums.SHA256 != wantSHA {
				t.Fatalf("in order: sha256 %q, want %s", f.Checksums.SHA256, wantSHA)
			}
		}
		for _, parallel := range []int{1, 3} {
			_, err := c.Upload(ctx, &changing{data: data}, int64(len(data)), "b", "changed", client.UploadOptions{Verify: true, Parallel: parallel, ChunkSize: 5 * MiB, PartSize: 5 * MiB})
			var e *client.Error
			if !errors.As(err, &e) || e.Code != "CHECKSUM_MISMATCH" || e.Algorithm == "" || e.Expected == e.Actual {
				t.Fatalf("parallel %d: a file changed while it uploaded: %v, want CHECKSUM_MISMATCH of the whole file", parallel, err)
			}
			if _, err := c.Stat(ctx, "b", "changed"); !client.IsNotFound(err) {
				t.Fatalf("parallel %d: the refused file was published: %v", parallel, err)
			}
		}
	})
}
