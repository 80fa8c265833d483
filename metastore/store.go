// Package metastore is the narrow metadata interface the domain packages
// (session, registry, openai) are written against once. Two implementations
// live below it: metastore/redisstore (production, shared by any number of
// ferryd processes) and metastore/boltstore (the embedded default, one
// process). metastore/storetest is the conformance suite both must pass.
//
// The store offers four things and nothing else:
//   - records: opaque values with a version and a fencing counter, written
//     with compare-and-set and an optional expiry;
//   - indexes: named, lexicographically ordered member→value maps, listed
//     with a cursor and a limit;
//   - locks: try-once leases with a TTL, an owner token and a fencing token
//     drawn from one store-wide monotonic counter;
//   - an event log, the outbox of the changes: Put, Delete, IndexPut and
//     IndexDelete take events to append in the same atomic step as their
//     change, and only if the change took effect.
package metastore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound: the record or index member does not exist (or has expired).
	ErrNotFound = errors.New("metastore: not found")
	// ErrConflict: a compare-and-set saw a different version than expected.
	ErrConflict = errors.New("metastore: version conflict")
	// ErrFenced: the write carried a fencing token older than the one the
	// record already holds, i.e. it comes from a stale lock holder.
	ErrFenced = errors.New("metastore: stale fencing token")
	// ErrLocked: the lock is held by someone else.
	ErrLocked = errors.New("metastore: lock is held")
	// ErrLockLost: the lease expired or was taken over before Refresh/Unlock.
	ErrLockLost = errors.New("metastore: lock lost")
	// ErrNotReplicated: the write took effect, but the store could not
	// confirm in time that the replicas it was asked to wait for hold it
	// (redis.min_replicas_ack), so a failover may still undo it. The
	// caller must not acknowledge it; a later read may still see it.
	ErrNotReplicated = errors.New("metastore: write not confirmed by replicas")
	// ErrBadEventID: Events was given a cursor that is no event id of
	// this store's.
	ErrBadEventID = errors.New("metastore: not an event id")
)

// AnyVersion makes Put and Delete unconditional.
const AnyVersion int64 = -1

// Record is a stored value. Version starts at 1 on creation and grows by one
// on every Put. Fence is the highest fencing token any write has carried.
type Record struct {
	Value     []byte
	Version   int64
	Fence     int64
	ExpiresAt time.Time // zero when the record never expires
}

// Cond guards a write.
type Cond struct {
	// Version is the version the caller last saw: 0 means "must not exist",
	// AnyVersion means "don't care", anything else must match exactly.
	Version int64
	// Fence, when > 0, rejects the write with ErrFenced if the record's
	// stored fence is greater; on success the stored fence becomes
	// max(stored, Fence). Zero leaves the stored fence alone.
	Fence int64
	// TTL sets the record's expiry relative to now; zero means no expiry.
	// Every Put sets the expiry afresh.
	TTL time.Duration
}

// Check rejects a write no implementation can honour.
func (c Cond) Check(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case c.Version < AnyVersion:
		return fmt.Errorf("invalid version %d", c.Version)
	case c.Fence < 0:
		return fmt.Errorf("invalid fence %d", c.Fence)
	case c.TTL < 0:
		return fmt.Errorf("invalid ttl %v", c.TTL)
	}
	return nil
}

// CheckMember rejects an index name or member no implementation can store.
func CheckMember(index, member string) error {
	if index == "" {
		return errors.New("empty index name")
	}
	if member == "" {
		return errors.New("empty member")
	}
	return nil
}

// Entry is one member of an index.
type Entry struct {
	Member string
	Value  []byte
}

// Query selects a window of an index. Members are compared as raw bytes.
type Query struct {
	Prefix string // only members starting with Prefix
	After  string // exclusive lower bound in ascending order (upper bound when Desc)
	Before string // exclusive upper bound in ascending order (lower bound when Desc)
	Limit  int    // at most this many entries; <= 0 means DefaultLimit
	Desc   bool   // descending order
}

// DefaultLimit applies when Query.Limit is not set.
const DefaultLimit = 100

// Lock is a held lease. Fence is unique and strictly greater than the fence
// of every lock acquired before it from the same store, for any name, so a
// record written with it rejects any older holder.
type Lock interface {
	Name() string
	Owner() string
	Fence() int64
	// Refresh extends the lease; ErrLockLost if it is no longer ours.
	Refresh(ctx context.Context, ttl time.Duration) error
	// Unlock releases the lease; ErrLockLost if it already expired or was
	// taken over. Calling it twice is safe.
	Unlock(ctx context.Context) error
}

// KeepAlive refreshes l every ttl/3 while work runs under the returned
// context, and cancels that context (with a cause) if the lease is lost, so
// the work stops before another holder's begins. stop ends the refreshing;
// it does not unlock.
func KeepAlive(ctx context.Context, l Lock, ttl time.Duration) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := l.Refresh(ctx, ttl); err != nil {
					cancel(fmt.Errorf("lock %s lost: %w", l.Name(), err))
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		cancel(nil)
	}
}

