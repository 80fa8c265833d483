// Package outage recognises the errors that mean a dependency (Redis, S3)
// could not be reached or could not answer: a 503 the client should retry,
// not a fault. The HTTP layer and the tus handler answer from it alike.
package outage

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/redis/go-redis/v9"
)

// Is reports whether err says a dependency (Redis, S3, the
// filesystem's disk is not one) could not be reached or could not answer
// now, as opposed to a fault of ours or of the request: then the answer is
// 503 and the client should come back later. The request context must
// still be live; a client that left is classified before this.
func Is(err error) bool {
	// The network: refused and reset connections, dial and i/o timeouts.
	var op *net.OpError
	var dns *net.DNSError
	var nerr net.Error
	switch {
	case errors.As(err, &op), errors.As(err, &dns),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &nerr) && nerr.Timeout():
		return true
	}
	// A dependency call that ran out of its own time budget (the request's
	// context is live, so the deadline was not the client's).
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// go-redis: every pooled connection busy or broken, or the client shut.
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) || errors.Is(err, redis.ErrClosed) {
		return true
	}
	// The AWS SDK: its retry budget is spent (it joins this to the last
	// attempt's error, which may be a 5xx answer rather than a network one).
	if errors.As(err, new(ratelimit.QuotaExceededError)) {
		return true
	}
	// S3 answered, but says it cannot serve now. The SDK's error types are
	// matched by their methods, so this package needs none of them.
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout",
			"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests":
			return true
		}
	}
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) {
		switch resp.HTTPStatusCode() {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
	}
	return false
}
