// Package httpapi is ferryd's HTTP layer: the gorilla/mux router, the
// middleware every request goes through, error rendering and the handlers.
// Handlers translate HTTP into calls on the domain packages and back; no
// package below this one knows about HTTP.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/console"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
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
	// CORSOrigins are the web origins whose pages may call the API ("*":
	// any); none: no CORS headers, so browsers keep other sites out.
	CORSOrigins []string
	// OpenAIBuckets are the adapter's native buckets; with keys, only
	// admin keys reach them through the native routes.
	OpenAIBuckets []string
	// Keys, when set, are the API keys every route but health and the
	// OpenAPI document needs; nil: open.
	Keys *auth.Keyring
	// Forms bound the multipart forms of the OpenAI routes.
	Forms FormLimits
	// PresignTTL, when set, makes downloads 307 redirects to presigned
	// storage URLs that work this long (downloads.redirect: presigned).
	PresignTTL time.Duration
	// ReadIdleTimeout bounds each read of a request body (config's
	// server.read_idle_timeout); 0 leaves reads unbounded.
	ReadIdleTimeout time.Duration
	// Limits are the per-subject rate limits; the zero value limits nothing.
	Limits RateLimits
	// Links signs and checks upload links and presigned downloads
	// (auth.link_secret); nil: neither is offered.
	Links *auth.Links
	// Tus serves tus 1.0 under /v1/tus/ (package tus); nil: not served.
	Tus TusHandler
	// Webhooks are the configured webhooks' names, whose dead letters the
	// admin routes list and replay.
	Webhooks []string
	// Stopping is done when the server begins to shut down: long polls
	// (GET /v1/events?wait=) answer at once. nil: never.
	Stopping context.Context
	// PreCreate is asked before a native session, an OpenAI file or an
	// OpenAI Upload is created (hooks.pre_create; tus asks it itself);
	// nil: no hook.
	PreCreate *hooks.Hook
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
	return requestID(accessLog(d.Logger, m.instrument(checkHost(d.AllowedHosts, allowOrigins(d.CORSOrigins, authenticate(d.Keys, boundIdleReads(d.ReadIdleTimeout, recoverPanic(d.Logger, r))))))))
}

// newRouter mounts every route; the OpenAPI test walks it.
func newRouter(d Deps) *mux.Router {
	// No path cleaning: mux would answer a 301 to a cleaned path (which a
	// PUT's client may follow as a GET), and a percent-encoded location in
	// register_bucket's literal form decodes to "s3://…" with its double slash.
	// Keys are validated segment by segment instead (no "", "." or "..").
	r := mux.NewRouter().SkipClean(true)
	r.Use(recordRoute, limitRequests(d.Limits, d.Metrics, d.Logger)) // limits classify by the recorded route
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errcode.ErrNotFound.New("no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errcode.ErrMethodNotAllowed.New("%s is not allowed on %s", r.Method, r.URL.Path))
	})

	g := &guard{on: d.Keys != nil, reserved: map[string]bool{}, links: d.Links, sessions: d.Sessions}
	for _, b := range d.OpenAIBuckets {
		g.reserved[b] = true
	}
	h := &health{store: d.Store, blobs: d.Blobs}
	r.Handle("/healthz", g.with(public, h.live)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", g.with(public, h.ready)).Methods(http.MethodGet, http.MethodHead)
	c := &content{reg: d.Files, presign: d.PresignTTL}
	var o *openAI
	if d.OpenAI != nil {
		o = &openAI{svc: d.OpenAI, vs: d.VectorStores, registry: d.Files, guard: g, bytes: c, forms: d.Forms.withDefaults(), preCreate: d.PreCreate}
	}
	if d.Sessions != nil && d.Files != nil {
		(&files{sessions: d.Sessions, registry: d.Files, guard: g, bytes: c, openai: o, links: d.Links, preCreate: d.PreCreate}).routes(r)
	}
	if o != nil {
		o.routes(r)
	}
	if d.Store != nil {
		ev := &eventRoutes{store: d.Store, sinks: d.Webhooks, g: g, stopping: d.Stopping}
		if ev.stopping == nil {
			ev.stopping = context.Background()
		}
		r.Handle("/v1/events", g.with(anyRead, ev.list)).Methods(http.MethodGet)
		r.Handle("/v1/events/webhooks/{sink}/dead", g.with(admin, ev.deadLetters)).Methods(http.MethodGet)
		r.Handle("/v1/events/webhooks/{sink}/dead:replay", g.with(admin, ev.replay)).Methods(http.MethodPost)
	}
	if d.Tus != nil { // every method, OPTIONS included: tusd's handler answers them all
		r.PathPrefix("/v1/tus/").Handler(g.with(public, g.tus(d.Tus))) // g.tus checks by method and upload
	}
	ui := g.with(public, console.Handler().ServeHTTP) // the page holds no data; its API calls carry the key
	r.Handle("/console", ui)
	r.PathPrefix(console.Prefix).Handler(ui)
	doc, err := openAPIJSON()
	if err != nil {
		panic(err) // the embedded document is checked by the tests
	}
	r.Handle("/openapi.json", g.with(public, serveOpenAPI(doc))).Methods(http.MethodGet)
	r.Handle("/metrics", g.with(admin, promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{Registry: d.Metrics}).ServeHTTP)).Methods(http.MethodGet)
	return r
}
