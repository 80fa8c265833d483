// Package boltstore is the embedded metastore.Store: one bbolt file, one
// process. Locks live in memory (there is only one process to exclude) but
// their fences come from a counter in the file; see layout.go for the
// bucket layout.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/metastore"
)

// sweepInterval is how often expired records are removed from disk. Reads
// already hide them, so this only bounds how long they take up space.
const sweepInterval = time.Minute

// Store implements metastore.Store.
type Store struct {
	db *bolt.DB

	mu     sync.Mutex
	leases map[string]lease

	evMu     sync.Mutex
	evSignal chan struct{} // closed and replaced when events are appended

	stop      chan struct{}
	sweeper   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ metastore.Store = (*Store)(nil)

// Open opens or creates the database at path, creating parent directories.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("boltstore: create directory: %w", err)
	}
	// The timeout turns a second process holding the file lock into an
	// error instead of a hang.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketIndexes, bucketMeta, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	s := &Store{db: db, leases: make(map[string]lease), stop: make(chan struct{}), evSignal: make(chan struct{})}
	s.sweeper.Add(1)
	go s.sweepLoop(sweepInterval)
	return s, nil
}

// Close stops the sweeper and closes the database. It is safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.sweeper.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("boltstore: close: %w", err)
		}
	})
	return s.closeErr
}

func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// A read transaction fails once the database is closed.
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("boltstore: ping: %w", err)
	}
	return nil
}

func (s *Store) Get(ctx context.Context, key string) (metastore.Record, error) {
	if key == "" {
		return metastore.Record{}, errors.New("boltstore: get: empty key")
	}
	if err := ctx.Err(); err != nil {
		return metastore.Record{}, err
	}
	var rec metastore.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		r, ok, err := current(tx, key, time.Now())
		if err != nil {
			return err
		}
		if !ok {
			return metastore.ErrNotFound
		}
		rec = r.record()
		return nil
	})
	if err != nil {
		return metastore.Record{}, fmt.Errorf("boltstore: get %q: %w", key, err)
	}
	return rec, nil
}

func (s *Store) Put(ctx context.Context, key string, value []byte, c metastore.Cond, emit ...[]byte) (metastore.Record, error) {
	if err := c.Check(key); err != nil {
		return metastore.Record{}, fmt.Errorf("boltstore: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.Record{}, err
	}
	var rec metastore.Record
	// Errors returned from the closure roll the transaction back, so a
	// rejected write costs no disk sync.
	err := s.update(emit, func(tx *bolt.Tx) error {
		now := time.Now()
		cur, exists, err := current(tx, key, now)
		if err != nil {
			return err
		}
		if c.Fence > 0 && cur.fence > c.Fence {
			return fmt.Errorf("fence %d < %d: %w", c.Fence, cur.fence, metastore.ErrFenced)
		}
		switch {
		case c.Version == 0 && exists:
			return fmt.Errorf("exists at version %d: %w", cur.version, metastore.ErrConflict)
		case c.Version > 0 && (!exists || cur.version != c.Version):
			return fmt.Errorf("want version %d, have %d: %w", c.Version, cur.version, metastore.ErrConflict)
		}
		next := stored{value: value, version: cur.version + 1, fence: max(cur.fence, c.Fence)}
		if c.TTL > 0 {
			next.expiresAt = now.Add(c.TTL).UnixNano()
		}
		rec = next.record()
		if err := tx.Bucket(bucketRecords).Put([]byte(key), encodeRecord(next)); err != nil {
			return err
		}
		return appendEvents(tx, emit)
	})
	if err != nil {
		return metastore.Record{}, fmt.Errorf("boltstore: put %q: %w", key, err)
	}
	return rec, nil
}

func (s *Store) Delete(ctx context.Context, key string, version int64, emit ...[]byte) error {
	if key == "" {
		return errors.New("boltstore: delete: empty key")
	}
	if version < metastore.AnyVersion {
		return fmt.Errorf("boltstore: delete %q: invalid version %d", key, version)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.update(emit, func(tx *bolt.Tx) error {
		cur, exists, err := current(tx, key, time.Now())
		if err != nil {
			return err
		}
		switch {
		case !exists && version != metastore.AnyVersion:
			return metastore.ErrNotFound
		case exists && version != metastore.AnyVersion && cur.version != version:
			return fmt.Errorf("want version %d, have %d: %w", version, cur.version, metastore.ErrConflict)
		}
		// Also removes an expired leftover the sweeper has not reached yet.
		if err := tx.Bucket(bucketRecords).Delete([]byte(key)); err != nil || !exists {
			return err
		}
		return appendEvents(tx, emit)
	})
	if err != nil {
		return fmt.Errorf("boltstore: delete %q at version %d: %w", key, version, err)
	}
	return nil
}

// current reads key, reporting an expired record as absent (zero stored).
func current(tx *bolt.Tx, key string, now time.Time) (stored, bool, error) {
	b := tx.Bucket(bucketRecords).Get([]byte(key))
	if b == nil {
		return stored{}, false, nil
	}
	r, err := decodeRecord(b)
	if err != nil {
		return stored{}, false, err
	}
	if r.expired(now) {
		return stored{}, false, nil
	}
	return r, true, nil
}

func (s *Store) sweepLoop(every time.Duration) {
	defer s.sweeper.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			// A failed sweep is retried on the next tick; reads hide
			// expired records meanwhile.
			_ = s.sweep(now)
		}
	}
}

// sweep deletes records that expired before now and forgets expired leases.
func (s *Store) sweep(now time.Time) error {
	s.mu.Lock()
	for name, l := range s.leases {
		if !now.Before(l.expires) {
			delete(s.leases, name)
		}
	}
	s.mu.Unlock()

	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		var dead [][]byte
		// Collect first: deleting under a live cursor makes it skip keys.
		err := b.ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err == nil && r.expired(now) {
				dead = append(dead, append([]byte{}, k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
