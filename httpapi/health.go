package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/metastore"
)

type health struct {
	store metastore.Store
	blobs bucket.Composer
}

// live says the process serves HTTP; it checks nothing else, so an outage of
// Redis or S3 never gets a healthy process restarted.
func (h *health) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// ready says whether requests can be served: the metadata store answers and
// the blob backend is reachable.
func (h *health) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			checks[name] = err.Error()
			ok = false
			return
		}
		checks[name] = "ok"
	}
	if h.store != nil {
		check("metadata", h.store.Ping(ctx))
	}
	if h.blobs.Pinger != nil {
		check("blobs", h.blobs.Pinger.Ping(ctx))
	}
	status, word := http.StatusOK, "ok"
	if !ok {
		status, word = http.StatusServiceUnavailable, "unavailable"
	}
	writeJSON(w, r, status, map[string]any{"status": word, "checks": checks})
}
