package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/webhooktest"
)

// eventScope names what an event is about, from its data: a file's
// bucket/key, or a bucket.
func eventScope(data map[string]any) string {
	if name, ok := data["name"].(string); ok {
		return name
	}
	return fmt.Sprint(data["bucket"], "/", data["key"])
}

// pull reads the pull stream until it holds n events.
func pull(t *testing.T, base, after string, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		m := testhttp.Do(t, "GET", base+"/v1/events?wait=2&after="+after, nil).JSON(t)
		for _, e := range m["data"].([]any) {
			out = append(out, e.(map[string]any))
		}
		after = m["next"].(string)
	}
	return out
}

// One ferryd with a webhook, through a scenario of every kind of change:
// the receiver gets exactly the expected events, each once, signed, in
// order per file, and the pull stream holds the same events.
func TestEventsScenario(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		rc := webhooktest.New(t)
		roots := t.TempDir()
		dir := filepath.Join(roots, "existing")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		p := startFerryd(t, be.args, append(be.env, "FERRY_WEBHOOK_URL="+rc.URL, "FERRY_WEBHOOK_SECRET="+webhooktest.Secret,
			"FERRY_ALLOWED_ROOTS="+roots, "FERRY_SESSION_TTL=4s", "FERRY_SESSION_PURGE_INTERVAL=500ms")...)
		base := "http://" + p.addr
		time.Sleep(500 * time.Millisecond) // the sink takes its place in the log

		expiring := createSession(t, p, "b", "expired.bin", 10) // never finished
		uploadHTTP(t, p, "b", "native.bin", randomData(3*MiB+7), MiB)
		tusPost(t, base, randomData(1000), "filename "+b64("t.bin"))
		oai := sdk(p, "/v1/openai/v1")
		f, err := oai.Files.New(context.Background(), openai.FileNewParams{
			File: openai.File(bytes.NewReader([]byte(`{"a":1}`+"\n")), "x.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "old.txt"), []byte("there before"), 0o640); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "register", register(t, p, "reg", "file://"+dir), http.StatusCreated, "")
		if r := testhttp.Do(t, "PUT", base+"/v1/files/reg/old.txt", nil); r.Code/100 != 2 {
			t.Fatalf("register a file: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "PUT", base+"/v1/files/reg/old.txt", nil); r.Code/100 != 2 { // again: nothing new
			t.Fatalf("register a file again: %d %s", r.Code, r.Body)
		}
		wantCode(t, "unregister", testhttp.Do(t, "DELETE", base+"/v1/files/reg", nil), http.StatusOK, "")
		if r := testhttp.Do(t, "DELETE", base+"/v1/files/b/native.bin", nil); r.Code != http.StatusOK && r.Code != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Code, r.Body)
		}
		aborted := createSession(t, p, "b", "aborted.bin", 10)
		if r := testhttp.Do(t, "DELETE", base+"/v1/files/session:"+aborted["id"].(string), nil); r.Code/100 != 2 {
			t.Fatalf("abort: %d %s", r.Code, r.Body)
		}

		want := map[string][]string{
			"b/expired.bin": {"session.created", "session.expired"},
			"b/native.bin":  {"session.created", "file.created", "file.deleted"},
			"tus/t.bin":     {"session.created", "file.created"},
			"reg":           {"bucket.registered", "bucket.unregistered"},
			"reg/old.txt":   {"file.created"},
			"b/aborted.bin": {"session.created", "session.aborted"},
		}
		total := 0
		for _, types := range want {
			total += len(types)
		}
		openAIScope := ""
		got := map[string][]string{}
		var ids []string
		for _, r := range rc.WaitFor(total+2, 30*time.Second) { // +2: the OpenAI file's session and file
			if slices.Contains(ids, r.ID) {
				t.Fatalf("event %s delivered twice", r.ID)
			}
			ids = append(ids, r.ID)
			scope := eventScope(r.Data())
			if r.Data()["file_id"] == f.ID || strings.HasPrefix(scope, "openai/") {
				openAIScope = scope
			}
			got[scope] = append(got[scope], r.Type)
			if r.Type == "file.created" && scope == "b/native.bin" {
				if sums, _ := r.Data()["checksums"].(map[string]any); sums["crc32c"] == nil {
					t.Fatalf("file.created carries no checksums: %v", r.Data())
				}
			}
		}
		if openAIScope == "" || !slices.Equal(got[openAIScope], []string{"session.created", "file.created"}) {
			t.Fatalf("the OpenAI file's events: %v (scope %q), want its session and file", got, openAIScope)
		}
		delete(got, openAIScope)
		for scope, types := range want {
			if !slices.Equal(got[scope], types) {
				t.Errorf("%s: events %v, want %v", scope, got[scope], types)
			}
		}
		if len(got) != len(want) {
			t.Errorf("events about %d things, want %d: %v", len(got), len(want), got)
		}
		time.Sleep(300 * time.Millisecond)
		if n := len(rc.Got()); n != total+2 {
			t.Fatalf("%d events delivered, want %d", n, total+2)
		}
		_ = expiring

		// The pull stream has the same events (from the start of the log).
		pulled := pull(t, base, "", total+2)
		var pulledIDs []string
		for _, e := range pulled {
			pulledIDs = append(pulledIDs, e["id"].(string))
		}
		slices.Sort(ids)
		slices.Sort(pulledIDs)
		if !slices.Equal(ids, pulledIDs) {
			t.Fatalf("pull stream ids %v, webhook ids %v", pulledIDs, ids)
		}
	})
}

// kill -9 of the instance delivering to a webhook, mid-delivery: the
// other instance takes the sink over when its lease runs out and sends
// the events again, with the same ids, and then everything else once.
func TestWebhookKill9(t *testing.T) {
	be := redisS3Env(t)
	rc := webhooktest.New(t)
	env := append(be.env, "FERRY_WEBHOOK_URL="+rc.URL, "FERRY_WEBHOOK_SECRET="+webhooktest.Secret)
	a := startFerryd(t, be.args, env...)
	time.Sleep(500 * time.Millisecond) // a takes the sink's lease
	b := startFerryd(t, "--data-dir "+t.TempDir(), env...)
	stuck := make(chan struct{})
	rc.Hold(stuck)
	for i := range 3 {
		createSession(t, b, "b", fmt.Sprint("k", i), 10)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rc.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	inFlight := rc.Attempts()
	if len(inFlight) == 0 {
		t.Fatal("no delivery started")
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rc.Hold(nil) // a's requests end with its connections, unanswered
	createSession(t, b, "b", "after", 10)
	got := rc.WaitFor(4, 40*time.Second)
	time.Sleep(time.Second)
	got = rc.Got()
	ids := map[string]int{}
	for _, r := range got {
		ids[r.ID]++
	}
	if len(got) != 4 || len(ids) != 4 {
		t.Fatalf("acknowledged %d events, %d distinct: want the 4 sessions' events once each", len(got), len(ids))
	}
	for _, id := range inFlight {
		if ids[id] != 1 {
			t.Fatalf("event %s, in flight when its sender died, was acknowledged %d times; want it redelivered under the same id", id, ids[id])
		}
	}
	if rc.Requests() <= len(got) {
		t.Fatalf("%d requests for %d events: the killed instance's attempt should be among them", rc.Requests(), len(got))
	}
}
