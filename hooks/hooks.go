// Package hooks calls the operator's hooks: HTTP endpoints that ferryd asks,
// synchronously, whether an upload may go on, and whose answer it obeys.
// Each call is a Standard Webhooks message (https://www.standardwebhooks.com):
// a JSON body {"type","timestamp","data"} POSTed with the headers
// webhook-id, webhook-timestamp and webhook-signature (v1, HMAC-SHA256 over
// "id.timestamp.body" with the hook's whsec_ secret), signed with the
// reference library, so a receiver verifies it with any Standard Webhooks
// library.
//
// The answer: a 2xx allows; a 4xx refuses, with the JSON body's "message"
// passed to the client; anything else (a 3xx, a 5xx, no answer within the
// timeout, no connection) is a failure of the hook, which refuses or allows
// as the hook's on_error says. A refusal is REFUSED_BY_HOOK (403) in the
// protocol's own envelope.
//
// Hooks are not retried: the client is waiting, and the timeout is the
// whole budget. A nil *Hook is a hook that is not configured: it allows
// everything without a call.
package hooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/errcode"
)

// ErrRefused is a create that a hook refused, or whose hook failed with
// on_error refuse.
var ErrRefused = errcode.Register("REFUSED_BY_HOOK", "Refused By Hook", http.StatusForbidden)

// PreCreate is the hook ferryd asks before it creates an upload: the
// message's type and the metrics' hook label.
const PreCreate = "pre_create"

// Results of a call, the metric's result label.
const (
	resultAllowed  = "allowed"
	resultRefused  = "refused"
	resultError    = "error"    // the hook failed; on_error decided
	resultCanceled = "canceled" // the client went away during the call
)

// maxAnswer bounds what is read of an answer: a refusal's message is short.
const maxAnswer = 64 << 10

// maxMessage bounds the message passed on to the client, in bytes.
const maxMessage = 1024

// Client makes the calls of every hook of one ferryd: one HTTP client, and
// the metrics ferry_hook_calls_total{hook,result} and
// ferry_hook_duration_seconds{hook}.
type Client struct {
	http     *http.Client
	log      *slog.Logger
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewClient registers the hooks' metrics with reg (nil: unexported).
func NewClient(reg prometheus.Registerer, log *slog.Logger) *Client {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		// A hook that redirects is misconfigured: a POST followed as a GET
		// would lose the body, so the 3xx is the answer (a failure).
		http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:  log,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_hook_calls_total",
			Help: "Calls of the hooks (pre_create), by result: allowed, refused, error (the hook failed; on_error decided), canceled (the client left)."},
			[]string{"hook", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_hook_duration_seconds",
			Help:    "How long a hook took to answer, failures included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"hook"}),
	}
	reg.MustRegister(c.calls, c.duration)
	return c
}

// Hook is one configured hook.
type Hook struct {
	c       *Client
	name    string
	url     string
	timeout time.Duration
	allow   bool
	signer  *standardwebhooks.Webhook
}

// Hook returns the hook name (PreCreate) as cfg configures it
// (config.Validate has checked it); nil when cfg.URL is empty, which
// allows everything.
func (c *Client) Hook(name string, cfg config.Hook) (*Hook, error) {
	if cfg.URL == "" {
		return nil, nil
	}
	if !strings.HasPrefix(cfg.Secret, "whsec_") {
		return nil, fmt.Errorf("hooks.%s.secret must be a whsec_ secret", name)
	}
	signer, err := standardwebhooks.NewWebhook(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("hooks.%s.secret: %w", name, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = config.Default().Hooks.PreCreate.Timeout
	}
	for _, r := range []string{resultAllowed, resultRefused, resultError, resultCanceled} {
		c.calls.WithLabelValues(name, r) // at 0 from the start, so rate() and alerts see them
	}
	return &Hook{c: c, name: name, url: cfg.URL, timeout: cfg.Timeout, allow: cfg.OnError == config.HookAllow, signer: signer}, nil
}

// Create is what a pre_create call says of the would-be upload.
type Create struct {
	Protocol string `json:"protocol"` // native, tus or openai
	Bucket   string `json:"bucket"`
	// Key is the file's key; "" for an OpenAI Upload, whose key is named
	// when it completes.
	Key      string `json:"key"`
	Size     int64  `json:"size"` // -1: not known yet (tus Upload-Defer-Length)
	MimeType string `json:"mime_type"`
	// APIKey is the name of the caller's API key; "" without keys.
	APIKey     string            `json:"api_key"`
	ClientAddr string            `json:"client_addr"`
	Metadata   map[string]string `json:"metadata"` // the protocol's own: tus Upload-Metadata, OpenAI purpose and filename
	// Concat is "partial" or "final" for a tus concatenation's uploads.
	Concat string `json:"concat,omitempty"`
}

// Requester is who asks, as a hook is told: the name of the request's API
// key ("" without keys) and the client's address (the connection's peer;
// behind a proxy, the proxy's).
func Requester(r *http.Request) (apiKey, clientAddr string) {
	if c, ok := auth.CallerFrom(r.Context()); ok {
		apiKey = c.Name
	}
	clientAddr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		clientAddr = r.RemoteAddr
	}
	return apiKey, clientAddr
}

