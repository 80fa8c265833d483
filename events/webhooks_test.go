package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/events"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/internal/webhooktest"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

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

// deliver runs webhooks to rc on s until the test ends.
func deliver(t *testing.T, s metastore.Store, rc *webhooktest.Receiver, opts events.Delivery) *events.Webhooks {
	w := &events.Webhooks{Store: s, Sinks: []events.Sink{{Name: "test", URL: rc.URL, Secret: webhooktest.Secret}},
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
func inOrder(t *testing.T, got []webhooktest.Receipt) {
	t.Helper()
	next := map[string]float64{}
	ids := map[string]bool{}
	for _, r := range got {
		if ids[r.ID] {
			t.Fatalf("event %s delivered twice", r.ID)
		}
		ids[r.ID] = true
		d := r.Data()
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
		rc := webhooktest.New(t)
		deliver(t, s, rc, fast)
		time.Sleep(300 * time.Millisecond) // the sink takes its place at the end
		for _, key := range []string{"x", "y", "z"} {
			emit(t, s, "b", key, 5)
		}
		got := rc.WaitFor(15, 10*time.Second)
		inOrder(t, got)
		time.Sleep(200 * time.Millisecond)
		if n := len(rc.Got()); n != 15 {
			t.Fatalf("%d events delivered, want 15 (none from before the sink)", n)
		}
	})
}

// The receiver is down for 30 s: its events wait, are retried with
// backoff, and all arrive in order once it is back; a file whose events
// fail holds back only itself.
func TestWebhooksReceiverDown(t *testing.T) {
	eachStore(t, func(t *testing.T, s metastore.Store) {
		rc := webhooktest.New(t)
		deliver(t, s, rc, events.Delivery{MaxAge: time.Hour, Timeout: 2 * time.Second, FirstRetry: time.Second, MaxRetry: 4 * time.Second, Concurrency: 8})
		time.Sleep(300 * time.Millisecond)
		up := time.Now().Add(30 * time.Second)
		rc.Fail(func(webhooktest.Receipt) int {
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
		got := rc.WaitFor(12, 45*time.Second)
		if first := got[0].At; first.Before(up) {
			t.Fatalf("an event was acknowledged at %v, while the receiver was down until %v", first, up)
		}
		inOrder(t, got)
		if seen := rc.Requests(); seen < 12+4*3 {
			t.Fatalf("the receiver saw %d requests: want the failed tries retried (at least %d)", seen, 24)
		}
	})
}

// One file's event is refused for MaxAge: it is dead-lettered, later
// events of that file and others flow on; a replay delivers it.
func TestWebhooksDeadLetterAndReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, s metastore.Store) {
		rc := webhooktest.New(t)
		opts := fast
		opts.MaxAge = 2 * time.Second
		deliver(t, s, rc, opts)
		time.Sleep(300 * time.Millisecond)
		poison := true
		rc.Fail(func(r webhooktest.Receipt) int {
			d := r.Data()
			if poison && d["key"] == "bad" && d["n"].(float64) == 0 {
				return http.StatusBadRequest
			}
			return 0
		})
		emit(t, s, "b", "bad", 2)
		emit(t, s, "b", "good", 2)
		got := rc.WaitFor(3, 15*time.Second) // good 0, 1 at once; bad 1 after bad 0 is dead
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
		rc.Fail(nil)
		n, err := events.Replay(t.Context(), s, "test", nil)
		if err != nil || n != 1 {
			t.Fatalf("Replay = %d, %v; want 1", n, err)
		}
		got = rc.WaitFor(4, 10*time.Second)
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
	rc := webhooktest.New(t)
	deliver(t, s, rc, fast)
	deliver(t, redisstore.New(client, prefix), rc, fast)
	time.Sleep(300 * time.Millisecond)
	for i := range 20 {
		emit(t, s, "b", fmt.Sprint("k", i), 5)
	}
	got := rc.WaitFor(100, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.Got()); n != 100 {
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

// A receiver that hangs costs a timeout per try; after a run of failures
// new events are queued untried, so the log is read on (and could be
// trimmed) without losing them, and they all arrive once it answers.
func TestWebhooksHangingReceiver(t *testing.T) {
	eachStore(t, func(t *testing.T, s metastore.Store) {
		rc := webhooktest.New(t)
		opts := fast
		opts.Timeout = 200 * time.Millisecond
		opts.Concurrency = 2
		deliver(t, s, rc, opts)
		time.Sleep(300 * time.Millisecond)
		hang := make(chan struct{})
		rc.Hold(hang)
		for i := range 60 {
			emit(t, s, "b", fmt.Sprint("k", i), 1)
		}
		last, err := s.LastEventID(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, _, err := metastore.GetJSON[struct{ After string }](t.Context(), s, "events/sinks/test/cursor")
			if err == nil && c.After == last {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cursor is at %q, not at the last event %q, 5 s after 60 events to a hanging receiver (%d requests)", c.After, last, rc.Requests())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := rc.Requests(); n >= 40 {
			t.Fatalf("%d requests to a hanging receiver: want most events queued untried", n)
		}
		rc.Hold(nil)
		close(hang)
		got := rc.WaitFor(60, 30*time.Second)
		inOrder(t, got)
	})
}
