package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
	"github.com/ferryhq/ferry/registry"
)

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// A SHA-256 asked for at create runs across appends taken by two
// instances (its state travels in the record), held-back chunks and
// parts alike, and the file carries it with its CRC32C.
func TestSHA256AcrossInstances(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		other := newService(t, f.store, f.blobs, f.s3)
		data := randomBytes(11*MiB + 17)
		in, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "sha", Size: int64(len(data)), ChecksumAlgorithm: AlgorithmSHA256})
		if err != nil {
			t.Fatal(err)
		}
		var file *registry.File
		for i, off := 0, 0; off < len(data); i++ {
			n := min([]int{MiB, 6 * MiB, 300 << 10}[i%3], len(data)-off)
			svc := []*Service{f.svc, other.svc}[i%2]
			_, file, err = svc.Append(ctx, in.ID, Chunk{Offset: int64(off), Total: -1, Len: int64(n), Body: bytes.NewReader(data[off : off+n])})
			if err != nil {
				t.Fatalf("append at %d: %v", off, err)
			}
			off += n
		}
		if file == nil || file.Checksums == nil || file.Checksums.SHA256 != sha256Of(data) {
			t.Fatalf("file %+v, want sha256 %s", file, sha256Of(data))
		}
		wantCRC(t, f, *file, data)
		// Parts cannot be hashed in order: refused, and the reason given.
		in, err = f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "sha-parts", Size: 2 * partSize, PartSize: partSize, ChecksumAlgorithm: AlgorithmSHA256})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := putPart(f.svc, in.ID, 1, randomBytes(int(2*partSize))); !errcode.Is(err, ErrUploadMode) {
			t.Fatalf("a part to a SHA-256 session: %v, want UPLOAD_MODE", err)
		}
	})
}

// A file whose digests differ from those declared at create is not
// published: the old file stays byte-exact, the session stays for the
// client to abort, and the answer names both values. The right ones
// publish.
func TestDeclaredChecksums(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		old := randomBytes(3 * MiB)
		upload(t, f, "doc", old, MiB)
		data := randomBytes(7*MiB + 1)
		wrongSHA := sha256Of(append([]byte("x"), data...))
		for _, tc := range []struct {
			name string
			want registry.Checksums
		}{
			{"sha256", registry.Checksums{SHA256: wrongSHA}},
			{"crc32c", registry.Checksums{CRC32C: crc32c.Encode(crc32c.Checksum(data) ^ 1)}},
		} {
			in, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "doc", Size: int64(len(data)), Checksums: &tc.want})
			if err != nil {
				t.Fatal(err)
			}
			_, file, err := appendBytes(t, f, in.ID, 0, data)
			e := errcode.From(err)
			if !errcode.Is(err, ErrChecksumMismatch) || file != nil || e.Fields["algorithm"] != tc.name || e.Fields["actual"] == nil {
				t.Fatalf("%s: append of the whole file: %v (fields %v), file %v; want CHECKSUM_MISMATCH naming both values", tc.name, err, e.Fields, file)
			}
			cur, err := f.files.Get(ctx, "b", "doc")
			if err != nil || !bytes.Equal(readAll(t, f, cur), old) {
				t.Fatalf("%s: after the refused completion the old file reads differently (%v)", tc.name, err)
			}
			if got, err := f.svc.Get(ctx, in.ID); err != nil || got.Completed || got.Offset != int64(len(data)) {
				t.Fatalf("%s: the session is %+v, %v; want it kept, whole and not completed", tc.name, got, err)
			}
			if err := f.svc.Abort(ctx, in.ID); err != nil {
				t.Fatal(err)
			}
		}
		right := &registry.Checksums{SHA256: sha256Of(data), CRC32C: crc32c.Encode(crc32c.Checksum(data))}
		in, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "doc", Size: int64(len(data)), Checksums: right})
		if err != nil {
			t.Fatal(err)
		}
		if _, file, err := appendBytes(t, f, in.ID, 0, data); err != nil || file == nil || *file.Checksums != *right {
			t.Fatalf("with the right checksums: %v, %+v", err, file)
		}
		for _, bad := range []Spec{{Checksums: &registry.Checksums{SHA256: "c2hvcnQ="}}, {Checksums: &registry.Checksums{CRC32C: "nope"}},
			{ChecksumAlgorithm: "md5"}} {
			bad.Bucket, bad.Key, bad.Size = "b", "bad", 1
			if _, err := f.svc.CreateSpec(ctx, bad); !errcode.Is(err, ErrInvalidChecksum) {
				t.Errorf("create with %+v: %v, want INVALID_CHECKSUM", bad, err)
			}
		}
	})
}

