// Package webhooktest is a real webhook receiver for tests: it verifies
// every request's Standard Webhooks signature with the library's own
// Verify, records what it acknowledged, and fails requests on demand.
package webhooktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Secret signs the tests' webhooks.
const Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// Receipt is one request the receiver took.
type Receipt struct {
	ID   string         // webhook-id
	Type string         // the body's type
	Body map[string]any // type, timestamp, data
	At   time.Time
}

// Data is the body's data object.
func (r Receipt) Data() map[string]any { d, _ := r.Body["data"].(map[string]any); return d }

// Receiver is the endpoint; URL is where to point a sink.
type Receiver struct {
	URL      string
	t        testing.TB
	wh       *standardwebhooks.Webhook
	mu       sync.Mutex
	got      []Receipt
	attempts []string // every request's webhook-id
	fail     func(Receipt) int
	hold     <-chan struct{}
}

// New starts a receiver that lives as long as the test.
func New(t testing.TB) *Receiver {
	wh, err := standardwebhooks.NewWebhook(Secret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &Receiver{t: t, wh: wh}
	srv := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := rc.wh.Verify(body, r.Header); err != nil {
		rc.t.Errorf("a webhook with a bad signature: %v (headers %v)", err, r.Header)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var b map[string]any
	if err := json.Unmarshal(body, &b); err != nil || b["type"] == nil || b["timestamp"] == nil || b["data"] == nil || len(b) != 3 {
		rc.t.Errorf("webhook body %s: want exactly type, timestamp and data (%v)", body, err)
	}
	rec := Receipt{ID: r.Header.Get("webhook-id"), Type: fmt.Sprint(b["type"]), Body: b, At: time.Now()}
	rc.mu.Lock()
	rc.attempts = append(rc.attempts, rec.ID)
	hold := rc.hold
	rc.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done(): // the sender died: nothing was acknowledged
			return
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.fail != nil {
		if code := rc.fail(rec); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	rc.got = append(rc.got, rec)
	w.WriteHeader(http.StatusNoContent)
}

// Fail makes the receiver answer f's status (0: acknowledge); nil: always
// acknowledge.
func (rc *Receiver) Fail(f func(Receipt) int) { rc.mu.Lock(); rc.fail = f; rc.mu.Unlock() }

// Got is what the receiver acknowledged, in order.
func (rc *Receiver) Got() []Receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// Requests counts every request, refused ones too.
func (rc *Receiver) Requests() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.attempts) }

// Attempts are the webhook-ids of every request, in order.
func (rc *Receiver) Attempts() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.attempts)
}

// Hold keeps each request waiting, unanswered, until ch is closed or its
// sender goes away; nil answers at once.
func (rc *Receiver) Hold(ch <-chan struct{}) { rc.mu.Lock(); rc.hold = ch; rc.mu.Unlock() }

// WaitFor waits until the receiver acknowledged n events, and fails the
// test if that takes longer than within.
func (rc *Receiver) WaitFor(n int, within time.Duration) []Receipt {
	rc.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if got := rc.Got(); len(got) >= n {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.t.Fatalf("the receiver acknowledged %d events in %v, want %d: %v", len(rc.Got()), within, n, rc.Got())
	return nil
}
