package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/events"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/internal/webhooktest"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// BenchmarkWebhookDelivery is one instance delivering to a loopback
// receiver that checks every signature: the latency from the commit of an
// event's write to its acknowledgement (p50, p99; one event every 5 ms),
// and the events per second it delivers of 5000 written across 100 files
// while it was stopped.
//
//	CI=1 scripts/test.sh -run '^$' -bench WebhookDelivery -benchtime 1x ./events/
func BenchmarkWebhookDelivery(b *testing.B) {
	stores := map[string]func(b *testing.B) metastore.Store{
		"bolt": func(b *testing.B) metastore.Store {
			s, err := boltstore.Open(filepath.Join(b.TempDir(), "meta.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		},
		"redis": func(b *testing.B) metastore.Store {
			client, prefix := testsvc.Redis(b)
			return redisstore.New(client, prefix)
		},
	}
	for _, name := range []string{"bolt", "redis"} {
		b.Run("store="+name, func(b *testing.B) {
			for b.Loop() {
				s := stores[name](b)
				rc := webhooktest.New(b)
				w := &events.Webhooks{Store: s, Sinks: []events.Sink{{Name: "bench", URL: rc.URL, Secret: webhooktest.Secret}},
					Options: events.DefaultDelivery, Log: slog.New(slog.DiscardHandler), Metrics: events.NewMetrics(prometheus.NewRegistry())}
				ctx := context.Background()
				run := func() (stop func()) {
					ctx, cancel := context.WithCancel(ctx)
					done := make(chan struct{})
					go func() { defer close(done); w.Run(ctx) }()
					return func() { cancel(); <-done }
				}
				stop := run()
				time.Sleep(500 * time.Millisecond)

				const spaced = 500
				written := make([]time.Time, spaced)
				for i := range spaced {
					if err := s.IndexPut(ctx, "files/b", fmt.Sprint("l", i), nil, events.New(events.FileCreated, "b", fmt.Sprint("l", i), i)); err != nil {
						b.Fatal(err)
					}
					written[i] = time.Now()
					time.Sleep(5 * time.Millisecond)
				}
				got := rc.WaitFor(spaced, time.Minute)
				var lat []time.Duration
				for i, r := range got {
					lat = append(lat, r.At.Sub(written[i]))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")

				stop()
				const burst = 5000
				for i := range burst {
					key := fmt.Sprint("f", i%100)
					if err := s.IndexPut(ctx, "files/b", fmt.Sprint(key, "/", i), nil, events.New(events.FileCreated, "b", key, i)); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				stop = run()
				rc.WaitFor(spaced+burst, 5*time.Minute)
				b.ReportMetric(burst/time.Since(start).Seconds(), "events/s")
				stop()
			}
		})
	}
}
