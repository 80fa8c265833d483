package main

// The process-level part of issue 12's fault-injection suite: real ferryd
// processes on a Redis and a versitygw of the test's own (so that they can
// be killed and restarted), driven by the client package's resuming
// uploads. docs/chaos.md describes the scenarios; FERRY_CHAOS=long (make
// chaos) selects the long version, the default is the short one that
// `make test` runs.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/client"
)

// chaosPlan sizes one run of the suite.
type chaosPlan struct {
	mode               string
	uploads            int // files of the kill scenario
	workers            int // uploads in flight at once
	maxKills           int // bound on ferryd kills
	killGap            [2]time.Duration
	largeEvery         int // every n-th file of the kill scenario is multi-part
	largeMin, largeMax int
	redisDown          time.Duration // how long Redis stays dead before its restart
	s3Down             time.Duration // how long versitygw stays stopped
	outageSize         int           // the upload an outage interrupts
	ttl                time.Duration // sessions.ttl of every ferryd
	purgeInterval      time.Duration
	// orphanAge is sessions.orphan_age: a kill -9 between a
	// CreateMultipart and its filing leaves an upload only the sweep frees.
	orphanAge time.Duration
	timeout   time.Duration // bound on one scenario's uploads
}

func chaosPlanFromEnv() chaosPlan {
	if os.Getenv("FERRY_CHAOS") == "long" {
		return chaosPlan{mode: "long", uploads: 50, workers: 4, maxKills: 40,
			killGap: [2]time.Duration{300 * time.Millisecond, 1200 * time.Millisecond}, largeEvery: 5, largeMin: 12 * MiB, largeMax: 40 * MiB,
			redisDown: 10 * time.Second, s3Down: 30 * time.Second, outageSize: 40 * MiB,
			ttl: 75 * time.Second, purgeInterval: time.Second, orphanAge: 30 * time.Second, timeout: 20 * time.Minute}
	}
	return chaosPlan{mode: "short", uploads: 8, workers: 3, maxKills: 4,
		killGap: [2]time.Duration{200 * time.Millisecond, 600 * time.Millisecond}, largeEvery: 2, largeMin: 12 * MiB, largeMax: 16 * MiB,
		redisDown: 2 * time.Second, s3Down: 5 * time.Second, outageSize: 14 * MiB,
		ttl: 30 * time.Second, purgeInterval: time.Second, orphanAge: 15 * time.Second, timeout: 4 * time.Minute}
}

// chaosTally is what the summary line reports.
type chaosTally struct {
	mu                                sync.Mutex
	scenarios, kills, redis, s3       int
	uploads, verified                 int
	lost, duplicated, corrupt         int64
	mpuLeaks, tailLeaks, recordLeaks  int
	torn                              int
	outage503, outageOther, outageErr int
}

func (t *chaosTally) add(fn func(*chaosTally)) { t.mu.Lock(); defer t.mu.Unlock(); fn(t) }

func (t *chaosTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("scenarios=%d faults: kills=%d redis_restarts=%d s3_outages=%d | uploads verified=%d/%d | bytes lost=%d duplicated=%d, corrupt files=%d, torn reads=%d | leaks: multipart=%d tail_segments=%d session_records=%d | 5xx during outages: 503+Retry-After=%d other=%d (connection errors %d)",
		t.scenarios, t.kills, t.redis, t.s3, t.verified, t.uploads, t.lost, t.duplicated, t.corrupt, t.torn,
		t.mpuLeaks, t.tailLeaks, t.recordLeaks, t.outage503, t.outageOther, t.outageErr)
}

func TestChaos(t *testing.T) {
	plan := chaosPlanFromEnv()
	redisBin := chaosBinary(t, "redis-server")
	s3Bin := chaosBinary(t, "versitygw")
	tally := &chaosTally{}
	start := time.Now()
	// The scenarios run at once, each on its own Redis and versitygw; t.Run
	// from goroutines keeps them out of -parallel's limit (GOMAXPROCS),
	// since they mostly wait (for TTLs, outages and lock leases).
	scenarios := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"kill-ferryd", func(t *testing.T) {
			chaosKillScenario(t, newChaosRig(t, plan, redisBin, s3Bin, tally), tally)
		}},
		{"redis-restart", func(t *testing.T) {
			rig := newChaosRig(t, plan, redisBin, s3Bin, tally)
			chaosOutageScenario(t, rig, tally, "redis", rig.redis, syscall.SIGKILL, plan.redisDown)
		}},
		{"s3-outage", func(t *testing.T) {
			rig := newChaosRig(t, plan, redisBin, s3Bin, tally)
			chaosOutageScenario(t, rig, tally, "s3", rig.s3, syscall.SIGTERM, plan.s3Down)
		}},
	}
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Add(1)
		go func() { defer wg.Done(); t.Run(sc.name, sc.run) }()
	}
	wg.Wait()
	t.Logf("chaos summary (%s, %s): %s", plan.mode, time.Since(start).Round(time.Second), tally)
}

// chaosBinary finds a service binary: on PATH, else in GOBIN or GOPATH/bin
// (where scripts/test.sh installs versitygw). Missing fails under CI.
func chaosBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := []string{os.Getenv("GOBIN")}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI for the chaos suite but is not on PATH nor in GOPATH/bin; run `make test`, which installs it", name)
	}
	t.Skipf("%s not found; `make test` installs it", name)
	return ""
}

// ---- processes ---------------------------------------------------------

