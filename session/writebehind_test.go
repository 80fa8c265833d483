package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/registry"
)

// behindInstances are n services over one real Redis and one real S3
// bucket, as n instances of ferryd: each has its own memory (held-back
// segments, parts written behind) and its own fault injector in front of
// S3, whose requests all go through one counter.
func behindInstances(t *testing.T, n int) ([]*fixture, []*faults.Injector) {
	rc, prefix := testsvc.Redis(t)
	client, bkt := testsvc.S3(t)
	s3c := &counting{API: client, n: map[string]int{}}
	store := redisstore.New(rc, prefix)
	var fs []*fixture
	var ins []*faults.Injector
	for range n {
		in := faults.New()
		f := newService(t, store, faults.Backend(bucket.Compose(s3blob.New(s3c, bkt, "ferry/")), in), s3c)
		t.Cleanup(func() { in.Disarm(); waitBehind(t, f.svc) })
		fs, ins = append(fs, f), append(ins, in)
	}
	return fs, ins
}

// waitBehind waits until the instance has no part uploading behind.
func waitBehind(t testing.TB, s *Service) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !s.behind.idle() {
		if time.Now().After(deadline) {
			t.Fatal("parts still uploading behind after 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func storedRecord(t *testing.T, f *fixture, id string) record {
	t.Helper()
	rec, _, err := metastore.GetJSON[record](context.Background(), f.store, recordKey(id))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// appendWithin appends and fails the test if the append takes longer
// than 10 s (one stuck behind a stalled upload would hang forever).
func appendWithin(t *testing.T, f *fixture, id string, off int, b []byte) *registry.File {
	t.Helper()
	type result struct {
		file *registry.File
		err  error
	}
	done := make(chan result, 1)
	go func() { _, file, err := appendBytes(t, f, id, int64(off), b); done <- result{file, err} }()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("append of %d bytes at %d: %v", len(b), off, r.err)
		}
		return r.file
	case <-time.After(10 * time.Second):
		t.Fatalf("append of %d bytes at %d still runs after 10 s", len(b), off)
	}
	return nil
}

func wantFile(t *testing.T, f *fixture, file *registry.File, data []byte) {
	t.Helper()
	if file == nil {
		t.Fatal("the last append did not complete the file")
	}
	if got := readAll(t, f, *file); sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("the file's %d bytes differ from the %d sent", len(got), len(data))
	}
}

func wantWaiting(t *testing.T, f *fixture, id string, parts int, waiting, tail int64) {
	t.Helper()
	rec := storedRecord(t, f, id)
	if len(rec.Parts) != parts || rec.TailPartLen != waiting || rec.TailLen != tail {
		t.Fatalf("record: %d parts, a %d-byte part waiting, %d bytes held back; want %d, %d, %d",
			len(rec.Parts), rec.TailPartLen, rec.TailLen, parts, waiting, tail)
	}
}

