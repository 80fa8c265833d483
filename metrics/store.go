package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/metastore"
)

// Metadata-store operation label values.
const (
	opGet         = "get"
	opPut         = "put"
	opDelete      = "delete"
	opIndexPut    = "index_put"
	opIndexGet    = "index_get"
	opIndexDelete = "index_delete"
	opIndexDrop   = "index_drop"
	opIndexList   = "index_list"
	opIndexLen    = "index_len"
	opLock        = "lock"
	opLockRefresh = "lock_refresh"
	opUnlock      = "unlock"
	opPing        = "ping"
	opEvents      = "events"
	opTrimEvents  = "trim_events"
)

var storeOps = []string{opGet, opPut, opDelete, opIndexPut, opIndexGet, opIndexDelete, opIndexDrop,
	opIndexList, opIndexLen, opLock, opLockRefresh, opUnlock, opPing, opEvents, opTrimEvents}

// metastoreBuckets: a Redis round trip is well under a millisecond, a bbolt
// commit waits for an fsync.
var metastoreBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

type storeMetrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	locks    *prometheus.CounterVec
	fenced   prometheus.Counter
	// unconfirmed counts writes whose replicas did not confirm them in
	// time (redis.min_replicas_ack): each one a 503 to its request.
	unconfirmed prometheus.Counter
}

// Store returns s with every call counted and timed:
//
//	ferry_metastore_operations_total{operation,result}
//	ferry_metastore_operation_duration_seconds{operation}
//	ferry_metastore_lock_acquisitions_total{result}   acquired | contended | canceled | error
//	ferry_metastore_fencing_rejections_total          Puts refused with ErrFenced
//	ferry_metastore_replica_ack_timeouts_total        writes not confirmed by redis.min_replicas_ack replicas in time
//
// result is ok, not_found, conflict, fenced, locked, lock_lost, canceled or
// error. Locks it hands out are wrapped too, so Refresh and Unlock count as
// lock_refresh and unlock. Close is passed through uncounted.
func Store(s metastore.Store, reg prometheus.Registerer) metastore.Store {
	m := &storeMetrics{
		ops: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_metastore_operations_total",
			Help: "Metadata store calls by operation and result (ok, not_found, conflict, fenced, locked, lock_lost, canceled, error).",
		}, []string{"operation", "result"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_metastore_operation_duration_seconds",
			Help:    "Metadata store call latency by operation.",
			Buckets: metastoreBuckets,
		}, []string{"operation"})),
		locks: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_metastore_lock_acquisitions_total",
			Help: "Lock attempts by result: acquired, contended (held by another request), canceled or error.",
		}, []string{"result"})),
		fenced: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_metastore_fencing_rejections_total",
			Help: "Writes refused because they carried a stale fencing token (a lock holder that had lost its lease).",
		})),
		unconfirmed: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_metastore_replica_ack_timeouts_total",
			Help: "Writes that fewer than redis.min_replicas_ack replicas confirmed within redis.replica_ack_timeout; each failed its request with 503.",
		})),
	}
	// Series that exist from the start make rate() and alerts on the error
	// result work before the first failure.
	for _, op := range storeOps {
		m.ops.WithLabelValues(op, resultOK)
		m.ops.WithLabelValues(op, resultError)
	}
	for _, r := range []string{"acquired", "contended", resultError} {
		m.locks.WithLabelValues(r)
	}
	return &store{next: s, m: m}
}

// storeResult keeps the store's expected outcomes out of "error".
func storeResult(err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, metastore.ErrNotFound):
		return resultNotFound
	case errors.Is(err, metastore.ErrConflict):
		return "conflict"
	case errors.Is(err, metastore.ErrFenced):
		return "fenced"
	case errors.Is(err, metastore.ErrLocked):
		return "locked"
	case errors.Is(err, metastore.ErrLockLost):
		return "lock_lost"
	case canceled(err):
		return resultCanceled
	}
	return resultError
}

func (m *storeMetrics) observe(op string, start time.Time, err error) {
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	m.ops.WithLabelValues(op, storeResult(err)).Inc()
	if errors.Is(err, metastore.ErrNotReplicated) {
		m.unconfirmed.Inc()
	}
}

type store struct {
	next metastore.Store
	m    *storeMetrics
}

func (s *store) Get(ctx context.Context, key string) (metastore.Record, error) {
	start := time.Now()
	rec, err := s.next.Get(ctx, key)
	s.m.observe(opGet, start, err)
	return rec, err
}

