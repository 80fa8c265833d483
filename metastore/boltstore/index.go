package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ferryhq/ferry/metastore"
)

// indexBucket returns the index's bucket, or nil if nothing was ever put.
func indexBucket(tx *bolt.Tx, index string) *bolt.Bucket {
	return tx.Bucket(bucketIndexes).Bucket([]byte(index))
}

func (s *Store) IndexPut(ctx context.Context, index, member string, value []byte, emit ...[]byte) error {
	if err := metastore.CheckMember(index, member); err != nil {
		return fmt.Errorf("boltstore: index %q put: %w", index, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.update(emit, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketIndexes).CreateBucketIfNotExists([]byte(index))
		if err != nil {
			return err
		}
		// bbolt stores a nil value as empty, which is what we want.
		if err := b.Put([]byte(member), value); err != nil {
			return err
		}
		return appendEvents(tx, emit)
	})
	if err != nil {
		return fmt.Errorf("boltstore: index %q put %q: %w", index, member, err)
	}
	return nil
}

func (s *Store) IndexGet(ctx context.Context, index, member string) ([]byte, error) {
	if err := metastore.CheckMember(index, member); err != nil {
		return nil, fmt.Errorf("boltstore: index %q get: %w", index, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var value []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := indexBucket(tx, index)
		if b == nil {
			return metastore.ErrNotFound
		}
		v := b.Get([]byte(member))
		if v == nil {
			return metastore.ErrNotFound
		}
		value = append([]byte{}, v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: index %q get %q: %w", index, member, err)
	}
	return value, nil
}

func (s *Store) IndexDelete(ctx context.Context, index, member string, emit ...[]byte) error {
	if err := metastore.CheckMember(index, member); err != nil {
		return fmt.Errorf("boltstore: index %q delete: %w", index, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.update(emit, func(tx *bolt.Tx) error {
		b := indexBucket(tx, index)
		if b == nil {
			return nil
		}
		if k, _ := b.Cursor().Seek([]byte(member)); !bytes.Equal(k, []byte(member)) {
			return nil // nothing removed, nothing to announce
		}
		if err := b.Delete([]byte(member)); err != nil {
			return err
		}
		return appendEvents(tx, emit)
	})
	if err != nil {
		return fmt.Errorf("boltstore: index %q delete %q: %w", index, member, err)
	}
	return nil
}

func (s *Store) IndexDrop(ctx context.Context, index string) error {
	if index == "" {
		return errors.New("boltstore: index drop: empty index name")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketIndexes).DeleteBucket([]byte(index))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("boltstore: index %q drop: %w", index, err)
	}
	return nil
}

func (s *Store) IndexLen(ctx context.Context, index string) (int64, error) {
	if index == "" {
		return 0, errors.New("boltstore: index len: empty index name")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		b := indexBucket(tx, index)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore: index %q len: %w", index, err)
	}
	return n, nil
}

func (s *Store) IndexList(ctx context.Context, index string, q metastore.Query) ([]metastore.Entry, bool, error) {
	if index == "" {
		return nil, false, errors.New("boltstore: index list: empty index name")
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = metastore.DefaultLimit
	}
	limit = min(limit, math.MaxInt32)
	w := newWindow(q)
	var entries []metastore.Entry
	more := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := indexBucket(tx, index); b != nil {
			entries, more = w.page(b.Cursor(), limit)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("boltstore: index %q list: %w", index, err)
	}
	return entries, more, nil
}

// window is the part of an index a Query lists: keys with prefix, between
// lo and hi in byte order (exclusive, nil when open), walked down when desc.
type window struct {
	lo, hi, prefix []byte
	desc           bool
}

func newWindow(q metastore.Query) window {
	// After and Before name the bounds in listing order, so they swap when Desc.
	w := window{lo: bound(q.After), hi: bound(q.Before), prefix: []byte(q.Prefix), desc: q.Desc}
	if w.desc {
		w.lo, w.hi = w.hi, w.lo
	}
	if end := prefixEnd(w.prefix); end != nil && (w.hi == nil || bytes.Compare(end, w.hi) < 0) {
		w.hi = end
	}
	return w
}

func (w window) contains(k []byte) bool {
	return bytes.HasPrefix(k, w.prefix) &&
		(w.lo == nil || bytes.Compare(k, w.lo) > 0) &&
		(w.hi == nil || bytes.Compare(k, w.hi) < 0)
}

// page reads up to limit entries of the window from c, copying them out of
// the transaction, and reports whether more follow.
func (w window) page(c *bolt.Cursor, limit int) ([]metastore.Entry, bool) {
	var entries []metastore.Entry
	var k, v []byte
	var step func() ([]byte, []byte)
	if w.desc {
		k, v = seekBefore(c, w.hi)
		step = c.Prev
	} else {
		k, v = seekAfter(c, w.lo, w.prefix)
		step = c.Next
	}
	// Keys come in order, so the first one out of range ends the window.
	for ; k != nil && w.contains(k); k, v = step() {
		if len(entries) == limit {
			return entries, true
		}
		entries = append(entries, metastore.Entry{Member: string(k), Value: append([]byte{}, v...)})
	}
	return entries, false
}

func bound(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// seekAfter positions c on the first key > lo and >= prefix.
func seekAfter(c *bolt.Cursor, lo, prefix []byte) ([]byte, []byte) {
	if lo == nil || bytes.Compare(lo, prefix) < 0 {
		return c.Seek(prefix) // Seek(empty) is First
	}
	k, v := c.Seek(lo)
	if k != nil && bytes.Equal(k, lo) {
		return c.Next()
	}
	return k, v
}

// seekBefore positions c on the last key < hi (the last key when hi is nil).
func seekBefore(c *bolt.Cursor, hi []byte) ([]byte, []byte) {
	if hi == nil {
		return c.Last()
	}
	if k, _ := c.Seek(hi); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// prefixEnd is the smallest key greater than every key starting with p, or
// nil when there is none (p empty or all 0xff bytes).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
