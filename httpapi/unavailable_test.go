package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/session"
)

// The error shapes the stores produce, as the real clients wrap them,
// sorted into 503, 499, 408 and 500. The end-to-end outage tests cover the
// common ones against real processes; this table covers the rest.
func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		want errcode.Code
	}{
		{"dial refused", fmt.Errorf("lock session: %w", refused), errcode.ErrUnavailable},
		{"reset", fmt.Errorf("save: %w", syscall.ECONNRESET), errcode.ErrUnavailable},
		{"i/o timeout", fmt.Errorf("get: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), errcode.ErrUnavailable},
		{"dependency deadline", fmt.Errorf("ping: %w", context.DeadlineExceeded), errcode.ErrUnavailable},
		{"redis pool timeout", fmt.Errorf("load: %w", redis.ErrPoolTimeout), errcode.ErrUnavailable},
		{"redis closed", redis.ErrClosed, errcode.ErrUnavailable},
		{"s3 retry quota", errors.Join(errors.New("last attempt"), fmt.Errorf("failed to get rate limit token, %w", ratelimit.QuotaExceededError{})), errcode.ErrUnavailable},
		{"s3 SlowDown", fmt.Errorf("s3 put k: %w", &smithy.GenericAPIError{Code: "SlowDown"}), errcode.ErrUnavailable},
		{"s3 bare 502", fmt.Errorf("s3 head k: %w", s3Status(502)), errcode.ErrUnavailable},
		{"s3 bare 400", fmt.Errorf("s3 head k: %w", s3Status(400)), errcode.ErrInternal},
		{"s3 AccessDenied", fmt.Errorf("s3 put k: %w", &smithy.GenericAPIError{Code: "AccessDenied"}), errcode.ErrInternal},
		{"plain bug", errors.New("nil map"), errcode.ErrInternal},
		{"registered", session.ErrBusy.New("busy"), session.ErrBusy},
		{"registered unavailable", errcode.ErrUnavailable.New("embeddings down"), errcode.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := withReqInfo(httptest.NewRequest("GET", "/", nil))
			if got := classify(r, tc.err); got.Code != tc.want {
				t.Fatalf("classify(%v) = %s, want %s", tc.err, got.Code.Value, tc.want.Value)
			}
			rec := httptest.NewRecorder()
			writeError(rec, r, tc.err)
			if got := rec.Header().Get("Retry-After"); (tc.want == errcode.ErrUnavailable) != (got == retryAfterUnavailable) {
				t.Fatalf("%s answered %d with Retry-After %q", tc.name, rec.Code, got)
			}
		})
	}
}

// s3Status is the SDK's error for an answer with no error code (HEAD).
func s3Status(code int) error {
	return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("no body")}
}

// The client's own disconnect is 499 whatever error it caused below, and
// a stalled body is 408, never 503: neither is a dependency's fault.
func TestClassifyClientFaults(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, _ := withReqInfo(httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	if got := classify(r, fmt.Errorf("lock: %w", context.Canceled)); got.Code != errcode.ErrClientClosed {
		t.Fatalf("cancelled by the client = %s, want CLIENT_CLOSED_REQUEST", got.Code.Value)
	}
	if got := classify(r, refused); got.Code == errcode.ErrUnavailable {
		t.Fatalf("a client that left got %s", got.Code.Value)
	}

	r, info := withReqInfo(httptest.NewRequest("POST", "/", nil))
	info.body = &idleBody{failed: &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, stalled: true}
	if got := classify(r, fmt.Errorf("write part: %w", info.body.failed)); got.Code != errRequestTimeout {
		t.Fatalf("stalled body = %s, want REQUEST_TIMEOUT", got.Code.Value)
	}
	info.body = &idleBody{failed: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}
	if got := classify(r, fmt.Errorf("write part: %w", info.body.failed)); got.Code != errcode.ErrClientClosed {
		t.Fatalf("body reset by the client = %s, want CLIENT_CLOSED_REQUEST", got.Code.Value)
	}

	// A body that ended early is a short body while the connection stands,
	// and a hang-up once net/http has ended the request with it.
	short := session.ErrShortBody.Wrap(io.ErrUnexpectedEOF, "the body ended early")
	info.body = &idleBody{failed: io.ErrUnexpectedEOF}
	if got := classify(r, short); got.Code != session.ErrShortBody {
		t.Fatalf("short body, connection open = %s, want SHORT_BODY", got.Code.Value)
	}
	r, info = withReqInfo(httptest.NewRequest("POST", "/", nil).WithContext(ctx))
	info.body = &idleBody{failed: io.ErrUnexpectedEOF}
	if got := classify(r, short); got.Code != errcode.ErrClientClosed {
		t.Fatalf("short body, connection closed = %s, want CLIENT_CLOSED_REQUEST", got.Code.Value)
	}
}
