package session

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// heldRefresh is how stale an instance's sum of the ledger may be: the cap
// is soft by what all instances admit within it.
const heldRefresh = time.Second

// ledger keeps the sum of held-back bytes under a cap. Every instance
// writes its sessions' entries in heldIndex and reads the sum, so together
// they keep under Config.MaxHeldTotal.
type ledger struct {
	store   metastore.Store
	limit   int64
	refused prometheus.Counter

	mu    sync.Mutex
	total int64     // the sum at the last read, plus what this instance admitted since
	read  time.Time // when the sum was read
}

func newLedger(store metastore.Store, limit int64, reg prometheus.Registerer) *ledger {
	l := &ledger{store: store, limit: limit, refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_sessions_held_refused_total",
		Help: "Small chunks refused with 503 because all sessions together held back sessions.max_held_total bytes."})}
	reg.MustRegister(l.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_sessions_held_bytes_limit", Help: "sessions.max_held_total: the cap on ferry_sessions_held_bytes."},
		func() float64 { return float64(limit) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_sessions_held_bytes",
		Help: "Bytes all sessions together hold back in the metadata store between small chunks; -1 if the store did not answer."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := l.sum(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	return l
}

// note records how many bytes session id holds back, after its record was
// saved with that many.
func (l *ledger) note(ctx context.Context, id string, n int64) error {
	if n == 0 {
		return l.store.IndexDelete(ctx, heldIndex, id)
	}
	return l.store.IndexPut(ctx, heldIndex, id, []byte(strconv.FormatInt(n, 10)))
}

// sum reads the whole ledger.
func (l *ledger) sum(ctx context.Context) (int64, error) {
	var total int64
	err := metastore.EachEntry(ctx, l.store, heldIndex, func(e metastore.Entry) error {
		n, _ := strconv.ParseInt(string(e.Value), 10, 64)
		total += n
		return nil
	})
	return total, err
}

// admit takes n more held-back bytes if they fit under the cap.
func (l *ledger) admit(ctx context.Context, n, minChunk int64) error {
	total, ok, err := l.fits(ctx, n)
	if err != nil {
		return err
	}
	if !ok {
		l.refused.Inc()
		return errcode.ErrUnavailable.New("uploads hold back %d bytes between small chunks, and %d more would pass the limit of %d (sessions.max_held_total); retry later, or send chunks of at least %d bytes, which are never held back",
			total, n, l.limit, minChunk).With("min_chunk_size", minChunk)
	}
	return nil
}

// fits takes n more held-back bytes if they fit under the cap, and
// reports the total it held them against.
func (l *ledger) fits(ctx context.Context, n int64) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.read) > heldRefresh {
		total, err := l.sum(ctx)
		if err != nil {
			return 0, false, err
		}
		l.total, l.read = total, time.Now()
	}
	if l.total+n > l.limit {
		return l.total, false, nil
	}
	l.total += n
	return l.total, true, nil
}

// dropStaleHeld removes the ledger entries of sessions that no longer
// exist: their end removes them, unless the store failed at that moment.
func (s *Service) dropStaleHeld(ctx context.Context) error {
	return metastore.EachEntry(ctx, s.store, heldIndex, func(e metastore.Entry) error {
		_, err := s.store.Get(ctx, recordKey(e.Member))
		if errors.Is(err, metastore.ErrNotFound) {
			return s.store.IndexDelete(ctx, heldIndex, e.Member)
		}
		return err
	})
}
