package session

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/ferryhq/ferry/errcode"
)

// bufferWait is how long a request waits for room in the buffer budget
// before it is told to come back: long enough to ride out a burst, short
// enough that a client is not left hanging.
const bufferWait = 5 * time.Second

// budget bounds the request data this instance holds in memory at once:
// chunks being held back, tails being sent as a part, the pieces of
// chunked appends and OpenAI file uploads. Past it a request waits up to
// bufferWait, then gets 503 with Retry-After: memory does not grow with
// the number of concurrent uploads.
type budget struct {
	sem     *semaphore.Weighted
	limit   int64
	wait    time.Duration
	refused prometheus.Counter
}

func newBudget(limit int64, reg prometheus.Registerer) *budget {
	b := &budget{sem: semaphore.NewWeighted(limit), limit: limit, wait: bufferWait, refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_sessions_buffer_refused_total",
		Help: "Appends refused with 503 because this instance held sessions.max_buffered_bytes of request data for longer than they could wait."})}
	reg.MustRegister(b.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_sessions_buffer_limit_bytes", Help: "sessions.max_buffered_bytes: request data this instance holds in memory at most."},
		func() float64 { return float64(limit) }))
	return b
}

// take reserves n bytes; release gives them back.
func (b *budget) take(ctx context.Context, n int64) (release func(), err error) {
	if n <= 0 {
		return func() {}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := b.sem.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b.refused.Inc()
		return nil, errcode.ErrUnavailable.New("ferryd holds its limit of %d bytes of request data in memory (sessions.max_buffered_bytes); retry after the Retry-After delay", b.limit)
	}
	return func() { b.sem.Release(n) }, nil
}

// tryTake reserves n bytes only if they are free now: for work that can
// as well be left undone (a part written behind, which the next append
// otherwise sends itself).
func (b *budget) tryTake(n int64) (release func(), ok bool) {
	if !b.sem.TryAcquire(n) {
		return nil, false
	}
	return func() { b.sem.Release(n) }, true
}