func (s *store) Put(ctx context.Context, key string, value []byte, c metastore.Cond, emit ...[]byte) (metastore.Record, error) {
	start := time.Now()
	rec, err := s.next.Put(ctx, key, value, c, emit...)
	s.m.observe(opPut, start, err)
	if errors.Is(err, metastore.ErrFenced) {
		s.m.fenced.Inc()
	}
	return rec, err
}

func (s *store) Delete(ctx context.Context, key string, version int64, emit ...[]byte) error {
	start := time.Now()
	err := s.next.Delete(ctx, key, version, emit...)
	s.m.observe(opDelete, start, err)
	return err
}

func (s *store) IndexPut(ctx context.Context, index, member string, value []byte, emit ...[]byte) error {
	start := time.Now()
	err := s.next.IndexPut(ctx, index, member, value, emit...)
	s.m.observe(opIndexPut, start, err)
	return err
}

func (s *store) IndexGet(ctx context.Context, index, member string) ([]byte, error) {
	start := time.Now()
	v, err := s.next.IndexGet(ctx, index, member)
	s.m.observe(opIndexGet, start, err)
	return v, err
}

func (s *store) IndexDelete(ctx context.Context, index, member string, emit ...[]byte) error {
	start := time.Now()
	err := s.next.IndexDelete(ctx, index, member, emit...)
	s.m.observe(opIndexDelete, start, err)
	return err
}

func (s *store) IndexDrop(ctx context.Context, index string) error {
	start := time.Now()
	err := s.next.IndexDrop(ctx, index)
	s.m.observe(opIndexDrop, start, err)
	return err
}

func (s *store) IndexList(ctx context.Context, index string, q metastore.Query) ([]metastore.Entry, bool, error) {
	start := time.Now()
	entries, more, err := s.next.IndexList(ctx, index, q)
	s.m.observe(opIndexList, start, err)
	return entries, more, err
}

func (s *store) IndexLen(ctx context.Context, index string) (int64, error) {
	start := time.Now()
	n, err := s.next.IndexLen(ctx, index)
	s.m.observe(opIndexLen, start, err)
	return n, err
}

func (s *store) Events(ctx context.Context, after string, limit int, wait time.Duration) ([]metastore.Event, error) {
	start := time.Now()
	evs, err := s.next.Events(ctx, after, limit, wait)
	if wait <= 0 { // a long poll's time is the wait, not the store's
		s.m.observe(opEvents, start, err)
	}
	return evs, err
}

func (s *store) LastEventID(ctx context.Context) (string, error) {
	start := time.Now()
	id, err := s.next.LastEventID(ctx)
	s.m.observe(opEvents, start, err)
	return id, err
}

func (s *store) TrimEvents(ctx context.Context, before time.Time, keep int64) error {
	start := time.Now()
	err := s.next.TrimEvents(ctx, before, keep)
	s.m.observe(opTrimEvents, start, err)
	return err
}

func (s *store) Lock(ctx context.Context, name string, ttl time.Duration) (metastore.Lock, error) {
	start := time.Now()
	l, err := s.next.Lock(ctx, name, ttl)
	s.m.observe(opLock, start, err)
	switch {
	case err == nil:
		s.m.locks.WithLabelValues("acquired").Inc()
		return &lock{Lock: l, m: s.m}, nil
	case errors.Is(err, metastore.ErrLocked):
		s.m.locks.WithLabelValues("contended").Inc()
	case canceled(err):
		s.m.locks.WithLabelValues(resultCanceled).Inc()
	default:
		s.m.locks.WithLabelValues(resultError).Inc()
	}
	return l, err
}

func (s *store) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.next.Ping(ctx)
	s.m.observe(opPing, start, err)
	return err
}

func (s *store) Close() error { return s.next.Close() }

// lock counts the lease's later round trips; a lost lease (lock_lost on
// lock_refresh) is how a stalled append shows up.
type lock struct {
	metastore.Lock
	m *storeMetrics
}

func (l *lock) Refresh(ctx context.Context, ttl time.Duration) error {
	start := time.Now()
	err := l.Lock.Refresh(ctx, ttl)
	l.m.observe(opLockRefresh, start, err)
	return err
}

func (l *lock) Unlock(ctx context.Context) error {
	start := time.Now()
	err := l.Lock.Unlock(ctx)
	l.m.observe(opUnlock, start, err)
	return err
}
