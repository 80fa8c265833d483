package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/logging"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-Id"

// requestID adopts a sane incoming X-Request-Id (so a proxy's id follows the
// request through) or makes one, and echoes it in the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// reqInfo is filled in as the request travels inward and read by the outer
// middleware on the way out: the matched route template (so metrics never
// label by a raw path, which would carry bucket names, keys and session ids)
// and the error the handler answered with (so its one log line has the cause).
// The error rendering reads how the body's reads failed, if they did.
type reqInfo struct {
	route string
	err   *errcode.Error
	body  *idleBody // nil when there is no body
}

type reqInfoKey struct{}

const unmatchedRoute = "unmatched"

func withReqInfo(r *http.Request) (*http.Request, *reqInfo) {
	info := &reqInfo{route: unmatchedRoute}
	return r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)), info
}

func infoOf(r *http.Request) *reqInfo {
	if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{route: unmatchedRoute}
}

// recordRoute runs inside the router, after matching.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if tmpl, err := route.GetPathTemplate(); err == nil {
				infoOf(r).route = tmpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanic turns a handler panic into a logged 500 instead of a dropped
// connection, unless the handler already started the response.
func recoverPanic(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if answered(w) {
				panic(http.ErrAbortHandler) // too late for a clean 500: cut the connection
			}
			writeError(w, r, errcode.ErrInternal.New("the server hit an unexpected condition; the request id identifies it in the log"))
		}()
		next.ServeHTTP(w, r)
	})
}

// answered reports whether the response has started, looking through the
// writers that wrap the recorder (the idle bound's answerWriter).
func answered(w http.ResponseWriter) bool {
	for {
		switch v := w.(type) {
		case *recorder:
			return v.wroteHeader
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return false
		}
	}
}

// recorder remembers the status and counts bytes both ways.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	sent        int64
	received    *countingBody
	cut         bool // a write failed: the client stopped taking the answer
}

func (rec *recorder) WriteHeader(code int) {
	if !rec.wroteHeader && code >= 200 {
		rec.status, rec.wroteHeader = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.sent += int64(n)
	rec.cut = rec.cut || err != nil
	return n, err
}

// ReadFrom keeps the underlying writer's fast path (sendfile) for downloads.
func (rec *recorder) ReadFrom(src io.Reader) (int64, error) {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := rec.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(rec.ResponseWriter, src)
	}
	rec.sent += n
	rec.cut = rec.cut || err != nil // the source is a local file: a failure is the client's
	return n, err
}

// outcome is the status and error code that the log line and the metrics
// record: the answer's, unless the client went away (499) or its body
// stalled (408) where the handler could not tell (tusd answers a cut PATCH
// SHORT_BODY; a download cut part-way sent its 200 long before). The wire
// keeps what was sent.
func (rec *recorder) outcome(r *http.Request) (status int, code string) {
	info := infoOf(r)
	status = rec.status
	if info.err != nil {
		code = info.err.Code.Value
	}
	stalled, _ := info.body.failure()
	switch {
	case stalled && status >= 400:
		return errRequestTimeout.Status, errRequestTimeout.Value
	case rec.cut, bodyCut(r) && status >= 400:
		return errcode.ErrClientClosed.Status, errcode.ErrClientClosed.Value
	}
	return status, code
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// accessLog logs one line per request, after it ends.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, info := withReqInfo(r)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK, received: &countingBody{ReadCloser: r.Body}}
		r.Body = rec.received
		next.ServeHTTP(rec, r)
		status, code := rec.outcome(r)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", info.route),
			slog.Int("status", status),
			slog.Int64("bytes_in", rec.received.n),
			slog.Int64("bytes_out", rec.sent),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		}
		if code != "" {
			attrs = append(attrs, slog.String("error_code", code))
		}
		if e := info.err; e != nil && e.Code.Status >= 500 && e.Cause != nil {
			attrs = append(attrs, slog.String("error", e.Cause.Error()))
		}
		log.LogAttrs(r.Context(), level, "http_request", attrs...)
	})
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_http_requests_total", Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ferry_http_request_duration_seconds", Help: "HTTP request latency by route template and method.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_http_received_bytes_total", Help: "Request body bytes read, by route template.",
		}, []string{"route"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_http_sent_bytes_total", Help: "Response body bytes written, by route template.",
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.received, m.sent, m.inFlight)
	return m
}

// instrument must run inside accessLog, which installs the reqInfo and the
// recorder it reads.
func (m *httpMetrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		next.ServeHTTP(w, r)
		route := infoOf(r).route
		method := methodLabel(r.Method)
		status := http.StatusOK
		if rec, ok := w.(*recorder); ok {
			status, _ = rec.outcome(r)
			m.received.WithLabelValues(route).Add(float64(rec.received.n))
			m.sent.WithLabelValues(route).Add(float64(rec.sent))
		}
		m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the label set: arbitrary client methods become "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// checkHost refuses a request whose Host is not one of allowed (none: all
// are served), with 421, before any route runs. Health checks are exempt:
// probes address an instance by its IP.
func checkHost(allowed []string, next http.Handler) http.Handler {
	if len(allowed) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, host) }) {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, r, errMisdirected.New("this server does not answer to host %q: use one of server.allowed_hosts (%s)", r.Host, strings.Join(allowed, ", ")))
	})
}

var errMisdirected = errcode.Register("MISDIRECTED_REQUEST", "Misdirected Request", http.StatusMisdirectedRequest)
