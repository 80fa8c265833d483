package testsvc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server of one test's own, for what the shared one
// cannot be put through: replicas, a stopped replica, a cluster of a
// chosen shape. It listens on loopback, keeps its files in a temporary
// directory and is killed when the test ends.
type RedisServer struct {
	Addr string
	Port int
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts redis-server with extra arguments (a replica's
// "--replicaof", "--cluster-enabled", …) and waits until it answers PING.
// Without redis-server the test fails under CI and skips elsewhere.
func StartRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is required under CI but is not on PATH; `make test` installs it")
		}
		t.Skip("redis-server is not installed; `make test` installs it")
	}
	dir := t.TempDir()
	for range 5 { // a port taken between the probe and the bind: another one
		r, err := startRedisOnce(bin, dir, extra)
		if err == nil {
			t.Cleanup(r.Kill)
			return r
		}
		t.Logf("redis-server: %v", err)
	}
	t.Fatalf("redis-server did not start; its log:\n%s", tail(filepath.Join(dir, "redis.log"), 2000))
	return nil
}

func startRedisOnce(bin, dir string, extra []string) (*RedisServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}, extra...)
	r := &RedisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir,
		cmd: exec.Command(bin, args...), done: make(chan struct{})}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-r.done:
			return nil, fmt.Errorf("exited at start on port %d", port)
		default:
		}
		if c.Ping(context.Background()).Err() == nil {
			return r, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Kill()
	return nil, fmt.Errorf("no PING answer on port %d within 10s", port)
}

// Client is a new client of this server, closed when the test ends.
func (r *RedisServer) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaintNotificationsConfig: redisstore.NoMaintNotifications()})
	t.Cleanup(func() { c.Close() })
	return c
}

// Kill ends the process (SIGKILL); calling it again is safe.
func (r *RedisServer) Kill() {
	_ = r.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once it runs
	_ = r.cmd.Process.Kill()
	<-r.done
}

// Stop freezes the process (SIGSTOP): its connections stay open and
// nothing is answered, as on a machine that hangs. Resume undoes it.
func (r *RedisServer) Stop()   { _ = r.cmd.Process.Signal(syscall.SIGSTOP) }
func (r *RedisServer) Resume() { _ = r.cmd.Process.Signal(syscall.SIGCONT) }

// StartReplica starts a replica of master and waits until its link is up
// and it has caught up.
func StartReplica(t testing.TB, master *RedisServer) *RedisServer {
	t.Helper()
	r := StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	WaitReplicas(t, master, 1)
	return r
}

// WaitReplicas waits up to 30 s until n replicas are connected to master
// and in sync with it.
func WaitReplicas(t testing.TB, master *RedisServer, n int) {
	t.Helper()
	c := master.Client(t)
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; {
		// WAIT on a connection that wrote nothing counts the replicas
		// that are connected and acknowledging.
		if got, err := c.Wait(ctx, n, 100*time.Millisecond).Result(); err == nil && got >= int64(n) {
			info := c.Info(ctx, "replication").Val()
			if strings.Count(info, "state=online") >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replica(s) of %s not online within 30s:\n%s", n, master.Addr, c.Info(ctx, "replication").Val())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
