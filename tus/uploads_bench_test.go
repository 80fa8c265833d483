package tus_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"github.com/tus/tusd/v2/pkg/s3store"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/session"
)

// BenchmarkUploads is make bench's upload table: 64 MiB to the same S3
// server, in one run, taking turns, four ways: a direct aws-sdk multipart
// upload (parts of max(chunk, 5 MiB), as a well-written client would),
// tusd v2.10.1's own handler with its S3 store (in-process, in-memory
// locker, as tusd runs on one instance), Ferry's native appends and Ferry's
// tus PATCHes, both over HTTP to one in-process ferryd on Redis + S3, at
// chunks of 1, 8 and 64 MiB. It reports each side's MiB/s and its ratio to
// direct, and the S3 requests per chunk of tusd and of Ferry (reads apart).
//
//	CI=1 scripts/test.sh -run '^$' -bench '^BenchmarkUploads$' -benchtime 4x ./tus/
func BenchmarkUploads(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(b, size)
	for _, chunk := range []int{1 << 20, 8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("chunk=%dMiB", chunk>>20), func(b *testing.B) {
			client, bkt := testsvc.S3(b)
			tusdS3, ferryS3 := &opCounts{n: map[string]int{}}, &opCounts{n: map[string]int{}}
			store := s3store.New(bkt, s3.New(client.Options(), tusdS3.install))
			store.ObjectPrefix = "tusd/"
			composer := tusd.NewStoreComposer()
			store.UseIn(composer)
			memorylocker.New().UseIn(composer)
			h, err := tusd.NewHandler(tusd.Config{BasePath: "/files/", StoreComposer: composer})
			if err != nil {
				b.Fatal(err)
			}
			tusdSrv := httptest.NewServer(http.StripPrefix("/files/", h))
			defer tusdSrv.Close()
			ferryClient := s3.New(client.Options(), ferryS3.install)
			in := serve(b, testsvc.Open(b, "redis+s3", testsvc.StoreOptions{WrapS3: func(s3blob.API) s3blob.API { return ferryClient }}), session.Config{})
			direct := s3blob.New(client, bkt, "direct/")

			chunks := func(send func(off int, p []byte)) {
				for off := 0; off < size; off += chunk {
					send(off, data[off:min(off+chunk, size)])
				}
			}
			sides := []func(i int){
				func(i int) { // direct
					testsvc.DirectUpload(b, direct, fmt.Sprintf("%d", i), data, max(chunk, int(bucket.MinPartSize)))
				},
				func(int) { // tusd
					resp := req(b, http.MethodPost, tusdSrv.URL+"/files/", nil, "Upload-Length", strconv.Itoa(size))
					wantStatus(b, resp, http.StatusCreated, "tusd create")
					url := resp.Header.Get("Location")
					chunks(func(off int, p []byte) {
						wantStatus(b, patch(b, url, int64(off), p), http.StatusNoContent, "tusd PATCH")
					})
				},
				func(i int) { // Ferry native
					id := nativeCreate(b, in, "bench", fmt.Sprintf("native/%d", i), size)
					chunks(func(off int, p []byte) {
						resp := req(b, http.MethodPost, in.srv.URL+"/v1/files/session:"+id, p, "Upload-Offset", strconv.Itoa(off), "Tus-Resumable", "")
						wantStatus(b, resp, http.StatusOK, "native append")
					})
				},
				func(i int) { // Ferry tus
					url := create(b, in, size, metadata("bucket", "bench", "key", fmt.Sprintf("tus/%d", i)))
					chunks(func(off int, p []byte) { wantStatus(b, patch(b, url, int64(off), p), http.StatusNoContent, "PATCH") })
				},
			}
			var took [4]time.Duration
			b.SetBytes(4 * size)
			for i := 0; b.Loop(); i++ {
				for k := range sides {
					j := (k + i) % len(sides) // each goes first in turn
					start := time.Now()
					sides[j](i)
					took[j] += time.Since(start)
				}
			}
			mbps := func(d time.Duration) float64 { return float64(b.N) * size / (1 << 20) / d.Seconds() }
			for j, name := range []string{"direct", "tusd", "native", "ferrytus"} {
				b.ReportMetric(mbps(took[j]), name+"_MiB/s")
				if j > 0 {
					b.ReportMetric(took[0].Seconds()/took[j].Seconds(), name+"/direct")
				}
			}
			perChunk := float64(b.N * ((size + chunk - 1) / chunk))
			for name, c := range map[string]*opCounts{"tusd": tusdS3, "ferry": ferryS3} {
				var reads, all int
				for op, n := range c.snapshot() {
					all += n
					switch op {
					case "GetObject", "HeadObject", "ListParts":
						reads += n
					}
				}
				if name == "ferry" {
					perChunk *= 2 // native and tus
				}
				b.ReportMetric(float64(all)/perChunk, name+"_s3/chunk")
				b.ReportMetric(float64(reads)/perChunk, name+"_s3reads/chunk")
			}
			b.Logf("S3 requests: tusd %v; ferry (native and tus) %v", tusdS3.snapshot(), ferryS3.snapshot())
		})
	}
}

// opCounts counts S3 requests by operation through the SDK's middleware
// stack, so tusd's store (which takes the client, not our API) is counted
// as it runs.
type opCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *opCounts) install(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput,
			next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			c.n[awsmiddleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
}

func (c *opCounts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}
