package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/registry"
)

const MiB = 1 << 20

// counting wraps the S3 client and counts requests by operation, so tests
// can state exactly what an append costs in S3.
type counting struct {
	s3blob.API
	mu sync.Mutex
	n  map[string]int
}

func (c *counting) inc(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[op]++
}

func (c *counting) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (c *counting) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.inc("PutObject")
	return c.API.PutObject(ctx, in, o...)
}
func (c *counting) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.inc("GetObject")
	return c.API.GetObject(ctx, in, o...)
}
func (c *counting) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	c.inc("HeadObject")
	return c.API.HeadObject(ctx, in, o...)
}
func (c *counting) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c.inc("CreateMultipartUpload")
	return c.API.CreateMultipartUpload(ctx, in, o...)
}
func (c *counting) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c.inc("UploadPart")
	return c.API.UploadPart(ctx, in, o...)
}
func (c *counting) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, o ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	c.inc("UploadPartCopy")
	return c.API.UploadPartCopy(ctx, in, o...)
}
func (c *counting) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c.inc("CompleteMultipartUpload")
	return c.API.CompleteMultipartUpload(ctx, in, o...)
}
func (c *counting) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	c.inc("AbortMultipartUpload")
	return c.API.AbortMultipartUpload(ctx, in, o...)
}
func (c *counting) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.inc("ListObjectsV2")
	return c.API.ListObjectsV2(ctx, in, o...)
}
func (c *counting) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, o ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	c.inc("ListMultipartUploads")
	return c.API.ListMultipartUploads(ctx, in, o...)
}

// diff is what happened between two snapshots.
func diff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

