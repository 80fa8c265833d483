// Package hookstest is a hook receiver for tests: a real HTTP server that
// verifies every call's signature with the Standard Webhooks reference
// library's Verify, as an operator's receiver would, records the calls and
// answers as the test says.
package hookstest

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/hooks"
)

// Secret is the receivers' signing secret: whsec_ and 32 bytes of base64.
const Secret = "whsec_aG9va3N0ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm"

// Call is one verified call.
type Call struct {
	Header    http.Header
	Type      string
	Timestamp time.Time    // the body's
	Create    hooks.Create // the call's data
	Body      []byte
}

// Answer writes the receiver's answer to a verified call.
type Answer func(w http.ResponseWriter, r *http.Request, c Call)

// Allow answers 204.
func Allow(w http.ResponseWriter, _ *http.Request, _ Call) { w.WriteHeader(http.StatusNoContent) }

// Refuse answers status with {"message": msg}.
func Refuse(status int, msg string) Answer {
	return func(w http.ResponseWriter, _ *http.Request, _ Call) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
}

// Status answers status with no body.
func Status(status int) Answer {
	return func(w http.ResponseWriter, _ *http.Request, _ Call) { w.WriteHeader(status) }
}

// Hang answers nothing until the caller gives up (or 30 s pass).
func Hang(_ http.ResponseWriter, r *http.Request, _ Call) {
	select {
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
	}
}

// Failure is a way a hook fails, and what a refusal then says.
type Failure struct {
	Name   string
	Answer Answer
	Want   string // in the refusal's message when on_error is refuse
}

// Failures are the failures on_error decides on: no answer within
// timeout, and a 5xx.
func Failures(timeout time.Duration) []Failure {
	return []Failure{
		{"timeout", Hang, "the pre-create hook did not answer within " + timeout.String()},
		{"5xx", Status(http.StatusBadGateway), "the pre-create hook answered 502"},
	}
}

// Receiver is the hook's endpoint.
type Receiver struct {
	URL    string
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	answer Answer
	calls  []Call
}

// New starts a receiver that answers every verified call with answer; a
// call whose signature does not verify fails the test and gets 401.
func New(t testing.TB, answer Answer) *Receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(Secret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &Receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("hook receiver: reading the body: %v", err)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("hook receiver: %s %s with Content-Type %q does not verify: %v", r.Method, r.URL, r.Header.Get("Content-Type"), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var msg struct {
			Type      string          `json:"type"`
			Timestamp time.Time       `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Errorf("hook receiver: the body is not a webhook message: %v: %s", err, body)
		}
		c := Call{Header: r.Header.Clone(), Type: msg.Type, Timestamp: msg.Timestamp, Body: body}
		if msg.Type != hooks.PreCreate {
			t.Errorf("hook receiver: unknown type %q", msg.Type)
		}
		if err := json.Unmarshal(msg.Data, &c.Create); err != nil {
			t.Errorf("hook receiver: %s data: %v: %s", msg.Type, err, msg.Data)
		}
		rc.mu.Lock()
		rc.calls = append(rc.calls, c)
		answer := rc.answer
		rc.mu.Unlock()
		answer(w, r, c)
	}))
	rc.URL = rc.srv.URL + "/hook"
	t.Cleanup(rc.srv.Close)
	return rc
}

// Answer changes how the receiver answers from now on.
func (rc *Receiver) Answer(a Answer) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = a
}

// Calls returns the calls so far.
func (rc *Receiver) Calls() []Call {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Call(nil), rc.calls...)
}

// WantCreates checks that the pre_create calls so far told the hook want,
// in order.
func (rc *Receiver) WantCreates(t testing.TB, want []hooks.Create) {
	t.Helper()
	calls := rc.Calls()
	if len(calls) != len(want) {
		t.Fatalf("the hook was called %d times, want %d", len(calls), len(want))
	}
	for i, w := range want {
		got, _ := json.Marshal(calls[i].Create)
		wantJSON, _ := json.Marshal(w)
		if string(got) != string(wantJSON) {
			t.Errorf("call %d told the hook\n  %s\nwant\n  %s", i, got, wantJSON)
		}
	}
}

// Config is a hook's settings for this receiver.
func (rc *Receiver) Config(onError string, timeout time.Duration) config.Hook {
	return config.Hook{URL: rc.URL, Secret: Secret, Timeout: timeout, OnError: onError}
}

// Hook is the hook name calling this receiver, with its metrics in reg
// (nil: unexported).
func (rc *Receiver) Hook(name, onError string, timeout time.Duration, reg prometheus.Registerer) *hooks.Hook {
	rc.t.Helper()
	h, err := hooks.NewClient(reg, slog.New(slog.DiscardHandler)).Hook(name, rc.Config(onError, timeout))
	if err != nil {
		rc.t.Fatal(err)
	}
	return h
}
