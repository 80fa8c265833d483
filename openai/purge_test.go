package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
	"github.com/ferryhq/ferry/registry"
)

// blobFaults injects faults into the blob backend: deletes that fail, and
// a hook run before every Get (to hold a read up).
type blobFaults struct {
	mu        sync.Mutex
	deleteErr func(key string) error
	onGet     func(ctx context.Context, key string)
}

func (f *blobFaults) failDeletes(fn func(key string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleteErr = fn
}

func (f *blobFaults) hookGet(fn func(ctx context.Context, key string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onGet = fn
}

func (f *blobFaults) get() (func(string) error, func(context.Context, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deleteErr, f.onGet
}

type faultyBackend struct {
	bucket.Backend
	f *blobFaults
}

func (b faultyBackend) Delete(ctx context.Context, key string) error {
	if fail, _ := b.f.get(); fail != nil {
		if err := fail(key); err != nil {
			return err
		}
	}
	return b.Backend.Delete(ctx, key)
}

func (b faultyBackend) Get(ctx context.Context, key string, rng *bucket.Range) (io.ReadCloser, bucket.ObjectInfo, error) {
	if _, hook := b.f.get(); hook != nil {
		hook(ctx, key)
	}
	return b.Backend.Get(ctx, key, rng)
}

// withFaults wraps c's core, keeping its optional capabilities (the
// session engine picks staging or multipart by them).
func withFaults(c bucket.Composer, f *blobFaults) bucket.Composer {
	c.Backend = faultyBackend{c.Backend, f}
	return c
}

func bothFaulty(t *testing.T, fn func(t *testing.T, f *fixture, fl *blobFaults)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		fl := &blobFaults{}
		fn(t, newFixture(t, s.Meta, withFaults(bucket.Compose(s.Blobs), fl)), fl)
	})
}

func dueEntries(t *testing.T, f *fixture) map[string]due.Retry {
	t.Helper()
	entries, _, err := f.store.IndexList(context.Background(), expiryIndex, metastore.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]due.Retry{}
	for _, e := range entries {
		var r due.Retry
		if len(e.Value) > 0 {
			if err := json.Unmarshal(e.Value, &r); err != nil {
				t.Fatalf("entry %s: %v", e.Member, err)
			}
		}
		out[e.Member] = r
	}
	return out
}

// 150 expired files whose first 100 cannot be deleted: one run deletes the
// other 50, the 100 are retried after a backoff and go once storage does.
func TestPurgeSkipsFailingEntries(t *testing.T) {
	bothFaulty(t, func(t *testing.T, f *fixture, fl *blobFaults) {
		ctx := context.Background()
		for i := range 150 {
			st, err := f.svc.StageFile(ctx, fmt.Sprintf("f%03d.txt", i), "", strings.NewReader("expiring"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.CommitFile(ctx, st, "batch", 3600); err != nil {
				t.Fatal(err)
			}
		}
		entries, _, err := f.store.IndexList(ctx, expiryIndex, metastore.Query{Limit: 1000})
		if err != nil || len(entries) != 150 {
			t.Fatalf("%d expiry entries (%v), want 150", len(entries), err)
		}
		failing := map[string]bool{}
		for _, e := range entries[:100] { // the first 100 in the purger's order
			_, id, _ := strings.Cut(e.Member, "/")
			failing[id] = true
		}
		boom := errors.New("storage unavailable")
		fl.failDeletes(func(key string) error {
			if seg := strings.SplitN(key, "/", 3); len(seg) == 3 && failing[seg[1]] {
				return boom
			}
			return nil
		})
		f.clock = f.clock.Add(2 * time.Hour)

		n, err := f.svc.Purge(ctx)
		if err != nil || n != 50 {
			t.Fatalf("first run purged %d (%v), want the 50 healthy files", n, err)
		}
		if got := testutil.ToFloat64(f.svc.purgeFailures); got != 100 {
			t.Fatalf("ferry_purge_failures_total = %v, want 100", got)
		}
		page, err := f.files.List(ctx, "openai", "", "", 1000)
		if err != nil || len(page.Data) != 100 {
			t.Fatalf("%d files left (%v), want the 100 failing ones", len(page.Data), err)
		}
		for _, file := range page.Data {
			if !failing[file.ID] {
				t.Fatalf("healthy file %s was not purged", file.ID)
			}
		}
		checkRetries := func(attempts int, wait time.Duration) {
			t.Helper()
			due := dueEntries(t, f)
			if len(due) != 100 {
				t.Fatalf("%d expiry entries, want 100", len(due))
			}
			want := fmt.Sprintf("%016d/", f.clock.Add(wait).UnixMilli())
			for member, r := range due {
				if _, id, _ := strings.Cut(member, "/"); !failing[id] || r.Attempts != attempts || !strings.HasPrefix(member, want) {
					t.Fatalf("entry %s = %+v, want a failing file's at attempts %d due at %s", member, r, attempts, want)
				}
			}
		}
		checkRetries(1, time.Minute)

		f.clock = f.clock.Add(30 * time.Second) // within the backoff: not tried
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 || testutil.ToFloat64(f.svc.purgeFailures) != 100 {
			t.Fatalf("run within the backoff purged %d (%v), failures %v", n, err, testutil.ToFloat64(f.svc.purgeFailures))
		}
		f.clock = f.clock.Add(31 * time.Second) // past it, still failing: the wait doubles
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 || testutil.ToFloat64(f.svc.purgeFailures) != 200 {
			t.Fatalf("retry purged %d (%v), failures %v, want 0 and 200", n, err, testutil.ToFloat64(f.svc.purgeFailures))
		}
		checkRetries(2, 2*time.Minute)

		fl.failDeletes(nil)
		f.clock = f.clock.Add(2*time.Minute + time.Second)
		if n, err := f.svc.Purge(ctx); err != nil || n != 100 {
			t.Fatalf("run after the fault cleared purged %d (%v), want 100", n, err)
		}
		if _, err := f.files.List(ctx, "openai", "", "", 10); !errcode.Is(err, registry.ErrBucketNotFound) {
			t.Fatalf("files left after every one was purged: %v", err)
		}
		if due := dueEntries(t, f); len(due) != 0 {
			t.Fatalf("expiry entries left: %v", due)
		}
	})
}

// slowBody sends head, then blocks until release is closed, then ends.
type slowBody struct {
	head    string
	started chan struct{}
	release chan struct{}
	sent    bool
}

func (b *slowBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		close(b.started)
		return copy(p, b.head), nil
	}
	<-b.release
	return 0, io.EOF
}

// piecesPrefix is where the session engine keeps pieces (session.Concat),
// which upload parts are.
const piecesPrefix = ".pieces/"

// noPartsLeft checks that nothing of an upload's parts survives: no index
// entry, no file in the uploads bucket, no piece, no multipart upload.
func noPartsLeft(t *testing.T, f *fixture, uploadID string) {
	t.Helper()
	ctx := context.Background()
	if n, err := f.store.IndexLen(ctx, partsIndex(uploadID)); err != nil || n != 0 {
		t.Fatalf("%d part index entries left (%v)", n, err)
	}
	if page, err := f.files.List(ctx, "openai-uploads", "", "", 10); !errcode.Is(err, registry.ErrBucketNotFound) {
		t.Fatalf("part files left: %+v %v", page.Data, err)
	}
	for _, prefix := range []string{"openai-uploads/", piecesPrefix} {
		if objs, _, err := f.blobs.Backend.List(ctx, prefix, "", 10); err != nil || len(objs) != 0 {
			t.Fatalf("part blobs left under %s: %+v %v", prefix, objs, err)
		}
		if mp := f.blobs.Multipart; mp != nil && f.blobs.Staging == nil {
			if ups, err := mp.ListMultipart(ctx, prefix); err != nil || len(ups) != 0 {
				t.Fatalf("multipart uploads left under %s: %+v %v", prefix, ups, err)
			}
		}
	}
}

// A part whose body is still arriving when the upload is cancelled or
// completed is refused when it ends, and leaves nothing behind.
func TestLatePartIsRemoved(t *testing.T) {
	for _, how := range []string{"cancel", "complete"} {
		t.Run(how, func(t *testing.T) {
			both(t, func(t *testing.T, f *fixture) {
				ctx := context.Background()
				up, err := f.svc.CreateUpload(ctx, UploadParams{Filename: "x", Purpose: "batch", Bytes: 3, MimeType: "text/plain"})
				if err != nil {
					t.Fatal(err)
				}
				var first Part
				if how == "complete" {
					if first, err = f.svc.AddPart(ctx, up.ID, strings.NewReader("xyz")); err != nil {
						t.Fatal(err)
					}
				}
				body := &slowBody{head: "late", started: make(chan struct{}), release: make(chan struct{})}
				done := make(chan error, 1)
				go func() {
					_, err := f.svc.AddPart(ctx, up.ID, body)
					done <- err
				}()
				<-body.started // the part is past its check and streaming
				var settled Upload
				if how == "cancel" {
					settled, err = f.svc.CancelUpload(ctx, up.ID)
				} else {
					settled, err = f.svc.CompleteUpload(ctx, up.ID, []string{first.ID}, "")
				}
				if err != nil || settled.Status == "pending" {
					t.Fatalf("%s = %+v, %v", how, settled, err)
				}
				close(body.release)
				if err := <-done; !errcode.Is(err, ErrUploadState) {
					t.Fatalf("late part: %v, want %s", err, ErrUploadState.Value)
				}
				noPartsLeft(t, f, up.ID)
				if how == "complete" {
					_, file, err := f.svc.GetFile(ctx, settled.File.ID)
					if err != nil {
						t.Fatal(err)
					}
					rc, _, err := f.files.Open(ctx, file, nil)
					if err != nil {
						t.Fatal(err)
					}
					got, _ := io.ReadAll(rc)
					rc.Close()
					if string(got) != "xyz" {
						t.Fatalf("completed file = %q, want xyz", got)
					}
				}
			})
		})
	}
}

// A client that hangs up during complete does not stop the join half-way:
// it runs detached from the request and publishes the file.
func TestCompleteSurvivesHangUp(t *testing.T) {
	bothFaulty(t, func(t *testing.T, f *fixture, fl *blobFaults) {
		bg := context.Background()
		up, err := f.svc.CreateUpload(bg, UploadParams{Filename: "j.txt", Purpose: "batch", Bytes: 6, MimeType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, part := range []string{"abc", "def"} {
			p, err := f.svc.AddPart(bg, up.ID, strings.NewReader(part))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		fl.hookGet(func(_ context.Context, key string) {
			if strings.HasPrefix(key, piecesPrefix) {
				once.Do(func() { close(entered) })
				<-release
			}
		})
		ctx, hangUp := context.WithCancel(bg)
		type result struct {
			up  Upload
			err error
		}
		done := make(chan result, 1)
		go func() {
			u, err := f.svc.CompleteUpload(ctx, up.ID, ids, "")
			done <- result{u, err}
		}()
		<-entered // joining the first part
		hangUp()
		close(release)
		r := <-done
		if r.err != nil || r.up.Status != "completed" || r.up.File == nil || r.up.File.Bytes != 6 {
			t.Fatalf("complete after the client hung up = %+v, %v", r.up, r.err)
		}
		_, file, err := f.svc.GetFile(bg, r.up.File.ID)
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := f.files.Open(bg, file, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "abcdef" {
			t.Fatalf("joined = %q", got)
		}
		noPartsLeft(t, f, up.ID)
	})
}

// Parts a cancel could not delete are swept by the purger when the
// upload's expiry entry comes due, retried with backoff while storage fails.
func TestPurgeSweepsPartsOfSettledUploads(t *testing.T) {
	bothFaulty(t, func(t *testing.T, f *fixture, fl *blobFaults) {
		ctx := context.Background()
		up, err := f.svc.CreateUpload(ctx, UploadParams{Filename: "x", Purpose: "batch", Bytes: 3, MimeType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AddPart(ctx, up.ID, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
		fl.failDeletes(func(key string) error {
			if strings.HasPrefix(key, piecesPrefix) {
				return errors.New("storage unavailable")
			}
			return nil
		})
		if c, err := f.svc.CancelUpload(ctx, up.ID); err != nil || c.Status != "cancelled" {
			t.Fatalf("cancel while storage fails = %+v, %v; the upload is cancelled whatever its parts do", c, err)
		}
		if n, err := f.store.IndexLen(ctx, partsIndex(up.ID)); err != nil || n != 1 {
			t.Fatalf("the part should have slipped through: %d indexed, %v", n, err)
		}
		f.clock = f.clock.Add(2 * time.Hour)
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 || testutil.ToFloat64(f.svc.purgeFailures) != 1 {
			t.Fatalf("purge while storage fails: %d %v, failures %v", n, err, testutil.ToFloat64(f.svc.purgeFailures))
		}
		fl.failDeletes(nil)
		f.clock = f.clock.Add(time.Minute + time.Second)
		if n, err := f.svc.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("purge after storage came back: %d %v", n, err)
		}
		noPartsLeft(t, f, up.ID)
		if rec, _, err := f.svc.loadUpload(ctx, up.ID); err != nil || rec.Status != "cancelled" {
			t.Fatalf("upload after the sweep = %+v, %v", rec.Upload, err)
		}
	})
}

// lossyStore loses the leases of upload locks on demand: their refresh
// fails as if another holder had taken them over.
type lossyStore struct {
	metastore.Store
	lose atomic.Bool
}

type lossyLock struct {
	metastore.Lock
	s *lossyStore
}

func (s *lossyStore) Lock(ctx context.Context, name string, ttl time.Duration) (metastore.Lock, error) {
	l, err := s.Store.Lock(ctx, name, ttl)
	if err != nil {
		return nil, err
	}
	return &lossyLock{Lock: l, s: s}, nil
}

func (l *lossyLock) Refresh(ctx context.Context, ttl time.Duration) error {
	if l.s.lose.Load() && strings.HasPrefix(l.Name(), "openai/upload/") {
		return metastore.ErrLockLost
	}
	return l.Lock.Refresh(ctx, ttl)
}

// A complete whose upload lease is lost half-way stops: it publishes no
// file, does not settle the upload and frees no part, leaving all of that
// to whoever holds the lease now. The join's first read waits for the
// loss to reach its context, so no sleep has to outlast a refresh.
func TestLostUploadLeaseStopsComplete(t *testing.T) {
	ttl := uploadLockTTL
	t.Cleanup(func() { uploadLockTTL = ttl }) // once the parallel subtests are done
	uploadLockTTL = time.Second               // refreshed every 333 ms
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		lossy := &lossyStore{Store: s.Meta}
		fl := &blobFaults{}
		f := newFixture(t, lossy, withFaults(bucket.Compose(s.Blobs), fl))
		ctx := context.Background()
		up, err := f.svc.CreateUpload(ctx, UploadParams{Filename: "j.txt", Purpose: "batch", Bytes: 6, MimeType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, part := range []string{"abc", "def"} {
			p, err := f.svc.AddPart(ctx, up.ID, strings.NewReader(part))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
		entered := make(chan struct{})
		var once sync.Once
		fl.hookGet(func(ctx context.Context, key string) {
			if !strings.HasPrefix(key, piecesPrefix) {
				return
			}
			once.Do(func() { close(entered) })
			select {
			case <-ctx.Done(): // the lease is lost: the work is cancelled
			case <-time.After(time.Minute):
				t.Error("the join's context outlived the lease")
			}
		})
		done := make(chan error, 1)
		go func() {
			_, err := f.svc.CompleteUpload(ctx, up.ID, ids, "")
			done <- err
		}()
		<-entered
		lossy.lose.Store(true) // the next refresh fails
		if err := <-done; err == nil {
			t.Fatal("complete succeeded after its lease was lost")
		}
		lossy.lose.Store(false)
		fl.hookGet(nil)
		rec, _, err := f.svc.loadUpload(ctx, up.ID)
		if err != nil || rec.Status != "pending" {
			t.Fatalf("upload after a lost lease = %+v, %v; want it still pending", rec.Upload, err)
		}
		if _, err := f.files.List(ctx, "openai", "", "", 10); !errcode.Is(err, registry.ErrBucketNotFound) {
			t.Fatalf("a file was published after the lease was lost: %v", err)
		}
		if n, err := f.store.IndexLen(ctx, partsIndex(up.ID)); err != nil || n != 2 {
			t.Fatalf("%d parts indexed (%v), want both kept", n, err)
		}
		// The next holder completes it.
		done2, err := f.svc.CompleteUpload(ctx, up.ID, ids, "")
		if err != nil || done2.Status != "completed" {
			t.Fatalf("complete by the next holder = %+v, %v", done2, err)
		}
		noPartsLeft(t, f, up.ID)
	})
}