type fixture struct {
	svc   *Service
	files *registry.Registry
	store metastore.Store
	blobs bucket.Composer
	s3    *counting // nil on the filesystem
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newService(t testing.TB, store metastore.Store, blobs bucket.Composer, s3c *counting) *fixture {
	t.Helper()
	places := registry.NewResolver(store, blobs, registry.Locations{})
	files := registry.New(store, places)
	svc, err := New(store, places, files, Config{TTL: time.Hour, MaxSize: 1 << 30}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	svc.now = c.now
	return &fixture{svc: svc, files: files, store: store, blobs: blobs, s3: s3c, clock: c}
}

// stores are the session tests' variants: S3 objects under ferry/, and
// every S3 request counted.
var stores = testsvc.StoreOptions{Cluster: true, S3Prefix: "ferry/", WrapS3: func(api s3blob.API) s3blob.API {
	return &counting{API: api, n: map[string]int{}}
}}

func storesFixture(t testing.TB, s testsvc.Stores) *fixture {
	c, _ := s.S3.(*counting) // nil on the filesystem
	return newService(t, s.Meta, bucket.Compose(s.Blobs), c)
}

// redisS3 is production: real Redis + real S3 behind a counting wrapper.
func redisS3(t testing.TB) *fixture {
	t.Helper()
	return storesFixture(t, testsvc.Open(t, "redis+s3", stores))
}

// eachStore runs fn on bbolt + filesystem, Redis + S3, and a Redis
// Cluster + S3.
func eachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	testsvc.EachStore(t, stores, func(t *testing.T, s testsvc.Stores) { fn(t, storesFixture(t, s)) })
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func appendBytes(t *testing.T, f *fixture, id string, offset int64, b []byte) (Info, *registry.File, error) {
	t.Helper()
	return f.svc.Append(context.Background(), id, Chunk{Offset: offset, Total: -1, Len: int64(len(b)), Body: bytes.NewReader(b)})
}

// wantCRC checks the file's recorded CRC32C against one computed here from
// the bytes the test sent, on the file and on its index entry.
func wantCRC(t *testing.T, f *fixture, file registry.File, data []byte) {
	t.Helper()
	want := crc32c.Encode(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	if file.Checksums == nil || file.Checksums.CRC32C != want {
		t.Fatalf("%s: checksums %+v, want crc32c %s", file.Key, file.Checksums, want)
	}
	got, err := f.files.Get(context.Background(), file.Bucket, file.Key)
	if err != nil || got.Checksums == nil || got.Checksums.CRC32C != want {
		t.Fatalf("%s: indexed checksums %+v (%v), want crc32c %s", file.Key, got.Checksums, err, want)
	}
}

func readAll(t *testing.T, f *fixture, file registry.File) []byte {
	t.Helper()
	rc, _, err := f.files.Open(context.Background(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// upload sends data in the given chunk sizes (cycled) and returns the file.
func upload(t *testing.T, f *fixture, key string, data []byte, chunks ...int) registry.File {
	t.Helper()
	ctx := context.Background()
	in, err := f.svc.Create(ctx, "b", key, "application/x-test", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	off, i := 0, 0
	var file *registry.File
	for {
		n := min(chunks[i%len(chunks)], len(data)-off)
		_, file, err = appendBytes(t, f, in.ID, int64(off), data[off:off+n])
		if err != nil {
			t.Fatalf("append %d bytes at %d: %v", n, off, err)
		}
		off += n
		i++
		if off == len(data) {
			break
		}
		if file != nil {
			t.Fatalf("file completed early at offset %d of %d", off, len(data))
		}
	}
	if file == nil {
		t.Fatalf("last append did not return the file")
	}
	return *file
}

func TestUploadSizes(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		for _, tc := range []struct {
			name   string
			size   int
			chunks []int
		}{
			{"0B", 0, []int{1}},
			{"1B", 1, []int{1}},
			{"5MiB_minus_1", 5*MiB - 1, []int{MiB, 3 * MiB}},
			{"5MiB", 5 * MiB, []int{5 * MiB}},
			{"5MiB_plus_1", 5*MiB + 1, []int{2*MiB + 7, MiB}},
			{"12MiB_uneven", 12*MiB + 3, []int{700 * 1024, 6*MiB + 1, 1}},
			{"tiny_chunks", 6*MiB + 5, []int{64 * 1024}}, // merges tail segments several times
		} {
			data := randomBytes(tc.size)
			file := upload(t, f, "sizes/"+tc.name, data, tc.chunks...)
			if file.Bytes != int64(tc.size) || file.MimeType != "application/x-test" {
				t.Fatalf("%s: file = %+v", tc.name, file)
			}
			got := readAll(t, f, file)
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("%s: downloaded bytes differ (len %d, want %d)", tc.name, len(got), len(data))
			}
			wantCRC(t, f, file, data)
			if _, err := f.files.Get(context.Background(), "b", "sizes/"+tc.name); err != nil {
				t.Fatalf("%s: not indexed: %v", tc.name, err)
			}
		}
	})
}

// The S3 cost of appends: a create costs nothing in S3, the first part
// starts the multipart upload, a chunk of at least a part is exactly one
// UploadPart and no reads, and smaller chunks cost nothing in S3 until a
// part's worth has gathered.
func TestS3RequestsPerAppend(t *testing.T) {
	f := redisS3(t)
	ctx := context.Background()
	data := randomBytes(23 * MiB)
	before := f.s3.snapshot()
	in, err := f.svc.Create(ctx, "b", "costed", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(before, f.s3.snapshot()); len(d) != 0 {
		t.Fatalf("create cost %v, want no S3 request", d)
	}
	step := func(name string, off, n int, want map[string]int) {
		t.Helper()
		b := f.s3.snapshot()
		if _, _, err := appendBytes(t, f, in.ID, int64(off), data[off:off+n]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		waitBehind(t, f.svc) // a part written behind counts with the chunk that filled it
		d := diff(b, f.s3.snapshot())
		t.Logf("S3 requests for %s: %v", name, d)
		if len(d) != len(want) {
			t.Fatalf("%s cost %v, want %v", name, d, want)
		}
		for k, v := range want {
			if d[k] != v {
				t.Fatalf("%s cost %v, want %v", name, d, want)
			}
		}
	}
	step("1 MiB chunk (held back)", 0, MiB, map[string]int{})
	step("7 MiB chunk (tail + chunk = the first part)", MiB, 7*MiB, map[string]int{"CreateMultipartUpload": 1, "UploadPart": 1})
	step("5 MiB chunk", 8*MiB, 5*MiB, map[string]int{"UploadPart": 1})
	step("1 MiB chunk (held back)", 13*MiB, MiB, map[string]int{})
	step("1 MiB chunk (held back)", 14*MiB, MiB, map[string]int{})
	// The chunk that fills a part is held back too, and acknowledged; the
	// part is sent behind it, in the background. The next append records it.
	step("3 MiB chunk (tail + chunk = one part, sent behind)", 15*MiB, 3*MiB, map[string]int{"UploadPart": 1})
	// Completion checks the object's ETag with a Head: a repeated completion
	// succeeds on S3 even if the object was replaced since.
	step("last 5 MiB chunk", 18*MiB, 5*MiB, map[string]int{"UploadPart": 1, "CompleteMultipartUpload": 1, "HeadObject": 1})

	file, err := f.files.Get(ctx, "b", "costed")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, file); !bytes.Equal(got, data) {
		t.Fatal("bytes differ after the costed upload")
	}
}

func TestResumeAfterShortBody(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(7 * MiB)
		in, err := f.svc.Create(ctx, "b", "resume", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		// The connection drops after 3 MiB of a declared 6 MiB chunk.
		_, _, err = f.svc.Append(ctx, in.ID, Chunk{Offset: 0, Total: -1, Len: 6 * MiB, Body: bytes.NewReader(data[:3*MiB])})
		if !errcode.Is(err, ErrShortBody) {
			t.Fatalf("short body: err = %v, want SHORT_BODY", err)
		}
		got, err := f.svc.Get(ctx, in.ID)
		if err != nil || got.Offset != 0 {
			t.Fatalf("after a dropped chunk offset = %d (%v), want 0", got.Offset, err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, data[:6*MiB]); err != nil {
			t.Fatal(err)
		}
		// A replay of the chunk that landed is refused with the real offset.
		_, _, err = appendBytes(t, f, in.ID, 0, data[:6*MiB])
		var e *errcode.Error
		if !errcode.Is(err, ErrOffsetMismatch) || !asErr(err, &e) || e.Fields["offset"] != int64(6*MiB) {
			t.Fatalf("replay: err = %v, want OFFSET_MISMATCH at %d", err, 6*MiB)
		}
		_, file, err := appendBytes(t, f, in.ID, 6*MiB, data[6*MiB:])
		if err != nil || file == nil {
			t.Fatalf("last chunk: %v", err)
		}
		if !bytes.Equal(readAll(t, f, *file), data) {
			t.Fatal("bytes differ after resume")
		}
		// A body on the completed session is refused; an empty one returns the file.
		if _, _, err := appendBytes(t, f, in.ID, -1, []byte("x")); !errcode.Is(err, ErrCompleted) {
			t.Fatalf("append after completion: %v", err)
		}
		if _, again, err := appendBytes(t, f, in.ID, -1, nil); err != nil || again == nil || again.Bytes != int64(len(data)) {
			t.Fatalf("empty append after completion = %v, %v", again, err)
		}
	})
}

func asErr(err error, target **errcode.Error) bool {
	e := errcode.From(err)
	*target = e
	return e.Code.Value != errcode.ErrInternal.Value
}

func TestPastSizeChangesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		in, err := f.svc.Create(ctx, "b", "small", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, []byte("0123")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 4, []byte("456789ABC")); !errcode.Is(err, ErrPastSize) {
			t.Fatalf("past size: %v", err)
		}
		_, _, err = f.svc.Append(ctx, in.ID, Chunk{Offset: 4, Total: 11, Len: 6, Body: strings.NewReader("456789")})
		if !errcode.Is(err, ErrInvalidSize) {
			t.Fatalf("wrong total: %v", err)
		}
		_, file, err := appendBytes(t, f, in.ID, 4, []byte("456789"))
		if err != nil || file == nil {
			t.Fatal(err)
		}
		if got := readAll(t, f, *file); string(got) != "0123456789" {
			t.Fatalf("content = %q", got)
		}
	})
}

// An existing file stays whole while its replacement uploads.
func TestReplaceIsAtomic(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		old := upload(t, f, "doc", []byte("old contents"), 100)
		in, err := f.svc.Create(ctx, "b", "doc", "text/plain", 11)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, []byte("new c")); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f, old); string(got) != "old contents" {
			t.Fatalf("half-way through a replacement the file reads %q", got)
		}
		_, file, err := appendBytes(t, f, in.ID, 5, []byte("ontent"))
		if err != nil || file == nil {
			t.Fatal(err)
		}
		if got := readAll(t, f, *file); string(got) != "new content" || file.MimeType != "text/plain" {
			t.Fatalf("after replacement: %q %s", got, file.MimeType)
		}
	})
}