// PreCreate asks the hook whether c may be created: nil allows it, an
// ErrRefused error refuses it (to be rendered to the client), and the
// request's own end comes back as its context's error.
func (h *Hook) PreCreate(ctx context.Context, c Create) error {
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	return h.call(ctx, c)
}

// message is the Standard Webhooks payload.
type message struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// what names a hook in what clients and logs read: "pre-create hook".
func (h *Hook) what() string { return strings.ReplaceAll(h.name, "_", "-") + " hook" }

func (h *Hook) call(ctx context.Context, data any) error {
	if h == nil {
		return nil
	}
	start := time.Now()
	refusal, err := h.ask(ctx, data, start)
	h.c.duration.WithLabelValues(h.name).Observe(time.Since(start).Seconds())
	switch {
	case err == nil && refusal == "":
		h.c.calls.WithLabelValues(h.name, resultAllowed).Inc()
		return nil
	case err == nil:
		h.c.calls.WithLabelValues(h.name, resultRefused).Inc()
		return ErrRefused.New("%s", refusal)
	case ctx.Err() != nil:
		// The client left (or its request ended): nobody reads a refusal,
		// and it says nothing of the hook's health.
		h.c.calls.WithLabelValues(h.name, resultCanceled).Inc()
		return fmt.Errorf("%s: %w", h.what(), context.Cause(ctx))
	}
	h.c.calls.WithLabelValues(h.name, resultError).Inc()
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{client: "failed", cause: err}
	}
	if h.allow {
		h.c.log.WarnContext(ctx, "hook_failed_allowed", "hook", h.name, "err", f.cause)
		return nil
	}
	h.c.log.WarnContext(ctx, "hook_failed_refused", "hook", h.name, "err", f.cause)
	return ErrRefused.Wrap(f.cause, "the %s %s, and its on_error is refuse, so the upload was not created: retry later, or ask the operator", h.what(), f.client)
}

// failure is a hook that failed: what the client is told (never the
// hook's URL, which the transport's errors carry) and the cause, logged.
type failure struct {
	client string
	cause  error
}

func (f *failure) Error() string { return f.cause.Error() }

// ask makes one call: a refusal's message, or "" when allowed; an error
// when the hook failed.
func (h *Hook) ask(ctx context.Context, data any, now time.Time) (refusal string, err error) {
	body, err := json.Marshal(message{Type: h.name, Timestamp: now.UTC().Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return "", err
	}
	id := newMessageID()
	sig, err := h.signer.Sign(id, now, body)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferryd")
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := h.c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", &failure{client: fmt.Sprintf("did not answer within %s", h.timeout), cause: err}
		}
		return "", &failure{client: "could not be reached", cause: err}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return "", nil // the body is not needed, and one cut short does not matter
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		if err != nil && ctx.Err() != nil {
			return "", &failure{client: fmt.Sprintf("did not finish its answer within %s", h.timeout), cause: err}
		}
		return refusalMessage(h.what(), resp.StatusCode, answer), nil
	}
	return "", &failure{client: fmt.Sprintf("answered %d", resp.StatusCode),
		cause: fmt.Errorf("%s answered %s; want 2xx (allow) or 4xx (refuse)", h.what(), resp.Status)}
}

// refusalMessage is a refusal's {"message"}, or a plain one when the hook
// gave none; cut to maxMessage bytes.
func refusalMessage(what string, status int, answer []byte) string {
	var body struct {
		Message string `json:"message"`
	}
	msg := fmt.Sprintf("the %s refused the upload (HTTP %d)", what, status)
	if json.Unmarshal(answer, &body) == nil && strings.TrimSpace(body.Message) != "" {
		msg = strings.TrimSpace(body.Message)
	}
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	return msg
}

// newMessageID is a webhook-id: unique per call, so a receiver can drop
// replays.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "hook_" + hex.EncodeToString(b[:])
}
