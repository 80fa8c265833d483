package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/events"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// eachStore runs fn on the embedded store and on Redis.
func eachStore(t *testing.T, fn func(t *testing.T, s metastore.Store)) {
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		fn(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		client, prefix := testsvc.Redis(t)
		fn(t, redisstore.New(client, prefix))
	})
}

// receipt is one request the receiver took.
type receipt struct {
	ID   string
	Type string
	Body map[string]any
	At   time.Time
}

// receiver is a real webhook endpoint: it verifies every signature with
// the Standard Webhooks library, and answers what fail says (0: 204).
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	wh   *standardwebhooks.Webhook
	mu   sync.Mutex
	got  []receipt // acknowledged
	seen int       // every request
	fail func(r receipt) int
}

func newReceiver(t *testing.T) *receiver {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t, wh: wh}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := rc.wh.Verify(body, r.Header); err != nil {
			t.Errorf("a request with a bad signature: %v (headers %v)", err, r.Header)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var b map[string]any
		if err := json.Unmarshal(body, &b); err != nil || b["type"] == nil || b["timestamp"] == nil || b["data"] == nil {
			t.Errorf("body %s: want type, timestamp and data (%v)", body, err)
		}
		rec := receipt{ID: r.Header.Get("webhook-id"), Type: fmt.Sprint(b["type"]), Body: b, At: time.Now()}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.seen++
		if rc.fail != nil {
			if code := rc.fail(rec); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		rc.got = append(rc.got, rec)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setFail(f func(receipt) int) { rc.mu.Lock(); rc.fail = f; rc.mu.Unlock() }

func (rc *receiver) received() []receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// waitFor waits until the receiver acknowledged n events.
func (rc *receiver) waitFor(n int, within time.Duration) []receipt {
	rc.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if got := rc.received(); len(got) >= n {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := rc.received()
	rc.t.Fatalf("the receiver acknowledged %d events in %v, want %d", len(got), within, n)
	return nil
}

// deliver runs webhooks to rc on s until the test ends.
func deliver(t *testing.T, s metastore.Store, rc *receiver, opts events.Delivery) *events.Webhooks {
	w := &events.Webhooks{Store: s, Sinks: []events.Sink{{Name: "test", URL: rc.srv.URL, Secret: secret}},
		Options: opts, Log: slog.New(slog.DiscardHandler), Metrics: events.NewMetrics(prometheus.NewRegistry())}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// emit writes n events for file key of bucket b, each riding on an index
// put as the registry's are.
func emit(t *testing.T, s metastore.Store, b, key string, n int) {
	t.Helper()
	for i := range n {
		ev := events.New(events.FileCreated, b, key, map[string]any{"key": key, "n": i})
		if err := s.IndexPut(t.Context(), "files/"+b, fmt.Sprint(key, i), nil, ev); err != nil {
			t.Fatal(err)
		}
	}
}

// inOrder checks that each file's events arrived in the order emitted,
// once each.
func inOrder(t *testing.T, got []receipt) {
	t.Helper()
	next := map[string]float64{}
	ids := map[string]bool{}
	for _, r := range got {
		if ids[r.ID] {
			t.Fatalf("event %s delivered twice", r.ID)
		}
		ids[r.ID] = true
		d := r.Body["data"].(map[string]any)
		key := d["key"].(string)
		if d["n"].(float64) != next[key] {
			t.Fatalf("file %s: event %v arrived when %v was next", key, d["n"], next[key])
		}
		next[key]++
	}
}

var fast = events.Delivery{MaxAge: time.Hour, Timeout: 2 * time.Second, FirstRetry: 200 * time.Millisecond, MaxRetry: 2 * time.Second, Concurrency: 8}

// A new sink starts at the log's end; then everything emitted is
// delivered, signed, once, in order per file.
func TestWebhooksDeliverInOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s metastore.Store) {
		emit(t, s, "b", "before", 2) // before the sink existed: not sent
		rc := newReceiver(t)
		deliver(t, s, rc, fast)
		time.Sleep(300 * time.Millisecond) // the sink takes its place at the end
		for _, key := range []string{"x", "y", "z"} {
			emit(t, s, "b", key, 5)
		}
		got := rc.waitFor(15, 10*time.Second)
		inOrder(t, got)
		time.Sleep(200 * time.Millisecond)
		if n := len(rc.received()); n != 15 {
			t.Fatalf("%d events delivered, want 15 (none from before the sink)", n)
		}
	})
}

// The receiver is down for 30 s: its events wait, are retried with
// backoff, and all arrive in order once it is back; a file whose events
// fail holds back only itself.
func TestWebhooksReceiverDown(t *testing.T) {
	eachStore(t, func(t *testing.T, s metastore.Store) {
		rc := newReceiver(t)
		deliver(t, s, rc, events.Delivery{MaxAge: time.Hour, Timeout: 2 * time.Second, FirstRetry: time.Second, MaxRetry: 4 * time.Second, Concurrency: 8})
		time.Sleep(300 * time.Millisecond)
		up := time.Now().Add(30 * time.Second)
		rc.setFail(func(receipt) int {
			if time.Now().Before(up) {
				return http.StatusServiceUnavailable
			}
			return 0
		})
		for _, key := range []string{"a", "b", "c", "d"} {
			emit(t, s, "b", key, 3)
		}
		time.Sleep(2 * time.Second)
		emit(t, s, "b", "a", 0)
		got := rc.waitFor(12, 45*time.Second)
		if first := got[0].At; first.Before(up) {
			t.Fatalf("an event was acknowledged at %v, while the receiver was down until %v", first, up)
		}
		inOrder(t, got)
		rc.mu.Lock()
		seen := rc.seen
		rc.mu.Unlock()
		if seen < 12+4*3 {
			t.Fatalf("the receiver saw %d requests: want the failed tries retried (at least %d)", seen, 24)
		}
	})
}

// One file's event is refused for MaxAge: it is dead-lettered, later
// events of that file and others flow on; a replay delivers it.
func TestWebhooksDeadLetterAndReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, s metastore.Store) {
		rc := newReceiver(t)
		opts := fast
		opts.MaxAge = 2 * time.Second
		deliver(t, s, rc, opts)
		time.Sleep(300 * time.Millisecond)
		poison := true
		rc.setFail(func(r receipt) int {
			d := r.Body["data"].(map[string]any)
			if poison && d["key"] == "bad" && d["n"].(float64) == 0 {
				return http.StatusBadRequest
			}
			return 0
		})
		emit(t, s, "b", "bad", 2)
		emit(t, s, "b", "good", 2)
		got := rc.waitFor(3, 15*time.Second) // good 0, 1 at once; bad 1 after bad 0 is dead
		var dead []events.DeadLetter
		for deadline := time.Now().Add(5 * time.Second); len(dead) == 0 && time.Now().Before(deadline); {
			var err error
			if dead, _, err = events.DeadLetters(t.Context(), s, "test", "", 10); err != nil {
				t.Fatal(err)
			}
		}
		if len(dead) != 1 || dead[0].Attempts < 2 || dead[0].LastError == "" || dead[0].Event.Type != events.FileCreated {
			t.Fatalf("dead letters = %+v, want the refused event, tried more than once", dead)
		}
		for _, r := range got {
			if r.ID == dead[0].Event.ID {
				t.Fatalf("the dead letter %s was acknowledged", r.ID)
			}
		}
		rc.setFail(nil)
		n, err := events.Replay(t.Context(), s, "test", nil)
		if err != nil || n != 1 {
			t.Fatalf("Replay = %d, %v; want 1", n, err)
		}
		got = rc.waitFor(4, 10*time.Second)
		if got[3].ID != dead[0].Event.ID {
			t.Fatalf("after the replay the receiver got %s, want the dead letter %s", got[3].ID, dead[0].Event.ID)
		}
		if left, _, _ := events.DeadLetters(t.Context(), s, "test", "", 10); len(left) != 0 {
			t.Fatalf("dead letters after the replay: %+v", left)
		}
	})
}

// Two instances deliver to one sink: each event exactly once.
func TestWebhooksTwoInstancesNoDuplicates(t *testing.T) {
	client, prefix := testsvc.Redis(t)
	s := redisstore.New(client, prefix)
	rc := newReceiver(t)
	deliver(t, s, rc, fast)
	deliver(t, redisstore.New(client, prefix), rc, fast)
	time.Sleep(300 * time.Millisecond)
	for i := range 20 {
		emit(t, s, "b", fmt.Sprint("k", i), 5)
	}
	got := rc.waitFor(100, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.received()); n != 100 {
		t.Fatalf("%d deliveries, want 100", n)
	}
	inOrder(t, got)
}

// The webhook types config validates are the ones events emits.
func TestEventTypesMatchConfig(t *testing.T) {
	if !slices.Equal(events.Types, config.EventTypes) {
		t.Fatalf("events.Types %v != config.EventTypes %v", events.Types, config.EventTypes)
	}
}
