package httpapi

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/metastore"
)

// The pull stream: paging by next, a long poll woken by a change, bad
// parameters refused with what to fix, and a shutdown ending a long poll
// at once.
func TestEventStream(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		d := apiDeps(t, store, blobs)
		stopping, stop := context.WithCancel(context.Background())
		d.Stopping = stopping
		srv := httptest.NewServer(New(d))
		t.Cleanup(srv.Close)
		base := srv.URL

		page := func(query string) (types []string, next string) {
			t.Helper()
			a := testhttp.Do(t, "GET", base+"/v1/events?"+query, nil)
			if a.Code != 200 {
				t.Fatalf("events?%s: %d %s", query, a.Code, a.Body)
			}
			m := a.JSON(t)
			for _, e := range m["data"].([]any) {
				types = append(types, e.(map[string]any)["type"].(string))
			}
			return types, m["next"].(string)
		}
		newSession(t, base, "b", "one", 10)
		newSession(t, base, "b", "two", 10)
		first, next := page("limit=1")
		if strings.Join(first, " ") != "session.created" {
			t.Fatalf("the first page: %v", first)
		}
		rest, next := page("after=" + next)
		if strings.Join(rest, " ") != "session.created" {
			t.Fatalf("the second page: %v", rest)
		}
		if none, same := page("after=" + next); len(none) != 0 || same != next {
			t.Fatalf("at the end: %v, next %q (want none, and %q again)", none, same, next)
		}

		go func() { time.Sleep(300 * time.Millisecond); newSession(t, base, "b", "three", 10) }()
		start := time.Now()
		woken, _ := page("after=now&wait=20")
		if len(woken) != 1 || time.Since(start) > 10*time.Second {
			t.Fatalf("a long poll got %v after %v; want the session created while it waited", woken, time.Since(start))
		}

		for _, bad := range []string{"wait=61", "wait=-1", "wait=x", "limit=0", "after=nope"} {
			a := testhttp.Do(t, "GET", base+"/v1/events?"+bad, nil)
			if a.Code != 400 || a.JSON(t)["code"] != "INVALID_REQUEST" {
				t.Errorf("events?%s: %d %s, want 400 INVALID_REQUEST", bad, a.Code, a.Body)
			}
		}
		if a := testhttp.Do(t, "GET", base+"/v1/events/webhooks/nope/dead", nil); a.Code != 404 || a.JSON(t)["code"] != "WEBHOOK_NOT_FOUND" {
			t.Errorf("dead letters of an unknown webhook: %d %s", a.Code, a.Body)
		}

		go func() { time.Sleep(300 * time.Millisecond); stop() }()
		start = time.Now()
		if none, _ := page("after=now&wait=30"); len(none) != 0 || time.Since(start) > 10*time.Second {
			t.Fatalf("a long poll during shutdown: %v after %v; want an empty answer at once", none, time.Since(start))
		}
	})
}
