package metastore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
)

// fakeLock reports each refresh, and fails them once lost is set: the
// test sees the refreshes happen instead of sleeping past a real lease.
type fakeLock struct {
	refreshed chan time.Duration
	lost      atomic.Bool
}

func (*fakeLock) Name() string                 { return "job" }
func (*fakeLock) Owner() string                { return "test" }
func (*fakeLock) Fence() int64                 { return 1 }
func (*fakeLock) Unlock(context.Context) error { return nil }

func (l *fakeLock) Refresh(_ context.Context, ttl time.Duration) error {
	if l.lost.Load() {
		return metastore.ErrLockLost
	}
	select {
	case l.refreshed <- ttl:
	default: // the test is not looking
	}
	return nil
}

// KeepAlive refreshes a lease with its TTL for as long as the work runs,
// and cancels the work once the lease is lost.
func TestKeepAlive(t *testing.T) {
	const ttl = 30 * time.Millisecond
	l := &fakeLock{refreshed: make(chan time.Duration)}
	work, stop := metastore.KeepAlive(context.Background(), l, ttl)
	defer stop()
	for range 3 {
		if got := <-l.refreshed; got != ttl {
			t.Fatalf("refreshed for %v, want %v", got, ttl)
		}
	}
	if work.Err() != nil {
		t.Fatalf("the work was cancelled while the lease was kept: %v", context.Cause(work))
	}
	l.lost.Store(true) // as if another holder had taken over
	select {
	case <-work.Done():
		if cause := context.Cause(work); cause == nil || !strings.Contains(cause.Error(), "lock job lost") {
			t.Fatalf("cause = %v", cause)
		}
	case <-time.After(time.Minute):
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
	// A lease no test step can outlast: only the caller's cancellation
	// or the timeout may end the work here, never a lapse.
	const ttl = time.Minute
	caller, hangUp := context.WithCancel(context.Background())
	err = metastore.WithLock(caller, store, "s", metastore.LockOptions{TTL: ttl, Detach: true}, func(h metastore.Held) error {
		if h.Fence <= 0 {
			t.Errorf("fence = %d", h.Fence)
		}
		hangUp()
		time.Sleep(50 * time.Millisecond) // room for a cancellation passed on asynchronously
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
	err = metastore.WithLock(context.Background(), store, "s", metastore.LockOptions{TTL: ttl, Wait: time.Minute}, func(h metastore.Held) error {
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
