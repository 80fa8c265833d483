package metastore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
)

// KeepAlive keeps a lease past its TTL, and cancels the work once it is lost.
func TestKeepAlive(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	const ttl = 90 * time.Millisecond
	l, err := store.Lock(ctx, "job", ttl)
	if err != nil {
		t.Fatal(err)
	}
	work, stop := metastore.KeepAlive(ctx, l, ttl)
	defer stop()
	time.Sleep(4 * ttl)
	if work.Err() != nil {
		t.Fatalf("the work was cancelled while the lease was kept: %v", context.Cause(work))
	}
	if _, err := store.Lock(ctx, "job", ttl); err == nil {
		t.Fatal("the lease lapsed although it was kept alive")
	}
	if err := l.Unlock(ctx); err != nil { // as if another holder had taken over
		t.Fatal(err)
	}
	select {
	case <-work.Done():
		if cause := context.Cause(work); cause == nil || !strings.Contains(cause.Error(), "lock job lost") {
			t.Fatalf("cause = %v", cause)
		}
	case <-time.After(10 * ttl):
		t.Fatal("the work went on after the lease was lost")
	}
}