// The small chunk that fills a part is acknowledged before that part's
// UploadPart finishes: held back in Redis like any other, then sent in
// the background. The next small chunk does not wait for it either; a
// chunk that fills the next part does, and records it. Every part is
// sent once, and the file is byte-exact.
func TestWriteBehindAcksBeforeItsPart(t *testing.T) {
	fs, ins := behindInstances(t, 1)
	f, in := fs[0], ins[0]
	data := randomBytes(12 * MiB)
	s, err := f.svc.Create(context.Background(), "b", "behind/ack", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < 4*MiB; off += MiB {
		appendWithin(t, f, s.ID, off, data[off:off+MiB])
	}
	trig := in.Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
	appendWithin(t, f, s.ID, 4*MiB, data[4*MiB:5*MiB])
	select {
	case <-trig.Fired():
	case <-time.After(10 * time.Second):
		t.Fatal("no UploadPart of the filled part after its chunk was acknowledged")
	}
	wantWaiting(t, f, s.ID, 0, 5*MiB, 5*MiB)
	appendWithin(t, f, s.ID, 5*MiB, data[5*MiB:6*MiB])
	wantWaiting(t, f, s.ID, 0, 5*MiB, 6*MiB)

	done := make(chan error, 1)
	go func() { _, _, err := appendBytes(t, f, s.ID, 6*MiB, data[6*MiB:11*MiB]); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a chunk that fills the next part went on before the part waiting was sent: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	trig.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantWaiting(t, f, s.ID, 2, 0, 0)
	wantFile(t, f, appendWithin(t, f, s.ID, 11*MiB, data[11*MiB:]), data)
	if n := f.s3.snapshot()["UploadPart"]; n != 3 {
		t.Fatalf("%d UploadParts for 3 parts", n)
	}
}

// Small chunks that complete the parts after the waiting one while it is
// still uploading are held back and acknowledged without waiting, within
// max_held_bytes (16 MiB: the waiting part and two ahead of it, 5 MiB
// each), and those parts go up beside the first: three in flight. The
// chunk that would pass max_held_bytes waits for the first part; S3 gets
// each part once, and the file is byte-exact.
func TestWriteBehindPartsAheadWhileOneUploads(t *testing.T) {
	fs, ins := behindInstances(t, 1)
	f := fs[0]
	data := randomBytes(20 * MiB)
	s, err := f.svc.Create(context.Background(), "b", "behind/ahead", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	trig := ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
	for off := 0; off < 16*MiB; off += MiB {
		appendWithin(t, f, s.ID, off, data[off:off+MiB])
	}
	select {
	case <-trig.Fired():
	case <-time.After(10 * time.Second):
		t.Fatal("part 1 never went up")
	}
	wantWaiting(t, f, s.ID, 0, 5*MiB, 16*MiB) // part 1 waits; parts 2 and 3, whole, ahead of it
	if rec := storedRecord(t, f, s.ID); len(rec.TailAhead) != 2 || rec.TailAhead[0].Len != 5*MiB || rec.TailAhead[1].Len != 5*MiB {
		t.Fatalf("parts ahead of the waiting one: %+v, want two of 5 MiB", rec.TailAhead)
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.s3.snapshot()["UploadPart"] < 2 { // part 1 is held before S3
		if time.Now().After(deadline) {
			t.Fatal("parts 2 and 3 did not go up while part 1 was uploading")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { _, _, err := appendBytes(t, f, s.ID, 16*MiB, data[16*MiB:17*MiB]); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a chunk past max_held_bytes went on before the first part was recorded: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	trig.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec := storedRecord(t, f, s.ID); len(rec.Parts) < 1 || rec.TailLen > 16*MiB {
		t.Fatalf("after part 1 was recorded: %d parts, %d bytes held back", len(rec.Parts), rec.TailLen)
	}
	var file *registry.File
	for off := 17 * MiB; off < len(data); off += MiB {
		file = appendWithin(t, f, s.ID, off, data[off:off+MiB])
	}
	wantFile(t, f, file, data)
	if n := f.s3.snapshot()["UploadPart"]; n != 4 {
		t.Fatalf("%d UploadParts for 4 parts", n)
	}
}

// An append that another instance takes finds no upload of the waiting
// part there: it sends the part itself. The first instance's upload of it
// landing later carries the same bytes, so the file completes byte-exact.
func TestWriteBehindPartTakenByAnotherInstance(t *testing.T) {
	fs, ins := behindInstances(t, 2)
	a, b := fs[0], fs[1]
	data := randomBytes(13 * MiB)
	s, err := a.svc.Create(context.Background(), "b", "behind/other", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	trig := ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
	for off := 0; off < 5*MiB; off += MiB {
		appendWithin(t, a, s.ID, off, data[off:off+MiB])
	}
	<-trig.Fired()
	appendWithin(t, b, s.ID, 5*MiB, data[5*MiB:6*MiB])
	wantWaiting(t, b, s.ID, 1, 0, MiB)
	trig.Release() // a's upload of part 1 lands after b's
	waitBehind(t, a.svc)
	if err, _ := trig.Result(); err != nil {
		t.Fatalf("the late upload of part 1: %v", err)
	}
	var file *registry.File
	for off := 6 * MiB; off < len(data); off += MiB {
		file = appendWithin(t, b, s.ID, off, data[off:off+MiB])
	}
	wantFile(t, b, file, data)
}

// A part whose background upload failed is sent again by the next append
// (which claims the session first), and one whose instance is gone by the
// next instance to take an append.
func TestWriteBehindFailedPartIsSentAgain(t *testing.T) {
	fs, ins := behindInstances(t, 2)
	a, b := fs[0], fs[1]
	data := randomBytes(16 * MiB)
	s, err := a.svc.Create(context.Background(), "b", "behind/failed", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	trig := ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Fail})
	for off := 0; off < 5*MiB; off += MiB {
		appendWithin(t, a, s.ID, off, data[off:off+MiB])
	}
	waitBehind(t, a.svc)
	if err, _ := trig.Result(); !errors.Is(err, faults.ErrInjected) {
		t.Fatalf("the upload behind did not fail: %v", err)
	}
	appendWithin(t, a, s.ID, 5*MiB, data[5*MiB:6*MiB])
	wantWaiting(t, a, s.ID, 1, 0, MiB)

	// The next part's upload never ends: its instance is as good as dead.
	ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
	for off := 6 * MiB; off < 10*MiB; off += MiB {
		appendWithin(t, a, s.ID, off, data[off:off+MiB])
	}
	wantWaiting(t, a, s.ID, 1, 5*MiB, 5*MiB)
	var file *registry.File
	for off := 10 * MiB; off < len(data); off += 3 * MiB {
		file = appendWithin(t, b, s.ID, off, data[off:off+3*MiB])
	}
	wantFile(t, b, file, data)
}

// Two parts in flight on an instance that then goes quiet (part 1 never
// answers there): the next append, on another instance, sends both parts
// itself, in order, and the first instance's uploads landing later carry
// the same bytes. A failed upload of the second part of two is sent again
// by a later append.
func TestWriteBehindTwoPartsInFlight(t *testing.T) {
	t.Run("taken by another instance", func(t *testing.T) {
		fs, ins := behindInstances(t, 2)
		a, b := fs[0], fs[1]
		data := randomBytes(13 * MiB)
		s, err := a.svc.Create(context.Background(), "b", "behind/two-other", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		id := s.ID
		trig := ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
		for off := 0; off < 10*MiB; off += MiB {
			appendWithin(t, a, id, off, data[off:off+MiB])
		}
		wantWaiting(t, a, id, 0, 5*MiB, 10*MiB) // part 1 waits, part 2 whole behind it
		appendWithin(t, b, id, 10*MiB, data[10*MiB:11*MiB])
		wantWaiting(t, b, id, 2, 0, MiB)
		trig.Release() // a's upload of part 1 lands after b's
		waitBehind(t, a.svc)
		var file *registry.File
		for off := 11 * MiB; off < len(data); off += MiB {
			file = appendWithin(t, b, id, off, data[off:off+MiB])
		}
		wantFile(t, b, file, data)
	})
	t.Run("record from before parts ahead", func(t *testing.T) {
		fs, ins := behindInstances(t, 2)
		a, b := fs[0], fs[1]
		data := randomBytes(13 * MiB)
		s, err := a.svc.Create(context.Background(), "b", "behind/two-old", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		trig := ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
		for off := 0; off < 10*MiB; off += MiB {
			appendWithin(t, a, s.ID, off, data[off:off+MiB])
		}
		// Saved as a ferryd from before TailAhead saves it: the part after
		// the waiting one is only the rest of the tail.
		ctx := context.Background()
		rec, ver, err := metastore.GetJSON[record](ctx, a.store, recordKey(s.ID))
		if err != nil || len(rec.TailAhead) != 1 {
			t.Fatalf("record %+v (%v): want one part ahead", rec, err)
		}
		rec.TailAhead = nil
		if _, err := metastore.PutJSON(ctx, a.store, recordKey(s.ID), rec, metastore.Cond{Version: ver, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		appendWithin(t, b, s.ID, 10*MiB, data[10*MiB:11*MiB])
		wantWaiting(t, b, s.ID, 2, 0, MiB)
		trig.Release()
		waitBehind(t, a.svc)
		var file *registry.File
		for off := 11 * MiB; off < len(data); off += MiB {
			file = appendWithin(t, b, s.ID, off, data[off:off+MiB])
		}
		wantFile(t, b, file, data)
	})
	t.Run("second fails", func(t *testing.T) {
		fs, ins := behindInstances(t, 1)
		a, in := fs[0], ins[0]
		data := randomBytes(13 * MiB)
		s, err := a.svc.Create(context.Background(), "b", "behind/two-fail", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		first := in.Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
		for off := 0; off < 9*MiB; off += MiB {
			appendWithin(t, a, s.ID, off, data[off:off+MiB])
		}
		end := in.FailWhile(faults.Methods("UploadPart"), nil) // part 1 is past this, stalled
		appendWithin(t, a, s.ID, 9*MiB, data[9*MiB:10*MiB])
		wantWaiting(t, a, s.ID, 0, 5*MiB, 10*MiB)
		for deadline := time.Now().Add(10 * time.Second); in.Count(faults.Methods("UploadPart")) < 2; {
			if time.Now().After(deadline) {
				t.Fatal("part 2 did not go up")
			}
			time.Sleep(5 * time.Millisecond)
		}
		end()
		first.Release()
		var file *registry.File
		for off := 10 * MiB; off < len(data); off += MiB {
			file = appendWithin(t, a, s.ID, off, data[off:off+MiB])
		}
		wantFile(t, a, file, data)
	})
}

// Abort stops the instance's upload behind before it aborts the multipart
// upload: nothing is left in S3 or Redis.
func TestAbortStopsWriteBehind(t *testing.T) {
	fs, ins := behindInstances(t, 1)
	f := fs[0]
	data := randomBytes(12 * MiB)
	s, err := f.svc.Create(context.Background(), "b", "behind/abort", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	trig := ins[0].Arm(faults.Fault{N: 1, Match: faults.Methods("UploadPart"), Mode: faults.Stall})
	appendWithin(t, f, s.ID, 0, data[:3*MiB])
	appendWithin(t, f, s.ID, 3*MiB, data[3*MiB:6*MiB])
	<-trig.Fired()
	if err := f.svc.Abort(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-trig.Done():
	default:
		t.Fatal("the abort returned while the upload behind still ran")
	}
	if !f.svc.behind.idle() {
		t.Fatal("an upload behind still runs after the abort")
	}
	if ups := multipartKeys(t, f); len(ups) != 0 {
		t.Fatalf("multipart uploads left: %v", ups)
	}
	for k := range 4 {
		if _, err := f.store.Get(context.Background(), tailKey(s.ID, k)); !errors.Is(err, metastore.ErrNotFound) {
			t.Fatalf("tail segment %d left: %v", k, err)
		}
	}
}

// A stream sealed right after the chunk that filled a part completes with
// that part as its last: sent once, and no empty part after it.
func TestSealTakesThePartWrittenBehind(t *testing.T) {
	fs, _ := behindInstances(t, 1)
	f := fs[0]
	ctx := context.Background()
	data := randomBytes(6 * MiB)
	s, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "behind/seal", Size: 64 * MiB, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	appendWithin(t, f, s.ID, 0, data[:3*MiB])
	appendWithin(t, f, s.ID, 3*MiB, data[3*MiB:])
	wantWaiting(t, f, s.ID, 0, 6*MiB, 6*MiB)
	file, err := f.svc.Seal(ctx, s.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFile(t, f, &file, data)
	if n := f.s3.snapshot()["UploadPart"]; n != 1 {
		t.Fatalf("%d UploadParts for one part", n)
	}
}
