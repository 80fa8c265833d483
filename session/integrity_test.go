package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
	"github.com/ferryhq/ferry/registry"
)

// hangUp is a chunk body that cancels its request once it has been read
// to the end: the client sent every byte and closed before the answer.
type hangUp struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (h *hangUp) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF {
		h.cancel()
	}
	return n, err
}

func mustFile(t *testing.T, f *fixture, key string) registry.File {
	t.Helper()
	file, err := f.files.Get(context.Background(), "b", key)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// checkReads says the file's record and its stored bytes agree, and the
// bytes are want.
func checkReads(t *testing.T, f *fixture, key string, want []byte) {
	t.Helper()
	file := mustFile(t, f, key)
	got := readAll(t, f, file)
	if file.Bytes != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("%s: record says %d bytes, storage has %d, want %d (equal: %v)", key, file.Bytes, len(got), len(want), bytes.Equal(got, want))
	}
	p, err := f.files.Places().Place(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	head, err := p.Backend.Head(context.Background(), p.Object(key))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Trim(head.ETag, `"`) != strings.Trim(file.ETag, `"`) {
		t.Fatalf("%s: record ETag %s, storage ETag %s", key, file.ETag, head.ETag)
	}
}

// A client that hangs up right after the last byte of a replacement still
// gets its file completed: record and storage agree on the new version.
func TestHangUpAfterLastChunkCompletes(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		for _, size := range []int{1 << 20, 7 << 20} {
			key := "replaced"
			old := []byte("old bytes!")
			upload(t, f, key, old, len(old))
			data := randomBytes(size)
			in, err := f.svc.Create(context.Background(), "b", key, "", int64(size))
			if err != nil {
				t.Fatal(err)
			}
			last := size - 1000
			if _, _, err := appendBytes(t, f, in.ID, 0, data[:last]); err != nil {
				t.Fatal(err)
			}
			checkReads(t, f, key, old) // not replaced before the last byte
			ctx, cancel := context.WithCancel(context.Background())
			_, _, _ = f.svc.Append(ctx, in.ID, Chunk{Offset: int64(last), Total: -1, Len: 1000,
				Body: &hangUp{r: bytes.NewReader(data[last:]), cancel: cancel}})
			checkReads(t, f, key, data)
			if got, err := f.svc.Get(context.Background(), in.ID); err != nil || !got.Completed {
				t.Fatalf("session after hang-up: %+v %v", got, err)
			}
		}
	})
}

