package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// eventWait bounds how long the suite waits for an event to reach the log
// (on a Redis Cluster a relay moves it there after the write).
const eventWait = 10 * time.Second

// collect reads the log after cursor until it holds n events, and fails
// the test if they do not come.
func collect(t *testing.T, s metastore.Store, after string, n int) []metastore.Event {
	t.Helper()
	var out []metastore.Event
	deadline := time.Now().Add(eventWait)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %d events after %q, want %d: %s", len(out), after, n, values(out))
		}
		evs, err := s.Events(t.Context(), after, n-len(out), left)
		if err != nil {
			t.Fatalf("Events(%q): %v", after, err)
		}
		out = append(out, evs...)
		if len(evs) > 0 {
			after = evs[len(evs)-1].ID
		}
	}
	return out
}

func values(evs []metastore.Event) string {
	var vs []string
	for _, e := range evs {
		vs = append(vs, string(e.Value))
	}
	return strings.Join(vs, " ")
}

// testEventsRideOnWrites: every kind of write appends its events when, and
// only when, its change takes effect. A marker put after each refused
// write must be the next event, so a refused write's event would show up
// ahead of it.
func testEventsRideOnWrites(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	last, err := s.LastEventID(ctx)
	if err != nil || last != "" {
		t.Fatalf("LastEventID of an empty log = %q, %v; want \"\"", last, err)
	}
	n := 0
	marker := func() {
		t.Helper()
		n++
		if err := s.IndexPut(ctx, "markers", fmt.Sprint(n), nil, []byte(fmt.Sprint("marker", n))); err != nil {
			t.Fatal(err)
		}
	}
	rec := put(t, s, "k", []byte("v1"), metastore.Cond{Version: 0})
	steps := []struct {
		what  string
		write func() error
		emits string // "" when the write must not emit
	}{
		{"a put that passes", func() error {
			_, err := s.Put(ctx, "k", []byte("v2"), metastore.Cond{Version: rec.Version}, []byte("put-a"), []byte("put-b"))
			return err
		}, "put-a put-b"},
		{"a put that conflicts", func() error {
			_, err := s.Put(ctx, "k", []byte("v3"), metastore.Cond{Version: rec.Version}, []byte("bad-put"))
			return ignore(err, metastore.ErrConflict)
		}, ""},
		{"a large put", func() error {
			_, err := s.Put(ctx, "big", make([]byte, 100<<10), metastore.Cond{Version: metastore.AnyVersion}, []byte("big-put"))
			return err
		}, "big-put"},
		{"a delete of nothing", func() error { return s.Delete(ctx, "nothing", metastore.AnyVersion, []byte("bad-delete")) }, ""},
		{"a delete at the wrong version", func() error {
			return ignore(s.Delete(ctx, "k", 99, []byte("bad-delete")), metastore.ErrConflict)
		}, ""},
		{"a delete", func() error { return s.Delete(ctx, "k", metastore.AnyVersion, []byte("delete")) }, "delete"},
		{"an index put", func() error { return s.IndexPut(ctx, "ix", "m", []byte("x"), []byte("index-put")) }, "index-put"},
		{"an index delete of nothing", func() error { return s.IndexDelete(ctx, "ix", "other", []byte("bad-unindex")) }, ""},
		{"an index delete", func() error { return s.IndexDelete(ctx, "ix", "m", []byte("unindex")) }, "unindex"},
		{"a put that emits nothing", func() error {
			_, err := s.Put(ctx, "quiet", []byte("q"), metastore.Cond{})
			return err
		}, ""},
	}
	after := ""
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		marker()
		want := strings.TrimSpace(st.emits + " " + fmt.Sprint("marker", n))
		got := collect(t, s, after, len(strings.Fields(want)))
		if values(got) != want {
			t.Fatalf("after %s the log holds %q, want %q", st.what, values(got), want)
		}
		for i, e := range got {
			if e.ID == "" || e.ID == after {
				t.Fatalf("event %d of %s has id %q after %q", i, st.what, e.ID, after)
			}
			if time.Since(e.Time) > time.Minute || time.Until(e.Time) > time.Minute {
				t.Fatalf("event %q has time %v, want about now", e.Value, e.Time)
			}
			after = e.ID
		}
	}
	if last, err := s.LastEventID(ctx); err != nil || last != after {
		t.Fatalf("LastEventID = %q, %v; want %q", last, err, after)
	}
	if _, err := s.Events(ctx, "not an id", 1, 0); err == nil {
		t.Fatal("Events after a malformed id: no error")
	}
}

func ignore(err, want error) error {
	if err == nil {
		return fmt.Errorf("no error, want %v", want)
	}
	if !strings.Contains(err.Error(), want.Error()) {
		return err
	}
	return nil
}

// testEventsWait: a reader waiting on an empty tail wakes up for a write,
// and one that times out gets nothing.
func testEventsWait(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	start := time.Now()
	evs, err := s.Events(ctx, "", 10, 200*time.Millisecond)
	if err != nil || len(evs) != 0 {
		t.Fatalf("Events on an empty log = %d events, %v", len(evs), err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("Events returned after %v, want it to wait about 200ms", waited)
	}
	var wg sync.WaitGroup
	var got []metastore.Event
	var gotErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, gotErr = s.Events(ctx, "", 10, eventWait)
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.IndexPut(ctx, "ix", "m", nil, []byte("woken")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if gotErr != nil || values(got) != "woken" {
		t.Fatalf("waiting reader got %q, %v; want the event written while it waited", values(got), gotErr)
	}
}

// testEventsPagingAndTrim: limit pages the log; TrimEvents drops by age and
// then by count, oldest first, and reading after a trimmed id resumes at
// the oldest kept.
func testEventsPagingAndTrim(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	for i := range 5 {
		if err := s.IndexPut(ctx, "ix", fmt.Sprint(i), nil, []byte(fmt.Sprint("e", i))); err != nil {
			t.Fatal(err)
		}
	}
	all := collect(t, s, "", 5)
	if values(all) != "e0 e1 e2 e3 e4" {
		t.Fatalf("log = %q", values(all))
	}
	page, err := s.Events(ctx, all[1].ID, 2, 0)
	if err != nil || values(page) != "e2 e3" {
		t.Fatalf("a page of 2 after e1 = %q, %v", values(page), err)
	}
	if err := s.TrimEvents(ctx, time.Now().Add(-time.Hour), 3); err != nil {
		t.Fatal(err)
	}
	if kept := collect(t, s, "", 3); values(kept) != "e2 e3 e4" {
		t.Fatalf("after trimming to 3 the log = %q", values(kept))
	}
	if evs, err := s.Events(ctx, all[0].ID, 10, 0); err != nil || values(evs) != "e2 e3 e4" {
		t.Fatalf("after a trimmed id = %q, %v; want the kept ones", values(evs), err)
	}
	if err := s.TrimEvents(ctx, time.Now().Add(time.Second), 100); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Events(ctx, "", 10, 0); err != nil || len(evs) != 0 {
		t.Fatalf("after trimming by age the log = %q, %v; want empty", values(evs), err)
	}
	if err := s.IndexPut(ctx, "ix", "late", nil, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if evs := collect(t, s, all[4].ID, 1); values(evs) != "late" {
		t.Fatalf("after the trim a new event = %q", values(evs))
	}
}