// Two appends racing on one session: exactly one lands, the other is told
// the session is busy or the offset moved; the bytes are never interleaved.
func TestConcurrentAppends(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		size := 12 * MiB
		in, err := f.svc.Create(ctx, "b", "race", "", int64(size))
		if err != nil {
			t.Fatal(err)
		}
		a, b := bytes.Repeat([]byte{'a'}, 6*MiB), bytes.Repeat([]byte{'b'}, 6*MiB)
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for _, chunk := range [][]byte{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := appendBytes(t, f, in.ID, 0, chunk)
				switch {
				case err == nil:
					ok.Add(1)
				case errcode.Is(err, ErrBusy), errcode.Is(err, ErrOffsetMismatch):
					refused.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || refused.Load() != 1 {
			t.Fatalf("ok=%d refused=%d, want 1 and 1", ok.Load(), refused.Load())
		}
		_, file, err := appendBytes(t, f, in.ID, 6*MiB, bytes.Repeat([]byte{'c'}, 6*MiB))
		if err != nil || file == nil {
			t.Fatal(err)
		}
		got := readAll(t, f, *file)
		first := got[:6*MiB]
		if !bytes.Equal(first, a) && !bytes.Equal(first, b) {
			t.Fatal("the first chunk's bytes are interleaved")
		}
	})
}