// A held-back merge that never got recorded (the process died between
// writing the merged segment and saving the record) leaves the session
// whole: the record never points at overwritten bytes.
func TestUnrecordedMergeDoesNotWedge(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	data := randomBytes(6 << 20)
	in, err := f.svc.Create(ctx, "b", "merge", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	const piece = 4 << 10
	off := 0
	for range maxTailSegs {
		if _, _, err := appendBytes(t, f, in.ID, int64(off), data[off:off+piece]); err != nil {
			t.Fatal(err)
		}
		off += piece
	}
	// The 17th chunk merges. Run the engine's write and throw the record
	// away, as a crash before the save would.
	rec, _, err := f.svc.load(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := f.svc.engine("")
	f.svc.held.Remove("") // keep the cache: the point is the store
	if err := eng.write(ctx, rec, 0, bytes.NewReader(randomBytes(piece)), piece, nil); err != nil {
		t.Fatal(err)
	}
	if rec.TailSegs != 1 {
		t.Fatalf("the 17th chunk did not merge: %d segments", rec.TailSegs)
	}
	// Another instance (empty cache) goes on from the saved record.
	other := newService(t, f.store, f.blobs, f.s3)
	for off < len(data) {
		n := min(piece*40, len(data)-off)
		if _, _, err := appendBytes(t, other, in.ID, int64(off), data[off:off+n]); err != nil {
			t.Fatalf("append at %d after an unrecorded merge: %v", off, err)
		}
		off += n
	}
	checkReads(t, f, "merge", data)
}

// Held-back segments outlive the record that points at them, however long
// the session keeps going.
func TestTailOutlivesRecord(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	in, err := f.svc.Create(ctx, "b", "slow", "", 6<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, _, err := appendBytes(t, f, in.ID, int64(i*1024), randomBytes(1024)); err != nil {
			t.Fatal(err)
		}
		rec, _, err := f.svc.load(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.store.Get(ctx, recordKey(in.ID))
		if err != nil {
			t.Fatal(err)
		}
		for k := rec.TailFirst; k < rec.TailFirst+rec.TailSegs; k++ {
			seg, err := f.store.Get(ctx, tailKey(in.ID, k))
			if err != nil {
				t.Fatalf("append %d: segment %d: %v", i, k, err)
			}
			if seg.ExpiresAt.Before(r.ExpiresAt) {
				t.Fatalf("append %d: segment %d expires at %v, before its record at %v", i, k, seg.ExpiresAt, r.ExpiresAt)
			}
		}
		f.clock.advance(50 * time.Minute) // the TTL is an hour: each append keeps the session alive
	}
}

// A chunk that does not match its checksum is refused whole, on every
// path: held back, a whole part (S3 verifies it too), a small file's last
// chunk; the right checksum is accepted.
func TestChecksumMismatchKeepsNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		for _, tc := range []struct {
			name  string
			size  int
			chunk int
			algo  string
		}{
			{"held_back", 12 << 20, 1 << 20, "sha256"},
			{"whole_part", 12 << 20, 6 << 20, "crc32c"},
			{"small_last", 3 << 10, 3 << 10, "md5"},
			{"sha1", 12 << 20, 6 << 20, "sha1"},
		} {
			data := randomBytes(tc.size)
			in, err := f.svc.Create(context.Background(), "b", "sum/"+tc.name, "", int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			var file *registry.File
			for off := 0; off < len(data); {
				c := data[off : off+min(tc.chunk, len(data)-off)]
				bad := NewChecksum(tc.algo, append([]byte{c[0] ^ 1}, c[1:]...))
				_, _, err := f.svc.Append(context.Background(), in.ID, Chunk{Offset: int64(off), Total: -1, Len: int64(len(c)), Body: bytes.NewReader(c), Checksum: bad})
				if !errcode.Is(err, ErrChecksumMismatch) {
					t.Fatalf("%s: wrong %s at %d: err = %v, want CHECKSUM_MISMATCH", tc.name, tc.algo, off, err)
				}
				if got, _ := f.svc.Get(context.Background(), in.ID); got.Offset != int64(off) {
					t.Fatalf("%s: a refused chunk moved the offset to %d", tc.name, got.Offset)
				}
				if _, file, err = f.svc.Append(context.Background(), in.ID, Chunk{Offset: int64(off), Total: -1, Len: int64(len(c)), Body: bytes.NewReader(c), Checksum: NewChecksum(tc.algo, c)}); err != nil {
					t.Fatalf("%s: right %s at %d: %v", tc.name, tc.algo, off, err)
				}
				off += len(c)
			}
			if file == nil {
				t.Fatalf("%s: not completed", tc.name)
			}
			checkReads(t, f, "sum/"+tc.name, data)
		}
	})
}

// A body of unknown length that runs past the size is refused before any
// of it is kept.
func TestStreamPastSizeKeepsNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		in, err := f.svc.Create(ctx, "b", "stream", "", 10<<20)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.AppendStream(ctx, in.ID, 0, -1, bytes.NewReader(randomBytes(10<<20+1)))
		if !errcode.Is(err, ErrPastSize) {
			t.Fatalf("err = %v, want CHUNK_PAST_SIZE", err)
		}
		if got, _ := f.svc.Get(ctx, in.ID); got.Offset != 0 {
			t.Fatalf("an oversized stream kept %d bytes", got.Offset)
		}
		data := randomBytes(10 << 20)
		_, file, err := f.svc.AppendStream(ctx, in.ID, 0, -1, bytes.NewReader(data))
		if err != nil || file == nil {
			t.Fatalf("stream: %v %v", file, err)
		}
		checkReads(t, f, "stream", data)
	})
}

