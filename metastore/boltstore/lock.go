package boltstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/metastore"
)

// lease is a held lock in memory.
type lease struct {
	owner   string
	expires time.Time
}

func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (metastore.Lock, error) {
	if name == "" {
		return nil, errors.New("boltstore: lock: empty name")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("boltstore: lock %q: invalid ttl %v", name, ttl)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Holding mu while drawing the fence makes fences follow the order in
	// which leases are granted, across all names.
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[name]; ok && time.Now().Before(l.expires) {
		return nil, fmt.Errorf("boltstore: lock %q: %w", name, metastore.ErrLocked)
	}
	fence, err := s.nextFence()
	if err != nil {
		return nil, fmt.Errorf("boltstore: lock %q: %w", name, err)
	}
	owner := rand.Text()
	s.leases[name] = lease{owner: owner, expires: time.Now().Add(ttl)}
	return &lock{store: s, name: name, owner: owner, fence: fence}, nil
}

// nextFence increments the persisted counter; the commit makes it durable
// before the fence is handed out.
func (s *Store) nextFence() (int64, error) {
	var fence uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if v := b.Get(keyFence); len(v) == 8 {
			fence = binary.BigEndian.Uint64(v)
		}
		fence++
		return b.Put(keyFence, binary.BigEndian.AppendUint64(nil, fence))
	})
	if err != nil {
		return 0, fmt.Errorf("draw fence: %w", err)
	}
	return int64(fence), nil
}

type lock struct {
	store *Store
	name  string
	owner string
	fence int64

	mu       sync.Mutex
	released bool // Unlock already ran; later calls are no-ops
}

func (l *lock) Name() string  { return l.name }
func (l *lock) Owner() string { return l.owner }
func (l *lock) Fence() int64  { return l.fence }

// held reports whether the lease is still ours; the caller holds store.mu.
func (l *lock) held(now time.Time) bool {
	cur, ok := l.store.leases[l.name]
	return ok && cur.owner == l.owner && now.Before(cur.expires)
}

func (l *lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("boltstore: refresh lock %q: invalid ttl %v", l.name, ttl)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.store
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if l.released || !l.held(now) {
		return fmt.Errorf("boltstore: refresh lock %q: %w", l.name, metastore.ErrLockLost)
	}
	s.leases[l.name] = lease{owner: l.owner, expires: now.Add(ttl)}
	return nil
}

func (l *lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	s := l.store
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[l.name]
	if !ok || cur.owner != l.owner {
		return fmt.Errorf("boltstore: unlock %q: %w", l.name, metastore.ErrLockLost)
	}
	delete(s.leases, l.name)
	if !time.Now().Before(cur.expires) {
		return fmt.Errorf("boltstore: unlock %q: expired: %w", l.name, metastore.ErrLockLost)
	}
	return nil
}
