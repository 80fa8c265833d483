package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/metastore/storetest"
)

// With a replica attached and every write waiting for it, the store keeps
// every promise of the suite, on both write paths of Put.
func TestConformanceWaitingForReplica(t *testing.T) {
	master := testsvc.StartRedis(t)
	testsvc.StartReplica(t, master)
	client := master.Client(t)
	for _, large := range []bool{false, true} {
		t.Run(fmt.Sprintf("large=%v", large), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) metastore.Store {
				s := redisstore.New(client, testsvc.Unique("t")+":").WaitForReplicas(1, 2*time.Second)
				if large {
					s = redisstore.AllPutsLarge(s)
				}
				return s
			})
		})
	}
}

// notReplicated checks that err is the 503 a write gets when its replicas
// did not confirm it.
func notReplicated(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, metastore.ErrNotReplicated) || !errcode.Is(err, errcode.ErrUnavailable) {
		t.Fatalf("%s with the replica stopped: %v, want UNAVAILABLE wrapping ErrNotReplicated", what, err)
	}
	if e := errcode.From(err); !strings.Contains(e.Detail, "did not confirm replication to 1 replica(s) within 200ms") {
		t.Fatalf("%s: detail %q does not say what happened", what, e.Detail)
	}
}

// With the replica frozen, every kind of write fails once the timeout
// passes, and says why; reads still answer at once. Thawed, writes work
// again, and the replica holds what the failed writes did anyway.
func TestWaitForReplicasTimesOut(t *testing.T) {
	ctx := t.Context()
	master := testsvc.StartRedis(t)
	replica := testsvc.StartReplica(t, master)
	client := master.Client(t)
	prefix := testsvc.Unique("t") + ":"
	s := redisstore.New(client, prefix).WaitForReplicas(1, 200*time.Millisecond)
	// Writes that must be confirmed get longer: a loaded machine's replica
	// can take more than 200 ms to answer.
	up := redisstore.New(client, prefix).WaitForReplicas(1, 2*time.Second)
	if _, err := up.Put(ctx, "before", []byte("v"), metastore.Cond{}); err != nil {
		t.Fatalf("Put with the replica up: %v", err)
	}

	replica.Stop()
	defer replica.Resume()
	start := time.Now()
	_, err := s.Put(ctx, "k", []byte("v"), metastore.Cond{})
	notReplicated(t, "Put", err)
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("Put gave up after %v; the timeout is 200ms", d)
	}
	large := redisstore.AllPutsLarge(redisstore.New(client, prefix).WaitForReplicas(1, 200*time.Millisecond))
	_, err = large.Put(ctx, "large", []byte("v"), metastore.Cond{})
	notReplicated(t, "a large create", err)
	_, err = large.Put(ctx, "before", []byte("w"), metastore.Cond{Version: 1})
	notReplicated(t, "a large update", err)
	notReplicated(t, "Delete", s.Delete(ctx, "before", metastore.AnyVersion))
	notReplicated(t, "IndexPut", s.IndexPut(ctx, "i", "m", []byte("v")))
	notReplicated(t, "IndexDelete", s.IndexDelete(ctx, "i", "m"))
	notReplicated(t, "IndexDrop", s.IndexDrop(ctx, "i"))
	_, err = s.Lock(ctx, "L", time.Minute)
	notReplicated(t, "Lock", err)
	if n := client.Exists(ctx, prefix+"{lock}:l:L").Val(); n != 0 {
		t.Errorf("a lease that was not confirmed is left behind: it keeps the name busy for its TTL")
	}

	// The write took effect on the master; only its durability is unknown.
	if rec, err := s.Get(ctx, "k"); err != nil || string(rec.Value) != "v" {
		t.Errorf("Get of the unconfirmed write = %q, %v", rec.Value, err)
	}
	start = time.Now()
	if _, _, err := s.IndexList(ctx, "i", metastore.Query{}); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Errorf("a read waited (%v) or failed (%v): reads never wait", time.Since(start), err)
	}

	// Asking for more replicas than there are fails the same way.
	replica.Resume()
	testsvc.WaitReplicas(t, master, 1)
	_, err = redisstore.New(client, prefix).WaitForReplicas(2, 200*time.Millisecond).Put(ctx, "two", []byte("v"), metastore.Cond{})
	if !errors.Is(err, metastore.ErrNotReplicated) {
		t.Fatalf("Put waiting for 2 replicas of 1: %v", err)
	}
	if _, err := up.Put(ctx, "after", []byte("v"), metastore.Cond{}); err != nil {
		t.Fatalf("Put after the replica came back: %v", err)
	}
	rc := replica.Client(t)
	if v := rc.HGet(ctx, prefix+"r:k", "v").Val(); v != "v" {
		t.Errorf("the replica lacks the write it caught up with: %q", v)
	}
}

