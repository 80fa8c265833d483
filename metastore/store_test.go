package metastore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
)

// KeepAlive keeps a lease past its TTL, and cancels the work once it is lost.
func TestKeepAlive(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	l, err := store.Lock(ctx, "job", ttl)
	if err != nil {
		t.Fatal(err)
	}
	work, stop := metastore.KeepAlive(ctx, l, ttl)
	defer stop()
	time.Sleep(4 * ttl)
	if work.Err() != nil {
		t.Fatalf("the work was cancelled while the lease was kept: %v", context.Cause(work))
	}
	if _, err := store.Lock(ctx, "job", ttl); err == nil {
		t.Fatal("the lease lapsed although it was kept alive")
	}
	if err := l.Unlock(ctx); err != nil { // as if another holder had taken over
		t.Fatal(err)
	}
	select {
	case <-work.Done():
		if cause := context.Cause(work); cause == nil || !strings.Contains(cause.Error(), "lock job lost") {
			t.Fatalf("cause = %v", cause)
		}
	case <-time.After(10 * ttl):
		t.Fatal("the work went on after the lease was lost")
	}
}

// WithLock: a detached holder outlives its caller's cancellation but not
// its lease; a waiting caller gets the lock once it is free, a non-waiting
// one gets ErrLocked.
func TestWithLock(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const ttl = 300 * time.Millisecond
	caller, hangUp := context.WithCancel(context.Background())
	err = metastore.WithLock(caller, store, "s", metastore.LockOptions{TTL: ttl, Detach: true}, func(h metastore.Held) error {
		if h.Fence <= 0 {
			t.Errorf("fence = %d", h.Fence)
		}
		hangUp()
		time.Sleep(4 * ttl)
		if h.Ctx.Err() != nil {
			t.Errorf("a detached holder was cancelled by its caller: %v", context.Cause(h.Ctx))
		}
		if err := metastore.WithLock(context.Background(), store, "s", metastore.LockOptions{TTL: ttl}, func(metastore.Held) error { return nil }); !errors.Is(err, metastore.ErrLocked) {
			t.Errorf("second holder: err = %v, want ErrLocked", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Released: a waiting caller gets it while another holder lets go.
	l, err := store.Lock(context.Background(), "s", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { _ = l.Unlock(context.Background()) })
	ran := false
	err = metastore.WithLock(context.Background(), store, "s", metastore.LockOptions{TTL: ttl, Wait: 2 * time.Second}, func(h metastore.Held) error {
		ran = true
		if h.Fence <= l.Fence() {
			t.Errorf("fence %d not above the previous holder's %d", h.Fence, l.Fence())
		}
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("waiting WithLock: ran=%v err=%v", ran, err)
	}
	// A timeout bounds detached work.
	err = metastore.WithLock(context.Background(), store, "s", metastore.LockOptions{TTL: ttl, Detach: true, Timeout: 30 * time.Millisecond}, func(h metastore.Held) error {
		<-h.Ctx.Done()
		return h.Ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: err = %v", err)
	}
}
