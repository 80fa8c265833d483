// Package storetest is the conformance suite every metastore.Store must
// pass. Implementations call Run from their own tests.
package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// Run runs the suite. newStore must return a fresh, empty store and close it
// when the test ends (t.Cleanup). Subtests run in parallel, each on its own
// store, so the TTL waits overlap.
func Run(t *testing.T, newStore func(t *testing.T) metastore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s metastore.Store)
	}{
		{"Records/CreateAndUpdate", testCreateAndUpdate},
		{"Records/Delete", testDelete},
		{"Records/Values", testValues},
		{"Records/Keys", testKeys},
		{"Records/InvalidInput", testInvalidInput},
		{"Records/ConcurrentIncrements", testConcurrentIncrements},
		{"Records/ConcurrentCreate", testConcurrentCreate},
		{"Records/JSON", testJSONRecords},
		{"Records/JSONCorrupt", testJSONCorrupt},
		{"Fencing/Tokens", testFenceTokens},
		{"Fencing/StaleHolder", testStaleHolder},
		{"Expiry/Expires", testExpires},
		{"Expiry/PutResetsTTL", testPutResetsTTL},
		{"Index/Order", testIndexOrder},
		{"Index/Prefix", testIndexPrefix},
		{"Index/Bounds", testIndexBounds},
		{"Index/LimitAndMore", testIndexLimit},
		{"Index/Paging", testIndexPaging},
		{"Index/GetDeleteLen", testIndexGetDeleteLen},
		{"Index/Drop", testIndexDrop},
		{"Index/Isolation", testIndexIsolation},
		{"Locks/Exclusive", testLockExclusive},
		{"Locks/Expiry", testLockExpiry},
		{"Locks/Refresh", testLockRefresh},
		{"Locks/Contended", testLockContended},
		{"Locks/FencesAcrossNames", testLockFences},
		{"Events/RideOnWrites", testEventsRideOnWrites},
		{"Events/Wait", testEventsWait},
		{"Events/PagingAndTrim", testEventsPagingAndTrim},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// ttl is the short expiry the suite uses; wait sleeps safely past it.
const ttl = 300 * time.Millisecond

func wait() { time.Sleep(ttl + 150*time.Millisecond) }

func put(t *testing.T, s metastore.Store, key string, value []byte, c metastore.Cond) metastore.Record {
	t.Helper()
	rec, err := s.Put(t.Context(), key, value, c)
	if err != nil {
		t.Fatalf("Put(%q, %+v): %v", key, c, err)
	}
	if !bytes.Equal(rec.Value, value) {
		t.Fatalf("Put(%q) returned value %q, want %q", key, rec.Value, value)
	}
	return rec
}

func get(t *testing.T, s metastore.Store, key string) metastore.Record {
	t.Helper()
	rec, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return rec
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func wantRecord(t *testing.T, got metastore.Record, value string, version, fence int64) {
	t.Helper()
	if string(got.Value) != value || got.Version != version || got.Fence != fence {
		t.Fatalf("record = {%q v%d f%d}, want {%q v%d f%d}",
			got.Value, got.Version, got.Fence, value, version, fence)
	}
}

func testPing(t *testing.T, s metastore.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
