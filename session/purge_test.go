package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// discardFaults fails the discards of chosen names, until cleared: a
// multipart upload's abort by object key, a staging file's discard by
// session id.
type discardFaults struct {
	in   *faults.Injector
	ends []func()
}

func (d *discardFaults) set(err error, names ...string) {
	named := func(c faults.Call) bool { return slices.Contains(names, c.Key) }
	d.ends = append(d.ends, d.in.FailWhile(faults.All(faults.Methods("AbortMultipart", "StageDiscard"), named), err))
}

func (d *discardFaults) clear() {
	for _, end := range d.ends {
		end()
	}
	d.ends = nil
}

// faultyBoth runs fn on both backends with discards that fail on demand.
func faultyBoth(t *testing.T, fn func(t *testing.T, f *fixture, fl *discardFaults)) {
	testsvc.EachStore(t, testsvc.StoreOptions{S3Prefix: "ferry/"}, func(t *testing.T, s testsvc.Stores) {
		fl := &discardFaults{in: faults.New()}
		fn(t, newService(t, s.Meta, faults.Backend(bucket.Compose(s.Blobs), fl.in), nil), fl)
	})
}

// startUpload starts a session's storage (on S3, its multipart upload) as
// its first part would, without sending the part.
func startUpload(t *testing.T, f *fixture, id string) {
	t.Helper()
	ctx := context.Background()
	rec, ver, err := f.svc.load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := f.svc.engine(rec.Location)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.startStorage(ctx, eng, rec, rec.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.save(ctx, rec, ver, 0); err != nil {
		t.Fatal(err)
	}
}

// dueEntries decodes the purger's work list.
func dueEntries(t *testing.T, f *fixture) map[string]purgeEntry {
	t.Helper()
	entries, _, err := f.store.IndexList(context.Background(), expiryIndex, metastore.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]purgeEntry{}
	for _, e := range entries {
		var pe purgeEntry
		if err := json.Unmarshal(e.Value, &pe); err != nil {
			t.Fatalf("entry %s: %v", e.Member, err)
		}
		out[e.Member] = pe
	}
	return out
}

// multipartKeys lists the object keys with a multipart upload in progress
// (nil on the filesystem, whose sessions stage instead).
func multipartKeys(t *testing.T, f *fixture) map[string]bool {
	t.Helper()
	if f.blobs.Staging != nil {
		return nil
	}
	ups, err := f.blobs.Multipart.ListMultipart(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, u := range ups {
		out[u.Key] = true
	}
	return out
}

// 150 due sessions whose first 100 cannot be freed (their storage fails):
// one run frees the other 50, the 100 wait out a growing backoff, and they
// are freed once storage answers again.
func TestPurgeSkipsFailingEntries(t *testing.T) {
	faultyBoth(t, func(t *testing.T, f *fixture, fl *discardFaults) {
		ctx := context.Background()
		boom := errors.New("storage unavailable")
		var failing, healthy []Info
		for i := range 150 {
			in, err := f.svc.Create(ctx, "b", fmt.Sprintf("purge/%03d", i), "", 6*MiB)
			if err != nil {
				t.Fatal(err)
			}
			startUpload(t, f, in.ID) // a multipart upload on S3
			if i < 100 {
				failing = append(failing, in)
				fl.set(boom, in.ID, "b/"+in.Key)
			} else {
				healthy = append(healthy, in)
			}
			f.clock.advance(time.Millisecond) // expiry order is creation order: the failing ones come first
		}
		f.clock.advance(2 * time.Hour)

		n, err := f.svc.Purge(ctx)
		if err != nil || n != 50 {
			t.Fatalf("first run freed %d (%v), want the 50 healthy sessions", n, err)
		}
		if got := testutil.ToFloat64(f.svc.m.purgeFailures); got != 100 {
			t.Fatalf("ferry_purge_failures_total = %v, want 100", got)
		}
		for _, in := range healthy {
			if _, err := f.svc.Get(ctx, in.ID); !errcode.Is(err, ErrNotFound) {
				t.Fatalf("healthy session %s after purge: %v", in.ID, err)
			}
		}
		for _, in := range failing {
			if _, err := f.svc.Get(ctx, in.ID); !errcode.Is(err, ErrExpired) {
				t.Fatalf("failing session %s after purge: %v, want it kept (expired) for a retry", in.ID, err)
			}
		}
		if keys := multipartKeys(t, f); keys != nil {
			if len(keys) != 100 {
				t.Fatalf("%d multipart uploads left, want the 100 failing ones", len(keys))
			}
			for _, in := range healthy {
				if keys["b/"+in.Key] {
					t.Fatalf("the upload of healthy session %s was not aborted", in.ID)
				}
			}
		}
		checkRetries := func(attempts int, wait time.Duration) {
			t.Helper()
			due := dueEntries(t, f)
			if len(due) != 100 {
				t.Fatalf("%d expiry entries, want the 100 failing ones", len(due))
			}
			want := fmt.Sprintf("%016d/", f.clock.now().Add(wait).UnixMilli())
			for member, pe := range due {
				if pe.Attempts != attempts || !strings.HasPrefix(member, want) || pe.Object == "" {
					t.Fatalf("entry %s = %+v, want attempts %d, due at %s", member, pe, attempts, want)
				}
			}
		}
		checkRetries(1, time.Minute)

		// Within the backoff nothing is tried.
		f.clock.advance(30 * time.Second)
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 || testutil.ToFloat64(f.svc.m.purgeFailures) != 100 {
			t.Fatalf("run within the backoff freed %d (%v), failures %v", n, err, testutil.ToFloat64(f.svc.m.purgeFailures))
		}
		// Past it, still failing: tried once more, then the wait doubles.
		f.clock.advance(31 * time.Second)
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 || testutil.ToFloat64(f.svc.m.purgeFailures) != 200 {
			t.Fatalf("retry freed %d (%v), failures %v, want 0 and 200", n, err, testutil.ToFloat64(f.svc.m.purgeFailures))
		}
		checkRetries(2, 2*time.Minute)

		// Storage answers again: the next due run frees them all.
		fl.clear()
		f.clock.advance(2*time.Minute + time.Second)
		if n, err := f.svc.Purge(ctx); err != nil || n != 100 {
			t.Fatalf("run after the fault cleared freed %d (%v), want 100", n, err)
		}
		if due := dueEntries(t, f); len(due) != 0 {
			t.Fatalf("%d expiry entries left after everything was freed", len(due))
		}
		if keys := multipartKeys(t, f); len(keys) != 0 {
			t.Fatalf("%d multipart uploads left after everything was freed", len(keys))
		}
		if got := testutil.ToFloat64(f.svc.m.purgeFailures); got != 200 {
			t.Fatalf("ferry_purge_failures_total = %v after a clean run, want still 200", got)
		}
	})
}

// Storage that vanished (the bucket deleted, the upload gone) holds nothing
// any more: the session counts as freed instead of failing forever.
func TestPurgeCountsVanishedStorageAsFreed(t *testing.T) {
	faultyBoth(t, func(t *testing.T, f *fixture, fl *discardFaults) {
		ctx := context.Background()
		for i, err := range []error{bucket.ErrNoBucket, bucket.ErrNotFound} {
			in, cerr := f.svc.Create(ctx, "b", "gone/"+strconv.Itoa(i), "", 6*MiB)
			if cerr != nil {
				t.Fatal(cerr)
			}
			fl.set(err, in.ID, "b/"+in.Key)
		}
		f.clock.advance(2 * time.Hour)
		if n, err := f.svc.Purge(ctx); err != nil || n != 2 {
			t.Fatalf("purge freed %d (%v), want 2", n, err)
		}
		if got := testutil.ToFloat64(f.svc.m.purgeFailures); got != 0 {
			t.Fatalf("ferry_purge_failures_total = %v, want 0", got)
		}
		if due := dueEntries(t, f); len(due) != 0 {
			t.Fatalf("expiry entries left: %v", due)
		}
		if n, _ := f.store.IndexLen(ctx, expiryIndex); n != 0 {
			t.Fatalf("%d expiry entries left", n)
		}
	})
}

// A CreateMultipart whose answer was lost (at a session's first part)
// leaves an upload no record names: the purger's sweep aborts it once it
// is older than Config.OrphanAge (1h), and never an upload a live session owns,
// however old.
func TestPurgeAbortsOrphanUploads(t *testing.T) {
	in := faults.New()
	rc, prefix := testsvc.Redis(t)
	client, bkt := testsvc.S3(t)
	f := newService(t, redisstore.New(rc, prefix), faults.Backend(bucket.Compose(s3blob.New(client, bkt, "ferry/")), in), nil)
	ctx := context.Background()
	part := randomBytes(5 * MiB)
	live, err := f.svc.Create(ctx, "b", "orphans/live", "", 6*MiB)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := appendBytes(t, f, live.ID, 0, part); err != nil {
		t.Fatal(err)
	}
	lost, err := f.svc.Create(ctx, "b", "orphans/lost", "", 6*MiB)
	if err != nil {
		t.Fatal(err)
	}
	in.Arm(faults.Fault{N: 1, Match: faults.Methods("CreateMultipart"), Mode: faults.FailAfter})
	if _, _, err := appendBytes(t, f, lost.ID, 0, part); err == nil {
		t.Fatal("an append whose CreateMultipart answer was lost succeeded")
	}
	in.Disarm()
	want := func(when string, keys ...string) {
		t.Helper()
		got := multipartKeys(t, f)
		if len(got) != len(keys) {
			t.Fatalf("%s: multipart uploads %v, want %v", when, got, keys)
		}
		for _, k := range keys {
			if !got[k] {
				t.Fatalf("%s: multipart uploads %v, want %v", when, got, keys)
			}
		}
	}
	want("after the lost answer", "b/orphans/live", "b/orphans/lost")
	if _, err := f.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	want("after a purge while it is young", "b/orphans/live", "b/orphans/lost")

	// The live session stays alive past the orphan age.
	f.clock.advance(f.svc.cfg.OrphanAge - 10*time.Minute)
	if _, _, err := appendBytes(t, f, live.ID, int64(len(part)), make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(20 * time.Minute)
	if _, err := f.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	want("after a purge past the orphan age", "b/orphans/live")
	if err := f.svc.Abort(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	want("after the abort")
}

// A session's upload starts at its first part, whose purger entry goes at
// the create's member: usually it replaces the create's entry. If the
// purger refiled that one first, the session has two; refiled while the
// session lives, every entry takes the record's storage, so one from
// before the start can never overwrite one that names the upload, and the
// orphan sweep never aborts it.
func TestPurgeRefilesFromTheRecord(t *testing.T) {
	f := redisS3(t) // TTL one hour
	ctx := context.Background()
	data := randomBytes(16 * MiB)
	entriesOf := func(id string) []purgeEntry {
		var out []purgeEntry
		for _, pe := range dueEntries(t, f) {
			if pe.ID == id {
				out = append(out, pe)
			}
		}
		return out
	}

	// Usually: one entry, naming the upload once it starts.
	usual, err := f.svc.Create(ctx, "b", "usual", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.advance(10 * time.Minute)
	if _, _, err := appendBytes(t, f, usual.ID, 0, data[:MiB]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := appendBytes(t, f, usual.ID, MiB, data[MiB:6*MiB]); err != nil {
		t.Fatal(err)
	}
	if got := entriesOf(usual.ID); len(got) != 1 || got[0].UploadID == "" {
		t.Fatalf("entries of a started session: %+v, want one naming its upload", got)
	}
	if err := f.svc.Abort(ctx, usual.ID); err != nil {
		t.Fatal(err)
	}

	in, err := f.svc.Create(ctx, "b", "refiled", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Duration(0)
	step := func(to time.Duration, off, n int) {
		t.Helper()
		f.clock.advance(to - at)
		at = to
		if n > 0 {
			if _, _, err := appendBytes(t, f, in.ID, int64(off), data[off:off+n]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.svc.Purge(ctx); err != nil {
			t.Fatal(err)
		}
	}
	step(50*time.Minute, 0, MiB)     // held back; expires at 110m
	step(61*time.Minute, 0, 0)       // the create's entry is refiled to 110m, naming no upload
	step(70*time.Minute, MiB, 5*MiB) // the first part: the upload's entry goes at 60m, due at once
	step(71*time.Minute, 0, 0)       // and is refiled to 130m
	step(111*time.Minute, 0, 0)      // the entry at 110m is refiled onto the same member
	rec, _, err := f.svc.load(ctx, in.ID)
	if err != nil || rec.UploadID == "" {
		t.Fatalf("record %+v, %v: want a started upload", rec, err)
	}
	if got := entriesOf(in.ID); len(got) == 0 {
		t.Fatal("the session has no expiry entry")
	}
	for _, pe := range entriesOf(in.ID) {
		if pe.UploadID != rec.UploadID {
			t.Fatalf("expiry entry %+v does not name the session's upload %s", pe, rec.UploadID)
		}
	}
	step(125*time.Minute, 6*MiB, MiB) // expires at 185m
	step(172*time.Minute, 0, 0)       // the orphan sweep runs again, the upload far past the orphan age
	if _, file, err := appendBytes(t, f, in.ID, 7*MiB, data[7*MiB:]); err != nil || file == nil {
		t.Fatalf("last append: %v, file %v", err, file)
	}
	file, err := f.files.Get(ctx, "b", "refiled")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, file); !bytes.Equal(got, data) {
		t.Fatal("bytes differ")
	}
}
