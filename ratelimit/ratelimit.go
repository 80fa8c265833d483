// Package ratelimit counts requests per key in a sliding window: at most
// Limit.Requests in any Limit.Window. Redis shares the counts between every
// ferryd on one Redis (single node, Sentinel or Cluster); Memory keeps them
// in the process, for the embedded default.
//
// The window slides rather than being cut into fixed minutes, so "100 per
// minute" holds for every minute, not just for minutes that start on the
// clock: a client cannot send 100 at 12:00:59 and 100 more at 12:01:00. The
// cost is one timestamp per counted request kept for one window, bounded by
// Requests per key.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Limit is how many requests one key may make per window. Requests <= 0
// means unlimited; callers skip the limiter then.
type Limit struct {
	Requests int
	Window   time.Duration
}

// PerMinute is n requests per minute.
func PerMinute(n int) Limit { return Limit{Requests: n, Window: time.Minute} }

// Result is the limiter's answer for one request.
type Result struct {
	Allowed   bool
	Limit     int // Limit.Requests
	Remaining int // requests still allowed in the window after this one
	// Reset is how long until the oldest counted request leaves the window,
	// when Remaining next grows; 0 when nothing is counted. A denied
	// request may be retried after Reset.
	Reset time.Duration
}

// Limiter counts a request against key and says whether it is allowed. A
// denied request is not counted, so a client that keeps retrying too early
// does not push its own reset further away. An error means the limiter could
// not decide (its Redis is down, say); the caller chooses what to do.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}

// Memory is a Limiter for one process.
type Memory struct {
	mu        sync.Mutex
	keys      map[string]*window
	now       func() time.Time
	lastSweep time.Time
}

// window is one key's counted requests, oldest first.
type window struct {
	times []time.Time
	span  time.Duration // the Limit.Window last used with the key
}

// NewMemory returns an empty in-process limiter.
func NewMemory() *Memory {
	return &Memory{keys: map[string]*window{}, now: time.Now}
}

// Allow implements Limiter; it never fails.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	w := m.keys[key]
	if w == nil {
		w = &window{}
		m.keys[key] = w
	}
	w.span = l.Window
	w.expire(now)
	res := Result{Limit: l.Requests}
	if len(w.times) < l.Requests {
		w.times = append(w.times, now)
		res.Allowed = true
	}
	res.Remaining = max(l.Requests-len(w.times), 0)
	if len(w.times) > 0 {
		res.Reset = w.times[0].Add(l.Window).Sub(now)
	}
	return res, nil
}

// expire drops the requests that left the window, which is (now-span, now].
func (w *window) expire(now time.Time) {
	cut := now.Add(-w.span)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	if i > 0 {
		// Copy down rather than reslice, so the backing array does not grow
		// forever under steady traffic.
		w.times = w.times[:copy(w.times, w.times[i:])]
	}
}

// sweep forgets keys with nothing left in their window, at most once a
// minute, so clients that come once and leave do not pile up.
func (m *Memory) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < time.Minute {
		return
	}
	m.lastSweep = now
	for k, w := range m.keys {
		if n := len(w.times); n == 0 || !w.times[n-1].After(now.Add(-w.span)) {
			delete(m.keys, k)
		}
	}
}
