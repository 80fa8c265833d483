package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/ferryhq/ferry/errcode"
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
	writeJSON(w, r, e.Code.Status, e.Native())
}

// classify maps err to its registered code. A failure caused by the client
// going away (its request context cancelled) is CLIENT_CLOSED_REQUEST, not
// a 500: nobody reads the answer, and flaky clients must not page anyone.
func classify(r *http.Request, err error) *errcode.Error {
	e := errcode.From(err)
	if e.Code == errcode.ErrInternal && r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return errcode.ErrClientClosed.Wrap(err, "the client closed the request")
	}
	return e
}

// writeOpenAIError renders err in the OpenAI envelope, for the adapter.
func writeOpenAIError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(r, err)
	infoOf(r).err = e
	writeJSON(w, r, e.Code.Status, e.OpenAI())
}
