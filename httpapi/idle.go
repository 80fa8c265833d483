package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// A client whose network drops mid-body leaves its connection open until
// TCP gives up, minutes later, and the append it was sending holds the
// session lock all that time: its resume from a new connection is refused
// as SESSION_BUSY. So every read of a request body must make progress
// within the idle timeout, or the read fails, the append fails (keeping
// nothing) and the lock is let go.
//
// The deadline is on the connection, so it is cleared again as soon as a
// read returns an error or the end of the body: it bounds the client's
// sending, never the handler's work after the body (completing a large
// upload may take longer than the idle timeout) nor the server's own read
// that watches for the client hanging up.
//
// Before it answers, net/http reads up to 256 KiB of a body the handler
// left unread, with no deadline of its own, so a client that stalled would
// never see its answer. So the answer sets one: now, after a failed read
// (the rest of the body is lost), or the idle timeout while the client may
// still be sending (the connection then stays usable).

// errBodyStalled is what a body read answers once the client has sent
// nothing for the idle timeout.
var errBodyStalled = errors.New("the client sent no request body bytes within the read idle timeout")

// idleBody is a request body whose reads are bounded by the idle timeout.
// It remembers how its reads failed, because the domain packages wrap
// (or, through the AWS SDK, re-wrap) a body's error beyond recognition,
// and a body that failed is the client's fault, never a dependency's.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration

	mu      sync.Mutex
	failed  error // the first read error other than io.EOF
	stalled bool
	ended   bool // a read returned io.EOF
}

func (b *idleBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return b.ReadCloser.Read(p)
	}
	armed := b.idle > 0 && b.rc.SetReadDeadline(time.Now().Add(b.idle)) == nil
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	if armed {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == io.EOF {
		b.ended = true
		return n, err
	}
	if b.failed == nil {
		b.failed = err
		b.stalled = errors.Is(err, os.ErrDeadlineExceeded)
	}
	if b.stalled {
		return n, fmt.Errorf("%w (%s): %w", errBodyStalled, b.idle, err)
	}
	return n, err
}

// failure reports how the body's reads failed: stalled, or another error
// (the client hung up), or nil.
func (b *idleBody) failure() (stalled bool, err error) {
	if b == nil {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stalled, b.failed
}

// answering bounds net/http's read of what is left of the body, which comes
// before the answer goes out.
func (b *idleBody) answering() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failed != nil:
		_ = b.rc.SetReadDeadline(time.Now())
	case !b.ended && b.idle > 0:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
}

// answerWriter tells the body when the answer starts.
type answerWriter struct {
	http.ResponseWriter
	body     *idleBody
	answered bool
}

func (w *answerWriter) WriteHeader(code int) {
	if !w.answered && code >= 200 { // not for 1xx: the handler may read on
		w.answered = true
		w.body.answering()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(p []byte) (int, error) {
	if !w.answered {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// boundIdleReads installs idleBody on every request that has a body. It
// runs inside accessLog, whose reqInfo carries the body to the error
// rendering. idle <= 0 leaves reads unbounded; how they failed is still
// noted, since that tells a client that hung up from a bad request.
func boundIdleReads(idle time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ContentLength 0 is how net/http says there is no body (accessLog
		// has wrapped NoBody). An answer must not arm a deadline there: the
		// server's read that watches for a hang-up would end the request.
		if r.Body == nil || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		body := &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle}
		infoOf(r).body = body
		r.Body = body
		next.ServeHTTP(&answerWriter{ResponseWriter: w, body: body}, r)
	})
}
