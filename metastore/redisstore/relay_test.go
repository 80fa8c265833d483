package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// On a Cluster, events a writer left in its outbox (it died before moving
// them) reach the log through the sweep, once each even when two
// instances sweep the same outboxes.
func TestClusterSweepMovesLeftovers(t *testing.T) {
	client, prefix := testsvc.RedisCluster(t)
	a, b := redisstore.New(client, prefix), redisstore.New(client, prefix)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	if !redisstore.UsesOutboxes(a) {
		t.Fatal("a store on a Cluster client does not use per-slot outboxes")
	}
	ctx := context.Background()
	for i, slot := range []int{7, 7, 9000} {
		ob := redisstore.OutboxOf(a, slot)
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: ob, Values: []any{"e", fmt.Sprint("left", i)}}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := client.SAdd(ctx, redisstore.SlotsKey(a), slot).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	deadline := time.Now().Add(15 * time.Second)
	after := ""
	for len(got) < 3 && time.Now().Before(deadline) {
		for _, s := range []*redisstore.Store{a, b} { // both relays run
			evs, err := s.Events(ctx, after, 10, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				got[string(e.Value)]++
				after = e.ID
			}
		}
	}
	time.Sleep(redisstore.RelaySweep + time.Second) // a second sweep by each must add nothing
	evs, err := a.Events(ctx, after, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		got[string(e.Value)]++
	}
	if len(got) != 3 || got["left0"] != 1 || got["left1"] != 1 || got["left2"] != 1 {
		t.Fatalf("the log got %v, want left0, left1 and left2 once each", got)
	}
	for _, slot := range []int{7, 9000} {
		if n, _ := client.XLen(ctx, redisstore.OutboxOf(a, slot)).Result(); n != 0 {
			t.Fatalf("outbox of slot %d still holds %d entries", slot, n)
		}
	}
}
