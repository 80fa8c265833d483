package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSessionCreates is session creates from 32 concurrent clients
// against one ferryd on Redis + S3 with rate limits off: creates per second
// and the p50 and p99 latency of one create, as a client sees it. A file
// under 5 MiB is held back whole, so its create touches only Redis; a
// larger one also starts its S3 multipart upload.
//
//	CI=1 scripts/test.sh -run '^$' -bench SessionCreates -benchtime 1x ./cmd/ferryd/
func BenchmarkSessionCreates(b *testing.B) {
	const clients, d = 32, 3 * time.Second
	be := redisS3Env(b)
	p := startFerryd(b, be.args, append(be.env, "FERRY_LIMIT_UPLOADS_PER_MINUTE=0")...)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for _, size := range []int{1 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				lat = append(lat, createFor(b, hc, p.addr, "creates", size, clients, d)...)
			}
			reportCreates(b, lat, d)
		})
	}
}

// createFor creates sessions of size bytes from clients concurrent
// clients for d, and returns the latency of each create.
func createFor(b *testing.B, hc *http.Client, addr, bkt string, size, clients int, d time.Duration) []time.Duration {
	var (
		lat []time.Duration
		mu  sync.Mutex
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	run := time.Now().UnixNano() // keys of one call never repeat another's
	for w := range clients {
		wg.Go(func() {
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				body := fmt.Sprintf(`{"bucket":%q,"key":"%d/%d/w%d/%d","size":%d}`, bkt, size, run, w, i, size)
				start := time.Now()
				resp, err := hc.Post("http://"+addr+"/v1/files", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 201 {
					b.Errorf("create: %d", resp.StatusCode)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat
}

// reportCreates reports creates/s over b.N runs of d, and the p50 and p99
// latency of one create.
func reportCreates(b *testing.B, lat []time.Duration, d time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/(d.Seconds()*float64(b.N)), "creates/s")
	b.ReportMetric(at(0.5), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
}
