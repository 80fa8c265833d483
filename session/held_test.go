package session

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
)

// All sessions together hold back at most MaxHeldTotal: a small chunk past
// it gets 503 (nothing of it stored, the offset unchanged), and room comes
// back when a tail goes out as a part or a session ends. A ledger entry
// whose session is gone is dropped by the purger's sweep.
func TestHeldBackTotalIsCapped(t *testing.T) {
	for _, name := range []string{"redis+s3", "cluster+s3"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := storesFixture(t, testsvc.Open(t, name, stores))
			f.svc.ledger.limit = 3 * MiB
			ctx := context.Background()
			a, err := f.svc.Create(ctx, "b", "held/a", "", 20*MiB)
			if err != nil {
				t.Fatal(err)
			}
			b, err := f.svc.Create(ctx, "b", "held/b", "", 20*MiB)
			if err != nil {
				t.Fatal(err)
			}
			dataA, dataB := randomBytes(20*MiB), randomBytes(20*MiB)
			if _, _, err := appendBytes(t, f, a.ID, 0, dataA[:2*MiB]); err != nil {
				t.Fatal(err)
			}
			_, _, err = appendBytes(t, f, b.ID, 0, dataB[:2*MiB])
			if !errcode.Is(err, errcode.ErrUnavailable) {
				t.Fatalf("a chunk past the cap: %v, want UNAVAILABLE", err)
			}
			if info, err := f.svc.Get(ctx, b.ID); err != nil || info.Offset != 0 {
				t.Fatalf("the refused chunk moved the offset: %+v, %v", info, err)
			}
			if n, err := f.svc.ledger.sum(ctx); err != nil || n != 2*MiB {
				t.Fatalf("ledger = %d, %v; want a's 2 MiB", n, err)
			}

			// a's tail goes out as a part: its room is free again.
			if _, _, err := appendBytes(t, f, a.ID, 2*MiB, dataA[2*MiB:5*MiB]); err != nil {
				t.Fatal(err)
			}
			if n, err := f.svc.ledger.sum(ctx); err != nil || n != 0 {
				t.Fatalf("ledger = %d, %v after a's tail became a part", n, err)
			}
			time.Sleep(heldRefresh + 100*time.Millisecond)
			if _, _, err := appendBytes(t, f, b.ID, 0, dataB[:2*MiB]); err != nil {
				t.Fatalf("with room again: %v", err)
			}
			if err := f.svc.Abort(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if n, err := f.svc.ledger.sum(ctx); err != nil || n != 0 {
				t.Fatalf("ledger = %d, %v after b was aborted", n, err)
			}

			// An entry the store failed to remove goes with the sweep.
			if err := f.store.IndexPut(ctx, heldIndex, "0123456789abcdef0123456789abcdef", []byte("1000")); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.dropStaleHeld(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := f.svc.ledger.sum(ctx); err != nil || n != 0 {
				t.Fatalf("ledger = %d, %v after the sweep", n, err)
			}
			// a completes byte-exact, holding nothing at the end.
			_, file, err := appendBytes(t, f, a.ID, 5*MiB, dataA[5*MiB:])
			if err != nil || file == nil {
				t.Fatalf("completing a: %v, %v", file, err)
			}
			if !bytes.Equal(readAll(t, f, *file), dataA) {
				t.Fatal("a is not byte-exact")
			}
			if entries, _, err := f.store.IndexList(ctx, heldIndex, metastore.Query{}); err != nil || len(entries) != 0 {
				t.Fatalf("ledger entries left: %v, %v", entries, err)
			}
		})
	}
}

// Request data in this instance's memory stays within the buffer budget:
// with it taken, a small chunk waits (nothing of it stored) and goes on
// once there is room; one that cannot get room in time is refused with
// 503, its offset unchanged. Memory does not grow with concurrent uploads.
func TestHeldBackBuffersAreBudgeted(t *testing.T) {
	f := storesFixture(t, testsvc.Open(t, "redis+s3", stores))
	f.svc.buffers.wait = 2 * time.Second
	ctx := context.Background()
	in, err := f.svc.Create(ctx, "b", "budget", "", 20*MiB)
	if err != nil {
		t.Fatal(err)
	}
	limit := f.svc.buffers.limit
	if err := f.svc.buffers.sem.Acquire(ctx, limit); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(MiB)
	done := make(chan error, 1)
	go func() { _, _, err := appendBytes(t, f, in.ID, 0, data); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a small chunk was buffered past the budget: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n, err := f.svc.ledger.sum(ctx); err != nil || n != 0 {
		t.Fatalf("a waiting chunk is in the ledger: %d, %v", n, err)
	}
	f.svc.buffers.sem.Release(limit)
	if err := <-done; err != nil {
		t.Fatalf("once there was room: %v", err)
	}
	if info, err := f.svc.Get(ctx, in.ID); err != nil || info.Offset != MiB {
		t.Fatalf("offset %+v, %v", info, err)
	}

	// Held past the wait: 503, nothing taken.
	f.svc.buffers.wait = 100 * time.Millisecond
	if err := f.svc.buffers.sem.Acquire(ctx, limit); err != nil {
		t.Fatal(err)
	}
	defer f.svc.buffers.sem.Release(limit)
	if _, _, err := appendBytes(t, f, in.ID, MiB, data); !errcode.Is(err, errcode.ErrUnavailable) {
		t.Fatalf("past the wait: %v, want UNAVAILABLE", err)
	}
	if _, _, err := f.svc.AppendStream(ctx, in.ID, MiB, -1, bytes.NewReader(data)); !errcode.Is(err, errcode.ErrUnavailable) {
		t.Fatalf("a chunked append past the wait: %v, want UNAVAILABLE", err)
	}
	if info, err := f.svc.Get(ctx, in.ID); err != nil || info.Offset != MiB {
		t.Fatalf("a refused chunk moved the offset: %+v, %v", info, err)
	}
}
