package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/client"
)

// Redis behind Sentinel (a master, a replica, a sentinel), ferryd connected
// through the sentinel, and uploads running all along while the master
// changes. The old master is never demoted by the test: Sentinel turns it
// into a replica on its own schedule, as in production, and until then it
// still takes ferryd's writes that reach it. Every answer a client got is
// checked against what the store holds afterwards: an acknowledged append
// whose bytes the session no longer has, an acknowledged session that is
// gone, a completed file that does not read back byte-exact, each counts
// as lost.
//
// The faults: "failover" is SENTINEL FAILOVER (forced: the master is
// still up and serving when the replica is promoted); "sigstop" freezes
// the master until Sentinel sees it down and promotes the replica, then
// thaws it. make test runs failover with redis.min_replicas_ack=1 (the
// number of replicas), 3 uploaders: nothing acknowledged may be lost.
// make chaos runs both faults, twice each, with min_replicas_ack=1, where
// nothing may be lost, and with 0, where the losses are only counted:
// they show what the setting buys.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestSentinelFailover ./cmd/ferryd/
//	FERRY_CHAOS=long CI=1 scripts/test.sh -count=1 -v -run TestSentinelFailover ./cmd/ferryd/
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	acks, faults, rounds, workers := []int{1}, []string{"failover"}, 1, 3
	if os.Getenv("FERRY_CHAOS") == "long" {
		acks, faults, rounds, workers = []int{1, 0}, []string{"failover", "sigstop"}, 2, 5
	}
	for _, fault := range faults {
		for _, ack := range acks {
			t.Run(fmt.Sprintf("%s/min_replicas_ack=%d", fault, ack), func(t *testing.T) {
				t.Parallel()
				r := newSentinelRig(t, ack)
				tally := r.run(slices.Repeat([]string{fault}, rounds), workers)
				t.Logf("sentinel %s ×%d, min_replicas_ack=%d, %d uploaders: %s", fault, rounds, ack, workers, tally)
				if lost := tally.lost(); ack > 0 && lost > 0 {
					t.Errorf("%d acknowledged writes were lost with min_replicas_ack=%d", lost, ack)
				}
				if tally.completions.Load() == 0 {
					t.Errorf("no upload completed")
				}
			})
		}
	}
}

// sentinelRig is one topology: two redis-servers (either may be master),
// a sentinel, and ferryd through it.
type sentinelRig struct {
	t        *testing.T
	nodes    [2]*daemon
	sentinel *daemon
	sc       *redis.SentinelClient
	p        *proc
	bkt      string
	c        *client.Client
}

func newSentinelRig(t *testing.T, ack int) *sentinelRig {
	bin := chaosBinary(t, "redis-server")
	dir := t.TempDir()
	r := &sentinelRig{t: t}
	node := func(name string, extra ...string) *daemon {
		d := &daemon{name: name, bin: bin, logPath: filepath.Join(dir, name+".log"),
			argv: func(port int) ([]string, []string) {
				data := filepath.Join(dir, name)
				_ = os.MkdirAll(data, 0o755)
				return append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", data,
					"--save", "", "--appendonly", "no", "--daemonize", "no"}, extra...), nil
			}}
		t.Cleanup(func() {
			d.close()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, logTail(d.logPath, 3000))
			}
		})
		if err := d.startOnFreePort(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	r.nodes[0] = node("redis-a")
	r.nodes[1] = node("redis-b", "--replicaof", "127.0.0.1", strconv.Itoa(r.nodes[0].port))
	// failover-timeout also spaces failovers of one master (twice it), so
	// the second fault's must not wait long.
	r.sentinel = &daemon{name: "sentinel", bin: bin, logPath: filepath.Join(dir, "sentinel.log"),
		argv: func(port int) ([]string, []string) {
			conf := filepath.Join(dir, "sentinel.conf") // sentinel rewrites it: a file of its own
			_ = os.WriteFile(conf, fmt.Appendf(nil, "bind 127.0.0.1\nport %d\ndir %s\n"+
				"sentinel monitor mymaster 127.0.0.1 %d 1\n"+
				"sentinel down-after-milliseconds mymaster 2000\n"+
				"sentinel failover-timeout mymaster 5000\n", port, dir, r.nodes[0].port), 0o644)
			return []string{conf, "--sentinel"}, nil
		}}
	t.Cleanup(func() {
		r.sentinel.close()
		if t.Failed() {
			t.Logf("sentinel log:\n%s", logTail(r.sentinel.logPath, 3000))
		}
	})
	if err := r.sentinel.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	r.sc = redis.NewSentinelClient(&redis.Options{Addr: r.sentinel.addr()})
	t.Cleanup(func() { r.sc.Close() })
	r.waitReplica(r.nodes[1], r.nodes[0])

	bkt, s3 := s3Env(t)
	r.bkt = bkt
	r.p = startFerryd(t, "--data-dir "+t.TempDir(), append(s3,
		"FERRY_REDIS_ADDRS="+r.sentinel.addr(), "FERRY_REDIS_MASTER_NAME=mymaster",
		"FERRY_REDIS_MIN_REPLICAS_ACK="+strconv.Itoa(ack), "FERRY_REDIS_REPLICA_ACK_TIMEOUT=500ms",
		"FERRY_LIMIT_UPLOADS_PER_MINUTE=0")...)
	r.c = client.New("http://"+r.p.addr, &http.Client{Timeout: 30 * time.Second})
	return r
}

