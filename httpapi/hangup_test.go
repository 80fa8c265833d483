package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// logBuffer collects a server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// requests returns the http_request lines for route, as the server logged them.
func (b *logBuffer) requests(route string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http_request" && m["route"] == route {
			out = append(out, m)
		}
	}
	return out
}

// served serves the embedded default, logging in JSON to logs.
func served(t *testing.T) (*httptest.Server, *logBuffer, *prometheus.Registry) {
	t.Helper()
	store, blobs := testsvc.Embedded(t)
	d := apiDeps(t, store, blobs)
	logs := &logBuffer{}
	d.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	d.ReadIdleTimeout = 10 * time.Second
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	return srv, logs, d.Metrics
}

// loggedAs waits for the one request on route to end, and checks that its
// log line and its count say status and code.
func loggedAs(t *testing.T, logs *logBuffer, reg *prometheus.Registry, route string, status int, code string) {
	t.Helper()
	var lines []map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if lines = logs.requests(route); len(lines) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines for %s, want 1", len(lines), route)
	}
	if l := lines[0]; l["status"] != float64(status) || l["error_code"] != code {
		t.Errorf("logged as %v %v, want %d %s: %v", l["status"], l["error_code"], status, code, l)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route {
				counted[labels["code"]] += m.GetCounter().GetValue()
			}
		}
	}
	if want := map[string]float64{fmt.Sprint(status): 1}; fmt.Sprint(counted) != fmt.Sprint(want) {
		t.Errorf("counted as %v, want %v", counted, want)
	}
}

// A client that closes its connection mid-body hung up: 499, as curl
// killed mid-upload, though the session made a short body of it. A body
// that ends short of its declared length on a connection that stays open
// is the client's mistake, told 400 SHORT_BODY.
func TestBodyCutByClientIs499(t *testing.T) {
	const route = "/v1/files/session:{id}"
	t.Run("connection closed", func(t *testing.T) {
		srv, logs, reg := served(t)
		_, id := newSession(t, srv.URL, "cut", "f", 100)
		conn := rawRequest(t, srv.Listener.Addr().String(), "POST /v1/files/session:"+id+
			" HTTP/1.1\r\nHost: x\r\nUpload-Offset: 0\r\nContent-Length: 100", "0123456789")
		time.Sleep(50 * time.Millisecond) // the 10 bytes are read
		conn.Close()
		loggedAs(t, logs, reg, route, 499, "CLIENT_CLOSED_REQUEST")
	})
	t.Run("body short, connection open", func(t *testing.T) {
		srv, logs, reg := served(t)
		_, id := newSession(t, srv.URL, "cut", "f", 100)
		conn := rawRequest(t, srv.Listener.Addr().String(), "POST /v1/files/session:"+id+
			" HTTP/1.1\r\nHost: x\r\nContent-Range: bytes 0-99/100\r\nTransfer-Encoding: chunked", "a\r\n0123456789\r\n0\r\n\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "SHORT_BODY") {
			t.Fatalf("a chunked body of 10 bytes under Content-Range 0-99: %s %s", resp.Status, body)
		}
		loggedAs(t, logs, reg, route, 400, "SHORT_BODY")
	})
}

// A download the client stops part-way went out as 200, but the client
// went away: its log line and count say 499.
func TestDownloadCutByClientIs499(t *testing.T) {
	srv, logs, reg := served(t)
	data := randomBytes(32 * mib) // past the socket buffers, so the server sees the cut
	_, id := newSession(t, srv.URL, "dl", "big", len(data))
	if a := appendChunk(t, srv.URL, id, 0, data); a.Code != 200 {
		t.Fatalf("upload: %d %s", a.Code, a.Body)
	}
	conn := rawRequest(t, srv.Listener.Addr().String(), "GET /v1/files/dl/big:content HTTP/1.1\r\nHost: x", "")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, mib)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	loggedAs(t, logs, reg, "/v1/files/{bucket}/{key:.+}:content", 499, "CLIENT_CLOSED_REQUEST")
}

// A request without a body gets no read deadline from its answer: a
// download that takes longer than the idle timeout is not cut, and the
// connection serves the next request.
func TestSlowDownloadIsNotCut(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	const idle = 300 * time.Millisecond
	srv := serveAPI(t, store, blobs, idle)
	data := randomBytes(16 * mib) // past the socket buffers: the server is still sending after the idle timeout
	_, id := newSession(t, srv.URL, "dl", "slow", len(data))
	if a := appendChunk(t, srv.URL, id, 0, data); a.Code != 200 {
		t.Fatalf("upload: %d %s", a.Code, a.Body)
	}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/v1/files/dl/slow:content")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for buf := make([]byte, 256<<10); ; time.Sleep(idle / 10) { // 64 reads: the download takes ~6 idle timeouts
		n, err := resp.Body.Read(buf)
		got += n
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if got != len(data) {
		t.Fatalf("a slow download got %d of %d bytes", got, len(data))
	}
	info, err := client.Get(srv.URL + "/v1/files/dl/slow")
	if err != nil {
		t.Fatal(err)
	}
	info.Body.Close()
	if info.StatusCode != 200 {
		t.Fatalf("the next request on the connection: %s", info.Status)
	}
}
