package boltstore

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/metastore"
)

func TestSweep(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Put(ctx, k, []byte(k), metastore.Cond{TTL: time.Minute}); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if _, err := s.Put(ctx, "forever", nil, metastore.Cond{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.Put(ctx, "later", nil, metastore.Cond{TTL: time.Hour}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.Lock(ctx, "lease", time.Minute); err != nil {
		t.Fatalf("Lock: %v", err)
	}

	if err := s.sweep(time.Now().Add(2 * time.Minute)); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	var left []string
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, _ []byte) error {
			left = append(left, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if len(left) != 2 || left[0] != "forever" || left[1] != "later" {
		t.Fatalf("records after sweep = %q, want [forever later]", left)
	}
	s.mu.Lock()
	leases := len(s.leases)
	s.mu.Unlock()
	if leases != 0 {
		t.Fatalf("%d leases after sweep, want the expired one forgotten", leases)
	}
}

func TestRecordEncoding(t *testing.T) {
	in := stored{value: []byte{0, 0xff, 'x'}, version: 7, fence: 1 << 40, expiresAt: 1_700_000_000_123_456_789}
	out, err := decodeRecord(encodeRecord(in))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if string(out.value) != string(in.value) || out.version != in.version || out.fence != in.fence || out.expiresAt != in.expiresAt {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
	for _, bad := range [][]byte{nil, {recordFormat}, append([]byte{9}, make([]byte, recordHeaderSize)...)} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%x): no error", bad)
		}
	}
}