// A bucket whose setting asks for SHA-256 gets one on every file: a
// sequential upload computes it as it goes, parallel parts and a
// concatenation get it read back once the file is published. A client that
// asked for SHA-256 itself still cannot send parts (it would be checked
// only after publication); other buckets get none.
func TestBucketSHA256(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.svc.cfg.SHA256Buckets = []string{"hashed"}
		check := func(name string, file *registry.File, data []byte) {
			t.Helper()
			if file == nil || file.Checksums == nil || file.Checksums.SHA256 != sha256Of(data) {
				t.Fatalf("%s: file %+v, want sha256 %s", name, file, sha256Of(data))
			}
			got, err := f.files.Get(ctx, file.Bucket, file.Key)
			if err != nil || got.Checksums == nil || got.Checksums.SHA256 != sha256Of(data) || got.ID != file.ID {
				t.Fatalf("%s: indexed %+v (%v), want sha256 %s", name, got, err, sha256Of(data))
			}
			wantCRC(t, f, got, data)
		}

		data := randomBytes(6*MiB + 3)
		in, err := f.svc.Create(ctx, "hashed", "seq", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		_, file, err := appendBytes(t, f, in.ID, 0, data)
		if err != nil {
			t.Fatal(err)
		}
		check("sequential", file, data)

		data = randomBytes(2*partSize + 7)
		in, err = f.svc.CreateSpec(ctx, Spec{Bucket: "hashed", Key: "parts", Size: int64(len(data)), PartSize: partSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{3, 1, 2} {
			if _, file, err = putPart(f.svc, in.ID, n, data); err != nil {
				t.Fatalf("part %d: %v", n, err)
			}
		}
		check("parts", file, data)

		a, b := randomBytes(MiB), randomBytes(2*MiB+5)
		ids := []string{uploadPiece(t, f, a), uploadPiece(t, f, b)}
		final, err := f.svc.Create(ctx, "hashed", "joined", "", int64(len(a)+len(b)))
		if err != nil {
			t.Fatal(err)
		}
		_, joined, err := f.svc.Concat(ctx, final.ID, ids)
		if err != nil {
			t.Fatal(err)
		}
		check("concatenation", &joined, append(a, b...))

		in, err = f.svc.CreateSpec(ctx, Spec{Bucket: "hashed", Key: "asked", Size: 2 * partSize, PartSize: partSize, ChecksumAlgorithm: AlgorithmSHA256})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := putPart(f.svc, in.ID, 1, randomBytes(int(2*partSize))); !errcode.Is(err, ErrUploadMode) {
			t.Fatalf("a part to a session whose client asked for SHA-256: %v, want UPLOAD_MODE", err)
		}

		data = randomBytes(partSize + 1)
		in, err = f.svc.CreateSpec(ctx, Spec{Bucket: "plain", Key: "parts", Size: int64(len(data)), PartSize: partSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{2, 1} {
			if _, file, err = putPart(f.svc, in.ID, n, data); err != nil {
				t.Fatalf("part %d: %v", n, err)
			}
		}
		if file == nil || file.Checksums == nil || file.Checksums.SHA256 != "" {
			t.Fatalf("a file of a bucket without the setting: %+v, want a CRC32C only", file)
		}
	})
}
