package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/client"
)

// ferry events prints every kept event, one a line, in either format, in
// pages of --limit, from after --after.
func TestEventsCommand(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		ctx := context.Background()
		src := filepath.Join(t.TempDir(), "a.txt")
		writeRandom(t, src, 1000)
		f.must(t, "upload", src, "b/dir/a.txt")
		f.must(t, "rm", "b/dir/a.txt")
		evs, err := client.New(f.url, nil).Events(ctx, "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, e := range evs.Data {
			types = append(types, e.Type)
		}
		if strings.Join(types, " ") != "session.created file.created file.deleted" {
			t.Fatalf("the server's events are %v", types)
		}
		var session struct{ ID string }
		if err := json.Unmarshal(evs.Data[0].Data, &session); err != nil || session.ID == "" {
			t.Fatalf("session.created data %s: %v", evs.Data[0].Data, err)
		}

		out := f.must(t, "events")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("ferry events printed %d lines, want 3:\n%s", len(lines), out)
		}
		summaries := []string{session.ID + " b/dir/a.txt", "b/dir/a.txt", "b/dir/a.txt"}
		for i, line := range lines {
			// 2026-12-05 17:21:11.123  file.created  <id>  b/dir/a.txt
			fields := strings.Fields(line)
			e := evs.Data[i]
			if len(fields) < 5 || fields[2] != e.Type || fields[3] != e.ID || strings.Join(fields[4:], " ") != summaries[i] ||
				fields[0]+" "+fields[1] != e.Timestamp.UTC().Format("2006-01-02 15:04:05.000") {
				t.Fatalf("line %d = %q, want %s %s %s %q", i, line, e.Timestamp, e.Type, e.ID, summaries[i])
			}
		}
		if paged := f.must(t, "events", "--limit", "1"); paged != out {
			t.Fatalf("--limit 1 printed\n%s\nwant\n%s", paged, out)
		}
		if after := f.must(t, "events", "--after", evs.Data[0].ID); after != strings.Join(lines[1:], "\n")+"\n" {
			t.Fatalf("--after the first printed\n%s", after)
		}

		jsonOut := f.must(t, "events", "--json")
		jsonLines := strings.Split(strings.TrimSuffix(jsonOut, "\n"), "\n")
		if len(jsonLines) != 3 {
			t.Fatalf("--json printed %d lines, want 3:\n%s", len(jsonLines), jsonOut)
		}
		for i, line := range jsonLines {
			var got map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("--json line %d %q: %v", i, line, err)
			}
			want, _ := json.Marshal(evs.Data[i])
			var wantMap map[string]json.RawMessage
			_ = json.Unmarshal(want, &wantMap)
			if len(got) != 4 || string(got["id"]) != string(wantMap["id"]) || string(got["type"]) != string(wantMap["type"]) ||
				string(got["timestamp"]) != string(wantMap["timestamp"]) || string(got["data"]) != string(wantMap["data"]) {
				t.Fatalf("--json line %d = %s, want %s", i, line, want)
			}
		}

		for _, args := range [][]string{{"events", "--limit", "0"}, {"events", "--limit", "1001"}, {"events", "extra"}} {
			if _, _, err := f.run(t, args...); !errors.Is(err, errUsage) {
				t.Errorf("ferry %q: %v, want a usage error", args, err)
			}
		}
		if _, _, err := f.run(t, "events", "--after", "not-an-id"); err == nil || !strings.Contains(err.Error(), "INVALID_REQUEST") {
			t.Errorf("--after not-an-id: %v, want INVALID_REQUEST", err)
		}
	})
}

// firstEvents tells when the first answer of GET /v1/events has come back.
type firstEvents struct {
	once sync.Once
	seen chan struct{}
}

func (w *firstEvents) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.URL.Path == "/v1/events" {
		w.once.Do(func() { close(w.seen) })
	}
	return resp, err
}

// ferry events --follow starts from now, prints events as they happen, and
// ends cleanly when interrupted.
func TestEventsFollow(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, f ferry, _ string) {
				c := client.New(f.url, nil)
				old, err := c.CreateSession(context.Background(), "b", "old.txt", "text/plain", 10)
				if err != nil {
					t.Fatal(err)
				}

				args := []string{"events", "--follow"}
				if format == "json" {
					args = append(args, "--json")
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				pr, pw := io.Pipe()
				watch := &firstEvents{seen: make(chan struct{})}
				env := map[string]string{"FERRY_SERVER": f.url}
				done := make(chan error, 1)
				go func() {
					done <- run(ctx, args, pw, io.Discard, func(k string) string { return env[k] }, &http.Client{Transport: watch})
					pw.Close()
				}()
				lines := make(chan string, 10)
				go func() {
					sc := bufio.NewScanner(pr)
					for sc.Scan() {
						lines <- sc.Text()
					}
					close(lines)
				}()
				select {
				case <-watch.seen:
				case err := <-done:
					t.Fatalf("ferry events --follow ended: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("ferry events --follow asked nothing in 10 s")
				}

				// Now, after its first answer, a small upload.
				data := []byte("hello, events")
				file, err := c.Upload(context.Background(), strings.NewReader(string(data)), int64(len(data)), "b", "new.txt", client.UploadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for len(got) < 2 {
					select {
					case line, ok := <-lines:
						if !ok {
							t.Fatalf("the output ended after %q: %v", got, <-done)
						}
						got = append(got, line)
					case <-time.After(15 * time.Second):
						t.Fatalf("no line in 15 s; so far %q", got)
					}
				}
				for i, want := range []string{"session.created", "file.created"} {
					line := got[i]
					if format == "json" {
						var e client.Event
						if err := json.Unmarshal([]byte(line), &e); err != nil || e.Type != want || e.ID == "" || !strings.Contains(string(e.Data), `"key":"new.txt"`) {
							t.Fatalf("line %d = %q (%v), want %s of b/new.txt as JSON", i, line, err, want)
						}
						continue
					}
					if fl := strings.Fields(line); len(fl) < 5 || fl[2] != want || !strings.HasSuffix(line, " b/new.txt") {
						t.Fatalf("line %d = %q, want %s of b/new.txt", i, line, want)
					}
				}
				if strings.Contains(strings.Join(got, "\n"), old.ID) || file.Key != "new.txt" {
					t.Fatalf("--follow printed an event from before it started: %q", got)
				}

				cancel() // Ctrl-C
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("ferry events --follow ended with %v on Ctrl-C, want nil (exit 0)", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("ferry events --follow went on 5 s after Ctrl-C")
				}
				if line, ok := <-lines; ok {
					t.Fatalf("a line after the two: %q", line)
				}
				// The server's side of the abandoned poll may sit out its wait (a
				// Redis XREAD BLOCK does not see the hang-up): an event ends it,
				// so the test server closes at once.
				if _, err := c.CreateSession(context.Background(), "b", "late.txt", "text/plain", 10); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
