package faults

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// Store returns s with every call counted by in and open to its faults.
// Method names are the interface's; a held lock's calls are "Refresh" and
// "Unlock", keyed by the lock's name. Close is passed through uncounted.
func Store(s metastore.Store, in *Injector) metastore.Store { return &store{next: s, in: in} }

type store struct {
	next metastore.Store
	in   *Injector
}

func (s *store) Get(ctx context.Context, key string) (metastore.Record, error) {
	return call(ctx, s.in, KindStore, "Get", key, func(ctx context.Context) (metastore.Record, error) {
		return s.next.Get(ctx, key)
	})
}

func (s *store) Put(ctx context.Context, key string, value []byte, c metastore.Cond, emit ...[]byte) (metastore.Record, error) {
	return call(ctx, s.in, KindStore, "Put", key, func(ctx context.Context) (metastore.Record, error) {
		return s.next.Put(ctx, key, value, c, emit...)
	})
}

func (s *store) Delete(ctx context.Context, key string, version int64, emit ...[]byte) error {
	return call0(ctx, s.in, KindStore, "Delete", key, func(ctx context.Context) error {
		return s.next.Delete(ctx, key, version, emit...)
	})
}

func (s *store) IndexPut(ctx context.Context, index, member string, value []byte, emit ...[]byte) error {
	return call0(ctx, s.in, KindStore, "IndexPut", index, func(ctx context.Context) error {
		return s.next.IndexPut(ctx, index, member, value, emit...)
	})
}

func (s *store) IndexGet(ctx context.Context, index, member string) ([]byte, error) {
	return call(ctx, s.in, KindStore, "IndexGet", index, func(ctx context.Context) ([]byte, error) {
		return s.next.IndexGet(ctx, index, member)
	})
}

func (s *store) IndexDelete(ctx context.Context, index, member string, emit ...[]byte) error {
	return call0(ctx, s.in, KindStore, "IndexDelete", index, func(ctx context.Context) error {
		return s.next.IndexDelete(ctx, index, member, emit...)
	})
}

func (s *store) IndexDrop(ctx context.Context, index string) error {
	return call0(ctx, s.in, KindStore, "IndexDrop", index, func(ctx context.Context) error {
		return s.next.IndexDrop(ctx, index)
	})
}

type listed struct {
	entries []metastore.Entry
	more    bool
}

func (s *store) IndexList(ctx context.Context, index string, q metastore.Query) ([]metastore.Entry, bool, error) {
	l, err := call(ctx, s.in, KindStore, "IndexList", index, func(ctx context.Context) (listed, error) {
		e, more, err := s.next.IndexList(ctx, index, q)
		return listed{e, more}, err
	})
	return l.entries, l.more, err
}

func (s *store) IndexLen(ctx context.Context, index string) (int64, error) {
	return call(ctx, s.in, KindStore, "IndexLen", index, func(ctx context.Context) (int64, error) {
		return s.next.IndexLen(ctx, index)
	})
}

func (s *store) Events(ctx context.Context, after string, limit int, wait time.Duration) ([]metastore.Event, error) {
	return call(ctx, s.in, KindStore, "Events", after, func(ctx context.Context) ([]metastore.Event, error) {
		return s.next.Events(ctx, after, limit, wait)
	})
}

func (s *store) LastEventID(ctx context.Context) (string, error) {
	return call(ctx, s.in, KindStore, "LastEventID", "", s.next.LastEventID)
}

func (s *store) TrimEvents(ctx context.Context, before time.Time, keep int64) error {
	return call0(ctx, s.in, KindStore, "TrimEvents", "", func(ctx context.Context) error {
		return s.next.TrimEvents(ctx, before, keep)
	})
}

func (s *store) Lock(ctx context.Context, name string, ttl time.Duration) (metastore.Lock, error) {
	l, err := call(ctx, s.in, KindStore, "Lock", name, func(ctx context.Context) (metastore.Lock, error) {
		return s.next.Lock(ctx, name, ttl)
	})
	if err != nil {
		return nil, err
	}
	return &lock{Lock: l, in: s.in}, nil
}

func (s *store) Ping(ctx context.Context) error {
	return call0(ctx, s.in, KindStore, "Ping", "", s.next.Ping)
}

func (s *store) Close() error { return s.next.Close() }

// lock counts Refresh and Unlock; Name, Owner and Fence are local reads.
type lock struct {
	metastore.Lock
	in *Injector
}

func (l *lock) Refresh(ctx context.Context, ttl time.Duration) error {
	return call0(ctx, l.in, KindStore, "Refresh", l.Name(), func(ctx context.Context) error {
		return l.Lock.Refresh(ctx, ttl)
	})
}

func (l *lock) Unlock(ctx context.Context) error {
	return call0(ctx, l.in, KindStore, "Unlock", l.Name(), l.Lock.Unlock)
}
