package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// redis.min_replicas_ack over HTTP, on a master and one replica of the
// test's own: appends are answered while the replica confirms them; with
// the replica frozen an append and a create get 503 with Retry-After and
// the reason, and acknowledge nothing. Then the master dies and the
// replica is promoted, as Sentinel would: a ferryd on it finds every
// acknowledged byte and completes the file byte-exact.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestReplicaAck ./cmd/ferryd/
func TestReplicaAck(t *testing.T) {
	t.Parallel()
	master := testsvc.StartRedis(t)
	replica := testsvc.StartReplica(t, master)
	bkt, s3 := s3Env(t)
	env := append(s3, "FERRY_REDIS_MIN_REPLICAS_ACK=1", "FERRY_REDIS_REPLICA_ACK_TIMEOUT=300ms")
	dataDir := "--data-dir " + t.TempDir()
	p := startFerryd(t, dataDir, append(env, "FERRY_REDIS_URL=redis://"+master.Addr+"/0")...)

	const chunk = 5 << 20 // a part each: the bytes go to S3, the offsets to Redis
	data := randomData(3 * chunk)
	id := createSession(t, p, bkt, "replicated.bin", len(data))["id"].(string)
	if r := sendChunk(t, p, id, 0, data[:chunk]); r.Code != 200 {
		t.Fatalf("append with the replica up: %d %s", r.Code, r.Body)
	}

	replica.Stop()
	refused := func(what string, r testhttp.Answer) {
		t.Helper()
		e := r.JSON(t)
		detail, _ := e["detail"].(string)
		if r.Code != 503 || r.Header.Get("Retry-After") == "" || e["code"] != "UNAVAILABLE" ||
			!strings.Contains(detail, "did not confirm replication to 1 replica(s) within 300ms") {
			t.Fatalf("%s with the replica frozen: %d %s (Retry-After %q); want 503 UNAVAILABLE naming the replicas",
				what, r.Code, r.Body, r.Header.Get("Retry-After"))
		}
	}
	refused("append", sendChunk(t, p, id, chunk, data[chunk:2*chunk]))
	refused("create", testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files",
		strings.NewReader(`{"bucket":"`+bkt+`","key":"other","size":3}`)))
	_, s := getJSON(t, "http://"+p.addr+"/v1/files/session:"+id) // reads never wait
	if s["offset"] != float64(chunk) {
		t.Fatalf("the refused append moved the offset: %v", s)
	}

	// Failover: the replica catches up with what the master sent it, the
	// master dies, the replica is promoted.
	replica.Resume()
	testsvc.WaitReplicas(t, master, 1)
	master.Kill()
	if err := replica.Client(t).Do(t.Context(), "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	// The new master has no replica of its own to wait for.
	p2 := startFerryd(t, dataDir, append(env, "FERRY_REDIS_MIN_REPLICAS_ACK=0", "FERRY_REDIS_URL=redis://"+replica.Addr+"/0")...)
	_, s = getJSON(t, "http://"+p2.addr+"/v1/files/session:"+id)
	if s["offset"] != float64(chunk) {
		t.Fatalf("after the failover the session says %v; %d bytes were acknowledged", s, chunk)
	}
	for off := chunk; off < len(data); off += chunk {
		if r := sendChunk(t, p2, id, off, data[off:off+chunk]); r.Code != 200 {
			t.Fatalf("append at %d after the failover: %d %s", off, r.Code, r.Body)
		}
	}
	if got := download(t, "http://"+p2.addr+"/v1/files/"+bkt+"/replicated.bin:content"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want the %d sent", len(got), len(data))
	}
}
