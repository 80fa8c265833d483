package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/outage"
)

// writeJSON writes v with status. Encoding errors after the header is out
// can only be logged.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.DebugContext(r.Context(), "write response", "err", err)
	}
}

// writeError renders err in the native {status,title,detail} shape. An error
// outside the registry becomes a bare 500; its cause goes only to the
// request's access-log line.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(r, err)
	infoOf(r).err = e
	retryAfter(w, e)
	writeJSON(w, r, e.Code.Status, e.Native())
}

// writeOpenAIError renders err in the OpenAI envelope, for the adapter.
func writeOpenAIError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(r, err)
	infoOf(r).err = e
	retryAfter(w, e)
	writeJSON(w, r, e.Code.Status, e.OpenAI())
}

// retryAfter tells a client of a 503 when to come back, unless the handler
// already said.
func retryAfter(w http.ResponseWriter, e *errcode.Error) {
	if e.Code == errcode.ErrUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfterUnavailable)
	}
}

// classify maps err to its registered code. Errors outside the registry
// are sorted by whose fault they are, in this order:
//   - the request body stopped arriving: REQUEST_TIMEOUT, even over a
//     registered code (SHORT_BODY), since that is what happened;
//   - the request body broke off with the connection (curl killed
//     mid-upload): CLIENT_CLOSED_REQUEST, again over SHORT_BODY, since the
//     client hung up; a body that ends short on a connection that stays
//     open keeps its SHORT_BODY, which the client will read;
//   - the client went away (its request context cancelled):
//     CLIENT_CLOSED_REQUEST, not a 500, since nobody reads the answer and
//     flaky clients must not page anyone;
//   - the request body broke off otherwise: the client's doing, whatever
//     the storage layer made of the failed read;
//   - Redis or S3 could not be reached or cannot serve now: UNAVAILABLE,
//     a 503 with Retry-After, since the request is fine and will work later;
//   - anything else is INTERNAL.
func classify(r *http.Request, err error) *errcode.Error {
	e := errcode.From(err)
	stalled, bodyErr := infoOf(r).body.failure()
	switch {
	case stalled: // whatever the storage layer made of the failed read
		return errRequestTimeout.Wrap(err, "no request body bytes arrived for %s; the bytes of this request that were not stored were dropped: ask for the offset and resend from there", infoOf(r).body.idle)
	case bodyCut(r):
		return errcode.ErrClientClosed.Wrap(err, "the client closed the connection mid-body")
	case e.Code != errcode.ErrInternal:
		return e
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		return errcode.ErrClientClosed.Wrap(err, "the client closed the request")
	case bodyErr != nil:
		// The body broke off but the connection still stands (HTTP/2 resets
		// a stream, say): still the client's doing, and it is gone.
		return errcode.ErrClientClosed.Wrap(err, "the request body broke off")
	case r.Context().Err() == nil && outage.Is(err):
		return errcode.ErrUnavailable.Wrap(err, "a storage service ferryd depends on is unreachable or overloaded; retry after the Retry-After delay")
	}
	return e
}

// bodyCut reports whether the request body broke off with the connection:
// net/http ends the request's context when a read of the connection fails.
func bodyCut(r *http.Request) bool {
	_, err := infoOf(r).body.failure()
	return err != nil && r.Context().Err() != nil
}
