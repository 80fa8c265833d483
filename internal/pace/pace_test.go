package pace

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// The caps the tests use. At 8 MiB/s the burst is 8 ms of credit, less
// than a sleep overshoots on a loaded 2-core machine, so there only the
// lower bound on time is asserted, which holds however loaded it is. At
// 2 MiB/s the burst absorbs 32 ms of lateness: the tests that need the
// proxy to keep up (two connections apart, two ways apart) run there.
const (
	fastRate, fastSize = 8 << 20, 2 << 20 // bytes a second, bytes: 0.25 s
	slowRate, slowSize = 2 << 20, 1 << 20 // 0.5 s
)

// minTime is the least time n bytes can take through one direction of one
// connection at rate: the cap is never beaten by more than the burst.
func minTime(n int, rate float64) time.Duration {
	return time.Duration(float64(n-Burst) / rate * float64(time.Second))
}

// server hands every connection it accepts to serve: a sink for uploads,
// a source for downloads, an echo.
func server(t *testing.T, serve func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

// sink reads to the end, then answers with the count.
func sink(c *net.TCPConn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprint(c, n)
}

// source sends fastSize bytes without reading.
func source(c *net.TCPConn) { _ = send(c, make([]byte, fastSize)) }

// echo sends back what it reads.
func echo(c *net.TCPConn) { _, _ = io.Copy(c, struct{ io.Reader }{c}) }

// send writes p in 64 KiB writes and half-closes. One 4 MiB write takes
// far longer under the race detector, and would be timed with the proxy.
func send(c *net.TCPConn, p []byte) error {
	for len(p) > 0 {
		n, err := c.Write(p[:min(len(p), 64<<10)])
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return c.CloseWrite()
}

func listen(t *testing.T, target string, bps float64) *Proxy {
	t.Helper()
	p, err := Listen(target, bps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// upload sends n bytes to a sink through the proxy at addr and waits for
// its count: the time that took.
func upload(t *testing.T, addr string, n int) time.Duration {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer c.Close()
	start := time.Now()
	if err := send(c.(*net.TCPConn), make([]byte, n)); err != nil {
		t.Error(err)
	}
	if answer, err := io.ReadAll(c); string(answer) != fmt.Sprint(n) || err != nil {
		t.Errorf("the sink counted %q bytes (%v), want %d", answer, err, n)
	}
	return time.Since(start)
}

// notFaster fails t if n bytes took less than the cap allows.
func notFaster(t *testing.T, what string, n int, rate float64, took time.Duration) {
	t.Helper()
	t.Logf("%s: %d bytes in %v, %.2fx the cap", what, n, took, float64(n)/took.Seconds()/rate)
	if least := minTime(n, rate); took < least {
		t.Errorf("%s: %d bytes in %v through a %.0f B/s cap, under the %v the burst allows", what, n, took, rate, least)
	}
}

// attempts runs try up to three times until it says the proxy kept up: a
// proxy that is wrong never does, and a loaded machine gets three chances.
func attempts(t *testing.T, why string, try func() bool) {
	t.Helper()
	for range 3 {
		if try() || t.Failed() {
			return
		}
	}
	t.Error(why)
}

func TestEachWayIsCapped(t *testing.T) {
	t.Run("up", func(t *testing.T) {
		addr := listen(t, server(t, sink), fastRate).Addr()
		notFaster(t, "up", fastSize, fastRate, upload(t, addr, fastSize))
	})
	t.Run("down", func(t *testing.T) {
		c := dial(t, listen(t, server(t, source), fastRate).Addr())
		start := time.Now()
		if n, err := io.Copy(io.Discard, c); n != fastSize || err != nil {
			t.Fatalf("read %d bytes, %v; want %d", n, err, fastSize)
		}
		notFaster(t, "down", fastSize, fastRate, time.Since(start))
	})
}

// Bytes arrive intact both ways, a half-close goes through and the answer
// still comes back, and each way has its own cap: an echo takes about the
// time of one way, where a cap the two shared would need twice it.
func TestEcho(t *testing.T) {
	addr := listen(t, server(t, echo), slowRate).Addr()
	sent := bytes.Repeat([]byte("ferry"), slowSize/5)
	shared := minTime(2*len(sent), slowRate)
	attempts(t, "the echo never beat the time one cap shared by both ways needs", func() bool {
		c := dial(t, addr)
		start := time.Now()
		go func() { _ = send(c, sent) }()
		got := make([]byte, len(sent)+1)
		n, err := io.ReadFull(c, got)
		took := time.Since(start)
		if n != len(sent) || err != io.ErrUnexpectedEOF || !bytes.Equal(got[:n], sent) {
			t.Fatalf("echo: %d of %d bytes (%v), equal %v", n, len(sent), err, bytes.Equal(got[:n], sent))
		}
		notFaster(t, "echo", len(sent), slowRate, took)
		return took < shared
	})
}

// Two connections at once each get the whole cap: together they move
// about twice what one does, where a shared cap would allow 1x (plus a
// burst).
func TestConnectionsAreCappedApart(t *testing.T) {
	addr := listen(t, server(t, sink), slowRate).Addr()
	shared := minTime(2*slowSize, slowRate)
	attempts(t, "two connections never beat the time one shared cap needs", func() bool {
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		start := time.Now()
		for i := range took {
			wg.Add(1)
			go func() {
				defer wg.Done()
				took[i] = upload(t, addr, slowSize)
			}()
		}
		wg.Wait()
		all := time.Since(start)
		for i, d := range took {
			notFaster(t, fmt.Sprintf("connection %d", i), slowSize, slowRate, d)
		}
		t.Logf("together %.2fx the cap", 2*float64(slowSize)/all.Seconds()/slowRate)
		return all < shared
	})
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(0, 0)
	l := limiter{rate: 1000, burst: 100, tokens: 100, last: t0}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, c := range []struct {
		at, n int
		wait  time.Duration
	}{
		{0, 100, 0},                      // the full bucket goes at once
		{0, 50, 50 * time.Millisecond},   // then at the rate
		{50, 50, 50 * time.Millisecond},  // the debt was paid; this send waits its own time
		{1100, 100, 0},                   // a long idle fills the bucket, but no more than the burst
		{1100, 1, time.Millisecond},      // and a send past it owes at once
		{1101, 0, 0},                     // nothing sent costs nothing
		{1102, 10, 9 * time.Millisecond}, // 1 ms of tokens came in since
		{1115, 10, 6 * time.Millisecond}, // a sleep that ran 4 ms over leaves those tokens to the next send
	} {
		if got := l.reserve(at(c.at), c.n); (got - c.wait).Abs() > time.Microsecond {
			t.Errorf("at %d ms, %d bytes: wait %v, want %v", c.at, c.n, got, c.wait)
		}
	}
}

// A server's close reaches the client, and Close ends the connections
// still open, both sides.
func TestCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan error, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("bye"))
			c.Close()
		}
		c, err := ln.Accept()
		if err != nil {
			held <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c) // until the proxy closes it
		held <- err
	}()
	p, err := Listen(ln.Addr().String(), fastRate)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if got, err := io.ReadAll(c); string(got) != "bye" || err != nil {
		t.Fatalf("read %q, %v; want bye and the server's close", got, err)
	}

	open := dial(t, p.Addr())
	if _, err := open.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // for the proxy to dial the server
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	for _, ch := range []chan error{done, held} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close left a connection open")
		}
	}
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("the client's connection is still open after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy still accepts after Close")
	}
}
