package session

import (
	"bytes"
	"context"
	"crypto/md5"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
)

const partSize = 5 * MiB

func createParts(t *testing.T, f *fixture, key string, size int64) Info {
	t.Helper()
	in, err := f.svc.CreateSpec(context.Background(), Spec{Bucket: "b", Key: key, Size: size, PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	if in.PartSize != partSize || in.PartCount != int((size+partSize-1)/partSize) {
		t.Fatalf("create: part size %d, count %d", in.PartSize, in.PartCount)
	}
	return in
}

func putPart(svc *Service, id string, n int, data []byte) (PartInfo, *registry.File, error) {
	off := (n - 1) * partSize
	b := data[off:min(off+partSize, len(data))]
	return svc.PutPart(context.Background(), id, n, Chunk{Len: int64(len(b)), Body: bytes.NewReader(b)})
}

// Parts land in any order; what is missing is visible; a replay of the same
// bytes changes nothing, other bytes are refused; the last missing part
// completes the file, byte-exact.
func TestPartsOutOfOrderWithReplays(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(3*partSize + partSize/2)
		in := createParts(t, f, "parts", int64(len(data)))
		for _, n := range []int{3, 1, 4} {
			p, file, err := putPart(f.svc, in.ID, n, data)
			if err != nil || file != nil {
				t.Fatalf("part %d: %v (file %v)", n, err, file)
			}
			if p.Number != n || p.Size != int64(len(data[(n-1)*partSize:min(n*partSize, len(data))])) {
				t.Fatalf("part %d answered %+v", n, p)
			}
		}
		got, err := f.svc.Get(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []PartRange{{1, 1}, {3, 4}}; !got.Parallel || !slices.Equal(got.Received, want) || got.Offset != partSize {
			t.Fatalf("info: parallel %v, received %v, offset %d; want %v at %d", got.Parallel, got.Received, got.Offset, want, partSize)
		}
		// The same bytes again: acknowledged, nothing written.
		if p, _, err := putPart(f.svc, in.ID, 1, data); err != nil || p.Received != 3 {
			t.Fatalf("replay of part 1: %+v %v", p, err)
		}
		other := bytes.Clone(data)
		other[2*partSize+7] ^= 1
		if _, _, err := putPart(f.svc, in.ID, 3, other); !errcode.Is(err, ErrPartConflict) {
			t.Fatalf("part 3 with other bytes: %v, want PART_CONFLICT", err)
		}
		for _, c := range []struct {
			n    int
			size int
			want errcode.Code
		}{{2, partSize - 1, ErrInvalidPart}, {5, 10, ErrInvalidPart}, {0, partSize, ErrInvalidPart}, {4, partSize, ErrInvalidPart}} {
			_, _, err := f.svc.PutPart(ctx, in.ID, c.n, Chunk{Len: int64(c.size), Body: bytes.NewReader(make([]byte, c.size))})
			if !errcode.Is(err, c.want) {
				t.Errorf("part %d of %d bytes: %v, want %s", c.n, c.size, err, c.want.Value)
			}
		}
		// A sequential append is refused; an empty one does not complete early.
		if _, _, err := appendBytes(t, f, in.ID, 0, data[:10]); !errcode.Is(err, ErrUploadMode) {
			t.Fatalf("sequential append to a parallel session: %v, want WRONG_UPLOAD_MODE", err)
		}
		if _, _, err := appendBytes(t, f, in.ID, -1, nil); !errcode.Is(err, ErrInvalidPart) {
			t.Fatalf("empty append with a part missing: %v, want INVALID_PART", err)
		}
		_, file, err := putPart(f.svc, in.ID, 2, data)
		if err != nil || file == nil {
			t.Fatalf("last part: %v, file %v", err, file)
		}
		if file.Bytes != int64(len(data)) || !bytes.Equal(readAll(t, f, *file), data) {
			t.Fatal("the file is not the parts' bytes")
		}
		wantCRC(t, f, *file, data)
		if n, _ := f.store.IndexLen(ctx, partsIndex(in.ID)); n != 0 {
			t.Fatalf("%d part entries left after completion", n)
		}
		if _, _, err := putPart(f.svc, in.ID, 2, data); !errcode.Is(err, ErrCompleted) {
			t.Fatalf("a part after completion: %v, want SESSION_COMPLETED", err)
		}
		// An empty append on the completed session returns the file again.
		if _, again, err := appendBytes(t, f, in.ID, -1, nil); err != nil || again == nil || again.ETag != file.ETag {
			t.Fatalf("empty append after completion: %v %v", again, err)
		}
	})
}

// Two instances put every part at once: different parts never refuse each
// other as busy, and the result is byte-exact.
func TestPartsFromTwoInstances(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		other := newService(t, f.store, f.blobs, f.s3)
		data := randomBytes(8*partSize + 3)
		in := createParts(t, f, "two", int64(len(data)))
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			files []*registry.File
		)
		for n := in.PartCount; n >= 1; n-- {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := f.svc
				if n%2 == 0 {
					svc = other.svc
				}
				_, file, err := putPart(svc, in.ID, n, data)
				if err != nil {
					t.Errorf("part %d: %v", n, err)
				}
				mu.Lock()
				defer mu.Unlock()
				if file != nil {
					files = append(files, file)
				}
			}()
		}
		wg.Wait()
		if len(files) == 0 {
			// The last parts landed together and one's completion saw the
			// other's: an empty append finishes, as a client does.
			_, file, err := appendBytes(t, f, in.ID, -1, nil)
			if err != nil || file == nil {
				t.Fatalf("completing: %v", err)
			}
			files = append(files, file)
		}
		got := readAll(t, f, *files[0])
		if !bytes.Equal(got, data) {
			t.Fatalf("file of %d bytes differs from the %d sent", len(got), len(data))
		}
		wantCRC(t, f, *files[0], data)
	})
}

