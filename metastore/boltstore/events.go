package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/metastore"
)

// The event log: events/<seq> → 8 bytes of Unix ms, then the value. seq
// is the bucket's sequence (big-endian, so a cursor walks it in order); an
// event's ID is seq in decimal, zero-padded so IDs also sort as strings.

func eventID(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func parseEventID(id string) (uint64, error) {
	if id == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", id, metastore.ErrBadEventID)
	}
	return n, nil
}

// appendEvents adds emit to the log inside the caller's transaction.
func appendEvents(tx *bolt.Tx, emit [][]byte) error {
	if len(emit) == 0 {
		return nil
	}
	b := tx.Bucket(bucketEvents)
	now := uint64(time.Now().UnixMilli())
	for _, v := range emit {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		val := make([]byte, 8+len(v))
		binary.BigEndian.PutUint64(val, now)
		copy(val[8:], v)
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), val); err != nil {
			return err
		}
	}
	return nil
}

// update runs fn in a write transaction and, if it emitted, wakes the
// readers waiting for events once it committed.
func (s *Store) update(emit [][]byte, fn func(*bolt.Tx) error) error {
	err := s.db.Update(fn)
	if err == nil && len(emit) > 0 {
		s.evMu.Lock()
		close(s.evSignal)
		s.evSignal = make(chan struct{})
		s.evMu.Unlock()
	}
	return err
}

func (s *Store) Events(ctx context.Context, after string, limit int, wait time.Duration) ([]metastore.Event, error) {
	from, err := parseEventID(after)
	if err != nil {
		return nil, fmt.Errorf("boltstore: events: %w", err)
	}
	if limit <= 0 {
		limit = metastore.DefaultLimit
	}
	var deadline <-chan time.Time
	for {
		s.evMu.Lock()
		signal := s.evSignal // taken before reading, so no append is missed
		s.evMu.Unlock()
		var out []metastore.Event
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketEvents).Cursor()
			for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, from+1)); k != nil && len(out) < limit; k, v = c.Next() {
				out = append(out, metastore.Event{ID: eventID(binary.BigEndian.Uint64(k)),
					Time: time.UnixMilli(int64(binary.BigEndian.Uint64(v))), Value: append([]byte{}, v[8:]...)})
			}
			return nil
		})
		if err != nil || len(out) > 0 || wait <= 0 {
			return out, err
		}
		if deadline == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-signal:
		case <-deadline:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
			return nil, nil
		}
	}
}

func (s *Store) LastEventID(ctx context.Context) (string, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			id = eventID(binary.BigEndian.Uint64(k))
		}
		return nil
	})
	return id, err
}

func (s *Store) TrimEvents(ctx context.Context, before time.Time, keep int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		excess := int64(b.Stats().KeyN) - keep
		var dead [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if excess <= 0 && int64(binary.BigEndian.Uint64(v)) >= before.UnixMilli() {
				break
			}
			dead = append(dead, append([]byte{}, k...))
			excess--
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