// On a cluster the WAIT goes to the master that took the write: of two
// masters only A has a replica, so writes to A's slots are confirmed and
// writes to B's time out. A WAIT sent to any other node would mix them up.
func TestWaitForReplicasCluster(t *testing.T) {
	ctx := t.Context()
	a, b, cc := replicatedCluster(t)
	prefix := testsvc.Unique("t") + ":"
	s := redisstore.New(cc, prefix).WaitForReplicas(1, 200*time.Millisecond)
	var onA, onB int
	for i := range 16 {
		key := "k" + strconv.Itoa(i)
		slot, err := a.Client(t).ClusterKeySlot(ctx, prefix+"r:"+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Put(ctx, key, []byte("v"), metastore.Cond{})
		switch {
		case slot < 8192 && err != nil:
			t.Errorf("Put %s (slot %d, on %s with a replica): %v", key, slot, a.Addr, err)
		case slot >= 8192 && !errors.Is(err, metastore.ErrNotReplicated):
			t.Errorf("Put %s (slot %d, on %s without a replica): %v, want ErrNotReplicated", key, slot, b.Addr, err)
		}
		if slot < 8192 {
			onA++
		} else {
			onB++
		}
	}
	if onA == 0 || onB == 0 {
		t.Fatalf("keys on A: %d, on B: %d; the test needs both", onA, onB)
	}
	// Index writes and leases take the same path to their own slots.
	if err := s.IndexPut(ctx, "uploads", "m", nil); err != nil && !errors.Is(err, metastore.ErrNotReplicated) {
		t.Errorf("IndexPut: %v", err)
	}
}

// replicatedCluster builds a 2-master cluster, A with slots 0-8191 and a
// replica, B with 8192-16383 and none.
func replicatedCluster(t *testing.T) (a, b *testsvc.RedisServer, cc *redis.ClusterClient) {
	t.Helper()
	ctx := context.Background()
	node := func() *testsvc.RedisServer {
		return testsvc.StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
	}
	a, b, r := node(), node(), node()
	ac, bc, rc := a.Client(t), b.Client(t), r.Client(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ac.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", 1).Err())
	must(bc.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", 2).Err())
	must(ac.ClusterAddSlotsRange(ctx, 0, 8191).Err())
	must(bc.ClusterAddSlotsRange(ctx, 8192, 16383).Err())
	must(ac.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(b.Port)).Err())
	must(ac.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(r.Port)).Err())
	aID, err := ac.Do(ctx, "CLUSTER", "MYID").Text()
	must(err)
	waitUntil(t, "the replica to learn of A", func() bool { return strings.Contains(rc.ClusterNodes(ctx).Val(), aID) })
	must(rc.ClusterReplicate(ctx, aID).Err())
	testsvc.WaitReplicas(t, a, 1)
	for _, c := range []*redis.Client{ac, bc, rc} {
		waitUntil(t, "cluster_state:ok", func() bool { return strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok") })
	}
	cc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{a.Addr}})
	t.Cleanup(func() { cc.Close() })
	waitUntil(t, "the client to see both masters", func() bool {
		var n atomic.Int32 // fn runs on every master at once
		_ = cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { n.Add(1); return nil })
		return n.Load() == 2
	})
	return a, b, cc
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
