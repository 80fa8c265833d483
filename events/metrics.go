package events

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the webhooks' counters and gauges, labelled by sink.
type Metrics struct {
	delivered, failed, retried, deadLettered *prometheus.CounterVec
	backlog, oldest, dead                    *prometheus.GaugeVec
	latency                                  *prometheus.HistogramVec
}

// NewMetrics registers the webhook metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sink"})
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"sink"})
		reg.MustRegister(g)
		return g
	}
	m := &Metrics{
		delivered:    counter("ferry_webhook_delivered_total", "Events a webhook receiver acknowledged with a 2xx."),
		failed:       counter("ferry_webhook_failed_total", "Webhook requests that failed: an error, a timeout or a non-2xx answer."),
		retried:      counter("ferry_webhook_retried_total", "Webhook requests that were retries of a failed event."),
		deadLettered: counter("ferry_webhook_dead_lettered_total", "Events dead-lettered after failing for events.max_age."),
		backlog:      gauge("ferry_webhook_backlog", "Events not yet delivered: queued for a retry, plus unread in the log (counted up to 1000)."),
		oldest:       gauge("ferry_webhook_oldest_undelivered_seconds", "Age of the oldest event not yet delivered; 0 when none waits."),
		dead:         gauge("ferry_webhook_dead_letters", "Dead letters kept for replay."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_webhook_delivery_seconds",
			Help:    "From an event's change to its receiver's acknowledgement.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300, 3600}}, []string{"sink"}),
	}
	reg.MustRegister(m.latency)
	return m
}

// forget drops a sink's gauges when this instance stops delivering to it.
func (m *Metrics) forget(sink string) {
	for _, g := range []*prometheus.GaugeVec{m.backlog, m.oldest, m.dead} {
		g.DeleteLabelValues(sink)
	}
}

// start makes a sink's counters exist at 0, so rates work from the first
// failure on.
func (m *Metrics) start(sink string) {
	for _, c := range []*prometheus.CounterVec{m.delivered, m.failed, m.retried, m.deadLettered} {
		c.WithLabelValues(sink)
	}
}
