package session

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// BenchmarkUpload compares, on the same real S3 server, a session upload
// (Redis metadata, held-back tails, one UploadPart per part) with a direct
// multipart upload of the same bytes through the same kind of client, in
// parts of max(chunk, 5 MiB) as a well-written direct client would send.
// Each iteration does one of each, alternating which goes first, so disk
// writeback and cache drift on the S3 server hit both alike; the metric that
// matters is session/direct.
//
//	CI=1 scripts/test.sh -run '^$' -bench Upload -benchtime 6x ./session/
func BenchmarkUpload(b *testing.B) { benchUpload(b, "", false) }

// BenchmarkUploadSHA256 is BenchmarkUpload with a SHA-256 asked for at
// create: its cost beside the CRC32C every upload computes.
func BenchmarkUploadSHA256(b *testing.B) { benchUpload(b, AlgorithmSHA256, false) }

// BenchmarkUploadChunkCRC is BenchmarkUpload with each chunk's CRC32C
// given (Upload-Checksum), as the Go client and the CLI send it: S3 then
// gets it as a header, where it otherwise comes in a trailer.
func BenchmarkUploadChunkCRC(b *testing.B) { benchUpload(b, "", true) }

// benchUpload uploads 64 MiB through sessions in chunks of 1, 8 and 64 MiB,
// alternating with the same upload straight to S3, and reports the ratio.
func benchUpload(b *testing.B, algorithm string, chunkCRC bool) {
	const size = 64 << 20
	data := randomBytes(size)
	for _, chunk := range []int{1 << 20, 8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("chunk=%dMiB", chunk>>20), func(b *testing.B) {
			f := redisS3(b)
			client, bkt := testsvc.S3(b)
			direct := s3blob.New(client, bkt, "")
			part := max(chunk, int(bucket.MinPartSize))
			ctx := context.Background()
			var tDirect, tSession time.Duration
			upDirect := func(i int) {
				start := time.Now()
				testsvc.DirectUpload(b, direct, fmt.Sprintf("direct/%d", i), data, part)
				tDirect += time.Since(start)
			}
			upSession := func(i int) {
				start := time.Now()
				in, err := f.svc.CreateSpec(ctx, Spec{Bucket: "bench", Key: fmt.Sprintf("s/%d", i), Size: size, ChecksumAlgorithm: algorithm})
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < size; off += chunk {
					n := min(chunk, size-off)
					var sum *Checksum
					if chunkCRC {
						sum = NewChecksum("crc32c", data[off:off+n])
					}
					if _, _, err := f.svc.Append(ctx, in.ID, Chunk{Offset: int64(off), Total: -1, Len: int64(n), Body: bytes.NewReader(data[off : off+n]), Checksum: sum}); err != nil {
						b.Fatal(err)
					}
				}
				tSession += time.Since(start)
			}
			upDirect(-1) // untimed: see BenchmarkUploads in package tus
			upSession(-1)
			tDirect, tSession = 0, 0
			s3Before := f.s3.snapshot()
			b.SetBytes(2 * size)
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					upDirect(i)
					upSession(i)
				} else {
					upSession(i)
					upDirect(i)
				}
			}
			mbps := func(d time.Duration) float64 { return float64(b.N) * size / (1 << 20) / d.Seconds() }
			b.ReportMetric(mbps(tDirect), "direct_MiB/s")
			b.ReportMetric(mbps(tSession), "session_MiB/s")
			b.ReportMetric(tDirect.Seconds()/tSession.Seconds(), "session/direct")
			counts := diff(s3Before, f.s3.snapshot())
			b.ReportMetric(float64(counts["UploadPart"]+counts["PutObject"])/float64(b.N*(size/chunk)), "s3writes/append")
		})
	}
}
