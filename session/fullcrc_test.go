package session

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/crc32c"
)

// rottenPart stores part 1 with one byte flipped, as failing storage or a
// bad disk would. With lie it reports the part's CRC as that of the bytes
// it was given, so only storage can still tell; without, it reports what
// storage checked, and the session's own CRC must tell.
type rottenPart struct {
	bucket.Multipart
	lie    bool
	rotted atomic.Int32
}

func (m *rottenPart) UploadPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64, sum *bucket.Checksum) (bucket.Part, error) {
	if n != 1 {
		return m.Multipart.UploadPart(ctx, key, uploadID, n, r, size, sum)
	}
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return bucket.Part{}, err
	}
	crc := crc32c.Checksum(b)
	bad := bytes.Clone(b)
	bad[len(bad)/2] ^= 1
	p, err := m.Multipart.UploadPart(ctx, key, uploadID, n, bytes.NewReader(bad), size, sum)
	if err == nil && p.CRC32C != nil {
		if m.lie {
			p.CRC32C = &crc
		}
		m.rotted.Add(1)
	}
	return p, err
}

// Storage checks the whole object at completion: parts go up with their
// CRC32Cs, and the completion lists them with their combination, which
// must equal the CRC the session kept of the bytes it took. Rot that
// storage reports faithfully is caught by the session's CRC; rot hidden
// from the session is refused by storage. Either way nothing is published
// and the old file stays. (versitygw and MinIO both check: run with
// FERRY_TEST_S3_SERVER=minio for MinIO.)
func TestStorageChecksTheWholeObject(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	old := randomBytes(100)
	upload(t, f, "whole", old, 100)
	data := randomBytes(12<<20 + 3)
	for _, tc := range []struct {
		lie  bool
		want string
	}{{false, "do not add up"}, {true, "storage refused to assemble"}} {
		rot := &rottenPart{Multipart: f.blobs.Multipart, lie: tc.lie}
		blobs := f.blobs
		blobs.Multipart = rot
		g := newService(t, f.store, blobs, nil)
		in, err := g.svc.Create(ctx, "b", "whole", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		_, file, err := g.svc.Append(ctx, in.ID, Chunk{Offset: 0, Total: -1, Len: int64(len(data)), Body: bytes.NewReader(data)})
		if rot.rotted.Load() == 0 {
			t.Fatal("part 1 went up without a CRC32C: the upload is not a full-object checksum upload")
		}
		if err == nil || file != nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("lie=%v: completion over a rotten part: %v, file %v; want %q", tc.lie, err, file, tc.want)
		}
		cur, err := f.files.Get(ctx, "b", "whole")
		if err != nil || !bytes.Equal(readAll(t, f, cur), old) {
			t.Fatalf("lie=%v: after the refused completion the old file reads differently (%v)", tc.lie, err)
		}
		if err := g.svc.Abort(ctx, in.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Without the rot the same upload completes.
	wantCRC(t, f, upload(t, f, "whole", data, 5<<20), data)
}

// With PlainParts (s3.full_object_checksums: false) a multipart upload is
// created without the full-object check and its parts go up plain; the
// file still gets the CRC32C the session kept.
func TestPlainParts(t *testing.T) {
	for _, plain := range []bool{false, true} {
		f := redisS3(t)
		svc, err := New(f.store, f.files.Places(), f.files, Config{TTL: time.Hour, MaxSize: 1 << 30, PlainParts: plain}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		f.svc = svc
		data := randomBytes(6*MiB + 1)
		in, err := f.svc.Create(context.Background(), "b", "plain", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		_, file, err := appendBytes(t, f, in.ID, 0, data)
		if err != nil {
			t.Fatal(err)
		}
		wantCRC(t, f, *file, data)
		rec, _, err := f.svc.load(context.Background(), in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.FullCRC == plain {
			t.Errorf("PlainParts %v: the upload was created with the full-object check: %v", plain, rec.FullCRC)
		}
	}
}
