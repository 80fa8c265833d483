package httpapi

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/ratelimit"
)

// BenchmarkAuthOverhead measures what API keys and rate limits cost, on
// Redis + S3: the same session creates and 8 MiB appends through a server
// with neither, one with keys (as a key limited to some buckets, which also
// reads the session for each append), and one with keys and limits (on
// Redis, never reached), taking turns, in one run.
//
//	CI=1 scripts/test.sh -run '^$' -bench AuthOverhead -benchtime 200x ./httpapi/
func BenchmarkAuthOverhead(b *testing.B) {
	s := testsvc.Open(b, "redis+s3", testsvc.StoreOptions{})
	d := apiDeps(b, s.Meta, s.Blobs)
	open := httptest.NewServer(New(d))
	defer open.Close()
	keys, secrets := testKeyring(b)
	d.Keys, d.Metrics = keys, prometheus.NewRegistry() // its own HTTP metrics
	keyed := httptest.NewServer(New(d))
	defer keyed.Close()
	rc, prefix := testsvc.Redis(b)
	d.Metrics = prometheus.NewRegistry()
	d.Limits = RateLimits{Limiter: ratelimit.NewRedis(rc, prefix), Uploads: 1 << 30, Retrievals: 1 << 30, Deletions: 1 << 30}
	limited := httptest.NewServer(New(d))
	defer limited.Close()
	servers := []caller{{t: b, base: open.URL}, {t: b, base: keyed.URL, secret: secrets["wa"]}, {t: b, base: limited.URL, secret: secrets["wa"]}}
	chunk := randomBytes(8 << 20)

	var tCreate, tAppend [3]time.Duration
	for i := 0; i < b.N; i++ {
		for k := range servers {
			j := (k + i) % len(servers) // each goes first in turn
			c := servers[j]
			start := time.Now()
			id := c.ok("POST", "/v1/files", []byte(fmt.Sprintf(`{"bucket":"a-bench","key":"k%d-%d","size":%d}`, i, j, 2*len(chunk))))["id"].(string)
			tCreate[j] += time.Since(start)
			if i%25 == 0 { // appends are slower: a sample of them
				start = time.Now()
				c.ok("POST", "/v1/files/session:"+id, chunk, "Upload-Offset", "0", "Content-Type", "application/octet-stream")
				tAppend[j] += time.Since(start)
			}
			c.do("DELETE", "/v1/files/session:"+id, nil)
		}
	}
	appends := float64((b.N + 24) / 25)
	b.ReportMetric(float64(tCreate[0].Microseconds())/float64(b.N), "open-µs/create")
	b.ReportMetric(float64(tCreate[1].Microseconds())/float64(b.N), "keys-µs/create")
	b.ReportMetric(float64(tCreate[1])/float64(tCreate[0]), "keys/open-create")
	b.ReportMetric(float64(tAppend[0].Milliseconds())/appends, "open-ms/append8MiB")
	b.ReportMetric(float64(tAppend[1].Milliseconds())/appends, "keys-ms/append8MiB")
	b.ReportMetric(float64(tAppend[1])/float64(tAppend[0]), "keys/open-append")
	b.ReportMetric(float64(tCreate[2])/float64(tCreate[0]), "keys+limits/open-create")
	b.ReportMetric(float64(tAppend[2])/float64(tAppend[0]), "keys+limits/open-append")
}
