package vectorstore

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/metastore"
)

// vectorMetrics are the vector stores' metrics. Labels are bounded: file
// events, last_error codes and search modes, never ids.
type vectorMetrics struct {
	files      *prometheus.CounterVec // {event}: attached, completed, failed, cancelled, detached
	failures   *prometheus.CounterVec // {code}: unsupported_file, invalid_file, server_error
	processing prometheus.Histogram
	search     *prometheus.HistogramVec // {mode}
}

func newVectorMetrics(reg prometheus.Registerer, store metastore.Store, cache interface{ Bytes() int64 }) *vectorMetrics {
	m := &vectorMetrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_openai_vector_files_total",
			Help: "Files in vector stores by event: attached, completed, failed, cancelled, detached."}, []string{"event"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_openai_vector_processing_failures_total",
			Help: "Files in vector stores that ended failed, by last_error code."}, []string{"code"}),
		processing: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ferry_openai_vector_processing_duration_seconds",
			Help: "Time to process one file: read, extract, split, embed and store.", Buckets: prometheus.ExponentialBuckets(0.005, 3, 12)}),
		search: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_openai_vector_search_duration_seconds",
			Help: "Latency of vector store searches by mode, query embedding included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14)}, []string{"mode"}),
	}
	reg.MustRegister(m.files, m.failures, m.processing, m.search)
	for _, e := range []string{"attached", "completed", "failed", "cancelled", "detached"} {
		m.files.WithLabelValues(e)
	}
	for _, c := range []string{"unsupported_file", "invalid_file", "server_error"} {
		m.failures.WithLabelValues(c)
	}
	for _, mode := range []string{"keyword", "vector", "hybrid"} {
		m.search.WithLabelValues(mode)
	}
	// Read from the metadata store at scrape time, so every instance shows
	// the shared queue rather than its own share of it.
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_openai_vector_queue_depth",
		Help: "Files waiting to be processed or being processed, across all instances; -1 if the store did not answer."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := store.IndexLen(ctx, jobsIndex)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_openai_vector_cache_bytes",
		Help: "Bytes of search indexes cached by this instance (bounded by openai.vector_cache_size)."},
		func() float64 { return float64(cache.Bytes()) }))
	return m
}

// failed counts a file that ended failed.
func (m *vectorMetrics) failed(code string) {
	m.files.WithLabelValues("failed").Inc()
	m.failures.WithLabelValues(code).Inc()
}