// daemon is one service process that can be killed and started again on
// the same port (and, for Redis and versitygw, the same data directory).
type daemon struct {
	name    string
	bin     string
	argv    func(port int) (args, env []string)
	health  string // path answering 200 once ready; "" means the port accepting
	port    int
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	closed bool
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (d *daemon) addr() string { return "127.0.0.1:" + strconv.Itoa(d.port) }

// start runs the process and waits until it serves. It never calls t, so
// the killer goroutine may use it.
func (d *daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New(d.name + ": the test is over")
	}
	if d.cmd != nil {
		return errors.New(d.name + ": already running")
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s start on %s at %s\n", d.name, d.addr(), time.Now().Format(time.RFC3339Nano))
	args, env := d.argv(d.port)
	cmd := exec.Command(d.bin, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	fail := func(why string) error {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s on %s %s:\n%s", d.name, d.addr(), why, logTail(d.logPath, 2000))
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(40 * time.Second)
	for ready := false; !ready; {
		select {
		case <-done:
			return fail("exited at start")
		default:
		}
		if time.Now().After(deadline) {
			return fail("did not become ready within 40s")
		}
		if d.health == "" {
			if c, err := net.DialTimeout("tcp", d.addr(), 200*time.Millisecond); err == nil {
				c.Close()
				ready = true
			}
		} else if resp, err := hc.Get("http://" + d.addr() + d.health); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A process that lost a race for the port exits now; don't mistake
	// the port's owner for it.
	select {
	case <-done:
		return fail("exited after its port answered (port taken?)")
	case <-time.After(200 * time.Millisecond):
	}
	d.cmd, d.done = cmd, done
	return nil
}

// restart starts the process again on its port, retrying for a while (the
// port may linger).
func (d *daemon) restart() error {
	var err error
	for range 10 {
		if err = d.start(); err == nil || strings.Contains(err.Error(), "test is over") {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	return err
}

// stop sends sig and waits; past grace it kills.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (d *daemon) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.stop(syscall.SIGKILL, 5*time.Second)
}

// startOnFreePort starts d on a free port, trying a few in case one is
// taken between the probe and the bind.
func (d *daemon) startOnFreePort() error {
	var err error
	for range 5 {
		if d.port, err = freePort(); err != nil {
			return err
		}
		if err = d.start(); err == nil {
			return nil
		}
	}
	return err
}

func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cluster is the set of live ferryd processes sharing one Redis and one S3.
type cluster struct {
	dir  string
	env  []string
	mu   sync.Mutex
	live []*daemon
	all  []*daemon
	rr   int
	seq  int
}

// spawn starts one more ferryd on a fresh port.
func (c *cluster) spawn() error {
	c.mu.Lock()
	c.seq++
	n := c.seq
	d := &daemon{name: fmt.Sprintf("ferryd-%d", n), bin: os.Args[0], health: "/healthz",
		logPath: filepath.Join(c.dir, fmt.Sprintf("ferryd-%d.log", n))}
	dataDir := filepath.Join(c.dir, fmt.Sprintf("data-%d", n))
	d.argv = func(port int) ([]string, []string) {
		return []string{"-test.run=^$"}, append(slices.Clone(c.env), "FERRYD_TEST_MAIN=1",
			fmt.Sprintf("FERRYD_TEST_ARGS=--addr 127.0.0.1:%d --data-dir %s", port, dataDir))
	}
	c.all = append(c.all, d)
	c.mu.Unlock()
	if err := d.startOnFreePort(); err != nil {
		return err
	}
	c.mu.Lock()
	c.live = append(c.live, d)
	c.mu.Unlock()
	return nil
}

// pick names the live instance the next request goes to, in turn.
func (c *cluster) pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.live) == 0 {
		return "127.0.0.1:1" // nobody: the request fails and is retried
	}
	c.rr++
	return c.live[c.rr%len(c.live)].addr()
}

// killOne SIGKILLs a random live instance.
func (c *cluster) killOne(rng *rand.Rand) string {
	c.mu.Lock()
	if len(c.live) == 0 {
		c.mu.Unlock()
		return ""
	}
	i := rng.IntN(len(c.live))
	d := c.live[i]
	c.live = slices.Delete(c.live, i, i+1)
	c.mu.Unlock()
	d.stop(syscall.SIGKILL, 5*time.Second)
	return d.name
}

func (c *cluster) close() {
	c.mu.Lock()
	all := slices.Clone(c.all)
	c.mu.Unlock()
	for _, d := range all {
		d.close()
	}
}

// serverError finds what the server logged about a request.
func (c *cluster) serverError(requestID string) string {
	if requestID == "" {
		return "(no request id)"
	}
	c.mu.Lock()
	all := slices.Clone(c.all)
	c.mu.Unlock()
	for _, d := range all {
		b, _ := os.ReadFile(d.logPath)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "request_id="+requestID) {
				if _, e, ok := strings.Cut(line, " error="); ok {
					e, _, _ = strings.Cut(e, " request_id=")
					return e
				}
				return line
			}
		}
	}
	return "(not found)"
}

// logProblems reports race reports and panics in any ferryd's output.
func (c *cluster) logProblems() []string {
	c.mu.Lock()
	all := slices.Clone(c.all)
	c.mu.Unlock()
	var out []string
	for _, d := range all {
		b, _ := os.ReadFile(d.logPath)
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if i := bytes.Index(b, []byte(bad)); i >= 0 {
				out = append(out, fmt.Sprintf("%s: %s", d.name, b[i:min(len(b), i+3000)]))
			}
		}
	}
	return out
}

// ---- requests ----------------------------------------------------------

// exchange is one request the clients made, as the transport saw it.
type exchange struct {
	start, end time.Time
	method     string
	route      string
	status     int // 0: no answer (connection error)
	retryAfter string
	requestID  string
	body       string // of error answers, cut short
}

