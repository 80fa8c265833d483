package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/events"
	"github.com/ferryhq/ferry/metastore"
)

// The event routes: the pull stream, and the webhooks' dead letters.

// maxEventWait bounds a long poll, below the usual proxy idle timeouts.
const maxEventWait = 60 * time.Second

type eventRoutes struct {
	store    metastore.Store
	sinks    []string // the configured webhooks' names
	g        *guard
	stopping context.Context // done when the server shuts down
}

type eventsResponse struct {
	Data []events.Event `json:"data"`
	Next string         `json:"next"` // pass as after for the next call
}

// list is GET /v1/events: the events after ?after= (none: the oldest
// kept; "now": only those to come), those of the caller's buckets, waiting
// up to ?wait= seconds for one.
func (e *eventRoutes) list(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || time.Duration(n)*time.Second > maxEventWait {
			writeError(w, r, errcode.ErrInvalidRequest.New("wait %q must be whole seconds from 0 to %d", v, int(maxEventWait.Seconds())))
			return
		}
		wait = time.Duration(n) * time.Second
	}
	if after == "now" {
		if after, err = e.store.LastEventID(r.Context()); err != nil {
			writeError(w, r, err)
			return
		}
	}
	// A shutdown ends the wait with an empty answer rather than holding
	// the shutdown up; the client asks again, of another instance.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(e.stopping, cancel)()
	evs, next, err := events.Read(ctx, e.store, after, limit, wait, func(ev events.Event) bool { return e.g.seesBucket(r, ev.Bucket) })
	if err != nil && ctx.Err() != nil && r.Context().Err() == nil {
		err, next = nil, after
	}
	switch {
	case errors.Is(err, metastore.ErrBadEventID):
		writeError(w, r, errcode.ErrInvalidRequest.New("after %q is not an event id: pass an event's id, or the next of the last answer", after))
		return
	case err != nil && r.Context().Err() != nil:
		return // the client hung up during the wait
	case err != nil:
		writeError(w, r, err)
		return
	}
	if evs == nil {
		evs = []events.Event{}
	}
	writeJSON(w, r, http.StatusOK, eventsResponse{Data: evs, Next: next})
}

var errNoWebhook = errcode.Register("WEBHOOK_NOT_FOUND", "Not Found", http.StatusNotFound)

func (e *eventRoutes) sink(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := mux.Vars(r)["sink"]
	if !slices.Contains(e.sinks, name) {
		writeError(w, r, errNoWebhook.New("no webhook named %q is configured (events.webhooks)", name))
		return "", false
	}
	return name, true
}

// deadLetters is GET /v1/events/webhooks/{sink}/dead (admin).
func (e *eventRoutes) deadLetters(w http.ResponseWriter, r *http.Request) {
	name, ok := e.sink(w, r)
	if !ok {
		return
	}
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, more, err := events.DeadLetters(r.Context(), e.store, name, after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := listResponse[events.DeadLetter]{Data: page, HasMore: more}
	if more {
		out.Next = page[len(page)-1].Event.ID
	}
	writeJSON(w, r, http.StatusOK, out)
}

type replayRequest struct {
	IDs []string `json:"ids"` // none: every dead letter
}

// replay is POST /v1/events/webhooks/{sink}/dead:replay (admin).
func (e *eventRoutes) replay(w http.ResponseWriter, r *http.Request) {
	name, ok := e.sink(w, r)
	if !ok {
		return
	}
	var req replayRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, err)
			return
		}
	}
	n, err := events.Replay(r.Context(), e.store, name, req.IDs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]int{"replayed": n})
}
