package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testsvc"
)

// clusterS3Env is ferryd on the test's 3-master Redis Cluster and S3,
// connected the way a deployment would: FERRY_REDIS_ADDRS and
// FERRY_REDIS_MODE. Instances started with the same env share state.
func clusterS3Env(t testing.TB) backendEnv {
	_, prefix := testsvc.RedisCluster(t) // for the prefix and its cleanup
	bkt, env := s3Env(t)
	return backendEnv{name: "cluster+s3", args: "--data-dir " + t.TempDir(), bucket: bkt, env: append(env,
		"FERRY_REDIS_ADDRS="+os.Getenv(testsvc.EnvRedisCluster),
		"FERRY_REDIS_MODE=cluster",
		"FERRY_REDIS_PREFIX="+prefix,
	)}
}

// Three instances on the cluster, every request to the next one (round
// robin, no stickiness): uploads of 1 MiB up to 16 MiB (64 MiB with
// FERRY_SCALE=long) in 3 MiB chunks come back byte-exact from every
// instance. Then session creates per second against one instance and
// round robin over three, logged side by side (measured, not asserted).
//
//	CI=1 scripts/test.sh -count=1 -v -run TestScaleOutCluster ./cmd/ferryd/
func TestScaleOutCluster(t *testing.T) {
	be := clusterS3Env(t)
	be.env = append(be.env, "FERRY_LIMIT_UPLOADS_PER_MINUTE=0") // it creates sessions as fast as it can
	var ps []*proc
	for range 3 {
		ps = append(ps, be.start(t))
	}
	var next atomic.Int64
	pick := func() *proc { return ps[next.Add(1)%int64(len(ps))] }

	uploads, maxMiB := 8, 16
	if os.Getenv("FERRY_SCALE") == "long" {
		uploads, maxMiB = 20, 64
	}
	const chunk = 3 << 20
	var wg sync.WaitGroup
	for i := range uploads {
		size := (1 + i*(maxMiB-1)/(uploads-1)) << 20
		if i%2 == 1 {
			size += 12345 // not a whole number of MiB
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := randomData(size)
			key := fmt.Sprintf("scale/%02d.bin", i)
			id := createSession(t, pick(), "scale", key, size)["id"].(string)
			for off := 0; off < size; off += chunk {
				end := min(off+chunk, size)
				if r := sendChunk(t, pick(), id, off, content[off:end]); r.Code != 200 {
					t.Errorf("%s: chunk at %d: %d %s", key, off, r.Code, r.Body)
					return
				}
			}
			for _, p := range ps {
				if got := download(t, "http://"+p.addr+"/v1/files/scale/"+key+":content"); !bytes.Equal(got, content) {
					t.Errorf("%s read through %s: %d bytes, not the %d uploaded", key, p.addr, len(got), size)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	one := createRate(t, ps[:1], 2*time.Second)
	three := createRate(t, ps, 2*time.Second)
	t.Logf("session creates/s on the cluster: 1 instance %.0f, 3 instances %.0f (ratio %.2f)", one, three, three/one)
}

// createRate is how many sessions per second 8 concurrent clients create,
// each request going to the next of ps.
func createRate(t testing.TB, ps []*proc, d time.Duration) float64 {
	var n, next atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				p := ps[next.Add(1)%int64(len(ps))]
				body := fmt.Sprintf(`{"bucket":"rate","key":"w%d/%d","size":1048576}`, w, i)
				resp, err := http.Post("http://"+p.addr+"/v1/files", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 201 {
					t.Errorf("create: %d", resp.StatusCode)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}
