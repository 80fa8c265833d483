package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/webhooktest"
	"github.com/openai/openai-go/v3"
)

// Every metric the Grafana dashboard and the alert rules query exists on a
// real ferryd's /metrics once it has served an upload and a vector store
// search (Redis + S3, so the S3 and metastore families are there too).
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	rc := webhooktest.New(t) // the webhook families are there once a webhook is
	p := redisS3Env(t).startVS(t, "FERRY_WEBHOOK_URL="+rc.URL, "FERRY_WEBHOOK_SECRET="+webhooktest.Secret)
	uploadHTTP(t, p, "metrics", "f.bin", randomData(7*MiB), 3*MiB)
	download(t, "http://"+p.addr+"/v1/files/metrics/f.bin:content")
	c := vsClient(t, p)
	ctx := context.Background()
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	f := uploadSDK(t, c, "m.txt", []byte("metrics for vector stores"), openai.FilePurposeAssistants)
	attachAndPoll(t, c, vs.ID, openai.VectorStoreFileNewParams{FileID: f.ID})
	if _, err := c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("metrics")}}); err != nil {
		t.Fatal(err)
	}
	// The worker counts the file and drops its job just after the file
	// reads completed, so give the scrape a moment to see both.
	var exposed string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		exposed = string(testhttp.Do(t, "GET", "http://"+p.addr+"/metrics", nil).Body)
		if strings.Contains(exposed, `ferry_openai_vector_files_total{event="completed"} 1`) &&
			strings.Contains(exposed, "ferry_openai_vector_queue_depth 0") &&
			strings.Contains(exposed, `ferry_webhook_backlog{sink="default"}`) || time.Now().After(deadline) {
			break
		}
	}

	names := regexp.MustCompile(`ferry_[a-z0-9_]+`)
	for _, file := range []string{"../../deploy/grafana/dashboards/ferry.json", "../../deploy/prometheus/alerts.yml"} {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, name := range names.FindAllString(string(body), -1) {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(exposed, "# TYPE "+base+" histogram") {
					name = base
				}
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			if !strings.Contains(exposed, "# TYPE "+name+" ") {
				t.Errorf("%s queries %s, which /metrics does not expose", file, name)
			}
		}
		if len(seen) < 5 {
			t.Fatalf("%s: found only %d metric names; is the regexp still right?", file, len(seen))
		}
	}
	// The upload itself shows: one S3 UploadPart per 3 MiB-or-more run is
	// not asserted here (session tests count requests exactly); that the
	// families carry samples is.
	// Two sessions completed, told apart by protocol: the native upload and
	// the SDK's file upload.
	for _, want := range []string{`ferry_sessions_completed_total{protocol="native"} 1`, `ferry_sessions_completed_total{protocol="openai"} 1`,
		`ferry_sessions_completed_total{protocol="tus"} 0`, `ferry_s3_requests_total{operation="UploadPart",result="ok"}`, `ferry_sessions_active `,
		`ferry_openai_vector_files_total{event="completed"} 1`, `ferry_openai_vector_queue_depth 0`, `ferry_openai_vector_search_duration_seconds_count{mode="keyword"} 1`,
		// Both purgers export the one failure counter, told apart by label.
		`ferry_purge_failures_total{purger="sessions"} 0`, `ferry_purge_failures_total{purger="openai"} 0`} {
		if !strings.Contains(exposed, want) {
			t.Errorf("/metrics lacks %q after an upload", want)
		}
	}
}
