package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/storetest"
)

func open(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}

// Records, indexes and the fence counter survive a restart; a counter that
// restarted would make every new lock holder's writes look stale.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "not", "yet", "meta.db")
	s := open(t, path)
	l, err := s.Lock(ctx, "upload", time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if _, err := s.Put(ctx, "rec", []byte("v\x00"), metastore.Cond{Fence: l.Fence()}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	expiring, err := s.Put(ctx, "ttl", []byte("t"), metastore.Cond{TTL: time.Hour})
	if err != nil {
		t.Fatalf("Put with TTL: %v", err)
	}
	if err := s.IndexPut(ctx, "idx", "m1", []byte("one")); err != nil {
		t.Fatalf("IndexPut: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatalf("Ping after Close: no error")
	}

	s = open(t, path)
	// Leases are in memory: the old one is gone, the fence keeps growing.
	l2, err := s.Lock(ctx, "upload", time.Minute)
	if err != nil {
		t.Fatalf("Lock after reopen: %v", err)
	}
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence after reopen %d, before %d", l2.Fence(), l.Fence())
	}
	rec, err := s.Get(ctx, "rec")
	if err != nil || string(rec.Value) != "v\x00" || rec.Version != 1 || rec.Fence != l.Fence() {
		t.Fatalf("Get after reopen = %+v, %v", rec, err)
	}
	if _, err := s.Put(ctx, "rec", []byte("new holder"), metastore.Cond{Version: 1, Fence: l2.Fence()}); err != nil {
		t.Fatalf("new holder's Put after reopen: %v", err)
	}
	got, err := s.Get(ctx, "ttl")
	if err != nil || !got.ExpiresAt.Equal(expiring.ExpiresAt) {
		t.Fatalf("Get of TTL record after reopen = %+v, %v; want ExpiresAt %v", got, err, expiring.ExpiresAt)
	}
	v, err := s.IndexGet(ctx, "idx", "m1")
	if err != nil || string(v) != "one" {
		t.Fatalf("IndexGet after reopen = %q, %v", v, err)
	}
	if n, err := s.IndexLen(ctx, "idx"); err != nil || n != 1 {
		t.Fatalf("IndexLen after reopen = %d, %v", n, err)
	}
}
