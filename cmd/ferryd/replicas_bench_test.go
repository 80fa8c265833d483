package main

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testsvc"
)

// BenchmarkReplicaAck is what redis.min_replicas_ack=1 costs against 0:
// two ferryd processes on one Redis master with one replica on loopback
// (both replicate; only one waits), the same S3 server, side by side in
// one run, each iteration alternating which goes first. Session creates
// per second from 32 clients (1 MiB files: a create touches only Redis),
// and the throughput of one client uploading 64 MiB in 8 MiB appends (one
// UploadPart each), with the p50 latency of an append. The ratios are
// ack1/ack0.
//
//	CI=1 scripts/test.sh -run '^$' -bench ReplicaAck -benchtime 3x ./cmd/ferryd/
func BenchmarkReplicaAck(b *testing.B) {
	master := testsvc.StartRedis(b)
	testsvc.StartReplica(b, master)
	bkt, s3 := s3Env(b)
	var ferryds [2]*proc
	for ack := range ferryds {
		ferryds[ack] = startFerryd(b, "--data-dir "+b.TempDir(), append(s3, "FERRY_REDIS_URL=redis://"+master.Addr+"/0",
			fmt.Sprintf("FERRY_REDIS_PREFIX=ack%d:", ack), "FERRY_REDIS_MIN_REPLICAS_ACK="+strconv.Itoa(ack),
			"FERRY_LIMIT_UPLOADS_PER_MINUTE=0")...)
	}
	order := func(i int) []int { return []int{i % 2, 1 - i%2} }
	mc := master.Client(b)
	waits := func() float64 { // WAITs the master has answered
		stats := mc.Info(b.Context(), "commandstats").Val()
		_, after, _ := strings.Cut(stats, "cmdstat_wait:calls=")
		n, _ := strconv.Atoi(strings.SplitN(after, ",", 2)[0])
		return float64(n)
	}

	b.Run("creates", func(b *testing.B) {
		const clients, d = 32, 3 * time.Second
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		var n [2]int
		var w float64
		for i := 0; b.Loop(); i++ {
			for _, ack := range order(i) {
				before := waits()
				n[ack] += len(createFor(b, hc, ferryds[ack].addr, bkt, 1<<20, clients, d))
				if ack == 1 {
					w += waits() - before
				}
			}
		}
		b.ReportMetric(w/float64(n[1]), "waits/create")
		rate := func(ack int) float64 { return float64(n[ack]) / (d.Seconds() * float64(b.N)) }
		b.ReportMetric(rate(0), "ack0_creates/s")
		b.ReportMetric(rate(1), "ack1_creates/s")
		b.ReportMetric(rate(1)/rate(0), "ack1/ack0")
	})

	b.Run("append=8MiB", func(b *testing.B) {
		const size, chunk = 64 << 20, 8 << 20
		data := randomData(size)
		var took [2]time.Duration
		var lat [2][]time.Duration
		var w float64
		for i := 0; b.Loop(); i++ {
			for _, ack := range order(i) {
				p := ferryds[ack]
				before := waits()
				start := time.Now()
				id := createSession(b, p, bkt, fmt.Sprintf("ack%d/%d", ack, i), size)["id"].(string)
				for off := 0; off < size; off += chunk {
					t := time.Now()
					if r := sendChunk(b, p, id, off, data[off:off+chunk]); r.Code != 200 {
						b.Fatalf("append at %d: %d %s", off, r.Code, r.Body)
					}
					lat[ack] = append(lat[ack], time.Since(t))
				}
				took[ack] += time.Since(start)
				if ack == 1 {
					w += waits() - before
				}
			}
		}
		b.ReportMetric(w/float64(b.N*(size/chunk+1)), "waits/request")
		mibps := func(ack int) float64 { return float64(b.N) * size / (1 << 20) / took[ack].Seconds() }
		p50 := func(ack int) float64 {
			slices.Sort(lat[ack])
			return float64(lat[ack][len(lat[ack])/2].Microseconds()) / 1000
		}
		b.ReportMetric(mibps(0), "ack0_MiB/s")
		b.ReportMetric(mibps(1), "ack1_MiB/s")
		b.ReportMetric(mibps(1)/mibps(0), "ack1/ack0")
		b.ReportMetric(p50(0), "ack0_p50_ms")
		b.ReportMetric(p50(1), "ack1_p50_ms")
	})
}
