package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/openai/openai-go/v3"
)

// Two ferryd on one Redis share each subject's budget: with the default
// 100 uploads a minute, creates spread over both instances run out at the
// 100th, and the 101st is refused by whichever instance takes it, natively
// and through the official OpenAI SDK. An upload started before the budget
// ran out still finishes, its chunks alternating between the instances.
// On the Redis Cluster the same holds with a small limit from the settings.
//
//	CI=1 scripts/test.sh -count=1 -run TestRateLimitAcrossInstances ./cmd/ferryd/
func TestRateLimitAcrossInstances(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   func(testing.TB) backendEnv
		limit int
	}{
		{"redis+s3", redisS3Env, 100}, // the default: no setting
		{"cluster+s3", clusterS3Env, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			be := c.env(t)
			env := be.env
			if c.limit != 100 {
				env = append(env, fmt.Sprintf("FERRY_LIMIT_UPLOADS_PER_MINUTE=%d", c.limit))
			}
			ps := []*proc{startFerryd(t, be.args, env...), startFerryd(t, be.args, env...)}

			const chunk = 1 << 20
			data := randomData(4 * chunk)
			id := createSession(t, ps[0], "limits", "long.bin", len(data))["id"].(string)
			for i := 1; i < c.limit; i++ {
				r := testhttp.Do(t, "POST", "http://"+ps[i%2].addr+"/v1/files",
					strings.NewReader(fmt.Sprintf(`{"bucket":"limits","key":"k%d","size":10}`, i)))
				if r.Code != 201 {
					t.Fatalf("create %d of %d, on instance %d: %d %s", i+1, c.limit, i%2, r.Code, r.Body)
				}
			}
			for n, p := range ps {
				r := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files", strings.NewReader(`{"bucket":"limits","key":"over","size":10}`))
				if r.Code != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" ||
					r.Header.Get("RateLimit-Limit") != fmt.Sprint(c.limit) || r.Header.Get("RateLimit-Remaining") != "0" ||
					r.JSON(t)["code"] != "RATE_LIMITED" {
					t.Fatalf("create %d on instance %d: %d %v %s; want 429 RATE_LIMITED with Retry-After and RateLimit-*",
						c.limit+1, n, r.Code, r.Header, r.Body)
				}
			}
			client := sdk(ps[1], "/v1/openai/v1")
			_, err := client.Files.New(context.Background(), openai.FileNewParams{
				File: openai.File(bytes.NewReader([]byte("hi")), "hi.txt", "text/plain"), Purpose: openai.FilePurposeAssistants})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" {
				t.Fatalf("SDK upload over the limit: %v; want a 429 rate_limit_exceeded", err)
			}

			for off, i := 0, 0; off < len(data); off, i = off+chunk, i+1 {
				if r := sendChunk(t, ps[i%2], id, off, data[off:off+chunk]); r.Code != 200 {
					t.Fatalf("chunk at %d of the admitted upload: %d %s", off, r.Code, r.Body)
				}
			}
			if got := download(t, "http://"+ps[1].addr+"/v1/files/limits/long.bin:content"); !bytes.Equal(got, data) {
				t.Fatalf("the admitted upload came back as %d bytes, not the %d sent", len(got), len(data))
			}
		})
	}
}

// BenchmarkSessionCreateLimits is session creates per second from 8
// concurrent clients with the rate limits off and on (at a limit never
// reached, so every create pays for one decision), side by side in one run:
// in memory on the embedded default, and on Redis beside Redis + S3.
//
//	CI=1 scripts/test.sh -run '^$' -bench SessionCreateLimits ./cmd/ferryd/
func BenchmarkSessionCreateLimits(b *testing.B) {
	for _, mode := range []struct {
		name string
		env  func(testing.TB) backendEnv
	}{
		{"embedded", embeddedEnv},
		{"redis+s3", redisS3Env},
	} {
		limits := []string{"0", "100000"}
		var ps []*proc
		for _, limit := range limits {
			be := mode.env(b) // one instance per bbolt file
			ps = append(ps, startFerryd(b, be.args, append(be.env, "FERRY_LIMIT_UPLOADS_PER_MINUTE="+limit)...))
		}
		for range 3 { // off and on in turns, so a noisy neighbour hits both alike
			for i, limit := range limits {
				b.Run(mode.name+"/uploads_per_minute="+limit, func(b *testing.B) {
					var rate float64
					for b.Loop() {
						rate = createRate(b, ps[i:i+1], 2*time.Second)
					}
					b.ReportMetric(rate, "creates/s")
				})
			}
		}
	}
}