// A lock holder whose lease lapsed and was taken over cannot move the offset.
func TestStaleHolderIsFenced(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		in, err := f.svc.Create(ctx, "b", "fenced", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		stale, err := f.store.Lock(ctx, lockName(in.ID), 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond) // the stale holder's lease lapses
		if _, _, err := appendBytes(t, f, in.ID, 0, []byte("01234")); err != nil {
			t.Fatalf("new holder: %v", err)
		}
		rec, ver, err := f.svc.load(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec.Offset = 0 // the stale holder tries to rewind the offset
		if _, err := f.svc.save(ctx, rec, ver, stale.Fence()); !errcode.Is(err, ErrBusy) {
			t.Fatalf("stale holder's write: err = %v, want it fenced out", err)
		}
		if got, _ := f.svc.Get(ctx, in.ID); got.Offset != 5 {
			t.Fatalf("offset = %d after a stale write, want 5", got.Offset)
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for _, tc := range []struct {
			bkt, key string
			size     int64
			want     errcode.Code
		}{
			{"bad bucket!", "k", 1, ErrInvalidBucket},
			{"", "k", 1, ErrInvalidBucket},
			{"b", "a/../b", 1, ErrInvalidKey},
			{"b", "/abs", 1, ErrInvalidKey},
			{"b", "nul\x00", 1, ErrInvalidKey},
			{"b", "ctl\x07", 1, ErrInvalidKey},
			{"b", strings.Repeat("k", 1025), 1, ErrInvalidKey},
			{"b", "k", -1, ErrInvalidSize},
			{"b", "k", 1<<30 + 1, ErrTooLarge},
		} {
			if _, err := f.svc.Create(ctx, tc.bkt, tc.key, "", tc.size); !errcode.Is(err, tc.want) {
				t.Errorf("Create(%q, %q, %d) = %v, want %s", tc.bkt, tc.key, tc.size, err, tc.want.Value)
			}
		}
		if _, err := f.svc.Create(ctx, "b", "k", "not a mime", 1); !errcode.Is(err, errcode.ErrInvalidRequest) {
			t.Errorf("bad mime: %v", err)
		}
		for _, id := range []string{"nope", strings.Repeat("0", 32)} {
			if _, _, err := appendBytes(t, f, id, 0, []byte("x")); !errcode.Is(err, ErrNotFound) {
				t.Errorf("append to unknown session %q: %v", id, err)
			}
		}
		if page, err := f.files.Buckets(ctx, "", 10); err != nil || len(page.Data) != 0 {
			t.Fatalf("bad input left buckets behind: %v %v", page.Data, err)
		}
		if n, _ := f.store.IndexLen(ctx, expiryIndex); n != 0 {
			t.Fatalf("bad input left %d sessions behind", n)
		}
	})
}

// Expired sessions answer 410, and the purger frees their storage and records.
func TestExpiryAndPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(7 * MiB)
		in, err := f.svc.Create(ctx, "b", "expiring", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, data[:5*MiB]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 5*MiB, data[5*MiB:6*MiB]); err != nil { // a held-back tail on S3
			t.Fatal(err)
		}
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 {
			t.Fatalf("purge before expiry freed %d (%v)", n, err)
		}
		f.clock.advance(2 * time.Hour)
		if _, err := f.svc.Get(ctx, in.ID); !errcode.Is(err, ErrExpired) {
			t.Fatalf("expired session: %v, want SESSION_EXPIRED", err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 6*MiB, data[6*MiB:]); !errcode.Is(err, ErrExpired) {
			t.Fatalf("append to expired session: %v", err)
		}
		if n, err := f.svc.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("purge freed %d (%v), want 1", n, err)
		}
		if _, err := f.svc.Get(ctx, in.ID); !errcode.Is(err, ErrNotFound) {
			t.Fatalf("purged session: %v, want SESSION_NOT_FOUND", err)
		}
		if _, err := f.store.Get(ctx, tailKey(in.ID, 0)); err == nil {
			t.Fatal("the held-back tail survived the purge")
		}
		if mp := f.blobs.Multipart; mp != nil {
			if ups, err := mp.ListMultipart(ctx, ""); err != nil || len(ups) != 0 {
				t.Fatalf("multipart uploads left after purge: %v %v", ups, err)
			}
		}
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 {
			t.Fatalf("second purge freed %d (%v); purge must be idempotent", n, err)
		}
	})
}

