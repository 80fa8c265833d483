package tus

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferryhq/ferry/metastore"
)

// locker is tusd's Locker over the metadata store's leases, so the
// instances behind a balancer take turns on one upload: tusd holds the
// lock "tus/<id>" for a whole request, from reading the upload's offset to
// answering. A lease outlives an instance that dies by at most its TTL.
type locker struct {
	store metastore.Store
	ttl   time.Duration
}

func lockName(id string) string { return "tus/" + id }

// errLockUnavailable: the metadata store did not answer; the client retries.
var errLockUnavailable = tusd.NewError("ERR_UNAVAILABLE", "the metadata store cannot be reached; retry in a few seconds", http.StatusServiceUnavailable)

func (l *locker) NewLock(id string) (tusd.Lock, error) {
	return &lock{l: l, name: lockName(id)}, nil
}

type lock struct {
	l       *locker
	name    string
	held    metastore.Lock
	stop    func()
	stopped atomic.Bool
}

// Lock waits for the lease until ctx ends (tusd's AcquireLockTimeout, or the
// client leaving); a lease still held then answers 423, which tus clients
// retry. While held it is refreshed; if it is lost all the same (the store
// was unreachable for a TTL), tusd is asked to stop the request, whose
// session writes the session's own fencing refuses by then anyway.
func (k *lock) Lock(ctx context.Context, requestUnlock func()) error {
	pause := 5 * time.Millisecond
	for {
		held, err := k.l.store.Lock(ctx, k.name, k.l.ttl)
		if err == nil {
			k.held = held
			break
		}
		switch {
		case ctx.Err() != nil:
			return tusd.ErrFileLocked
		case !errors.Is(err, metastore.ErrLocked):
			return errLockUnavailable
		}
		select {
		case <-ctx.Done():
			return tusd.ErrFileLocked
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
	kept, stop := metastore.KeepAlive(context.Background(), k.held, k.l.ttl)
	k.stop = stop
	go func() {
		<-kept.Done()
		if !k.stopped.Load() {
			requestUnlock()
		}
	}()
	return nil
}

func (k *lock) Unlock() error {
	if k.held == nil {
		return nil
	}
	k.stopped.Store(true)
	k.stop()
	return k.held.Unlock(context.Background())
}
