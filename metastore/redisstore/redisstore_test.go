package redisstore_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/metastore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		client, prefix := testsvc.Redis(t) // closes client, deletes prefix*
		return redisstore.New(client, prefix)
	})
}

// The optimistic path for large values keeps every promise the script does.
func TestConformanceLargeValues(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		client, prefix := testsvc.Redis(t)
		return redisstore.AllPutsLarge(redisstore.New(client, prefix))
	})
}

// The keys written are exactly those keys.go documents.
func TestKeySchema(t *testing.T) {
	ctx := t.Context()
	client, prefix := testsvc.Redis(t)
	s := redisstore.New(client, prefix)
	if _, err := s.Put(ctx, "a/b", []byte("v"), metastore.Cond{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.IndexPut(ctx, "uploads", "m", nil); err != nil {
		t.Fatalf("IndexPut: %v", err)
	}
	if _, err := s.Lock(ctx, "up/1", time.Minute); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	slices.Sort(keys)
	want := []string{"r:a/b", "{i:uploads}:h", "{i:uploads}:z", "{lock}:fence", "{lock}:l:up/1"}
	for i := range want {
		want[i] = prefix + want[i]
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	if err := s.Close(); err != nil { // not ours to close
		t.Fatalf("Close: %v", err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("Close closed the caller's client: %v", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	_, prefix := testsvc.Redis(t) // for the cleanup of prefix*
	s, err := redisstore.Open(testsvc.RedisURL(t), prefix)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := s.Put(ctx, "k", []byte("v"), metastore.Cond{}); err != nil {
		t.Fatalf("Put: %v", err)
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

	for _, bad := range []string{"", "http://localhost:6379", "redis://localhost:notaport", "redis://localhost/notadb"} {
		if _, err := redisstore.Open(bad, prefix); err == nil {
			t.Errorf("Open(%q): no error", bad)
		}
	}
}

// On a 3-master Redis Cluster every operation keeps every promise: each
// script and transaction touches one slot, or the cluster refuses it.
func TestConformanceCluster(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		client, prefix := testsvc.RedisCluster(t)
		return redisstore.New(client, prefix)
	})
}

func TestConformanceClusterLargeValues(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		client, prefix := testsvc.RedisCluster(t)
		return redisstore.AllPutsLarge(redisstore.New(client, prefix))
	})
}
