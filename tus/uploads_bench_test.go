package tus_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"github.com/tus/tusd/v2/pkg/s3store"
	xslog "golang.org/x/exp/slog"
	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/pace"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/tus"
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
			api, bkt := testsvc.S3(b)
			tusdS3, ferryS3 := &opCounts{n: map[string]int{}}, &opCounts{n: map[string]int{}}
			tusdSrv := tusdServer(b, s3.New(api.Options(), tusdS3.install), bkt)
			ferryClient := s3.New(api.Options(), ferryS3.install)
			in := serve(b, testsvc.Open(b, "redis+s3", testsvc.StoreOptions{WrapS3: func(s3blob.API) s3blob.API { return ferryClient }}), session.Config{})
			direct := s3blob.New(api, bkt, "direct/")

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
			// One untimed round first: each side's first upload pays for new
			// connections, script loads and heap growth, which a server pays
			// once, not per upload.
			for _, side := range sides {
				side(-1)
			}
			tusdS3.reset()
			ferryS3.reset()
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
			sent := float64(b.N * ((size + chunk - 1) / chunk)) // chunks per side
			for name, c := range map[string]*opCounts{"tusd": tusdS3, "ferry": ferryS3} {
				var reads, all int
				for op, n := range c.snapshot() {
					all += n
					switch op {
					case "GetObject", "HeadObject", "ListParts":
						reads += n
					}
				}
				perChunk := sent
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

// tusdServer serves tusd v2.10.1's own handler with its S3 store on api and
// bkt (objects under tusd/), at /files/, as tusd runs on one instance: an
// in-memory locker. The store's UseIn registers every extension it has,
// concatenation included. Its request log is off, as Ferry's is in serve:
// the comparison is of the stores, not of the loggers, and the benchmark's
// output stays readable.
func tusdServer(b testing.TB, api *s3.Client, bkt string) *httptest.Server {
	store := s3store.New(bkt, api)
	store.ObjectPrefix = "tusd/"
	composer := tusd.NewStoreComposer()
	store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	// From warnings up, and those discarded: what Ferry's tus handler does in serve.
	quiet := xslog.New(xslog.NewTextHandler(io.Discard, &xslog.HandlerOptions{Level: xslog.LevelWarn}))
	h, err := tusd.NewHandler(tusd.Config{BasePath: "/files/", StoreComposer: composer, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/files/", h))
	b.Cleanup(srv.Close)
	return srv
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

func (c *opCounts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.n)
}

func (c *opCounts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// BenchmarkCappedLink is make bench's capped-link table (issue 25): one
// file over several connections where each connection is capped, as on a
// real network, where one TCP connection does not fill the pipe. A pacing
// proxy (internal/pace: 24 MiB/s per connection each way, or
// FERRY_BENCH_CAP_MIB) stands in front of the S3 server, and every S3
// client here goes through it (direct, tusd's store, ferryd's); one stands
// in front of ferryd and one in front of tusd. Each row uploads the same
// 256 MiB in 8 MiB parts, taking turns:
//
//	direct        aws-sdk multipart, 8 parts in flight, straight to S3
//	ferry_seq     the Go client's upload (what `ferry upload` does): one connection
//	ferry_par     the Go client's parallel upload, 8 parts in flight
//	tusd_par      tus-js-client 4, parallelUploads: 4, against tusd
//	              v2.10.1's own handler and S3 store (concatenation)
//	ferrytus_par  the same against Ferry's /v1/tus/
//
// Each row's object is read back straight from S3 (not through the proxy)
// and its SHA-256 compared before its time counts. It reports each row's
// MiB/s, its ratio to direct and to the per-connection cap.
//
//	FERRY_TEST_S3_SERVER=minio CI=1 scripts/test.sh -count=1 -run '^$' -bench '^BenchmarkCappedLink$' -benchtime 1x ./tus/
func BenchmarkCappedLink(b *testing.B) {
	const size, part, inFlight, tusParallel = 256 << 20, 8 << 20, 8, 4
	capMiB := 24.0
	if v := os.Getenv("FERRY_BENCH_CAP_MIB"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			b.Fatalf("FERRY_BENCH_CAP_MIB=%q: want the MiB/s each connection gets each way, a positive number", v)
		}
		capMiB = f
	}
	// Bounds each row, node included: four times what the file takes at one
	// connection's cap, and a minute.
	rowTime := 4*time.Duration(size/(capMiB*(1<<20))*float64(time.Second)) + time.Minute
	ctx := context.Background()
	data := randomBytes(b, size)
	want := sha256.Sum256(data)
	file := filepath.Join(b.TempDir(), "big.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}
	mods := testsvc.NodeModules(b, "tus-js-client@4")
	script, err := filepath.Abs("testdata/parallel.js")
	if err != nil {
		b.Fatal(err)
	}

	direct, bkt := testsvc.S3(b) // unpaced: only reads the results back
	cfg := testsvc.S3Config(b)
	s3URL, err := url.Parse(cfg.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Endpoint = "http://" + cappedLink(b, s3URL.Host, capMiB)
	capped, err := s3blob.NewClient(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	tusdURL := "http://" + cappedLink(b, tusdServer(b, capped, bkt).Listener.Addr().String(), capMiB) + "/files/"
	rc, prefix := testsvc.Redis(b)
	in := serve(b, testsvc.Stores{Name: "redis+s3", Meta: redisstore.New(rc, prefix), Blobs: s3blob.New(capped, bkt, "ferry/"), S3: capped},
		session.Config{})
	ferryURL := "http://" + cappedLink(b, in.srv.Listener.Addr().String(), capMiB)
	// A pool of its own that keeps more than the default 2 idle connections,
	// so parts in flight are not dialled afresh each time.
	fc := client.New(ferryURL, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * inFlight}})
	ferryObject := func(key string) string { return "ferry/" + registry.ObjectKey("bench", key) }

	// tusJS runs testdata/parallel.js against endpoint: the final upload's
	// URL and the upload's time as node measured it.
	tusJS := func(ctx context.Context, endpoint string, meta map[string]string) (string, time.Duration, error) {
		m, _ := json.Marshal(meta)
		// tus-js-client's default chunkSize: each partial upload in one PATCH.
		cmd := exec.CommandContext(ctx, "node", script, endpoint, file, strconv.Itoa(tusParallel), "Infinity", string(m))
		cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", 0, fmt.Errorf("tus-js-client: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		var r struct {
			URL string  `json:"url"`
			MS  float64 `json:"ms"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return "", 0, fmt.Errorf("parallel.js said %q: %v", out, err)
		}
		return r.URL, time.Duration(r.MS * float64(time.Millisecond)), nil
	}
	timed := func(up func() error) (time.Duration, error) {
		start := time.Now()
		err := up()
		return time.Since(start), err
	}

	type row struct {
		name string
		// up uploads the file and returns its S3 key and how long it took.
		up func(ctx context.Context, i int) (string, time.Duration, error)
	}
	rows := []row{
		{name: "direct", up: func(ctx context.Context, i int) (string, time.Duration, error) {
			key := fmt.Sprintf("direct/%d", i)
			took, err := timed(func() error { return multipartInFlight(ctx, capped, bkt, key, data, part, inFlight) })
			return key, took, err
		}},
		{name: "ferry_seq", up: func(ctx context.Context, i int) (string, time.Duration, error) {
			key := fmt.Sprintf("seq/%d", i)
			took, err := timed(func() error {
				_, err := fc.Upload(ctx, bytes.NewReader(data), size, "bench", key, client.UploadOptions{ChunkSize: part})
				return err
			})
			return ferryObject(key), took, err
		}},
		{name: "ferry_par", up: func(ctx context.Context, i int) (string, time.Duration, error) {
			key := fmt.Sprintf("par/%d", i)
			took, err := timed(func() error {
				_, err := fc.Upload(ctx, bytes.NewReader(data), size, "bench", key, client.UploadOptions{PartSize: part, Parallel: inFlight})
				return err
			})
			return ferryObject(key), took, err
		}},
		{name: "tusd_par", up: func(ctx context.Context, _ int) (string, time.Duration, error) {
			u, took, err := tusJS(ctx, tusdURL, map[string]string{"filename": "big.bin"})
			// tusd's upload id is <object id>+<multipart id>; the object is tusd/<object id>.
			_, id, _ := strings.Cut(u, "/files/")
			obj, _, _ := strings.Cut(id, "+")
			return "tusd/" + obj, took, err
		}},
		{name: "ferrytus_par", up: func(ctx context.Context, i int) (string, time.Duration, error) {
			key := fmt.Sprintf("tus/%d", i)
			_, took, err := tusJS(ctx, ferryURL+tus.BasePath, map[string]string{"bucket": "bench", "key": key})
			return ferryObject(key), took, err
		}},
	}

	took := make([]time.Duration, len(rows))
	for i := 0; b.Loop(); i++ {
		for k := range rows {
			j := (k + i) % len(rows) // each goes first in turn
			rowCtx, cancel := context.WithTimeout(ctx, rowTime)
			key, d, err := rows[j].up(rowCtx, i)
			cancel()
			if err != nil {
				b.Fatalf("%s: %v", rows[j].name, err)
			}
			sameObject(b, rows[j].name, direct, bkt, key, size, want)
			took[j] += d
		}
	}
	b.ReportMetric(capMiB, "cap_MiB/s")
	speed := map[string]float64{} // MiB/s by row
	for j, r := range rows {
		speed[r.name] = float64(b.N) * size / (1 << 20) / took[j].Seconds()
		b.ReportMetric(speed[r.name], r.name+"_MiB/s")
		b.ReportMetric(speed[r.name]/capMiB, r.name+"/cap")
	}
	for _, r := range rows[1:] {
		b.ReportMetric(speed[r.name]/speed["direct"], r.name+"/direct")
	}
	b.ReportMetric(speed["ferry_par"]/speed["ferry_seq"], "ferry_par/ferry_seq")
}

// cappedLink puts a pacing proxy in front of target, capping each
// connection to capMiB MiB/s each way, and returns the proxy's address.
func cappedLink(b testing.TB, target string, capMiB float64) string {
	p, err := pace.Listen(target, capMiB*(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p.Addr()
}

// multipartInFlight uploads data to key as one multipart upload in parts
// of part bytes, inFlight of them at once, with the SDK's own calls: the
// baseline a well-written S3 client reaches over capped connections.
func multipartInFlight(ctx context.Context, api *s3.Client, bkt, key string, data []byte, part, inFlight int) error {
	mp, err := api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bkt, Key: &key})
	if err != nil {
		return err
	}
	parts := make([]types.CompletedPart, (len(data)+part-1)/part)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(inFlight)
	for i := range parts {
		n := aws.Int32(int32(i + 1))
		p := data[i*part : min((i+1)*part, len(data))]
		g.Go(func() error {
			out, err := api.UploadPart(gctx, &s3.UploadPartInput{Bucket: &bkt, Key: &key, UploadId: mp.UploadId,
				PartNumber: n, Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p)))})
			if err != nil {
				return err
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: n}
			return nil
		})
	}
	if err = g.Wait(); err == nil {
		_, err = api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bkt, Key: &key, UploadId: mp.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		_, _ = api.AbortMultipartUpload(context.Background(), &s3.AbortMultipartUploadInput{Bucket: &bkt, Key: &key, UploadId: mp.UploadId})
	}
	return err
}

// sameObject fails b unless the object at key is size bytes with the
// SHA-256 want: a row that stored the wrong bytes reports no speed. api
// reaches S3 straight, so the check costs no time at the cap.
func sameObject(b testing.TB, row string, api *s3.Client, bkt, key string, size int64, want [sha256.Size]byte) {
	b.Helper()
	out, err := api.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bkt, Key: &key})
	if err != nil {
		b.Fatalf("%s: read back %s: %v", row, key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		b.Fatalf("%s: %s holds %d bytes (%v), want the %d uploaded; same SHA-256: %v", row, key, n, err, size, bytes.Equal(h.Sum(nil), want[:]))
	}
}
