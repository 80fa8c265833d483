package tus_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metrics"
	"github.com/ferryhq/ferry/session"
)

// BenchmarkTusVsNative uploads the same 64 MiB over HTTP to one in-process
// ferryd on Redis + S3, through tus PATCHes and through native appends, in
// chunks of 1, 8 and 64 MiB. Each iteration does one of each, alternating
// which goes first; the figure that matters is tus/native. It also counts
// the S3 requests the tus uploads make per PATCH, reads apart.
//
//	CI=1 scripts/test.sh -run '^$' -bench TusVsNative -benchtime 6x ./tus/
func BenchmarkTusVsNative(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(b, size)
	for _, chunk := range []int{1 << 20, 8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("chunk=%dMiB", chunk>>20), func(b *testing.B) {
			s3reg := prometheus.NewRegistry()
			s := testsvc.Open(b, "redis+s3", testsvc.StoreOptions{WrapS3: func(api s3blob.API) s3blob.API { return metrics.S3API(api, s3reg) }})
			in := serve(b, s, session.Config{})
			var tTus, tNative time.Duration
			s3Tus, s3Native := map[string]float64{}, map[string]float64{}
			patches := 0
			upTus := func(i int) {
				start := time.Now()
				defer s3Delta(b, s3reg, s3Tus)()
				url := create(b, in, size, metadata("bucket", "bench", "key", fmt.Sprintf("tus/%d", i)))
				for off := 0; off < size; off += chunk {
					wantStatus(b, patch(b, url, int64(off), data[off:min(off+chunk, size)]), http.StatusNoContent, "PATCH")
					patches++
				}
				tTus += time.Since(start)
			}
			upNative := func(i int) {
				start := time.Now()
				defer s3Delta(b, s3reg, s3Native)()
				id := nativeCreate(b, in, "bench", fmt.Sprintf("native/%d", i), size)
				for off := 0; off < size; off += chunk {
					resp := req(b, http.MethodPost, in.srv.URL+"/v1/files/session:"+id, data[off:min(off+chunk, size)],
						"Upload-Offset", strconv.Itoa(off), "Tus-Resumable", "")
					wantStatus(b, resp, http.StatusOK, "native append")
				}
				tNative += time.Since(start)
			}
			b.SetBytes(2 * size)
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					upTus(i)
					upNative(i)
				} else {
					upNative(i)
					upTus(i)
				}
			}
			mbps := func(d time.Duration) float64 { return float64(b.N) * size / (1 << 20) / d.Seconds() }
			b.ReportMetric(mbps(tTus), "tus_MiB/s")
			b.ReportMetric(mbps(tNative), "native_MiB/s")
			b.ReportMetric(tNative.Seconds()/tTus.Seconds(), "tus/native")
			var writes, reads float64
			for op, n := range s3Tus {
				switch op {
				case "UploadPart", "PutObject":
					writes += n
				case "GetObject", "HeadObject", "ListParts", "ListObjectsV2", "ListMultipartUploads":
					reads += n
				}
			}
			b.ReportMetric(writes/float64(patches), "s3writes/patch")
			b.ReportMetric(reads/float64(patches), "s3reads/patch")
			b.Logf("S3 requests of %d uploads, %d PATCHes: tus %v; native %v", b.N, patches, s3Tus, s3Native)
		})
	}
}

// nativeCreate starts a native upload session and returns its id.
func nativeCreate(b testing.TB, in *instance, bkt, key string, size int) string {
	body, _ := json.Marshal(map[string]any{"bucket": bkt, "key": key, "size": size})
	resp, err := http.Post(in.srv.URL+"/v1/files", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		raw, _ := io.ReadAll(resp.Body)
		b.Fatalf("create native session: %d %v %s", resp.StatusCode, err, raw)
	}
	return out.ID
}

// s3Delta adds the S3 requests made until the returned func runs to into.
func s3Delta(b testing.TB, reg *prometheus.Registry, into map[string]float64) func() {
	before := s3Requests(b, reg)
	return func() {
		for op, n := range s3Requests(b, reg) {
			if d := n - before[op]; d > 0 {
				into[op] += d
			}
		}
	}
}

// s3Requests reads ferry_s3_requests_total by operation.
func s3Requests(b testing.TB, reg *prometheus.Registry) map[string]float64 {
	return countersBy(b, reg, "ferry_s3_requests_total", "operation")
}
