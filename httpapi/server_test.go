package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/logging"
	"github.com/ferryhq/ferry/metastore"
)

// downStore injects the one fault /readyz must notice; everything else panics.
type downStore struct{ metastore.Store }

func (downStore) Ping(context.Context) error { return errors.New("connection refused") }

type downBlobs struct{ bucket.Backend }

func (downBlobs) Ping(context.Context) error { return errors.New("no such bucket") }

type upStore struct{ metastore.Store }

func (upStore) Ping(context.Context) error { return nil }

func do(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
	}
	return m
}

func TestHealthAndReady(t *testing.T) {
	h := New(Deps{Store: upStore{}, Logger: slog.New(slog.DiscardHandler)})
	if rec := do(t, h, "GET", "/healthz"); rec.Code != 200 || decode(t, rec)["status"] != "ok" {
		t.Fatalf("/healthz = %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "GET", "/readyz"); rec.Code != 200 {
		t.Fatalf("/readyz with healthy stores = %d %s", rec.Code, rec.Body)
	}

	h = New(Deps{Store: downStore{}, Blobs: bucket.Compose(downBlobs{}), Logger: slog.New(slog.DiscardHandler)})
	rec := do(t, h, "GET", "/readyz")
	body := decode(t, rec)
	checks, _ := body["checks"].(map[string]any)
	if rec.Code != 503 || checks["metadata"] != "connection refused" || checks["blobs"] != "no such bucket" {
		t.Fatalf("/readyz with stores down = %d %v", rec.Code, body)
	}
	if rec := do(t, h, "GET", "/healthz"); rec.Code != 200 {
		t.Fatalf("/healthz must not depend on the stores: %d", rec.Code)
	}
}

func TestRequestID(t *testing.T) {
	h := New(Deps{Store: upStore{}, Logger: slog.New(slog.DiscardHandler)})
	rec := do(t, h, "GET", "/healthz", RequestIDHeader, "from-proxy.1")
	if got := rec.Header().Get(RequestIDHeader); got != "from-proxy.1" {
		t.Fatalf("incoming id not echoed: %q", got)
	}
	rec = do(t, h, "GET", "/healthz", RequestIDHeader, "bad id\nwith newline")
	if got := rec.Header().Get(RequestIDHeader); got == "" || strings.ContainsAny(got, " \n") {
		t.Fatalf("unsafe incoming id not replaced: %q", got)
	}
	a, b := do(t, h, "GET", "/healthz"), do(t, h, "GET", "/healthz")
	if a.Header().Get(RequestIDHeader) == b.Header().Get(RequestIDHeader) {
		t.Fatal("generated ids repeat")
	}
}

func TestNativeErrorsForUnknownRoutes(t *testing.T) {
	h := New(Deps{Store: upStore{}, Logger: slog.New(slog.DiscardHandler)})
	rec := do(t, h, "GET", "/nope")
	if body := decode(t, rec); rec.Code != 404 || body["status"] != float64(404) || body["title"] == "" || body["detail"] == "" {
		t.Fatalf("404 = %d %v", rec.Code, body)
	}
	rec = do(t, h, "DELETE", "/healthz")
	if body := decode(t, rec); rec.Code != 405 || body["code"] != "METHOD_NOT_ALLOWED" {
		t.Fatalf("405 = %d %v", rec.Code, body)
	}
}

// The middleware chain wrapped around a router with test routes, in New's
// order.
func testChain(t *testing.T, logs io.Writer, routes func(r *mux.Router)) (http.Handler, *httpMetrics, *prometheus.Registry) {
	t.Helper()
	log, err := logging.New(logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	r.Use(recordRoute)
	routes(r)
	reg := prometheus.NewRegistry()
	m := newHTTPMetrics(reg)
	return requestID(accessLog(log, m.instrument(boundIdleReads(time.Minute, recoverPanic(log, r))))), m, reg
}

func TestPanicBecomes500AndIsLogged(t *testing.T) {
	var logs bytes.Buffer
	h, _, _ := testChain(t, &logs, func(r *mux.Router) {
		r.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	})
	rec := do(t, h, "GET", "/boom", RequestIDHeader, "req-42")
	if body := decode(t, rec); rec.Code != 500 || body["code"] != "INTERNAL" {
		t.Fatalf("panic = %d %v", rec.Code, body)
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), `"request_id":"req-42"`) {
		t.Fatalf("panic not logged with request id:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"status":500`) || !strings.Contains(logs.String(), `"error_code":"INTERNAL"`) {
		t.Fatalf("access log does not record the 500:\n%s", logs.String())
	}
}

// A panic after the answer started cuts the connection, whatever wraps the
// writer (the idle bound's, on a request with a body): a 500 can no longer
// be sent, and one appended to the body would pass for its data.
func TestPanicAfterTheAnswerStartedCutsIt(t *testing.T) {
	h, _, _ := testChain(t, &logBuffer{}, func(r *mux.Router) {
		r.HandleFunc("/half", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("half"))
			panic("kaboom")
		})
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/half", "application/octet-stream", strings.NewReader("a body"))
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatalf("a panic after the answer started was answered in full: %d %q", resp.StatusCode, body)
	}
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	h, m, reg := testChain(t, io.Discard, func(r *mux.Router) {
		r.HandleFunc("/v1/files/{bucket}", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = w.Write([]byte("hello"))
		})
	})
	for _, b := range []string{"secret-bucket-1", "secret-bucket-2"} {
		req := httptest.NewRequest("POST", "/v1/files/"+b, strings.NewReader("abc"))
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	do(t, h, "GET", "/unrouted/secret-key")
	do(t, h, "BREW", "/v1/files/x")

	const tmpl = "/v1/files/{bucket}"
	if got := testutil.ToFloat64(m.requests.WithLabelValues(tmpl, "POST", "200")); got != 2 {
		t.Fatalf("requests{route=template,POST,200} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.received.WithLabelValues(tmpl)); got != 6 {
		t.Fatalf("received bytes = %v, want 6", got)
	}
	if got := testutil.ToFloat64(m.sent.WithLabelValues(tmpl)); got != 15 { // three responses of 5
		t.Fatalf("sent bytes = %v, want 15", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues(unmatchedRoute, "GET", "404")); got != 1 {
		t.Fatalf("unmatched 404s = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues(tmpl, "other", "200")); got != 1 {
		t.Fatalf("unknown method not folded into \"other\": %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetValue(), "secret") {
					t.Fatalf("a raw path leaked into %s{%s=%q}", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestOpenAIEnvelopeRendering(t *testing.T) {
	rec := httptest.NewRecorder()
	writeOpenAIError(rec, httptest.NewRequest("GET", "/", nil), errcode.ErrNotFound.New("file file-x not found"))
	body := decode(t, rec)
	e, _ := body["error"].(map[string]any)
	if rec.Code != 404 || e["message"] != "file file-x not found" || e["type"] != "invalid_request_error" || e["code"] != "not_found" {
		t.Fatalf("openai error = %d %v", rec.Code, body)
	}
}

func TestUnknownErrorIsHiddenAndLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	h, _, _ := testChain(t, &logs, func(r *mux.Router) {
		r.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, errors.New("dial tcp 10.9.8.7:6379: connection refused"))
		})
	})
	rec := do(t, h, "GET", "/fail")
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "10.9.8.7") {
		t.Fatalf("internal error = %d %s; want a 500 without the cause", rec.Code, rec.Body)
	}
	if n := strings.Count(logs.String(), "10.9.8.7"); n != 1 {
		t.Fatalf("cause logged %d times, want once:\n%s", n, logs.String())
	}
}

// A client that hangs up mid-request is a 499 in logs and metrics, not a 500.
func TestClientGoneIsNot5xx(t *testing.T) {
	var logs bytes.Buffer
	h, m, _ := testChain(t, &logs, func(r *mux.Router) {
		r.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, fmt.Errorf("s3 upload part: %w", r.Context().Err()))
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/upload", nil).WithContext(ctx))
	if rec.Code != 499 || testutil.ToFloat64(m.requests.WithLabelValues("/upload", "POST", "499")) != 1 {
		t.Fatalf("client gone = %d", rec.Code)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a client hanging up was logged as an error:\n%s", logs.String())
	}
}
