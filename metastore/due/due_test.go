package due_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
)

// The member format is persistent: docs/storage-layout.md writes it down.
func TestMember(t *testing.T) {
	at := time.UnixMilli(1767225600123)
	if got := due.Member(at, "abc"); got != "0001767225600123/abc" {
		t.Fatalf("Member = %q", got)
	}
	if got := due.ID("0001767225600123/upload_1/x"); got != "upload_1/x" {
		t.Fatalf("ID = %q", got)
	}
	// Byte order is time order, across a change in the number of digits.
	times := []time.Time{time.UnixMilli(999), time.UnixMilli(1000), time.UnixMilli(99999), time.UnixMilli(1767225600123)}
	var members []string
	for _, at := range times {
		members = append(members, due.Member(at, "z"))
	}
	if !sort.StringsAreSorted(members) {
		t.Fatalf("members out of time order: %q", members)
	}
	// Until takes everything due in now's millisecond, and nothing after.
	now := time.UnixMilli(5000).Add(700 * time.Microsecond)
	q := due.Until(now, 7)
	if q.Limit != 7 || !(due.Member(time.UnixMilli(5000), "~") < q.Before) || !(q.Before <= due.Member(time.UnixMilli(5001), "")) {
		t.Fatalf("Until(%v) = %+v", now, q)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute,
		6: 32 * time.Minute, 7: time.Hour, 8: time.Hour, 1000: time.Hour} {
		if got := due.Backoff(n); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

const index = "test/due"

// list is a due list on a real store, with a clock the test moves and a
// Handle that does what each entry's id asks.
type list struct {
	t       *testing.T
	store   metastore.Store
	now     time.Time
	p       *due.Purger
	handled map[string]int // id → calls of Handle
}

var (
	errBusy = errors.New("busy")
	errDown = errors.New("storage unavailable")
)

func newList(t *testing.T, store metastore.Store) *list {
	l := &list{t: t, store: store, now: time.UnixMilli(1767225600000), handled: map[string]int{}}
	l.p = &due.Purger{Store: store, Index: index, Now: func() time.Time { return l.now },
		Log: slog.New(slog.DiscardHandler), Failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
		Busy: func(err error) bool { return errors.Is(err, errBusy) }, Handle: l.handle}
	return l
}

// handle: "ok…" is done and deleted, "busy…" and "fail…" fail as named,
// "later…" refiles itself an hour on, as a session that is still alive.
func (l *list) handle(ctx context.Context, e metastore.Entry) (bool, error) {
	id := due.ID(e.Member)
	l.handled[id]++
	switch {
	case strings.HasPrefix(id, "busy"):
		return false, errBusy
	case strings.HasPrefix(id, "fail"):
		return false, errDown
	case strings.HasPrefix(id, "later"):
		return false, l.p.Refile(ctx, e.Member, due.Member(l.now.Add(time.Hour), id), e.Value)
	}
	return true, l.store.IndexDelete(ctx, index, e.Member)
}

func (l *list) file(at time.Time, id string, value []byte) {
	l.t.Helper()
	if err := l.store.IndexPut(context.Background(), index, due.Member(at, id), value); err != nil {
		l.t.Fatal(err)
	}
}

func (l *list) run(wantDone int) {
	l.t.Helper()
	n, err := l.p.Run(context.Background())
	if err != nil || n != wantDone {
		l.t.Fatalf("Run = %d, %v; want %d done", n, err, wantDone)
	}
}

func (l *list) entries() map[string]metastore.Entry {
	l.t.Helper()
	out := map[string]metastore.Entry{}
	err := metastore.EachEntry(context.Background(), l.store, index, func(e metastore.Entry) error {
		out[due.ID(e.Member)] = e
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *list) failures() float64 { return testutil.ToFloat64(l.p.Failures) }

// One run visits every due entry once, across pages, in spite of failing
// and busy ones; failures wait out a doubling backoff with the owner's
// fields kept; what is not due yet is not touched.
func TestPurgerRun(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{Cluster: true}, func(t *testing.T, s testsvc.Stores) {
		l := newList(t, s.Meta)
		start := l.now
		// 240 due entries, interleaved, so failures sit on every page.
		for i := range 240 {
			at := start.Add(-time.Duration(240-i) * time.Second)
			switch i % 4 {
			case 0:
				l.file(at, fmt.Sprintf("ok%03d", i), nil)
			case 1:
				l.file(at, fmt.Sprintf("fail%03d", i), []byte(fmt.Sprintf(`{"ref":"r%03d"}`, i)))
			case 2:
				l.file(at, fmt.Sprintf("busy%03d", i), []byte(`{"ref":"b"}`))
			case 3:
				l.file(at, fmt.Sprintf("later%03d", i), nil)
			}
		}
		l.file(start, "ok-now", nil)                          // due in this very millisecond
		l.file(start.Add(time.Millisecond), "ok-future", nil) // not yet

		l.run(61)
		for id, n := range l.handled {
			if n != 1 {
				t.Fatalf("%s handled %d times in one run", id, n)
			}
		}
		if len(l.handled) != 241 || l.handled["ok-future"] != 0 {
			t.Fatalf("handled %d entries (ok-future %d), want the 241 due", len(l.handled), l.handled["ok-future"])
		}
		if got := l.failures(); got != 60 {
			t.Fatalf("failures = %v, want 60", got)
		}
		checkFailed := func(attempts int, at time.Time) {
			t.Helper()
			n := 0
			for id, e := range l.entries() {
				if !strings.HasPrefix(id, "fail") {
					continue
				}
				n++
				var v struct {
					due.Retry
					Ref string `json:"ref"`
				}
				if err := json.Unmarshal(e.Value, &v); err != nil {
					t.Fatal(err)
				}
				if e.Member != due.Member(at, id) || v.Attempts != attempts || v.Ref != "r"+strings.TrimPrefix(id, "fail") {
					t.Fatalf("%s: %s %s, want attempts %d at %s with its ref kept", id, e.Member, e.Value, attempts, due.Member(at, id))
				}
			}
			if n != 60 {
				t.Fatalf("%d failed entries listed, want 60", n)
			}
		}
		checkFailed(1, start.Add(time.Minute))
		before := l.entries()
		for id, e := range before {
			switch {
			case strings.HasPrefix(id, "ok") && id != "ok-future":
				t.Fatalf("%s is done but still listed", id)
			case strings.HasPrefix(id, "busy") && string(e.Value) != `{"ref":"b"}`:
				t.Fatalf("busy %s was changed: %s", id, e.Value)
			}
		}

		// Within the backoff only the busy ones and ok-future are due.
		clear(l.handled)
		l.now = start.Add(30 * time.Second)
		l.run(1)
		if len(l.handled) != 61 || l.handled["ok-future"] != 1 || l.failures() != 60 {
			t.Fatalf("run within the backoff handled %d, failures %v; want the 60 busy and ok-future, 60", len(l.handled), l.failures())
		}
		// Past it, failing again: the wait doubles.
		l.now = start.Add(61 * time.Second)
		l.run(0)
		if l.failures() != 120 {
			t.Fatalf("failures = %v, want 120", l.failures())
		}
		checkFailed(2, l.now.Add(2*time.Minute))
	})
}

// A value that is empty or not an object gets a fresh count.
func TestPurgerRetryValue(t *testing.T) {
	l := newList(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}).Meta)
	l.file(l.now, "fail-empty", nil)
	l.file(l.now, "fail-array", []byte(`[1]`))
	l.file(l.now, "fail-counted", []byte(`{"attempts":6,"ref":"x"}`))
	l.run(0)
	want := map[string]string{
		"fail-empty":   `{"attempts":1}`,
		"fail-array":   `{"attempts":1}`,
		"fail-counted": `{"attempts":7,"ref":"x"}`,
	}
	for id, e := range l.entries() {
		wait := time.Minute
		if id == "fail-counted" {
			wait = time.Hour
		}
		if string(e.Value) != want[id] || e.Member != due.Member(l.now.Add(wait), id) {
			t.Errorf("%s refiled as %s %s, want %s in %v", id, e.Member, e.Value, want[id], wait)
		}
	}
}

// Shutting down stops the run at once: the entry at hand stays due as it
// was, and nothing counts as failed.
func TestPurgerStopsOnShutdown(t *testing.T) {
	l := newList(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}).Meta)
	for i := range 5 {
		l.file(l.now.Add(-time.Duration(5-i)*time.Second), fmt.Sprintf("ok%d", i), nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	handle := l.p.Handle
	l.p.Handle = func(hctx context.Context, e metastore.Entry) (bool, error) {
		if due.ID(e.Member) == "ok2" {
			cancel()
			return false, hctx.Err()
		}
		return handle(hctx, e)
	}
	n, err := l.p.Run(ctx)
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("Run = %d, %v; want 2 and context.Canceled", n, err)
	}
	left := l.entries()
	if len(left) != 3 || left["ok2"].Member != due.Member(l.now.Add(-3*time.Second), "ok2") || l.failures() != 0 {
		t.Fatalf("after shutdown: %v listed, failures %v", left, l.failures())
	}
}

// brokenList is a store whose index cannot be read.
type brokenList struct{ metastore.Store }

func (brokenList) IndexList(context.Context, string, metastore.Query) ([]metastore.Entry, bool, error) {
	return nil, false, errDown
}

// A list that cannot be read fails the run and counts once, except at
// shutdown.
func TestPurgerCountsUnreadableList(t *testing.T) {
	l := newList(t, brokenList{testsvc.Open(t, "embedded", testsvc.StoreOptions{}).Meta})
	if _, err := l.p.Run(context.Background()); !errors.Is(err, errDown) || l.failures() != 1 {
		t.Fatalf("Run = %v, failures %v; want the store's error, 1", err, l.failures())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.p.Run(ctx); err == nil || l.failures() != 1 {
		t.Fatalf("Run at shutdown = %v, failures %v; want an error, still 1", err, l.failures())
	}
}
