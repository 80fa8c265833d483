package httpapi

import (
	"net/http"

	"github.com/ferryhq/ferry/errcode"
)

// retryAfterUnavailable is the Retry-After of a 503: long enough for a
// restarted Redis or S3 server to come back, short enough that a client
// retrying blindly loses little time.
const retryAfterUnavailable = "5"

// errRequestTimeout: the client stopped sending the body it started. It
// is logged (nobody reads the answer on a dead connection), never a 5xx.
var errRequestTimeout = errcode.Register("REQUEST_TIMEOUT", "Request Timeout", http.StatusRequestTimeout)
