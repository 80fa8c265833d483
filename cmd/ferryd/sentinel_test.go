package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testhttp"
)

// Redis behind Sentinel (1 master, 1 replica, 1 sentinel), ferryd
// connected through the sentinel: SENTINEL FAILOVER mid-upload moves the
// master to the replica, and the upload still completes byte-exact through
// the new master. Runs in make test; make chaos sends a larger file.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestSentinelFailover ./cmd/ferryd/
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	bin := chaosBinary(t, "redis-server")
	dir := t.TempDir()
	node := func(name string, extra func() []string) *daemon {
		d := &daemon{name: name, bin: bin, logPath: filepath.Join(dir, name+".log"),
			argv: func(port int) ([]string, []string) {
				data := filepath.Join(dir, name)
				_ = os.MkdirAll(data, 0o755)
				return append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", data,
					"--save", "", "--appendonly", "no", "--daemonize", "no"}, extra()...), nil
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
	master := node("master", func() []string { return nil })
	replica := node("replica", func() []string { return []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)} })
	sentinel := &daemon{name: "sentinel", bin: bin, logPath: filepath.Join(dir, "sentinel.log"),
		argv: func(port int) ([]string, []string) {
			conf := filepath.Join(dir, "sentinel.conf") // sentinel rewrites it: a file of its own
			_ = os.WriteFile(conf, fmt.Appendf(nil, "bind 127.0.0.1\nport %d\ndir %s\n"+
				"sentinel monitor mymaster 127.0.0.1 %d 1\n"+
				"sentinel down-after-milliseconds mymaster 2000\n"+
				"sentinel failover-timeout mymaster 10000\n", port, dir, master.port), 0o644)
			return []string{conf, "--sentinel"}, nil
		}}
	t.Cleanup(func() { sentinel.close() })
	if err := sentinel.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.addr()})
	defer sc.Close()
	waitFor(t, "the sentinel to see the replica", func() bool {
		r, err := sc.Replicas(ctx, "mymaster").Result()
		return err == nil && len(r) == 1 && r[0]["flags"] == "slave" && r[0]["master-link-status"] == "ok"
	})

	_, s3 := s3Env(t)
	p := startFerryd(t, "--data-dir "+t.TempDir(), append(s3,
		"FERRY_REDIS_ADDRS="+sentinel.addr(),
		"FERRY_REDIS_MASTER_NAME=mymaster")...)

	size := 40 << 20
	if os.Getenv("FERRY_CHAOS") == "long" {
		size = 400 << 20
	}
	content := randomData(size)
	var once sync.Once
	failover := make(chan error, 1)
	c := client.New("http://"+p.addr, &http.Client{Timeout: time.Minute})
	_, err := c.Upload(ctx, bytes.NewReader(content), int64(size), "failover", "big.bin", client.UploadOptions{
		ChunkSize: 5 << 20,
		Retry:     client.Retry{Attempts: 20},
		Progress: func(done, total int64) {
			if done >= total/3 {
				once.Do(func() {
					failover <- sc.Failover(ctx, "mymaster").Err()
					// Between the replica's promotion and the old master's
					// demotion both take writes, and the old one's are lost
					// (docs/scaling.md, Sentinel). Sentinel demotes it on
					// its own schedule, seconds later on a busy machine; the
					// test does it at once, and the next chunk goes after.
					waitFor(t, "the replica to become master", func() bool {
						addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
						return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(replica.port)
					})
					old := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", master.port)})
					defer old.Close()
					if err := old.Do(ctx, "REPLICAOF", "127.0.0.1", replica.port).Err(); err != nil {
						t.Errorf("demote the old master: %v", err)
					}
				})
			}
		},
	})
	if err != nil {
		t.Fatalf("upload across the failover: %v", err)
	}
	select {
	case err := <-failover:
		if err != nil {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
	default:
		t.Fatal("the upload never reached the failover point")
	}
	waitFor(t, "the replica to become master", func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(replica.port)
	})
	if got := download(t, "http://"+p.addr+"/v1/files/failover/big.bin:content"); !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes, not the %d uploaded", len(got), size)
	}
	// New sessions go to the new master. A connection the switch closed
	// under a request may cost it a 503, which clients retry.
	var r testhttp.Answer
	waitFor(t, "a create after the failover", func() bool {
		r = testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files", strings.NewReader(`{"bucket":"failover","key":"after","size":3}`))
		if r.Code == 503 && r.Header.Get("Retry-After") != "" {
			time.Sleep(100 * time.Millisecond)
			return false
		}
		if r.Code != 201 {
			t.Fatalf("create after the failover: %d %s", r.Code, r.Body)
		}
		return true
	})
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