// Event is an entry of the store's event log. A write given events (the
// emit arguments) appends them in the same atomic step as its change, and
// only if the change took effect: a Put that passed its condition, a Delete
// or IndexDelete that removed something, any IndexPut. So the log holds an
// event for every committed change that asked for one, and for nothing
// that did not commit.
type Event struct {
	ID    string    // assigned by the store, ascending in log order, never reused
	Time  time.Time // when the store appended it
	Value []byte
}

// Store is the metadata store.
type Store interface {
	// Get returns the record, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)
	// Put writes value under c and returns the new record.
	// ErrConflict on a version mismatch, ErrFenced on a stale fence.
	Put(ctx context.Context, key string, value []byte, c Cond, emit ...[]byte) (Record, error)
	// Delete removes the record if version matches (or is AnyVersion).
	// Deleting a missing record with AnyVersion is not an error (and emits
	// nothing); with a specific version it is ErrNotFound.
	Delete(ctx context.Context, key string, version int64, emit ...[]byte) error

	// IndexPut adds or replaces member in index.
	IndexPut(ctx context.Context, index, member string, value []byte, emit ...[]byte) error
	// IndexGet returns the member's value, or ErrNotFound.
	IndexGet(ctx context.Context, index, member string) ([]byte, error)
	// IndexDelete removes member; a missing member is not an error (and
	// emits nothing).
	IndexDelete(ctx context.Context, index, member string, emit ...[]byte) error
	// IndexList returns entries in order and whether more match beyond them.
	IndexList(ctx context.Context, index string, q Query) (entries []Entry, more bool, err error)
	// IndexDrop removes the whole index at once; a missing one is not an
	// error.
	IndexDrop(ctx context.Context, index string) error
	// IndexLen counts the members of index.
	IndexLen(ctx context.Context, index string) (int64, error)

	// Events returns up to limit events (DefaultLimit if <= 0) after the
	// one whose ID is after ("" for the oldest kept), in log order. When
	// there are none it waits up to wait for the next.
	Events(ctx context.Context, after string, limit int, wait time.Duration) ([]Event, error)
	// LastEventID is the newest event's ID, "" when the log is empty.
	LastEventID(ctx context.Context) (string, error)
	// TrimEvents drops the events appended before `before`, and then the
	// oldest while more than keep remain.
	TrimEvents(ctx context.Context, before time.Time, keep int64) error

	// Lock tries once to take the named lease for ttl. ErrLocked if held.
	Lock(ctx context.Context, name string, ttl time.Duration) (Lock, error)

	// Ping checks the store is reachable; /readyz calls it.
	Ping(ctx context.Context) error
	Close() error
}

// RequestLease is the lease of a lock held for one request on an upload: a
// session's append, a tus request. Short, because it is refreshed while
// the request runs and it is how long the upload stays busy after the
// process holding it dies. The session and tus locks share it, so a dead
// instance frees an upload as fast through either.
const RequestLease = 10 * time.Second

// Held is what WithLock hands the work: a context that is cancelled when
// the lease is lost, and the lease's fence for every record write.
type Held struct {
	Ctx   context.Context
	Fence int64
}

// LockOptions tune WithLock.
type LockOptions struct {
	TTL time.Duration // the lease; refreshed every TTL/3 while the work runs
	// Wait keeps trying a held lock this long before ErrLocked; 0 tries once.
	Wait time.Duration
	// Detach runs the work on a context that the caller's cancellation does
	// not reach (a client hanging up), bounded by Timeout. Only the loss of
	// the lease, or the timeout, cancels it.
	Detach  bool
	Timeout time.Duration
}

// WithLock takes the named lease and runs fn while keeping it alive. fn's
// context is cancelled as soon as the lease is lost, so a holder that lost
// it stops before its next storage call, and its record writes carry the
// fence, so the store refuses them. ErrLocked if another holder keeps it
// past o.Wait. The lease is released when fn returns.
func WithLock(ctx context.Context, s Store, name string, o LockOptions, fn func(Held) error) error {
	l, err := lockWaiting(ctx, s, name, o.TTL, o.Wait)
	if err != nil {
		return err
	}
	work := ctx
	if o.Detach {
		work = context.WithoutCancel(ctx)
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		work, cancel = context.WithTimeout(work, o.Timeout)
		defer cancel()
	}
	work, stop := KeepAlive(work, l, o.TTL)
	defer func() {
		stop()
		_ = l.Unlock(context.WithoutCancel(ctx))
	}()
	return fn(Held{Ctx: work, Fence: l.Fence()})
}

func lockWaiting(ctx context.Context, s Store, name string, ttl, wait time.Duration) (Lock, error) {
	deadline := time.Now().Add(wait)
	pause := 2 * time.Millisecond
	for {
		l, err := s.Lock(ctx, name, ttl)
		if !errors.Is(err, ErrLocked) || !time.Now().Before(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
