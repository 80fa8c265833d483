// Package httpapi is ferryd's HTTP layer: the gorilla/mux router, the
// middleware every request goes through, error rendering and the handlers.
// Handlers translate HTTP into calls on the domain packages and back; no
// package below this one knows about HTTP.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/vectorstore"
)

// Deps is what the handlers need.
type Deps struct {
	Store    metastore.Store
	Blobs    bucket.Composer  // pinged by /readyz when it can be
	Sessions *session.Service // nil: the native file routes are not served
	Files    *registry.Registry
	OpenAI   *openai.Service // nil: the OpenAI routes are not served
	// VectorStores serves the OpenAI vector store routes; nil: they are not served.
	VectorStores *vectorstore.Service
	Metrics      *prometheus.Registry // metrics are registered here and served on /metrics
	Logger       *slog.Logger
	// AllowedHosts, when set, are the Host names served; others get 421.
	AllowedHosts []string
	// ReadIdleTimeout bounds each read of a request body (config's
	// server.read_idle_timeout); 0 leaves reads unbounded.
	ReadIdleTimeout time.Duration
	// Tus serves tus 1.0 under /v1/tus/ (package tus); nil: not served.
	Tus http.Handler
}

// New returns the complete handler: routes wrapped in the middleware chain.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}
	m := newHTTPMetrics(d.Metrics)
	r := newRouter(d)
	// Outermost first: the request id must exist before anything logs, and
	// recovery must sit inside logging and metrics so a panic is counted as a
	// 500. The idle bound sits inside accessLog, whose reqInfo carries it.
	return requestID(accessLog(d.Logger, m.instrument(checkHost(d.AllowedHosts, boundIdleReads(d.ReadIdleTimeout, recoverPanic(d.Logger, r))))))
}

// newRouter mounts every route; the OpenAPI test walks it.
func newRouter(d Deps) *mux.Router {
	r := mux.NewRouter()
	r.Use(recordRoute)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errcode.ErrNotFound.New("no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errcode.ErrMethodNotAllowed.New("%s is not allowed on %s", r.Method, r.URL.Path))
	})

	h := &health{store: d.Store, blobs: d.Blobs}
	r.HandleFunc("/healthz", h.live).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", h.ready).Methods(http.MethodGet, http.MethodHead)
	if d.Sessions != nil && d.Files != nil {
		(&files{sessions: d.Sessions, registry: d.Files}).routes(r)
	}
	if d.OpenAI != nil {
		(&openAI{svc: d.OpenAI, vs: d.VectorStores, registry: d.Files}).routes(r)
	}
	if d.Tus != nil { // every method, OPTIONS included: tusd's handler answers them all
		r.PathPrefix("/v1/tus/").Handler(d.Tus)
	}
	doc, err := openAPIJSON()
	if err != nil {
		panic(err) // the embedded document is checked by the tests
	}
	r.HandleFunc("/openapi.json", serveOpenAPI(doc)).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{Registry: d.Metrics})).Methods(http.MethodGet)
	return r
}
