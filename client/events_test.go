package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/client"
)

// createSessions starts n sessions of b/<prefix>i and returns their ids,
// one session.created event each.
func createSessions(t *testing.T, c *client.Client, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		s, err := c.CreateSession(context.Background(), "b", fmt.Sprintf("%s%d", prefix, i), "text/plain", 10)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// sessionID is the id in a session event's data.
func sessionID(t *testing.T, e client.Event) string {
	t.Helper()
	var d struct{ ID string }
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("event %s: data %s: %v", e.ID, e.Data, err)
	}
	return d.ID
}

// The pull stream pages by its cursor: limit bounds a page, next is the
// last event's id, a page past the end is empty with next unchanged, "now"
// is the newest event, and a cursor that is no event id is refused.
func TestEventsPaging(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		ids := createSessions(t, c, "k", 3)

		all, err := c.Events(ctx, "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Data) != 3 {
			t.Fatalf("%d events, want 3: %+v", len(all.Data), all)
		}
		for i, e := range all.Data {
			if e.Type != "session.created" || sessionID(t, e) != ids[i] || e.ID == "" || time.Since(e.Timestamp) > time.Minute {
				t.Fatalf("event %d = %+v (%s), want session.created of %s", i, e, e.Data, ids[i])
			}
		}
		if all.Next != all.Data[2].ID {
			t.Fatalf("next = %q, want the last event's id %q", all.Next, all.Data[2].ID)
		}

		var paged []client.Event
		after := ""
		for range 3 {
			p, err := c.Events(ctx, after, 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Data) > 2 {
				t.Fatalf("limit 2 answered %d events", len(p.Data))
			}
			if len(p.Data) > 0 && p.Next != p.Data[len(p.Data)-1].ID {
				t.Fatalf("next %q is not the page's last id %q", p.Next, p.Data[len(p.Data)-1].ID)
			}
			if len(p.Data) == 0 && p.Next != after {
				t.Fatalf("an empty page moved next from %q to %q", after, p.Next)
			}
			paged = append(paged, p.Data...)
			after = p.Next
		}
		if len(paged) != 3 {
			t.Fatalf("pages of 2 gave %d events, want 3", len(paged))
		}
		for i := range paged {
			if paged[i].ID != all.Data[i].ID {
				t.Fatalf("paged event %d is %s, want %s", i, paged[i].ID, all.Data[i].ID)
			}
		}

		now, err := c.Events(ctx, "now", 0, 0)
		if err != nil || len(now.Data) != 0 || now.Next != all.Next {
			t.Fatalf("after=now: %+v %v, want no events and next %q", now, err, all.Next)
		}
		var e *client.Error
		if _, err := c.Events(ctx, "not-an-id", 0, 0); !errors.As(err, &e) || e.Status != 400 || e.Code != "INVALID_REQUEST" {
			t.Fatalf("after=not-an-id: %v, want 400 INVALID_REQUEST", err)
		}
	})
}

// With wait, the server answers as soon as an event arrives; with none, it
// answers empty at the end of the wait, next unchanged.
func TestEventsWait(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		c := client.New(url, nil)
		createSessions(t, c, "old", 1)
		last, err := c.Events(ctx, "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}

		start := time.Now()
		p, err := c.Events(ctx, last.Next, 0, time.Second)
		if err != nil || len(p.Data) != 0 || p.Next != last.Next {
			t.Fatalf("a wait with nothing new: %+v %v, want no events and next %q", p, err, last.Next)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Fatalf("wait=1s answered after %v", d)
		}

		const delay = 300 * time.Millisecond
		created := make(chan string, 1)
		go func() {
			time.Sleep(delay)
			s, err := c.CreateSession(ctx, "b", "new", "text/plain", 10)
			if err != nil {
				t.Error(err)
			}
			created <- s.ID
		}()
		start = time.Now()
		p, err = c.Events(ctx, last.Next, 0, 20*time.Second)
		took := time.Since(start)
		if err != nil || len(p.Data) != 1 {
			t.Fatalf("a wait during which a session was created: %+v %v", p, err)
		}
		if took < delay || took > 10*time.Second {
			t.Fatalf("the wait answered after %v: not held until the event (at %v), or not woken by it", took, delay)
		}
		if id := <-created; p.Data[0].Type != "session.created" || sessionID(t, p.Data[0]) != id || p.Next != p.Data[0].ID {
			t.Fatalf("the wait answered %+v, want session.created of %s", p, id)
		}
	})
}

// Follow hands over the kept events and then those to come, in order,
// ends with the context (even in the middle of a long poll) or with fn's
// error, and rides out network errors.
func TestFollow(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		var fail atomic.Int64
		fail.Store(2) // the first two reads of the stream never reach the server
		c := client.New(url, &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == "/v1/events" && fail.Add(-1) >= 0 {
				return nil, errors.New("link down")
			}
			return http.DefaultTransport.RoundTrip(r)
		})})
		want := createSessions(t, c, "before", 3)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan client.Event, 10)
		done := make(chan error, 1)
		go func() {
			done <- c.Follow(ctx, "", func(e client.Event) error { got <- e; return nil })
		}()
		next := func() client.Event {
			t.Helper()
			select {
			case e := <-got:
				return e
			case err := <-done:
				t.Fatalf("Follow returned %v", err)
			case <-time.After(15 * time.Second):
				t.Fatal("no event in 15 s")
			}
			return client.Event{}
		}
		var seen []string
		for range 3 {
			seen = append(seen, sessionID(t, next()))
		}
		// Follow is now in a long poll, or about to be.
		want = append(want, createSessions(t, c, "after", 2)...)
		for range 2 {
			seen = append(seen, sessionID(t, next()))
		}
		if strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Fatalf("Follow saw sessions %v, want %v", seen, want)
		}
		if fail.Load() >= 0 {
			t.Fatal("the injected network errors were not met")
		}

		time.Sleep(200 * time.Millisecond) // into the next long poll
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Follow ended with %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Follow went on 5 s after its context was canceled")
		}
		// The server's side of the abandoned poll may sit out its wait (a
		// Redis XREAD BLOCK does not see the hang-up): an event ends it, so
		// the test server closes without waiting 30 s.
		createSessions(t, c, "late", 1)
		select {
		case e := <-got:
			t.Fatalf("an event after Follow ended: %+v", e)
		default:
		}

		// fn's error ends it, after the first event.
		errStop := errors.New("stop")
		n := 0
		err := c.Follow(context.Background(), "", func(client.Event) error { n++; return errStop })
		if !errors.Is(err, errStop) || n != 1 {
			t.Fatalf("Follow with a failing fn: %v after %d calls, want stop after 1", err, n)
		}
		// An answer the caller must fix is not retried.
		var e *client.Error
		if err := c.Follow(context.Background(), "not-an-id", func(client.Event) error { return nil }); !errors.As(err, &e) || e.Code != "INVALID_REQUEST" {
			t.Fatalf("Follow after a bad cursor: %v, want INVALID_REQUEST", err)
		}
	})
}