type recorder struct {
	mu  sync.Mutex
	all []exchange
}

func (r *recorder) add(e exchange) { r.mu.Lock(); r.all = append(r.all, e); r.mu.Unlock() }

func (r *recorder) between(from, to time.Time) []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, e := range r.all {
		if !e.end.Before(from) && !e.start.After(to) {
			out = append(out, e)
		}
	}
	return out
}

// breakdown counts the answers by route and status (0: connection error).
func (r *recorder) breakdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, e := range r.all {
		n[fmt.Sprintf("%s %d", e.route, e.status)]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, n[k])
	}
	return strings.Join(parts, ", ")
}

// route names a request without its ids and keys.
func route(req *http.Request) string {
	p := req.URL.Path
	switch {
	case strings.Contains(p, "/session:"):
		if req.Method == http.MethodPost {
			return "append"
		}
		return "session " + req.Method
	case strings.HasSuffix(p, ":content"):
		return "read"
	case p == "/v1/files" && req.Method == http.MethodPost:
		return "create"
	}
	return req.Method + " file"
}

// routed sends each request to the cluster instance pick names, whatever
// host the client asked for, and records the answer.
type routed struct {
	base *http.Transport
	pick func() string
	rec  *recorder
}

func (rt *routed) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Host = rt.pick()
	out.Host = out.URL.Host
	e := exchange{start: time.Now(), method: req.Method, route: route(req)}
	resp, err := rt.base.RoundTrip(out)
	e.end = time.Now()
	if err == nil {
		e.status, e.retryAfter, e.requestID = resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Request-Id")
		if resp.StatusCode >= 400 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
			e.body = strings.TrimSpace(string(b[:min(len(b), 300)]))
		}
	} else {
		if req.Context().Err() != nil {
			return resp, err // our own cancellation, not an answer
		}
		e.body = err.Error()
	}
	rt.rec.add(e)
	return resp, err
}

// ---- the rig -----------------------------------------------------------

// chaosRig is one scenario's world: its own Redis (AOF on) and versitygw,
// two ferryd instances, and a client that goes through whichever is alive.
type chaosRig struct {
	t       *testing.T
	plan    chaosPlan
	redis   *daemon
	s3      *daemon
	s3c     *s3.Client
	rdb     *redis.Client
	prefix  string
	s3Bkt   string
	bucket  string // the Ferry bucket the files go to
	cluster *cluster
	rec     *recorder
	hc      *http.Client
	c       *client.Client
	lost    atomic.Int64 // acknowledged bytes the server later did not have
}

const (
	chaosAccessKey = "chaoskey"
	chaosSecretKey = "chaossecret"
)