// A session that took bytes in order takes no parts, and one whose size is
// open takes none either.
func TestPartsAndAppendsDoNotMix(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(2 * partSize)
		in := createParts(t, f, "mixed", int64(len(data)))
		if _, _, err := appendBytes(t, f, in.ID, 0, data[:MiB]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := putPart(f.svc, in.ID, 2, data); !errcode.Is(err, ErrUploadMode) {
			t.Fatalf("part of a sequential session: %v, want WRONG_UPLOAD_MODE", err)
		}
		if _, file, err := appendBytes(t, f, in.ID, MiB, data[MiB:]); err != nil || file == nil {
			t.Fatalf("the sequential upload goes on: %v", err)
		}
		open, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "open", Size: 2 * partSize, Open: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := putPart(f.svc, open.ID, 1, data); !errcode.Is(err, ErrUploadMode) {
			t.Fatalf("part of an open session: %v, want WRONG_UPLOAD_MODE", err)
		}
	})
}

// A part that does not match its Content-MD5 is refused and not recorded;
// one that does is passed on (to S3's UploadPart too).
func TestPartChecksum(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(partSize + 1)
		in := createParts(t, f, "summed", int64(len(data)))
		wrong := md5.Sum([]byte("not it"))
		_, _, err := f.svc.PutPart(ctx, in.ID, 1, Chunk{Len: partSize, Body: bytes.NewReader(data[:partSize]),
			Checksum: &bucket.Checksum{Algo: "md5", Sum: wrong[:]}})
		if !errcode.Is(err, ErrChecksumMismatch) {
			t.Fatalf("part with a wrong MD5: %v, want CHECKSUM_MISMATCH", err)
		}
		if got, _ := f.svc.Get(ctx, in.ID); len(got.Received) != 0 {
			t.Fatalf("a refused part was recorded: %v", got.Received)
		}
		right := md5.Sum(data[:partSize])
		if _, _, err := f.svc.PutPart(ctx, in.ID, 1, Chunk{Len: partSize, Body: bytes.NewReader(data[:partSize]),
			Checksum: &bucket.Checksum{Algo: "md5", Sum: right[:]}}); err != nil {
			t.Fatal(err)
		}
		if _, file, err := putPart(f.svc, in.ID, 2, data); err != nil || !bytes.Equal(readAll(t, f, *file), data) {
			t.Fatalf("completing: %v", err)
		}
	})
}

