package httpapi

import (
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/ratelimit"
)

// RateLimits are the per-subject limits of Llama Stack's Files API docs
// (config's limits.*).
type RateLimits struct {
	Limiter ratelimit.Limiter // nil: nothing is limited
	// Requests per subject per minute, by class; 0 leaves a class unlimited.
	Uploads, Retrievals, Deletions int
}

// The classes of counted requests, also the metric's class label.
const (
	classUploads    = "uploads"
	classRetrievals = "retrievals"
	classDeletions  = "deletions"
)

var errRateLimited = errcode.Register("RATE_LIMITED", "Too Many Requests", http.StatusTooManyRequests,
	errcode.OpenAICode("rate_limit_exceeded"))

// limitSubject is whom a request counts against: its API key, so clients
// behind one NAT or proxy don't share a budget and a key can't escape its
// own by changing address; without auth, the client's address. The kinds
// are prefixed so a key named like an address never shares its budget.
func limitSubject(r *http.Request) string {
	if c, ok := auth.CallerFrom(r.Context()); ok {
		return "key:" + c.Name
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// limitClass sorts a matched route into the class it counts against, or ""
// for requests never counted. Only the start of an upload counts: appends
// to a session, its info (what a resuming client asks for its offset) and
// OpenAI upload parts, completion and cancel are the rest of a transfer
// already admitted, and an upload must never be throttled mid-file. A
// session abort is exempt for the same reason: it frees what the upload
// holds. Operations routes (/healthz, /readyz, /metrics, /openapi.json)
// are outside /v1 and never counted.
func limitClass(route, method string) string {
	if strings.HasPrefix(route, "/v1/files/session:") || !strings.HasPrefix(route, "/v1/") {
		return ""
	}
	if strings.HasPrefix(route, "/v1/tus/") {
		// tus 1.0: POST creates an upload; HEAD (the offset), PATCH and
		// DELETE (termination) are the session's own.
		if method == http.MethodPost {
			return classUploads
		}
		return ""
	}
	if rest, ok := cutOpenAIPrefix(route); ok && rest == "/" {
		return "" // the adapter's 404 for paths it does not serve
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		return classRetrievals
	case http.MethodDelete:
		return classDeletions
	case http.MethodPost:
		if route == "/v1/files" {
			return classUploads // a native session create
		}
		if strings.HasSuffix(route, presignSuffix) {
			return classRetrievals // reads the file's record, as file info does
		}
		if rest, ok := cutOpenAIPrefix(route); ok && (rest == "/files" || rest == "/uploads") {
			return classUploads
		}
	}
	return ""
}

// limitRequests counts each classified request against its subject before
// the handler runs. Over the limit, the answer is a 429 in the route's own
// envelope; counted requests carry the RateLimit-* headers either way. It
// runs inside the router, after recordRoute has named the route.
//
// When the limiter fails (its Redis is down), the request is served:
// refusing every upload because a counter is unreachable would turn a
// Redis blip into an outage of the API, while the metadata store, which
// usually is that same Redis, already answers for itself.
func limitRequests(l RateLimits, reg prometheus.Registerer, log *slog.Logger) mux.MiddlewareFunc {
	if l.Limiter == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_rate_limited_total", Help: "Requests refused with 429 by the per-subject rate limits, by class.",
	}, []string{"class"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_rate_limit_failures_total",
		Help: "Requests served without a rate-limit decision because the limiter failed (fail open), by class.",
	}, []string{"class"})
	reg.MustRegister(limited, failures)
	perMinute := map[string]int{classUploads: l.Uploads, classRetrievals: l.Retrievals, classDeletions: l.Deletions}
	for class := range perMinute { // at 0 from the start, so rate() and alerts see them before the first event
		limited.WithLabelValues(class)
		failures.WithLabelValues(class)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			class := limitClass(infoOf(r).route, r.Method)
			n := perMinute[class]
			if class == "" || n <= 0 {
				next.ServeHTTP(w, r)
				return
			}
			res, err := l.Limiter.Allow(r.Context(), class+":"+limitSubject(r), ratelimit.PerMinute(n))
			if err != nil {
				failures.WithLabelValues(class).Inc()
				log.WarnContext(r.Context(), "rate_limit_failed", "class", class, "err", err)
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Set("RateLimit-Limit", strconv.Itoa(res.Limit))
			h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
			h.Set("RateLimit-Reset", seconds(res.Reset))
			if res.Allowed {
				next.ServeHTTP(w, r)
				return
			}
			limited.WithLabelValues(class).Inc()
			h.Set("Retry-After", seconds(res.Reset))
			e := errRateLimited.New("more than %d %s per minute: retry after %s seconds", n, class, seconds(res.Reset))
			writeErrorFor(w, r, e)
		})
	}
}

// seconds is d in whole seconds, rounded up: a client that waits that long
// finds room.
func seconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
