package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testsvc"
)

// With FERRYD_TEST_MAIN set, the test binary is ferryd itself, so the tests
// can signal and kill a real process without building a second binary.
func TestMain(m *testing.M) {
	if os.Getenv("FERRYD_TEST_MAIN") != "" {
		os.Args = append([]string{"ferryd"}, strings.Fields(os.Getenv("FERRYD_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv drops FERRY_* and AWS_* so the developer's shell can't leak in.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FERRY_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startFerryd runs ferryd as a child process and waits until /healthz answers.
func startFerryd(t testing.TB, args string, env ...string) *proc {
	t.Helper()
	p := &proc{addr: freeAddr(t), stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = cleanEnv(append(env, "FERRYD_TEST_MAIN=1", "FERRYD_TEST_ARGS=--addr "+p.addr+" "+args)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("ferryd stderr:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("ferryd exited early (%v):\n%s", err, p.stderr.String())
		default:
		}
		if resp, err := http.Get("http://" + p.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("ferryd did not become healthy:\n%s", p.stderr.String())
	return nil
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", url, err)
	}
	return resp.StatusCode, m
}

func checkReady(t *testing.T, p *proc) {
	t.Helper()
	code, body := getJSON(t, "http://"+p.addr+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	if code != 200 || checks["metadata"] != "ok" || checks["blobs"] != "ok" {
		t.Fatalf("/readyz = %d %v", code, body)
	}
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ferry_http_requests_total{code="200",method="GET",route="/readyz"} 1`, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}

func stopGracefully(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("ferryd exited with %v after SIGTERM:\n%s", err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ferryd did not stop within 10s of SIGTERM")
	}
}

// The embedded default: no Redis, no S3, no config file.
func TestEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	p := startFerryd(t, "--data-dir "+dir)
	checkReady(t, p)
	stopGracefully(t, p)
	if _, err := os.Stat(filepath.Join(dir, "meta.db")); err != nil {
		t.Fatalf("no bbolt file under the data dir: %v", err)
	}
	if !strings.Contains(p.stderr.String(), "metadata=bbolt blobs=filesystem") {
		t.Fatalf("startup line does not name the embedded stores:\n%s", p.stderr.String())
	}
}

// Redis + S3, configured through the contract's environment variables.
func TestRedisAndS3(t *testing.T) {
	_, env := s3Env(t)
	env = append(env,
		"FERRY_REDIS_URL="+testsvc.RedisURL(t),
		"FERRY_REDIS_PREFIX="+testsvc.Unique("t")+":",
		"FERRY_LOG_FORMAT=json",
	)
	p := startFerryd(t, "--data-dir "+t.TempDir(), env...)
	checkReady(t, p)
	stopGracefully(t, p)
	if !strings.Contains(p.stderr.String(), `"metadata":"redis","blobs":"s3"`) {
		t.Fatalf("startup line does not name redis and s3:\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), `"timeout":"30s"`) {
		t.Fatalf("the shutdown line does not give its timeout as 30s:\n%s", p.stderr.String())
	}

	// The same server pointed at a bucket that does not exist is alive but not ready.
	env = append(env, "FERRY_S3_BUCKET=no-such-bucket-"+strings.ToLower(testsvc.Unique("")))
	p = startFerryd(t, "--data-dir "+t.TempDir(), env...) // its link secret goes there, not into the source tree
	code, body := getJSON(t, "http://"+p.addr+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	if code != 503 || checks["metadata"] != "ok" || checks["blobs"] == "ok" {
		t.Fatalf("/readyz with a missing bucket = %d %v", code, body)
	}
}

func TestInvalidConfigFailsWithAdvice(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cleanEnv("FERRYD_TEST_MAIN=1", "FERRYD_TEST_ARGS=--addr 127.0.0.1:0", "FERRY_S3_ENDPOINT=http://127.0.0.1:9000")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ferryd started with an S3 endpoint but no bucket:\n%s", out)
	}
	if !strings.Contains(string(out), "FERRY_S3_BUCKET") {
		t.Fatalf("error does not say what to set:\n%s", out)
	}
}

// SIGTERM lets an in-flight request finish and refuses new connections.
func TestShutdownFinishesInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		fmt.Fprint(w, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, h, 10*time.Second, 5*time.Second, slog.New(slog.DiscardHandler)) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	if body := <-got; body != "finished" {
		t.Fatalf("in-flight request got %q, want it to finish", body)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/slow"); err == nil {
		t.Fatal("new connections still accepted after shutdown")
	}
}

// A data directory written before the layout version (layout 0) is
// migrated at startup and served.
func TestUpgradesLayout0(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../metastore/migrate/testdata/v0/bolt")); err != nil {
		t.Fatal(err)
	}
	p := startFerryd(t, "--data-dir "+dir)
	code, body := getJSON(t, "http://"+p.addr+"/v1/files/photos")
	if data, _ := body["data"].([]any); code != 200 || len(data) != 2 {
		t.Fatalf("GET /v1/files/photos = %d %v, want the fixture's 2 files", code, body)
	}
	stopGracefully(t, p)
	if !strings.Contains(p.stderr.String(), "metadata layout migrated") {
		t.Fatalf("startup did not log the migration:\n%s", p.stderr.String())
	}
}