// Appending slides the expiry; the purger re-files such sessions instead of
// freeing them.
func TestActiveSessionSurvivesPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		in, err := f.svc.Create(ctx, "b", "slow", "", 3)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.advance(50 * time.Minute)
		if _, _, err := appendBytes(t, f, in.ID, 0, []byte("a")); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(50 * time.Minute) // past the first expiry, within the slid one
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 {
			t.Fatalf("purge freed an active session: %d %v", n, err)
		}
		if _, file, err := appendBytes(t, f, in.ID, 1, []byte("bc")); err != nil || file == nil {
			t.Fatalf("append after re-filing: %v", err)
		}
	})
}

func TestAbort(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		in, err := f.svc.Create(ctx, "b", "aborted", "", 6*MiB)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, randomBytes(5*MiB)); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Abort(ctx, in.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Get(ctx, in.ID); !errcode.Is(err, ErrNotFound) {
			t.Fatalf("aborted session: %v", err)
		}
		if mp := f.blobs.Multipart; mp != nil {
			if ups, _ := mp.ListMultipart(ctx, ""); len(ups) != 0 {
				t.Fatalf("abort left multipart uploads: %v", ups)
			}
		}
		if _, err := f.files.Get(ctx, "b", "aborted"); !errcode.Is(err, registry.ErrFileNotFound) {
			t.Fatalf("aborted upload became a file: %v", err)
		}
	})
}

