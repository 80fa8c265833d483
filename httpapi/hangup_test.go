package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testsvc"
)

// rawRequest writes head and then part of a body on a new connection, and
// leaves it open: a client that stalls mid-body.
func rawRequest(t *testing.T, addr, head, part string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "%s\r\n\r\n%s", head, part); err != nil {
		t.Fatal(err)
	}
	return conn
}

// A body that stalls with less than net/http's 256 KiB discard limit left
// still gets its answer. net/http reads the rest of an unread body before
// it answers, with no deadline of its own, so the client used to wait
// forever: after its 408, and after an answer given without reading the
// body at all (an unknown session).
func TestStalledShortBodyIsAnswered(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	const idle = 500 * time.Millisecond
	srv := serveAPI(t, store, blobs, idle)
	_, id := newSession(t, srv.URL, "stall", "short", 100)
	for _, tc := range []struct {
		name, id string
		want     int
	}{
		{"stalled while read", id, http.StatusRequestTimeout},
		{"answered unread", "0123456789abcdef0123456789abcdef", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawRequest(t, srv.Listener.Addr().String(), "POST /v1/files/session:"+tc.id+
				" HTTP/1.1\r\nHost: x\r\nUpload-Offset: 0\r\nContent-Length: 100", "0123456789")
			start := time.Now()
			_ = conn.SetReadDeadline(start.Add(idle + 5*time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer %s after sending 10 of 100 bytes: %v", time.Since(start), err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want || !resp.Close {
				t.Fatalf("answered %s (close: %v), want %d with Connection: close", resp.Status, resp.Close, tc.want)
			}
			if took := time.Since(start); took > 2*idle+time.Second {
				t.Fatalf("answered after %s; the idle timeout is %s", took, idle)
			}
		})
	}
}
