// Package pace is a TCP proxy that caps each connection's throughput, each
// way, as a capped link would. The benchmarks put one in front of S3 and one
// in front of each HTTP server to measure what parallel connections buy
// where one connection cannot fill the pipe (issue 25).
//
// Every connection has its own token bucket in each direction: two
// connections move twice what one does, and an upload does not slow its
// answers. The bucket holds at most Burst bytes and reads take half that,
// so the pace is smooth at the scale of a request, not one-second gulps.
package pace

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Burst is the most a connection moves ahead of its rate in one direction:
// over any time t it moves at most Burst + rate*t bytes.
const Burst = 64 << 10

// readSize is half the burst, so a sleep that overshoots by up to half the
// burst's time is made up by the tokens the next read finds.
const readSize = Burst / 2

// Proxy forwards the connections it accepts on 127.0.0.1 to one target.
type Proxy struct {
	ln     net.Listener
	target string
	rate   float64 // bytes a second, per connection, each way

	wg     sync.WaitGroup // the accept loop and every connection
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Listen starts a proxy on a free port of 127.0.0.1 that forwards every
// connection to target, at most bytesPerSecond each way per connection.
func Listen(target string, bytesPerSecond float64) (*Proxy, error) {
	if bytesPerSecond <= 0 {
		return nil, errors.New("pace: the rate must be positive")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, rate: bytesPerSecond, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection both ways and waits until
// all of the proxy's goroutines have returned. It is safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of descriptors, say: the next accept may do
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track records the pair for Close, or says no once the proxy is closing.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) forward(down net.Conn) {
	defer p.wg.Done()
	defer down.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(down, up) {
		return
	}
	defer p.untrack(down, up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipe(down, up)
	}()
	p.pipe(up, down)
	<-done
}

// pipe copies src to dst at the proxy's rate. At src's end it closes only
// dst's write side, so a half-close reaches the other end and the answer
// can still come back; on an error it closes both connections, which ends
// the other direction's pipe too.
func (p *Proxy) pipe(dst, src net.Conn) {
	lim := limiter{rate: p.rate, burst: Burst, tokens: Burst, last: time.Now()}
	buf := make([]byte, readSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(lim.reserve(time.Now(), n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

// limiter is a token bucket: tokens come in at rate a second up to burst,
// and a send of n bytes takes n of them, going into a debt the sender
// sleeps off before sending.
type limiter struct {
	rate, burst, tokens float64
	last                time.Time
}

// reserve takes n tokens at now and returns how long to wait before
// sending the n bytes.
func (l *limiter) reserve(now time.Time, n int) time.Duration {
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}