// master is the node the sentinel names master.
func (r *sentinelRig) master() (*daemon, bool) {
	addr, err := r.sc.GetMasterAddrByName(context.Background(), "mymaster").Result()
	if err != nil || len(addr) != 2 {
		return nil, false
	}
	for _, n := range r.nodes {
		if addr[1] == strconv.Itoa(n.port) {
			return n, true
		}
	}
	return nil, false
}

// waitReplica waits until n replicates from master, linked and in sync,
// and the sentinel lists it so.
func (r *sentinelRig) waitReplica(n, master *daemon) {
	ctx := context.Background()
	nc := redis.NewClient(&redis.Options{Addr: n.addr()})
	defer nc.Close()
	waitForLong(r.t, fmt.Sprintf("%s to replicate %s", n.name, master.name), 120*time.Second, func() bool {
		info := nc.Info(ctx, "replication").Val()
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") ||
			!strings.Contains(info, fmt.Sprintf("master_port:%d", master.port)) {
			return false
		}
		reps, err := r.sc.Replicas(ctx, "mymaster").Result()
		return err == nil && len(reps) == 1 && reps[0]["port"] == strconv.Itoa(n.port) &&
			reps[0]["flags"] == "slave" && reps[0]["master-link-status"] == "ok"
	})
}

// signal sends sig to d's process.
func (d *daemon) signal(sig syscall.Signal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		_ = d.cmd.Process.Signal(sig)
	}
}

// fault moves the master to the other node: "failover" by SENTINEL
// FAILOVER, "sigstop" by freezing the master until the sentinel has
// promoted the replica. Either way the old master rejoins, as a replica,
// only when the sentinel tells it to; fault returns once it has.
func (r *sentinelRig) fault(kind string) (rejoin time.Duration) {
	old, ok := r.master()
	if !ok {
		r.t.Fatal("the sentinel names no master")
	}
	other := r.nodes[0]
	if other == old {
		other = r.nodes[1]
	}
	promoted := func() bool { m, ok := r.master(); return ok && m == other }
	switch kind {
	case "failover":
		// Sentinel refuses while a failover of the master is too recent.
		waitForLong(r.t, "SENTINEL FAILOVER to be accepted", 60*time.Second, func() bool {
			return r.sc.Failover(context.Background(), "mymaster").Err() == nil
		})
		waitForLong(r.t, other.name+" to become master", 60*time.Second, promoted)
	case "sigstop":
		old.signal(syscall.SIGSTOP)
		waitForLong(r.t, other.name+" to become master", 90*time.Second, promoted)
		old.signal(syscall.SIGCONT)
	}
	start := time.Now()
	r.waitReplica(old, other)
	return time.Since(start)
}

// failoverTally counts what clients were told and what of it was lost.
type failoverTally struct {
	creates, appends, completions atomic.Int64 // acknowledged
	unavailable, busy             atomic.Int64 // 503s; 409 SESSION_BUSY
	lostAppends, lostBytes        atomic.Int64 // the session's offset went back below an acknowledged one
	lostSessions                  atomic.Int64 // an acknowledged session later not found
	lostFiles                     atomic.Int64 // a completed upload that did not read back byte-exact
	rejoin                        []time.Duration
}

func (f *failoverTally) lost() int64 {
	return f.lostAppends.Load() + f.lostSessions.Load() + f.lostFiles.Load()
}

func (f *failoverTally) String() string {
	return fmt.Sprintf("acknowledged: creates=%d appends=%d completions=%d | lost: appends=%d (%d bytes) sessions=%d files=%d | "+
		"503=%d busy=%d | old master rejoined as replica after %v",
		f.creates.Load(), f.appends.Load(), f.completions.Load(), f.lostAppends.Load(), f.lostBytes.Load(),
		f.lostSessions.Load(), f.lostFiles.Load(), f.unavailable.Load(), f.busy.Load(), f.rejoin)
}

// completed is an upload the server acknowledged as a file.
type completed struct {
	key string
	sum [32]byte
	n   int
}

