package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// server.read_idle_timeout reaches the server: a chunk whose sender stalls
// with its connection open loses the session within the timeout, and the
// resume from a new connection completes byte-exact.
func TestStalledUploadReleasesSession(t *testing.T) {
	const idle = time.Second
	p := startFerryd(t, "--data-dir "+t.TempDir(), "FERRY_READ_IDLE_TIMEOUT="+idle.String())
	data := randomData(3 * MiB)
	id := createSession(t, p, "stall", "file", len(data))["id"].(string)

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/files/session:%s HTTP/1.1\r\nHost: %s\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", id, p.addr, len(data))
	if _, err := conn.Write(data[:MiB]); err != nil {
		t.Fatal(err)
	}
	stalled := time.Now()
	time.Sleep(idle / 5)
	if r := sendChunk(t, p, id, 0, nil); r.Code != 409 {
		t.Fatalf("while the stalled chunk holds the session a probe got %d %s, want 409", r.Code, r.Body)
	}
	for {
		r := sendChunk(t, p, id, 0, nil)
		if r.Code == 200 {
			break
		}
		if time.Since(stalled) > idle+2*time.Second {
			t.Fatalf("still %d %s %s after the body stalled", r.Code, r.Body, time.Since(stalled))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 408 ") {
		t.Errorf("the stalled request was answered %q, want 408", line)
	}
	if r := sendChunk(t, p, id, 0, data); r.Code != 200 {
		t.Fatalf("resume: %d %s", r.Code, r.Body)
	}
	if got := download(t, "http://"+p.addr+"/v1/files/stall/file:content"); !bytes.Equal(got, data) {
		t.Fatal("bytes differ after the resume")
	}
}