// Abort and expiry free a parallel session's storage and its parts index.
func TestPartsAbortAndExpiryLeaveNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(3 * partSize)
		aborted := createParts(t, f, "aborted", int64(len(data)))
		expiring := createParts(t, f, "expiring", int64(len(data)))
		for _, id := range []string{aborted.ID, expiring.ID} {
			if _, _, err := putPart(f.svc, id, 2, data); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.svc.Abort(ctx, aborted.ID); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(2 * time.Hour)
		// Both entries are due: the expired session's, and the aborted one's,
		// which finds nothing left to free.
		if n, err := f.svc.Purge(ctx); err != nil || n != 2 {
			t.Fatalf("purge freed %d (%v), want 2", n, err)
		}
		for _, id := range []string{aborted.ID, expiring.ID} {
			if n, _ := f.store.IndexLen(ctx, partsIndex(id)); n != 0 {
				t.Errorf("session %s left %d part entries", id, n)
			}
		}
		if mp := f.blobs.Multipart; mp != nil {
			if ups, err := mp.ListMultipart(ctx, ""); err != nil || len(ups) != 0 {
				t.Fatalf("multipart uploads left: %v %v", ups, err)
			}
		}
	})
}

// A part that lands after its session was aborted does not leave an entry.
func TestPartAfterAbortLeavesNoEntry(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	data := randomBytes(2 * partSize)
	in := createParts(t, f, "late", int64(len(data)))
	if _, _, err := putPart(f.svc, in.ID, 1, data); err != nil {
		t.Fatal(err)
	}
	rec, _, err := f.svc.load(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Abort(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	// As a part whose session was loaded before the abort.
	_, _, err = f.svc.lockedPart(ctx, rec, 2, Chunk{Len: partSize, Body: bytes.NewReader(data[partSize:])})
	if err == nil {
		t.Fatal("a part of an aborted session was acknowledged")
	}
	if n, _ := f.store.IndexLen(ctx, partsIndex(in.ID)); n != 0 {
		t.Fatalf("%d part entries left", n)
	}
}

func TestPartSizeFor(t *testing.T) {
	for _, c := range []struct {
		size, asked, want int64
		err               bool
	}{
		{0, 0, DefaultPartSize, false},
		{100, 0, DefaultPartSize, false},
		{100 << 30, 0, 11 * MiB, false}, // 12,800 parts of 8 MiB would be too many
		{bucket.MaxParts * DefaultPartSize, 0, DefaultPartSize, false},
		{bucket.MaxParts*DefaultPartSize + 1, 0, DefaultPartSize + MiB, false},
		{100, 50, 0, true}, // two parts under 5 MiB
		{100, 100, 100, false},
		{100, 1000, 1000, false},
		{20 * MiB, 5 * MiB, 5 * MiB, false},
		{20 * MiB, 5*MiB - 1, 0, true},
		{20 * MiB, -1, 0, true},
		{20 * MiB, bucket.MaxPartSize + 1, 0, true},
		{bucket.MaxParts*5*MiB + 1, 5 * MiB, 0, true},
	} {
		got, err := partSizeFor(c.size, c.asked)
		if (err != nil) != c.err || err == nil && got != c.want {
			t.Errorf("partSizeFor(%d, %d) = %d, %v; want %d, error %v", c.size, c.asked, got, err, c.want, c.err)
		}
	}
}

// A part sent again after its answer was lost can meet the session's
// completion in between (the resend loaded the session just before): it
// gets SESSION_COMPLETED, which a client answers by asking for the file,
// never SESSION_STORAGE_LOST.
func TestPartResentAcrossCompletion(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(2 * partSize)
		in := createParts(t, f, "resent", int64(len(data)))
		if _, _, err := putPart(f.svc, in.ID, 1, data); err != nil {
			t.Fatal(err)
		}
		before, _, err := f.svc.load(ctx, in.ID) // as the resend of part 1 loaded it
		if err != nil {
			t.Fatal(err)
		}
		if _, file, err := putPart(f.svc, in.ID, 2, data); err != nil || file == nil {
			t.Fatalf("the last part: %v, file %v", err, file)
		}
		_, _, err = f.svc.lockedPart(ctx, before, 1, Chunk{Len: partSize, Body: bytes.NewReader(data[:partSize])})
		if !errcode.Is(err, ErrCompleted) {
			t.Fatalf("part 1 sent again across the completion: %v, want SESSION_COMPLETED", err)
		}
	})
}
