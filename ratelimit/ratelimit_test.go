package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/testsvc"
)

// backends are the limiters every test runs on: in memory, on the test's
// Redis and on its 3-master Redis Cluster (each under a fresh prefix that
// testsvc deletes afterwards).
func backends() []struct {
	name string
	open func(t testing.TB) Limiter
} {
	return []struct {
		name string
		open func(t testing.TB) Limiter
	}{
		{"memory", func(testing.TB) Limiter { return NewMemory() }},
		{"redis", func(t testing.TB) Limiter { c, p := testsvc.Redis(t); return NewRedis(c, p) }},
		{"cluster", func(t testing.TB) Limiter { c, p := testsvc.RedisCluster(t); return NewRedis(c, p) }},
	}
}

// eachLimiter runs fn as a parallel subtest on every backend: one
// conformance suite for both implementations.
func eachLimiter(t *testing.T, fn func(t *testing.T, l Limiter)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func allow(t *testing.T, l Limiter, key string, lim Limit) Result {
	t.Helper()
	res, err := l.Allow(context.Background(), key, lim)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The limit is exact: N allowed with Remaining counting down, the N+1st
// denied with a Reset within the window, and denials are not counted.
func TestLimitIsExact(t *testing.T) {
	eachLimiter(t, func(t *testing.T, l Limiter) {
		lim := PerMinute(5)
		for i := range 5 {
			res := allow(t, l, "exact", lim)
			if !res.Allowed || res.Limit != 5 || res.Remaining != 4-i {
				t.Fatalf("request %d: %+v, want allowed with %d remaining", i+1, res, 4-i)
			}
			if res.Reset <= 0 || res.Reset > time.Minute {
				t.Fatalf("request %d: reset %s, want within the minute", i+1, res.Reset)
			}
		}
		for range 3 {
			res := allow(t, l, "exact", lim)
			if res.Allowed || res.Remaining != 0 || res.Reset <= 50*time.Second || res.Reset > time.Minute {
				t.Fatalf("6th request: %+v, want denied, 0 remaining, reset just under a minute", res)
			}
		}
		if res := allow(t, l, "other", lim); !res.Allowed || res.Remaining != 4 {
			t.Fatalf("another key shares the count: %+v", res)
		}
		if res := allow(t, l, "exact", PerMinute(7)); !res.Allowed || res.Remaining != 1 {
			t.Fatalf("raising the limit to 7 after 5 counted: %+v, want allowed with 1 remaining", res)
		}
		if res := allow(t, l, "exact", PerMinute(3)); res.Allowed || res.Remaining != 0 {
			t.Fatalf("lowering the limit below the count: %+v, want denied with 0 remaining", res)
		}
	})
}

// The window slides: a request frees its place exactly one window after it
// was counted, not at the turn of a fixed period. Each check is made only
// when the clock allows a sure answer (a busy machine can stall the test
// between two calls); an unsure round is run again on a fresh key.
func TestWindowSlides(t *testing.T) {
	eachLimiter(t, func(t *testing.T, l Limiter) {
		for round := range 5 {
			if slideRound(t, l, fmt.Sprint("slide", round)) {
				return
			}
			t.Logf("round %d was too slow to tell; again", round)
		}
		t.Fatal("no round ran fast enough to check the window")
	})
}

// slideRound counts A and B, then C half a window later, and checks what
// follows; false means the timing was too loose to judge.
func slideRound(t *testing.T, l Limiter, key string) bool {
	const w = time.Second
	lim := Limit{Requests: 3, Window: w}
	type call struct {
		res        Result
		start, end time.Time
	}
	at := func() call {
		c := call{start: time.Now()}
		c.res = allow(t, l, key, lim)
		c.end = time.Now()
		return c
	}
	a, b := at(), at()
	time.Sleep(time.Until(a.start.Add(w / 2)))
	c := at()
	d := at()
	if d.end.After(a.start.Add(w)) {
		return false // A may have left before D was counted
	}
	if d.res.Allowed || d.res.Remaining != 0 {
		t.Fatalf("4th request in the window: %+v, want denied", d.res)
	}
	if lo, hi := a.start.Add(w).Sub(d.end), a.end.Add(w).Sub(d.start); d.res.Reset < lo || d.res.Reset > hi {
		t.Fatalf("reset %s, want between %s and %s (when A leaves)", d.res.Reset, lo, hi)
	}
	time.Sleep(time.Until(b.end.Add(w + 20*time.Millisecond)))
	e := at() // A and B have left; C is in unless E came too late
	if e.end.After(c.start.Add(w)) {
		return false
	}
	if !e.res.Allowed || e.res.Remaining != 1 {
		t.Fatalf("after the first two left: %+v, want allowed with 1 remaining", e.res)
	}
	time.Sleep(time.Until(c.end.Add(w + 20*time.Millisecond)))
	f := at() // C has left; E is in unless F came too late
	if f.end.After(e.start.Add(w)) {
		return false
	}
	if !f.res.Allowed || f.res.Remaining != 1 {
		t.Fatalf("after the third left: %+v, want allowed with 1 remaining", f.res)
	}
	return true
}

// Concurrent requests are counted once each: exactly the limit is allowed,
// however the requests interleave (on Redis, from several connections).
func TestConcurrentCount(t *testing.T) {
	eachLimiter(t, func(t *testing.T, l Limiter) {
		lim := PerMinute(100)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 10 {
					res, err := l.Allow(context.Background(), "busy", lim)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 100 {
			t.Fatalf("%d of 160 concurrent requests allowed, want exactly 100", n)
		}
	})
}

// On Redis the counts live under the deployment's prefix and expire with
// the window, so an idle subject costs nothing.
func TestRedisKeysExpire(t *testing.T) {
	c, prefix := testsvc.Redis(t)
	l := NewRedis(c, prefix)
	allow(t, l, "ttl", PerMinute(10))
	ttl, err := c.PTTL(context.Background(), prefix+"rl:{ttl}").Result()
	if err != nil || ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("PTTL of %srl:{ttl} = %s, %v; want about a minute", prefix, ttl, err)
	}
	allow(t, l, "short", Limit{Requests: 1, Window: 200 * time.Millisecond})
	time.Sleep(400 * time.Millisecond)
	if n, err := c.Exists(context.Background(), prefix+"rl:{short}").Result(); err != nil || n != 0 {
		t.Fatalf("the key outlived its window: exists=%d, %v", n, err)
	}
}

// A Redis that cannot be reached is an error, never a decision: the
// caller decides to fail open.
func TestRedisDownIsAnError(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	if res, err := NewRedis(c, "x:").Allow(context.Background(), "k", PerMinute(1)); err == nil {
		t.Fatalf("no error from an unreachable Redis: %+v", res)
	}
}

// The in-memory limiter forgets subjects whose window is empty.
func TestMemorySweepsIdleKeys(t *testing.T) {
	m := NewMemory()
	now := time.Unix(1_000_000, 0)
	m.now = func() time.Time { return now }
	for i := range 50 {
		if _, err := m.Allow(context.Background(), fmt.Sprint("client", i), PerMinute(10)); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(30 * time.Second)
	m.Allow(context.Background(), "client0", PerMinute(10))
	now = now.Add(40 * time.Second) // a minute after the last sweep
	m.Allow(context.Background(), "late", PerMinute(10))
	if n := len(m.keys); n != 2 {
		t.Fatalf("%d keys after the sweep, want 2 (client0 still in its window, and late)", n)
	}
}

// BenchmarkAllow is the cost of one decision on each backend.
//
//	CI=1 scripts/test.sh -run '^$' -bench BenchmarkAllow ./ratelimit/
func BenchmarkAllow(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			l := be.open(b)
			lim := PerMinute(1 << 30)
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				if _, err := l.Allow(ctx, fmt.Sprint("bench", i%64), lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