// run keeps workers uploading while the faults happen one after the
// other, then checks every completed upload.
func (r *sentinelRig) run(faults []string, workers int) *failoverTally {
	tally := &failoverTally{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	var (
		mu       sync.Mutex
		done     []completed
		wg       sync.WaitGroup
		stopping atomic.Bool // no new uploads; those under way finish
	)
	defer func() { cancel(); wg.Wait() }() // a failed fault ends the uploads too
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 26))
			for i := 0; !stopping.Load() && ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d/f%d", w, i)
				data := randomData(1<<20 + rng.IntN(8<<20))
				chunk := []int{256 << 10, 1 << 20, 5 << 20}[rng.IntN(3)]
				if r.upload(ctx, tally, key, data, chunk) {
					mu.Lock()
					done = append(done, completed{key, sha256.Sum256(data), len(data)})
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(2 * time.Second) // load before the first fault
	for _, kind := range faults {
		tally.rejoin = append(tally.rejoin, r.fault(kind).Round(100*time.Millisecond))
		time.Sleep(2 * time.Second) // and after each
	}
	stopping.Store(true)
	wg.Wait()
	for _, f := range done {
		r.verify(ctx, tally, f)
	}
	return tally
}

// upload sends data in chunks, resuming from the server's offset after
// every failure, and notes each offset an append's answer acknowledged:
// one the server later reports below it is an acknowledged append lost.
// It reports whether the file completed.
func (r *sentinelRig) upload(ctx context.Context, tally *failoverTally, key string, data []byte, chunk int) bool {
	var (
		id         string
		off, acked int64
		size       = int64(len(data))
	)
	// The server reports its offset in reads and in 409s, where it may
	// count bytes of a write answered 503 (taken, not confirmed): only a
	// successful append acknowledges.
	saw := func(at int64, ack bool) {
		if at < acked {
			tally.lostAppends.Add(1)
			tally.lostBytes.Add(acked - at)
			acked = at
		}
		if off = at; ack {
			acked = at
		}
	}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline) && ctx.Err() == nil; {
		if id == "" {
			s, err := r.c.CreateSession(ctx, r.bkt, key, "application/octet-stream", size)
			if err != nil {
				if r.failed(tally, err) {
					continue
				}
				r.t.Errorf("create %s: %v", key, err)
				return false
			}
			tally.creates.Add(1)
			id, off, acked = s.ID, 0, 0
		}
		n := min(int64(chunk), size-off)
		s, file, err := r.c.Append(ctx, id, off, bytes.NewReader(data[off:off+n]), n)
		var e *client.Error
		if errors.As(err, &e) && e.Code == "SESSION_NOT_FOUND" {
			err = r.lostSession(tally, &id, &acked)
		}
		switch {
		case id == "":
			continue
		case file != nil:
			tally.completions.Add(1)
			return true
		case err == nil:
			tally.appends.Add(1)
			saw(s.Offset, true)
			continue
		case errors.As(err, &e) && e.Code == "OFFSET_MISMATCH" && e.Offset != nil:
			saw(*e.Offset, false)
			continue
		case !r.failed(tally, err):
			if ctx.Err() == nil {
				r.t.Errorf("upload %s: %v", key, err)
			}
			return false
		}
		s, err = r.c.Session(ctx, id) // where the server is now
		switch {
		case client.IsNotFound(err):
			_ = r.lostSession(tally, &id, &acked)
		case err == nil:
			saw(s.Offset, false)
		}
	}
	if ctx.Err() == nil {
		r.t.Errorf("upload %s did not complete in 5 minutes", key)
	}
	return false
}

// lostSession counts a session whose create was acknowledged and that is
// gone, with the bytes acknowledged in it; the upload starts again.
func (r *sentinelRig) lostSession(tally *failoverTally, id *string, acked *int64) error {
	tally.lostSessions.Add(1)
	tally.lostBytes.Add(*acked)
	*id, *acked = "", 0
	return nil
}

// failed counts a failure a client waits out and retries, and pauses; it
// reports false for any other.
func (r *sentinelRig) failed(tally *failoverTally, err error) bool {
	if err == nil {
		return false
	}
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusServiceUnavailable:
		tally.unavailable.Add(1)
	case errors.As(err, &e) && e.Code == "SESSION_BUSY":
		tally.busy.Add(1)
	case errors.As(err, &e):
		return false
	}
	time.Sleep(200 * time.Millisecond)
	return true
}

// verify reads a completed upload back; anything but its bytes is a lost file.
func (r *sentinelRig) verify(ctx context.Context, tally *failoverTally, f completed) {
	var (
		got []byte
		err error
	)
	for range 20 {
		var rc io.ReadCloser
		rc, err = r.c.Read(ctx, r.bkt, f.key)
		if err == nil {
			got, err = io.ReadAll(rc)
			rc.Close()
		}
		if err == nil || client.IsNotFound(err) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(got) != f.n || sha256.Sum256(got) != f.sum {
		tally.lostFiles.Add(1)
		r.t.Logf("completed upload %s reads back as %d bytes, not the %d sent (%v)", f.key, len(got), f.n, err)
	}
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForLong(t, what, 30*time.Second, cond)
}

// waitForLong polls cond for up to d.
func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