// A stream that breaks off keeps its whole pieces.
func TestStreamBreakKeepsWholePieces(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		in, err := f.svc.Create(ctx, "b", "broken", "", 20<<20)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(20 << 20)
		body := io.MultiReader(bytes.NewReader(data[:ingestChunk+100]), errReader{errors.New("connection reset")})
		if _, _, err := f.svc.AppendStream(ctx, in.ID, 0, -1, body); !errcode.Is(err, ErrShortBody) {
			t.Fatalf("err = %v, want SHORT_BODY", err)
		}
		got, _ := f.svc.Get(ctx, in.ID)
		if got.Offset != ingestChunk {
			t.Fatalf("offset %d, want the one whole piece %d", got.Offset, ingestChunk)
		}
		if _, file, err := f.svc.AppendStream(ctx, in.ID, got.Offset, -1, bytes.NewReader(data[got.Offset:])); err != nil || file == nil {
			t.Fatalf("resume: %v %v", file, err)
		}
		checkReads(t, f, "broken", data)
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Completion retried after an earlier attempt completed the upload but
// died before recording it accepts the object only by its identity: the
// composite ETag of the recorded parts, never a same-size stranger.
func TestCompleteFallbackByETag(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	data := randomBytes(11 << 20)
	in, err := f.svc.Create(ctx, "b", "done-before", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := appendBytes(t, f, in.ID, 0, data[:6<<20]); err != nil {
		t.Fatal(err)
	}
	// The last part lands, the record is saved, then completion is cut off
	// after CompleteMultipart: do that step by hand.
	rec, ver, err := f.svc.load(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := f.svc.engine("")
	if err := eng.write(ctx, rec, 0, bytes.NewReader(data[6<<20:]), int64(len(data)-6<<20), nil); err != nil {
		t.Fatal(err)
	}
	rec.Offset, rec.CRC32C = rec.Size, new(crc32c.Checksum(data)) // as the append would have
	if _, err := f.svc.save(ctx, rec, ver, 0); err != nil {
		t.Fatal(err)
	}
	mp := f.blobs.Multipart
	if _, err := mp.CompleteMultipart(ctx, rec.object(), rec.UploadID, rec.Parts); err != nil {
		t.Fatal(err)
	}
	// The client resumes with an empty append: the file is published.
	_, file, err := appendBytes(t, f, in.ID, int64(len(data)), nil)
	if err != nil || file == nil {
		t.Fatalf("retry: %v %v", file, err)
	}
	checkReads(t, f, "done-before", data)

	// Once more, but before the retry a stranger of the same size takes
	// the key: it is not taken for the upload.
	in2, err := f.svc.Create(ctx, "b", "stranger", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := appendBytes(t, f, in2.ID, 0, data[:6<<20]); err != nil {
		t.Fatal(err)
	}
	rec2, ver2, _ := f.svc.load(ctx, in2.ID)
	if err := eng.write(ctx, rec2, 0, bytes.NewReader(data[6<<20:]), int64(len(data)-6<<20), nil); err != nil {
		t.Fatal(err)
	}
	rec2.Offset, rec2.CRC32C = rec2.Size, new(crc32c.Checksum(data))
	if _, err := f.svc.save(ctx, rec2, ver2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := mp.CompleteMultipart(ctx, rec2.object(), rec2.UploadID, rec2.Parts); err != nil {
		t.Fatal(err)
	}
	if _, err := f.blobs.Backend.Put(ctx, rec2.object(), bytes.NewReader(randomBytes(len(data))), int64(len(data)), bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, file, err := appendBytes(t, f, in2.ID, int64(len(data)), nil); err == nil || file != nil {
		t.Fatalf("a same-size stranger was published as the upload: %v", file)
	}
}

// S3 itself refuses a part or object whose checksum does not match, so
// bytes that changed between ferryd and S3 are caught there too.
func TestS3VerifiesChecksums(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	mp := f.blobs.Multipart
	data := randomBytes(64 << 10)
	id, err := mp.CreateMultipart(ctx, "b/verified", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.AbortMultipart(ctx, "b/verified", id)
	for _, algo := range strings.Split(ChecksumAlgorithms, ",") {
		wrong := NewChecksum(algo, data[1:])
		if _, err := mp.UploadPart(ctx, "b/verified", id, 1, bytes.NewReader(data), int64(len(data)), wrong); !errors.Is(err, bucket.ErrBadDigest) {
			t.Errorf("UploadPart with a wrong %s: err = %v, want ErrBadDigest", algo, err)
		}
		if _, err := mp.UploadPart(ctx, "b/verified", id, 1, bytes.NewReader(data), int64(len(data)), NewChecksum(algo, data)); err != nil {
			t.Errorf("UploadPart with the right %s: %v", algo, err)
		}
		if _, err := f.blobs.Backend.Put(ctx, "b/verified-put", bytes.NewReader(data), int64(len(data)), bucket.PutOptions{Checksum: wrong}); !errors.Is(err, bucket.ErrBadDigest) {
			t.Errorf("Put with a wrong %s: err = %v, want ErrBadDigest", algo, err)
		}
	}
}

// A session whose completion was cut short after the object went into
// place (the process died before the file record was published) reads as
// the new version at once: the first read finds the object is the pending
// version and publishes it. Whether or not a read came, the purger
// finishes the session when it expires.
func TestCutCompletionReadsNew(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		upload(t, f, "cut", []byte("old"), 3)
		for _, size := range []int{3 << 10, 9 << 20} {
			for _, readFirst := range []bool{true, false} {
				t.Logf("%d bytes, read before the purge: %v", size, readFirst)
				data := randomBytes(size)
				in, fileID := cutCompletion(t, f, "cut", data)
				if readFirst {
					old := mustFile(t, f, "cut")
					rc, got, err := f.files.Open(ctx, old, nil)
					if err != nil {
						t.Fatalf("read right after the cut: %v", err)
					}
					body, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || !bytes.Equal(body, data) || got.Bytes != int64(size) || got.ID != fileID {
						t.Fatalf("read right after the cut: %d bytes (new: %v), version %+v, %v", len(body), bytes.Equal(body, data), got, err)
					}
					checkReads(t, f, "cut", data) // published by that read
				}
				f.clock.advance(2 * time.Hour)
				if n, err := f.svc.Purge(ctx); err != nil || n < 1 {
					t.Fatalf("purge: %d %v", n, err)
				}
				checkReads(t, f, "cut", data)
				if _, err := f.svc.Get(ctx, in.ID); !errcode.Is(err, ErrNotFound) {
					t.Fatalf("the finished session was not freed: %v", err)
				}
			}
		}
	})
}

// cutCompletion sends all of data to a new session of key and completes it
// as far as storage, then dies: the object is in place, its record is not.
func cutCompletion(t *testing.T, f *fixture, key string, data []byte) (Info, string) {
	t.Helper()
	ctx := context.Background()
	in, err := f.svc.Create(ctx, "b", key, "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	rec, ver, err := f.svc.load(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := f.svc.engine("")
	if err := f.svc.startStorage(ctx, eng, rec, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := eng.write(ctx, rec, 0, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	rec.Offset, rec.CRC32C = rec.Size, new(crc32c.Checksum(data)) // as the append would have
	if _, err := f.svc.save(ctx, rec, ver, 0); err != nil {
		t.Fatal(err)
	}
	died := errors.New("the process died")
	file := registry.File{Bucket: "b", Key: key, Bytes: rec.Size, ID: rec.FileID, CreatedAt: time.Now()}
	_, err = f.files.Replace(ctx, file, func(ctx context.Context, intend func(string) error) (bucket.ObjectInfo, error) {
		if _, err := eng.complete(ctx, rec, intend); err != nil {
			return bucket.ObjectInfo{}, err
		}
		return bucket.ObjectInfo{}, died
	})
	if !errors.Is(err, died) {
		t.Fatalf("cut completion: %v", err)
	}
	return in, rec.FileID
}
