package session

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
)

// sessionMetrics are the engine's Prometheus metrics. The two gauges are
// read from the metadata store at scrape time, so every instance reports
// the shared truth rather than its own share of it.
type sessionMetrics struct {
	created, completed, aborted, expired *prometheus.CounterVec
	appended, conflicts                  *prometheus.CounterVec
	appendDur                            *prometheus.HistogramVec
	// busy has no protocol: the lease is refused before the record that
	// names it is read, and reading it only to label a refusal would add a
	// store call where appends contend.
	busy          prometheus.Counter
	purgeFailures prometheus.Counter
}

// The protocols a session is created through: the label of the engine's
// counters, taken from the session record (Spec.Protocol), so an append, a
// completion or an expiry counts under the protocol that created it.
const (
	ProtocolNative = "native"
	ProtocolTus    = "tus"
	ProtocolOpenAI = "openai"
)

var protocols = []string{ProtocolNative, ProtocolTus, ProtocolOpenAI}

// protocolLabel bounds the label to the known protocols.
func protocolLabel(p string) string {
	for _, known := range protocols {
		if p == known {
			return p
		}
	}
	return ProtocolNative
}

func newSessionMetrics(reg prometheus.Registerer, store metastore.Store, now func() time.Time) *sessionMetrics {
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"protocol"})
		for _, p := range protocols { // every series exists from the start, at 0
			c.WithLabelValues(p)
		}
		reg.MustRegister(c)
		return c
	}
	m := &sessionMetrics{
		created:   counter("ferry_sessions_created_total", "Upload sessions created."),
		completed: counter("ferry_sessions_completed_total", "Upload sessions completed (their file published)."),
		aborted:   counter("ferry_sessions_aborted_total", "Upload sessions aborted by a client."),
		expired:   counter("ferry_sessions_expired_total", "Expired upload sessions freed by the purger."),
		appended:  counter("ferry_sessions_appended_bytes_total", "Bytes acknowledged by appends."),
		conflicts: counter("ferry_sessions_offset_conflicts_total", "Appends refused with 409 because the client's offset was not the session's."),
		appendDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ferry_sessions_append_duration_seconds", Help: "Latency of appends, storage included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"protocol"}),
	}
	m.busy = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_sessions_busy_total", Help: "Appends refused because another request held the session."})
	reg.MustRegister(m.appendDur, m.busy)
	m.purgeFailures = due.NewFailures(reg, "sessions")
	gauge := func(name, help string, read func(context.Context) (float64, error)) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			v, err := read(ctx)
			if err != nil {
				return -1 // visible on a dashboard, and distinct from "none"
			}
			return v
		}))
	}
	gauge("ferry_sessions_active", "Sessions with a live record (uploading, or completed and not yet purged); -1 if the store did not answer.",
		func(ctx context.Context) (float64, error) {
			n, err := store.IndexLen(ctx, expiryIndex)
			return float64(n), err
		})
	gauge("ferry_sessions_purge_backlog", "Sessions due for the purger, counted up to 10000; -1 if the store did not answer.",
		func(ctx context.Context) (float64, error) {
			entries, _, err := store.IndexList(ctx, expiryIndex, due.Until(now(), 10000))
			return float64(len(entries)), err
		})
	return m
}

// appendDone counts an append of n bytes that started at start and ended
// with err.
func (m *sessionMetrics) appendDone(proto string, n int64, start time.Time, err error) {
	switch {
	case err == nil:
		m.appended.WithLabelValues(proto).Add(float64(n))
		m.appendDur.WithLabelValues(proto).Observe(time.Since(start).Seconds())
	case errcode.Is(err, ErrOffsetMismatch):
		m.conflicts.WithLabelValues(proto).Inc()
	case errcode.Is(err, ErrBusy):
		m.busy.Inc()
	}
}