// A huge file's parts exceed the held-back cap: small chunks are refused
// with the size to send, and nothing is stored.
func TestChunkTooSmallForHugeFile(t *testing.T) {
	f := redisS3(t)
	f.svc.engines[""].(*multipartEngine).maxHeld = 6 * MiB
	f.svc.cfg.MaxSize = bucket.MaxObjectLen
	ctx := context.Background()
	size := int64(bucket.MinPartSize*bucket.MaxParts) * 2 // parts of 10 MiB
	in, err := f.svc.Create(ctx, "b", "huge", "", size)
	if err != nil {
		t.Fatal(err)
	}
	defer f.svc.Abort(ctx, in.ID)
	if in.MinChunk != 10*MiB {
		t.Fatalf("min chunk = %d, want 10 MiB", in.MinChunk)
	}
	if _, _, err := appendBytes(t, f, in.ID, 0, randomBytes(4*MiB)); err != nil {
		t.Fatalf("a chunk within the cap: %v", err)
	}
	_, _, err = appendBytes(t, f, in.ID, 4*MiB, randomBytes(3*MiB))
	var e *errcode.Error
	if !errcode.Is(err, ErrChunkTooSmall) || !asErr(err, &e) || e.Fields["min_chunk_size"] != int64(10*MiB) {
		t.Fatalf("over the cap: %v", err)
	}
	if got, _ := f.svc.Get(ctx, in.ID); got.Offset != 4*MiB {
		t.Fatalf("offset = %d after a refused chunk", got.Offset)
	}
	if _, _, err := appendBytes(t, f, in.ID, 4*MiB, randomBytes(6*MiB)); err != nil {
		t.Fatalf("a chunk completing a part: %v", err)
	}
}

// Streams of unknown length: ingest, then seal with attributes; over the
// limit nothing is kept.
// TestDeclare: an open session gets its size later (tus's deferred
// length); the append that brings the last byte then completes it, or
// Declare does when every byte is in already. Meta and Protocol are kept
// with the session and never published.
func TestDeclare(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		data := randomBytes(7*MiB + 3)
		in, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "declared", Size: 48 * MiB, Open: true,
			Protocol: ProtocolTus, Meta: map[string]string{"filename": "x.bin"}})
		if err != nil {
			t.Fatal(err)
		}
		if !in.Open || in.Protocol != ProtocolTus || in.Meta["filename"] != "x.bin" {
			t.Fatalf("created %+v", in)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, data[:6*MiB]); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []int64{6*MiB - 1, 48*MiB + 1} {
			if _, _, err := f.svc.Declare(ctx, in.ID, bad); err == nil {
				t.Fatalf("declared %d for a session at %d bounded by %d", bad, 6*MiB, 48*MiB)
			}
		}
		got, file, err := f.svc.Declare(ctx, in.ID, int64(len(data)))
		if err != nil || file != nil || got.Open || got.Size != int64(len(data)) {
			t.Fatalf("declare: %+v %v %v", got, file, err)
		}
		if _, _, err := f.svc.Declare(ctx, in.ID, int64(len(data))); !errcode.Is(err, errcode.ErrConflict) {
			t.Fatalf("declaring twice: %v", err)
		}
		_, file, err = appendBytes(t, f, in.ID, 6*MiB, data[6*MiB:])
		if err != nil || file == nil {
			t.Fatalf("last append: %v %v", file, err)
		}
		if !bytes.Equal(readAll(t, f, *file), data) || len(file.Attrs) != 0 {
			t.Fatalf("declared file %+v differs", file)
		}
		// Every byte in before the size is known: Declare completes it.
		in, err = f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "late", Size: 48 * MiB, Open: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, in.ID, 0, data[:3]); err != nil {
			t.Fatal(err)
		}
		if _, file, err = f.svc.Declare(ctx, in.ID, 3); err != nil || file == nil || !bytes.Equal(readAll(t, f, *file), data[:3]) {
			t.Fatalf("declare at the offset: %v %v", file, err)
		}
	})
}

