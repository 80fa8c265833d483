package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

func lock(t *testing.T, s metastore.Store, name string, ttl time.Duration) metastore.Lock {
	t.Helper()
	l, err := s.Lock(t.Context(), name, ttl)
	if err != nil {
		t.Fatalf("Lock(%q): %v", name, err)
	}
	if l.Name() != name || l.Owner() == "" || l.Fence() <= 0 {
		t.Fatalf("Lock(%q) = name %q, owner %q, fence %d", name, l.Name(), l.Owner(), l.Fence())
	}
	return l
}

func unlock(t *testing.T, l metastore.Lock) {
	t.Helper()
	if err := l.Unlock(t.Context()); err != nil {
		t.Fatalf("Unlock(%q): %v", l.Name(), err)
	}
}

func testLockExclusive(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a := lock(t, s, "L", time.Minute)
	_, err := s.Lock(ctx, "L", time.Minute)
	wantErr(t, "second Lock", err, metastore.ErrLocked)
	other := lock(t, s, "L2", time.Minute) // other names are independent
	unlock(t, other)

	unlock(t, a)
	unlock(t, a) // twice is safe
	wantErr(t, "Refresh after Unlock", a.Refresh(ctx, time.Minute), metastore.ErrLockLost)

	b := lock(t, s, "L", time.Minute)
	if b.Fence() <= a.Fence() {
		t.Fatalf("fence %d after %d", b.Fence(), a.Fence())
	}
	if b.Owner() == a.Owner() {
		t.Fatalf("two holders share owner %q", a.Owner())
	}
	// A's second Unlock must not release B's lease.
	if err := a.Unlock(ctx); err != nil {
		t.Fatalf("third Unlock: %v", err)
	}
	_, err = s.Lock(ctx, "L", time.Minute)
	wantErr(t, "Lock while B holds it", err, metastore.ErrLocked)
	unlock(t, b)
}

func testLockExpiry(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a := lock(t, s, "E", ttl)
	lapsedUnlock := lock(t, s, "U", ttl)
	lapsedRefresh := lock(t, s, "R", ttl)
	wait()

	b := lock(t, s, "E", time.Minute)
	if b.Fence() <= a.Fence() {
		t.Fatalf("takeover fence %d not greater than %d", b.Fence(), a.Fence())
	}
	wantErr(t, "Refresh by the expired holder", a.Refresh(ctx, time.Minute), metastore.ErrLockLost)
	wantErr(t, "Unlock by the expired holder", a.Unlock(ctx), metastore.ErrLockLost)
	_, err := s.Lock(ctx, "E", time.Minute)
	wantErr(t, "Lock after the old holder's Unlock", err, metastore.ErrLocked)
	if err := b.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("Refresh by the new holder: %v", err)
	}
	unlock(t, b)

	// Lapsed but not taken over is lost too.
	wantErr(t, "Unlock after expiry", lapsedUnlock.Unlock(ctx), metastore.ErrLockLost)
	wantErr(t, "Refresh after expiry", lapsedRefresh.Refresh(ctx, time.Minute), metastore.ErrLockLost)
	unlock(t, lock(t, s, "R", time.Minute))
}

func testLockRefresh(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	l := lock(t, s, "R", ttl)
	// At once: the lease must not lapse first, and any wait here only
	// brings that closer on a loaded machine.
	if err := l.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	wait() // past the original TTL, well within the refreshed one
	_, err := s.Lock(ctx, "R", time.Minute)
	wantErr(t, "Lock after Refresh", err, metastore.ErrLocked)
	if err := l.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("second Refresh: %v", err)
	}
	unlock(t, l)
}

// Every round, 16 goroutines race for one name and exactly one wins.
func testLockContended(t *testing.T, s metastore.Store) {
	const workers, rounds = 16, 10
	ctx := t.Context()
	var last int64
	for round := range rounds {
		var (
			mu      sync.Mutex
			winners []metastore.Lock
			wg      sync.WaitGroup
		)
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				l, err := s.Lock(ctx, "C", time.Minute)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, l)
					mu.Unlock()
				case !errors.Is(err, metastore.ErrLocked):
					t.Errorf("Lock: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d winners, want 1", round, len(winners))
		}
		if f := winners[0].Fence(); f <= last {
			t.Fatalf("round %d: fence %d after %d", round, f, last)
		}
		last = winners[0].Fence()
		unlock(t, winners[0])
	}
}

// Fences grow across names, in the order leases are granted.
func testLockFences(t *testing.T, s metastore.Store) {
	var last int64
	held := map[string]metastore.Lock{}
	for _, name := range []string{"f1", "f2", "f3", "f1", "f4", "f2"} {
		if l, ok := held[name]; ok {
			unlock(t, l)
		}
		l := lock(t, s, name, time.Minute)
		if l.Fence() <= last {
			t.Fatalf("Lock(%q) fence %d after %d", name, l.Fence(), last)
		}
		last = l.Fence()
		held[name] = l
	}
	for _, l := range held {
		unlock(t, l)
	}
}
