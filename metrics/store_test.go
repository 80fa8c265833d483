package metrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/metastore/storetest"
	"github.com/ferryhq/ferry/metrics"
)

func openBolt(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openRedis(t *testing.T) metastore.Store {
	t.Helper()
	client, prefix := testsvc.Redis(t)
	return redisstore.New(client, prefix)
}

// The decorated store still passes the whole conformance suite. All the
// parallel subtests share one registry, which register's reuse allows.
func TestStoreConformance(t *testing.T) {
	for name, open := range map[string]func(*testing.T) metastore.Store{
		"bolt":  func(t *testing.T) metastore.Store { return openBolt(t) },
		"redis": openRedis,
	} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			storetest.Run(t, func(t *testing.T) metastore.Store { return metrics.Store(open(t), reg) })
		})
	}
}

func TestStoreCounts(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testStoreCounts(t, openBolt(t)) })
	t.Run("redis", func(t *testing.T) { testStoreCounts(t, openRedis(t)) })
}

func testStoreCounts(t *testing.T, raw metastore.Store) {
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	s := metrics.Store(raw, reg)
	const ops = "ferry_metastore_operations_total"

	if _, err := s.Get(ctx, "missing"); !errors.Is(err, metastore.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	want(t, reg, 1, ops, "operation", "get", "result", "not_found")

	if _, err := s.Put(ctx, "k", []byte("v"), metastore.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "k", []byte("v"), metastore.Cond{Version: 7}); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("stale Put: %v", err)
	}
	want(t, reg, 1, ops, "operation", "put", "result", "ok")
	want(t, reg, 1, ops, "operation", "put", "result", "conflict")

	// An older lease's fence is refused once a newer one has written.
	older, err := s.Lock(ctx, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := s.Lock(ctx, "b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "k", []byte("v2"), metastore.Cond{Version: metastore.AnyVersion, Fence: newer.Fence()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "k", []byte("v3"), metastore.Cond{Version: metastore.AnyVersion, Fence: older.Fence()}); !errors.Is(err, metastore.ErrFenced) {
		t.Fatalf("fenced Put: %v", err)
	}
	want(t, reg, 1, ops, "operation", "put", "result", "fenced")
	want(t, reg, 1, "ferry_metastore_fencing_rejections_total")

	if _, err := s.Lock(ctx, "a", time.Minute); !errors.Is(err, metastore.ErrLocked) {
		t.Fatalf("second Lock: %v", err)
	}
	want(t, reg, 1, ops, "operation", "lock", "result", "locked")
	want(t, reg, 2, "ferry_metastore_lock_acquisitions_total", "result", "acquired")
	want(t, reg, 1, "ferry_metastore_lock_acquisitions_total", "result", "contended")

	// The handed-out lock is decorated too.
	if err := older.Refresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, l := range []metastore.Lock{older, newer} {
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := older.Refresh(ctx, time.Minute); !errors.Is(err, metastore.ErrLockLost) {
		t.Fatalf("Refresh after Unlock: %v", err)
	}
	want(t, reg, 1, ops, "operation", "lock_refresh", "result", "ok")
	want(t, reg, 1, ops, "operation", "lock_refresh", "result", "lock_lost")
	want(t, reg, 2, ops, "operation", "unlock", "result", "ok")

	if err := s.IndexPut(ctx, "idx", "m", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IndexGet(ctx, "idx", "nope"); !errors.Is(err, metastore.ErrNotFound) {
		t.Fatalf("IndexGet missing: %v", err)
	}
	if _, _, err := s.IndexList(ctx, "idx", metastore.Query{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.IndexLen(ctx, "idx"); err != nil || n != 1 {
		t.Fatalf("IndexLen = %d, %v", n, err)
	}
	if err := s.IndexDelete(ctx, "idx", "m"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", metastore.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for op, result := range map[string]string{"index_put": "ok", "index_get": "not_found", "index_list": "ok",
		"index_len": "ok", "index_delete": "ok", "delete": "ok", "ping": "ok"} {
		want(t, reg, 1, ops, "operation", op, "result", result)
	}

	// A caller that gave up is not a store failure.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Lock(gone, "c", time.Minute); err == nil {
		t.Fatal("Lock with a cancelled context succeeded")
	}
	want(t, reg, 1, ops, "operation", "lock", "result", "canceled")
	want(t, reg, 1, "ferry_metastore_lock_acquisitions_total", "result", "canceled")

	want(t, reg, 0, ops, "result", "error")
	want(t, reg, 0, "ferry_metastore_lock_acquisitions_total", "result", "error")
	want(t, reg, 4, "ferry_metastore_operation_duration_seconds", "operation", "put")
	want(t, reg, 4, "ferry_metastore_operation_duration_seconds", "operation", "lock")
	lint(t, reg)
}

// A store that is gone counts as error: this is what the Redis alert reads.
func TestStoreError(t *testing.T) {
	raw, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := metrics.Store(raw, reg)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping on a closed store succeeded")
	}
	if _, err := s.Get(t.Context(), "k"); err == nil {
		t.Fatal("Get on a closed store succeeded")
	}
	want(t, reg, 1, "ferry_metastore_operations_total", "operation", "ping", "result", "error")
	want(t, reg, 1, "ferry_metastore_operations_total", "operation", "get", "result", "error")
}

// A write its replicas did not confirm (the test Redis has none) counts as
// an error of its operation and once in its own counter.
func TestStoreCountsUnconfirmedWrites(t *testing.T) {
	client, prefix := testsvc.Redis(t)
	reg := prometheus.NewRegistry()
	s := metrics.Store(redisstore.New(client, prefix).WaitForReplicas(1, 20*time.Millisecond), reg)
	want(t, reg, 0, "ferry_metastore_replica_ack_timeouts_total")
	if _, err := s.Put(t.Context(), "k", []byte("v"), metastore.Cond{}); !errors.Is(err, metastore.ErrNotReplicated) {
		t.Fatalf("Put without replicas: %v", err)
	}
	want(t, reg, 1, "ferry_metastore_operations_total", "operation", "put", "result", "error")
	want(t, reg, 1, "ferry_metastore_replica_ack_timeouts_total")
}