func TestIngestAndSeal(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for _, size := range []int{0, 3, 20*MiB + 1} {
			data := randomBytes(size)
			key := fmt.Sprintf("ingest/%d", size)
			id, n, err := f.svc.Ingest(ctx, Spec{Bucket: "b", Key: key}, bytes.NewReader(data), 64*MiB)
			if err != nil || n != int64(size) {
				t.Fatalf("ingest %d: n=%d err=%v", size, n, err)
			}
			if _, err := f.files.Get(ctx, "b", key); err == nil {
				t.Fatalf("ingest %d: published before Seal", size)
			}
			file, err := f.svc.Seal(ctx, id, map[string]string{"purpose": "batch"})
			if err != nil {
				t.Fatalf("seal %d: %v", size, err)
			}
			if file.Bytes != int64(size) || file.Attrs["purpose"] != "batch" || !strings.HasPrefix(file.ID, "file-") {
				t.Fatalf("sealed file = %+v", file)
			}
			if got := readAll(t, f, file); !bytes.Equal(got, data) {
				t.Fatalf("ingest %d: bytes differ", size)
			}
			if byID, err := f.files.ByID(ctx, "b", file.ID); err != nil || byID.Key != key {
				t.Fatalf("by id: %+v %v", byID, err)
			}
		}
		_, _, err := f.svc.Ingest(ctx, Spec{Bucket: "b", Key: "ingest/big"}, bytes.NewReader(randomBytes(9*MiB)), 8*MiB+1)
		if !errcode.Is(err, ErrTooLarge) {
			t.Fatalf("over the limit: %v", err)
		}
		if page, err := f.files.List(ctx, "b", "ingest/", "", 10); err != nil || len(page.Data) != 3 {
			t.Fatalf("after a refused ingest the bucket lists %d files (%v), want 3", len(page.Data), err)
		}
		if mp := f.blobs.Multipart; mp != nil {
			if ups, _ := mp.ListMultipart(ctx, ""); len(ups) != 0 {
				t.Fatalf("a refused ingest left multipart uploads: %v", ups)
			}
		}
	})
}

// tailReads counts reads of held-back segments from the metadata store.
type tailReads struct {
	metastore.Store
	n atomic.Int32
}

func (s *tailReads) Get(ctx context.Context, key string) (metastore.Record, error) {
	if strings.Contains(key, "/tail/") {
		s.n.Add(1)
	}
	return s.Store.Get(ctx, key)
}

// The instance that held a tail back sends it to S3 from memory; another
// instance, or one whose copy is of an older tail, reads the store, and the
// bytes are right either way.
func TestHeldTailFromMemoryOrStore(t *testing.T) {
	rc, prefix := testsvc.Redis(t)
	store := &tailReads{Store: redisstore.New(rc, prefix)}
	client, bkt := testsvc.S3(t)
	blobs := bucket.Compose(s3blob.New(client, bkt, "ferry/"))
	a, b := newService(t, store, blobs, nil), newService(t, store, blobs, nil)

	data := randomBytes(12 * MiB)
	file := upload(t, a, "one-instance", data, MiB)
	if got := readAll(t, a, file); !bytes.Equal(got, data) {
		t.Fatal("bytes differ (one instance)")
	}
	if n := store.n.Load(); n != 0 {
		t.Fatalf("one instance read %d held-back segments from the store, want 0", n)
	}

	// a holds seg 0 back; b flushes it (a read) and holds its own seg 0
	// back; a then fills the part: its copy of seg 0 is stale, so it must
	// read b's from the store.
	ctx := context.Background()
	data = randomBytes(13 * MiB)
	in, err := a.svc.Create(ctx, "b", "two-instances", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		f    *fixture
		n    int
		read int32 // segments read from the store by this append
	}{{a, MiB, 0}, {b, 5 * MiB, 1}, {b, MiB, 0}, {a, 4 * MiB, 1}, {a, MiB, 0}}
	off := 0
	for i, s := range steps {
		before := store.n.Load()
		if _, _, err := appendBytes(t, s.f, in.ID, int64(off), data[off:off+s.n]); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := store.n.Load() - before; got != s.read {
			t.Fatalf("step %d read %d segments from the store, want %d", i, got, s.read)
		}
		off += s.n
	}
	before := store.n.Load()
	_, f, err := appendBytes(t, b, in.ID, int64(off), data[off:])
	if err != nil || f == nil {
		t.Fatalf("last append: %v", err)
	}
	if got := store.n.Load() - before; got != 1 {
		t.Fatalf("the last append read %d segments from the store, want a's 1", got)
	}
	if got := readAll(t, a, *f); !bytes.Equal(got, data) {
		t.Fatal("bytes differ (two instances)")
	}
}