func newChaosRig(t *testing.T, plan chaosPlan, redisBin, s3Bin string, tally *chaosTally) *chaosRig {
	t.Helper()
	tally.add(func(c *chaosTally) { c.scenarios++ })
	dir := t.TempDir()
	r := &chaosRig{t: t, plan: plan, prefix: "chaos:", s3Bkt: "ferry-chaos", bucket: "chaos", rec: &recorder{}}

	redisDir := filepath.Join(dir, "redis")
	s3Dir := filepath.Join(dir, "s3")
	for _, d := range []string{redisDir, s3Dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.redis = &daemon{name: "redis-server", bin: redisBin, logPath: filepath.Join(dir, "redis.log"),
		argv: func(port int) ([]string, []string) {
			return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", redisDir, "--save", "",
				"--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes", "--daemonize", "no"}, nil
		}}
	t.Cleanup(func() { r.redis.close(); r.dumpLog(r.redis.logPath) })
	if err := r.redis.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	r.s3 = &daemon{name: "versitygw", bin: s3Bin, logPath: filepath.Join(dir, "versitygw.log"),
		argv: func(port int) ([]string, []string) {
			return []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--quiet", "posix", s3Dir},
				[]string{"ROOT_ACCESS_KEY_ID=" + chaosAccessKey, "ROOT_SECRET_ACCESS_KEY=" + chaosSecretKey}
		}}
	t.Cleanup(func() { r.s3.close(); r.dumpLog(r.s3.logPath) })
	if err := r.s3.startOnFreePort(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	s3URL := "http://" + r.s3.addr()
	var err error
	r.s3c, err = s3blob.NewClient(ctx, s3blob.ClientConfig{Endpoint: s3URL, Region: "us-east-1", PathStyle: true,
		AccessKeyID: chaosAccessKey, SecretAccessKey: chaosSecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(r.s3Bkt)}); err != nil {
		t.Fatalf("create bucket on versitygw: %v", err)
	}
	r.rdb = redis.NewClient(&redis.Options{Addr: r.redis.addr()})
	t.Cleanup(func() { _ = r.rdb.Close() })

	r.cluster = &cluster{dir: dir, env: []string{
		"FERRY_REDIS_URL=redis://" + r.redis.addr() + "/0",
		"FERRY_REDIS_PREFIX=" + r.prefix,
		"FERRY_S3_ENDPOINT=" + s3URL,
		"FERRY_S3_REGION=us-east-1",
		"FERRY_S3_BUCKET=" + r.s3Bkt,
		"FERRY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + chaosAccessKey,
		"AWS_SECRET_ACCESS_KEY=" + chaosSecretKey,
		"FERRY_SESSION_TTL=" + plan.ttl.String(),
		"FERRY_SESSION_PURGE_INTERVAL=" + plan.purgeInterval.String(),
		"FERRY_SESSION_ORPHAN_AGE=" + plan.orphanAge.String(),
	}}
	t.Cleanup(func() {
		r.cluster.close()
		if t.Failed() {
			for _, d := range r.cluster.all {
				r.dumpLog(d.logPath)
			}
		}
	})
	for range 2 {
		if err := r.cluster.spawn(); err != nil {
			t.Fatal(err)
		}
	}
	r.hc = &http.Client{Timeout: 2 * time.Minute, Transport: &routed{
		base: &http.Transport{MaxIdleConnsPerHost: 8, ResponseHeaderTimeout: 90 * time.Second},
		pick: r.cluster.pick, rec: r.rec}}
	r.c = client.New("http://ferry.chaos", r.hc)
	return r
}

func (r *chaosRig) dumpLog(path string) {
	if r.t.Failed() {
		r.t.Logf("--- %s (tail):\n%s", filepath.Base(path), logTail(path, 4000))
	}
}

// ---- files and uploads -------------------------------------------------

// fileSpec is one file to upload. chunk 0 means client.Upload with its
// default chunks (raised to the session's part size); any other chunk is
// sent as is through client.Append, so chunks below the part size are
// held back in Redis and, past 16 segments, merged.
type fileSpec struct {
	key   string
	size  int
	chunk int
	seed  uint64
}

func (f fileSpec) data() []byte {
	var seed [32]byte
	copy(seed[:], strconv.FormatUint(f.seed, 16)+f.key)
	b := make([]byte, f.size)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

// transient: what a resuming client waits out and retries.
func transient(err error) bool {
	var e *client.Error
	if !errors.As(err, &e) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Code == "SESSION_BUSY" || e.Code == "PART_BUSY" || e.Code == "SHORT_BODY"
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// saw notes an offset the server reported; one below what it had already
// acknowledged is acknowledged bytes lost.
func (r *chaosRig) saw(acked *int64, off int64) {
	if off < *acked {
		r.lost.Add(*acked - off)
	}
	*acked = off
}

// upload sends f through the cluster, resuming after every failure from
// the server's offset, until it completes or ctx ends. progress is told
// each offset the server acknowledged.
func (r *chaosRig) upload(ctx context.Context, f fileSpec, data []byte, progress func(int64)) (client.File, error) {
	if progress == nil {
		progress = func(int64) {}
	}
	if f.chunk <= 0 {
		return r.uploadWithClient(ctx, f, data, progress)
	}
	return r.uploadChunks(ctx, f, data, progress)
}

// chunkParallel in a fileSpec sends the file as parallel parts of 5 MiB,
// four at once, so parts go through both instances at the same time.
const chunkParallel = -1

func (r *chaosRig) uploadWithClient(ctx context.Context, f fileSpec, data []byte, progress func(int64)) (client.File, error) {
	var (
		id      string
		acked   int64
		lastErr error
	)
	for range 300 {
		o := client.UploadOptions{MimeType: "application/octet-stream", Session: id,
			Retry:     client.Retry{Attempts: 5, Wait: 200 * time.Millisecond},
			OnSession: func(s client.Session) { id = s.ID; r.saw(&acked, s.Offset) },
			Progress:  func(done, _ int64) { r.saw(&acked, done); progress(done) }}
		if f.chunk == chunkParallel {
			// Acknowledged parts are the ones a resume finds landed; bytes
			// in flight may be sent again, so progress is no measure.
			o.Parallel, o.PartSize = 4, 5*MiB
			o.OnSession = func(s client.Session) { _, landed := s.Landed(); id = s.ID; r.saw(&acked, landed) }
			o.Progress = func(done, _ int64) { progress(done) }
		}
		file, err := r.c.Upload(ctx, bytes.NewReader(data), int64(len(data)), r.bucket, f.key, o)
		if err == nil {
			return file, nil
		}
		lastErr = err
		if !transient(err) || ctx.Err() != nil {
			break
		}
		pause(ctx, 500*time.Millisecond)
	}
	return client.File{}, fmt.Errorf("upload %s (session %q): %w", f.key, id, lastErr)
}

func (r *chaosRig) uploadChunks(ctx context.Context, f fileSpec, data []byte, progress func(int64)) (client.File, error) {
	size := int64(len(data))
	var (
		id             string
		off, acked     int64
		failures       int
		lastErr        error
		steps          = int(size/int64(f.chunk))*4 + 600
		maxWait        = time.Second
		retryAfterFail = func() { pause(ctx, min(50*time.Millisecond<<min(failures, 10), maxWait)) }
	)
	for range steps {
		if ctx.Err() != nil {
			break
		}
		if id == "" {
			s, err := r.c.CreateSession(ctx, r.bucket, f.key, "application/octet-stream", size)
			if err != nil {
				if lastErr = err; !transient(err) {
					break
				}
				failures++
				retryAfterFail()
				continue
			}
			id, off, acked = s.ID, s.Offset, s.Offset
		}
		n := min(int64(f.chunk), size-off)
		next, file, err := r.c.Append(ctx, id, off, bytes.NewReader(data[off:off+n]), n)
		if file != nil {
			return *file, nil
		}
		if err == nil {
			off, failures = next.Offset, 0
			r.saw(&acked, off)
			progress(off)
			continue
		}
		lastErr = err
		var e *client.Error
		if errors.As(err, &e) && e.Code == "OFFSET_MISMATCH" && e.Offset != nil {
			off = *e.Offset // an earlier chunk landed though its answer was lost
			r.saw(&acked, off)
			continue
		}
		if !transient(err) {
			break
		}
		failures++
		retryAfterFail()
		s, err := r.c.Session(ctx, id)
		switch {
		case err == nil:
			off = s.Offset
			r.saw(&acked, off)
		case !transient(err):
			return client.File{}, fmt.Errorf("upload %s: session %s: %w", f.key, id, err)
		}
	}
	return client.File{}, fmt.Errorf("upload %s (session %q, at %d of %d): %w", f.key, id, off, size, lastErr)
}

// verify reads the file back through the cluster and compares it with data.
func (r *chaosRig) verify(ctx context.Context, f fileSpec, data []byte, tally *chaosTally) error {
	want := sha256.Sum256(data)
	var lastErr error
	for range 10 {
		info, err := r.c.Stat(ctx, r.bucket, f.key)
		if err != nil {
			lastErr = err
			pause(ctx, 300*time.Millisecond)
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://ferry.chaos/v1/files/"+r.bucket+"/"+f.key+":content", nil)
		resp, err := r.hc.Do(req)
		if err != nil {
			lastErr = err
			pause(ctx, 300*time.Millisecond)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			lastErr = fmt.Errorf("GET %s: %d", f.key, resp.StatusCode)
			pause(ctx, 300*time.Millisecond)
			continue
		}
		var problems []string
		if err != nil {
			problems = append(problems, fmt.Sprintf("read broke after %d bytes: %v", n, err))
		}
		if info.Bytes != int64(len(data)) {
			problems = append(problems, fmt.Sprintf("file info says %d bytes", info.Bytes))
		}
		if resp.ContentLength != int64(len(data)) {
			problems = append(problems, fmt.Sprintf("Content-Length %d", resp.ContentLength))
		}
		switch {
		case n < int64(len(data)):
			tally.add(func(c *chaosTally) { c.lost += int64(len(data)) - n })
			problems = append(problems, fmt.Sprintf("%d bytes read", n))
		case n > int64(len(data)):
			tally.add(func(c *chaosTally) { c.duplicated += n - int64(len(data)) })
			problems = append(problems, fmt.Sprintf("%d bytes read", n))
		case [32]byte(h.Sum(nil)) != want:
			tally.add(func(c *chaosTally) { c.corrupt++ })
			problems = append(problems, "SHA-256 differs")
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s (%d bytes): %s", f.key, len(data), strings.Join(problems, "; "))
		}
		tally.add(func(c *chaosTally) { c.verified++ })
		return nil
	}
	return fmt.Errorf("%s: could not read it back: %w", f.key, lastErr)
}

// abandon starts sessions and leaves them, so that the leak check sees
// the purger free a multipart upload, held-back segments and records.
func (r *chaosRig) abandon(ctx context.Context) {
	r.t.Helper()
	for i, a := range []struct{ size, sent, chunk int }{
		{20 * MiB, 9 * MiB, 8 * MiB},   // a part in S3 plus 1 MiB held back
		{3 * MiB, 2 * MiB, MiB},        // a single-Put file: two held-back segments
		{12 * MiB, 3 * MiB, 256 << 10}, // no part yet, so no multipart upload: twelve segments
	} {
		f := fileSpec{key: fmt.Sprintf("abandoned/%d.bin", i), size: a.size, seed: uint64(i)}
		data := f.data()
		s, err := r.c.CreateSession(ctx, r.bucket, f.key, "", int64(a.size))
		if err != nil {
			r.t.Fatalf("create session to abandon: %v", err)
		}
		for off := 0; off < a.sent; off += a.chunk {
			n := min(a.chunk, a.sent-off)
			if _, _, err := r.c.Append(ctx, s.ID, int64(off), bytes.NewReader(data[off:off+n]), int64(n)); err != nil {
				r.t.Fatalf("append to session to abandon: %v", err)
			}
		}
	}
	// The leak check must see what they hold, or its zeros mean nothing.
	rep, err := r.leaks(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if rep.records != 3 || rep.allMPUs != 1 || rep.allTails != 1+2+12 || rep.mpus+rep.tails != 0 {
		r.t.Fatalf("after starting 3 sessions to abandon the leak check sees %d uploading sessions, %d multipart uploads and %d held-back segments (%d and %d unowned); want 3, 1 and 15 (0 and 0)",
			rep.records, rep.allMPUs, rep.allTails, rep.mpus, rep.tails)
	}
}

// ---- leak check --------------------------------------------------------

type leakReport struct {
	mpus, tails, records int      // not owned by an uploading session (records: uploading ones)
	allMPUs, allTails    int      // owned or not
	details              []string // what leaked
}

func (l leakReport) total() int { return l.mpus + l.tails + l.records }

// leaks lists what no live session owns: multipart uploads and held-back
// segments whose session is not uploading, and session records still
// uploading. It is meant for the end of a scenario, when no upload runs
// and every abandoned session is past its TTL.
func (r *chaosRig) leaks(ctx context.Context) (leakReport, error) {
	var rep leakReport
	recPrefix := r.prefix + "r:session/"
	uploading := map[string]string{} // id → upload id
	tails := map[string][]string{}
	iter := r.rdb.Scan(ctx, 0, recPrefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return rep, err
	}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, recPrefix)
		if id, _, ok := strings.Cut(rest, "/tail/"); ok {
			tails[id] = append(tails[id], k)
			continue
		}
		if strings.Contains(rest, "/") {
			continue
		}
		v, err := r.rdb.HGet(ctx, k, "v").Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return rep, err
		}
		var rec struct {
			State     string    `json:"state"`
			UploadID  string    `json:"upload_id"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return rep, fmt.Errorf("record %s: %w", k, err)
		}
		if rec.State != "completed" {
			uploading[rest] = rec.UploadID
			rep.records++
			rep.details = append(rep.details, fmt.Sprintf("session %s still %s (expires_at %s)", rest, rec.State, rec.ExpiresAt.Format(time.TimeOnly)))
		}
	}
	// A parallel session's parts index (its Redis keys are "{i:...}:z|h")
	// must go with the session.
	parts := r.rdb.Scan(ctx, 0, r.prefix+"{i:session/*/parts}:z", 500).Iterator()
	for parts.Next(ctx) {
		id := strings.TrimSuffix(strings.TrimPrefix(parts.Val(), r.prefix+"{i:session/"), "/parts}:z")
		if _, ok := uploading[id]; !ok {
			rep.records++
			rep.details = append(rep.details, fmt.Sprintf("parts index of session %s with no uploading session", id))
		}
	}
	if err := parts.Err(); err != nil {
		return rep, err
	}
	for id, ks := range tails {
		rep.allTails += len(ks)
		if _, ok := uploading[id]; !ok {
			rep.tails += len(ks)
			rep.details = append(rep.details, fmt.Sprintf("held-back segments of session %s with no uploading session: %v", id, ks))
		}
	}
	owned := map[string]bool{}
	for _, u := range uploading {
		owned[u] = true
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(r.s3Bkt)}
	for range 100 {
		out, err := r.s3c.ListMultipartUploads(ctx, in)
		if err != nil {
			return rep, fmt.Errorf("ListMultipartUploads: %w", err)
		}
		for _, u := range out.Uploads {
			rep.allMPUs++
			if !owned[aws.ToString(u.UploadId)] {
				rep.mpus++
				rep.details = append(rep.details, fmt.Sprintf("multipart upload %s of %s with no uploading session", aws.ToString(u.UploadId), aws.ToString(u.Key)))
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	return rep, nil
}

// checkLeaks waits, within the TTL (or two orphan ages: an orphan made at
// the end is swept once it is that old, by a sweep that runs that often)
// and a few purge runs, for the purger to free every abandoned session,
// then reports what is left.
func (r *chaosRig) checkLeaks(tally *chaosTally) {
	t := r.t
	t.Helper()
	deadline := time.Now().Add(max(r.plan.ttl, 2*r.plan.orphanAge) + 10*r.plan.purgeInterval + 10*time.Second)
	ctx := context.Background()
	var rep leakReport
	var err error
	for {
		rep, err = r.leaks(ctx)
		if err == nil && rep.total() == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("leak check: %v", err)
		return
	}
	tally.add(func(c *chaosTally) { c.mpuLeaks += rep.mpus; c.tailLeaks += rep.tails; c.recordLeaks += rep.records })
	t.Logf("leak check after the purge: %d multipart uploads, %d held-back segments, %d session records", rep.mpus, rep.tails, rep.records)
	if rep.total() > 0 {
		sort.Strings(rep.details)
		t.Errorf("leaks after the purge:\n  %s", strings.Join(rep.details, "\n  "))
	}
}

func (r *chaosRig) checkAcked(tally *chaosTally) {
	if n := r.lost.Load(); n > 0 {
		tally.add(func(c *chaosTally) { c.lost += n })
		r.t.Errorf("%d acknowledged bytes were later missing from their sessions (the server's offset went back)", n)
	}
	for _, p := range r.cluster.logProblems() {
		r.t.Errorf("ferryd reported: %s", p)
	}
}

// ---- scenario 1: kill -9 ----------------------------------------------

// afterChan is closed after d.
func afterChan(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}

func chaosKillScenario(t *testing.T, r *chaosRig, tally *chaosTally) {
	plan := r.plan
	ctx, cancel := context.WithTimeout(context.Background(), plan.timeout)
	defer cancel()
	r.abandon(ctx)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	t.Logf("plan: %d uploads, %d workers, kills every %s-%s", plan.uploads, plan.workers, plan.killGap[0], plan.killGap[1])
	chunks := []int{0, chunkParallel, MiB, 256 << 10, 3*MiB + 7} // client.Upload (8 MiB), parts, held back, merged, odd
	specs := make([]fileSpec, plan.uploads)
	var replaced []replacement
	for i := range specs {
		f := fileSpec{key: fmt.Sprintf("kill/%03d.bin", i), seed: rng.Uint64()}
		if i%plan.largeEvery == 0 {
			f.size = plan.largeMin + rng.IntN(plan.largeMax-plan.largeMin+1)
			f.chunk = chunks[(i/plan.largeEvery)%len(chunks)]
			if f.chunk == 256<<10 {
				f.size = min(f.size, 16*MiB) // bound the request count
			}
		} else {
			f.size = 1 + rng.IntN(5*MiB-1)
			f.chunk = []int{0, MiB}[rng.IntN(2)]
		}
		specs[i] = f
		if i%3 == 1 { // replaces a file of another size, read all along
			old := fileSpec{key: f.key, size: 10<<10 + i, seed: rng.Uint64()}
			replaced = append(replaced, replacement{old: old, oldSum: sha256.Sum256(old.data()), newSum: sha256.Sum256(f.data()), newSize: f.size})
		}
	}
	for _, rp := range replaced {
		if _, err := r.upload(ctx, rp.old, rp.old.data(), nil); err != nil {
			t.Fatalf("before the kills: %v", err)
		}
	}
	tally.add(func(c *chaosTally) { c.uploads += len(specs) })

	// Readers of the files being replaced: every answer must be the old
	// version or the new one, whole, with a Content-Length that matches.
	readCtx, stopReading := context.WithCancel(ctx)
	var (
		readerWG sync.WaitGroup
		reads    atomic.Int64
		tornMu   sync.Mutex
		torn     []string
	)
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		for round := 0; round < 100000 && readCtx.Err() == nil; round++ {
			rp := replaced[round%len(replaced)]
			if problem := r.readOldOrNew(readCtx, rp); problem != "" {
				tornMu.Lock()
				torn = append(torn, fmt.Sprintf("%s at %s: %s", rp.old.key, time.Now().Format("15:04:05.000"), problem))
				tornMu.Unlock()
			}
			reads.Add(1)
			pause(readCtx, 100*time.Millisecond)
		}
	}()

	// The first kill comes once a quarter of the bytes are in, however fast
	// this machine uploads; later ones at random gaps.
	var (
		done      = make(chan struct{})
		killerWG  sync.WaitGroup
		kills     atomic.Int32
		spawnErr  = make(chan error, plan.maxKills)
		sent      atomic.Int64
		total     int64
		underway  = make(chan struct{})
		underOnce sync.Once
	)
	for _, f := range specs {
		total += int64(f.size)
	}
	progressOf := func() func(int64) {
		var last int64
		return func(done int64) {
			if d := done - last; d > 0 {
				last = done
				if sent.Add(d) > total/4 {
					underOnce.Do(func() { close(underway) })
				}
			}
		}
	}
	killerWG.Add(1)
	go func() {
		defer killerWG.Done()
		krng := rand.New(rand.NewPCG(rng.Uint64(), 1))
		for int(kills.Load()) < plan.maxKills {
			gap := plan.killGap[0] + time.Duration(krng.Int64N(int64(plan.killGap[1]-plan.killGap[0])))
			var wait <-chan struct{} = underway
			if kills.Load() > 0 {
				wait = afterChan(gap)
			}
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-wait:
			}
			name := r.cluster.killOne(krng)
			kills.Add(1)
			t.Logf("kill -9 %s at %s", name, time.Now().Format("15:04:05.000"))
			if err := r.cluster.spawn(); err != nil {
				spawnErr <- err
				return
			}
		}
	}()

	type result struct {
		err error
		dur time.Duration
	}
	results := make([]result, len(specs))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range plan.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				start := time.Now()
				_, err := r.upload(ctx, specs[i], specs[i].data(), progressOf())
				results[i] = result{err, time.Since(start)}
			}
		}()
	}
	start := time.Now()
	for i := range specs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(done)
	killerWG.Wait()
	stopReading()
	readerWG.Wait()
	tally.add(func(c *chaosTally) { c.torn += len(torn) })
	t.Logf("%d reads of the %d files being replaced, %d of them neither the old nor the new version", reads.Load(), len(replaced), len(torn))
	for _, s := range torn {
		t.Errorf("read during the kills: %s", s)
	}
	elapsed := time.Since(start)
	n := int(kills.Load())
	tally.add(func(c *chaosTally) { c.kills += n })
	close(spawnErr)
	for err := range spawnErr {
		t.Errorf("starting a replacement ferryd: %v", err)
	}

	completed := 0
	for i, res := range results {
		if res.err != nil {
			t.Errorf("upload %s (%d bytes, chunk %d) did not complete: %v", specs[i].key, specs[i].size, specs[i].chunk, res.err)
			continue
		}
		completed++
	}
	t.Logf("%d/%d uploads completed in %s with %d kills; answers: %s", completed, len(specs), elapsed.Round(time.Millisecond), n, r.rec.breakdown())
	if n == 0 {
		t.Errorf("no ferryd was killed during the %s the uploads took: the scenario tested nothing", elapsed.Round(time.Millisecond))
	}
	if completed < len(specs) && r.cluster.pick() == "127.0.0.1:1" {
		t.Errorf("no ferryd is alive")
	}
	for i, f := range specs {
		if results[i].err != nil {
			continue
		}
		if err := r.verify(ctx, f, f.data(), tally); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
	r.checkAcked(tally)
	r.checkLeaks(tally)
}

// replacement is a file of the kill scenario that replaces an older one.
type replacement struct {
	old            fileSpec
	oldSum, newSum [32]byte
	newSize        int
}

// readOldOrNew reads the file; it describes the answer if it is neither
// version whole. A request that fails (its instance just died) says nothing
// either way; a body that breaks off is read again, on another instance,
// and counts only if it breaks off every time.
func (r *chaosRig) readOldOrNew(ctx context.Context, rp replacement) string {
	problem := ""
	for range 3 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://ferry.chaos/v1/files/"+r.bucket+"/"+rp.old.key+":content", nil)
		resp, err := r.hc.Do(req)
		if err != nil || resp.StatusCode >= 500 {
			if err == nil {
				resp.Body.Close()
			}
			return ""
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Sprintf("answered %d", resp.StatusCode)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if ctx.Err() != nil {
			return ""
		}
		if err != nil {
			problem = fmt.Sprintf("body ended at %d of Content-Length %d: %v", n, resp.ContentLength, err)
			continue
		}
		sum := [32]byte(h.Sum(nil))
		switch {
		case n != resp.ContentLength:
			return fmt.Sprintf("%d bytes with Content-Length %d", n, resp.ContentLength)
		case sum == rp.oldSum && n == int64(rp.old.size), sum == rp.newSum && n == int64(rp.newSize):
			return ""
		}
		return fmt.Sprintf("%d bytes (Content-Length %d) that are neither the old %d-byte version nor the new %d-byte one", n, resp.ContentLength, rp.old.size, rp.newSize)
	}
	return problem
}

// ---- scenario 2: Redis restart, S3 outage ------------------------------

// chaosOutageScenario stops svc (Redis or versitygw) while an upload that
// replaces an existing file runs, keeps it down for down, and starts it
// again on the same port and directory. Every 5xx answer must be a 503
// with Retry-After, the upload must complete byte-exact, and files written
// before must read as they were.
func chaosOutageScenario(t *testing.T, r *chaosRig, tally *chaosTally, what string, svc *daemon, sig syscall.Signal, down time.Duration) {
	plan := r.plan
	ctx, cancel := context.WithTimeout(context.Background(), plan.timeout)
	defer cancel()
	r.abandon(ctx)
	tally.add(func(c *chaosTally) { c.uploads += 3 })

	keep := fileSpec{key: "outage/keep.bin", size: 3*MiB + 11, seed: 1}
	old := fileSpec{key: "outage/replaced.bin", size: 2 * MiB, seed: 2}
	for _, f := range []fileSpec{keep, old} {
		if _, err := r.upload(ctx, f, f.data(), nil); err != nil {
			t.Fatalf("before the outage: %v", err)
		}
	}
	if err := r.verify(ctx, old, old.data(), tally); err != nil {
		t.Fatalf("before the outage: %v", err)
	}

	// The replacement goes in 1 MiB chunks: held back in Redis, then a
	// 5 MiB part to S3 every fifth chunk, so both stores are in its path.
	repl := fileSpec{key: old.key, size: plan.outageSize, chunk: MiB, seed: 3}
	data := repl.data()
	var (
		once          sync.Once
		faultStart    time.Time
		faultEnd      time.Time
		faultDone     = make(chan struct{})
		restartErr    error
		probeWG       sync.WaitGroup
		faultAtOffset int64
	)
	fault := func(off int64) {
		if off < int64(plan.outageSize*2/5) {
			return
		}
		once.Do(func() {
			faultAtOffset = off
			faultStart = time.Now()
			svc.stop(sig, 5*time.Second)
			t.Logf("%s stopped (%s) at upload offset %d; down for %s", svc.name, sig, off, down)
			probeCtx, stopProbe := context.WithCancel(ctx)
			probeWG.Add(1)
			go func() { // readers during the outage: their answers are recorded too
				defer probeWG.Done()
				for range 200 {
					if probeCtx.Err() != nil {
						return
					}
					_, _ = r.c.Stat(probeCtx, r.bucket, keep.key)
					if rc, err := r.c.Read(probeCtx, r.bucket, keep.key); err == nil {
						_, _ = io.Copy(io.Discard, rc)
						rc.Close()
					}
					pause(probeCtx, 500*time.Millisecond)
				}
			}()
			go func() {
				defer close(faultDone)
				defer stopProbe()
				pause(ctx, down)
				restartErr = svc.restart()
				faultEnd = time.Now()
			}()
		})
	}
	file, err := r.upload(ctx, repl, data, fault)
	select {
	case <-faultDone:
	case <-time.After(down + 2*time.Minute):
		t.Fatalf("%s was not restarted", svc.name)
	}
	probeWG.Wait()
	if faultStart.IsZero() {
		t.Fatalf("the upload finished before the fault was injected")
	}
	if restartErr != nil {
		t.Fatalf("restart %s: %v", svc.name, restartErr)
	}
	tally.add(func(c *chaosTally) {
		if what == "redis" {
			c.redis++
		} else {
			c.s3++
		}
	})
	if err != nil {
		t.Errorf("the upload interrupted by the %s outage did not complete: %v", what, err)
	} else if file.Bytes != int64(len(data)) {
		t.Errorf("the upload completed with %d bytes, want %d", file.Bytes, len(data))
	}
	t.Logf("%s down from upload offset %d for %s; the upload finished %s after the restart",
		svc.name, faultAtOffset, faultEnd.Sub(faultStart).Round(time.Millisecond), time.Since(faultEnd).Round(time.Millisecond))

	// Answers during (and right after) the outage.
	var (
		ok, good503, conn int
		bad               = map[string]int{}
		example           = map[string]string{}
		failed            int
		connErrs          []string
	)
	for _, e := range r.rec.between(faultStart, time.Now()) {
		switch {
		case e.status == 0:
			conn++
			failed++
			connErrs = append(connErrs, e.route+": "+e.body)
		case e.status == http.StatusServiceUnavailable && e.retryAfter != "":
			good503++
			failed++
		case e.status >= 500:
			k := fmt.Sprintf("%s → %d (Retry-After %q)", e.route, e.status, e.retryAfter)
			bad[k]++
			example[k] = e.body + " / in the server log: " + r.cluster.serverError(e.requestID)
			failed++
		case e.status < 300:
			ok++
		}
	}
	other := 0
	for _, n := range bad {
		other += n
	}
	tally.add(func(c *chaosTally) { c.outage503 += good503; c.outageOther += other; c.outageErr += conn })
	t.Logf("answers from the %s outage on: %d ok, %d × 503 with Retry-After, %d other 5xx, %d connection errors %q", what, ok, good503, other, conn, connErrs)
	if failed == 0 {
		t.Errorf("no request failed during the %s outage: the fault was not in the upload's path", what)
	}
	if other > 0 {
		var lines []string
		for k, n := range bad {
			lines = append(lines, fmt.Sprintf("%d × %s, e.g. %s", n, k, example[k]))
		}
		sort.Strings(lines)
		t.Errorf("during the %s outage requests must answer 503 with Retry-After; they answered:\n  %s", what, strings.Join(lines, "\n  "))
	}

	for _, f := range []fileSpec{keep, repl} {
		if err := r.verify(ctx, f, f.data(), tally); err != nil {
			t.Errorf("after the %s outage: %v", what, err)
		}
	}
	r.checkAcked(tally)
	r.checkLeaks(tally)
}
