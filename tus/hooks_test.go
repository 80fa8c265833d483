package tus_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/hooks/hookstest"
	"github.com/ferryhq/ferry/httpapi"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/tus"
)

// hooked is a tus endpoint with API keys on (one key, "uploader", that
// writes every bucket) and hooks.pre_create calling rc.
type hooked struct {
	in  *instance
	key string // the key's secret
}

func serveHooked(t *testing.T, s testsvc.Stores, rc *hookstest.Receiver, onError string, timeout time.Duration) hooked {
	t.Helper()
	secret, key := auth.NewKey("uploader", []string{"*"}, auth.Write)
	path := filepath.Join(t.TempDir(), "keys.yaml")
	data, err := yaml.Marshal(map[string][]auth.Key{"keys": {key}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	in := serveWith(t, s, session.Config{}, tus.Config{PreCreate: rc.Hook(hooks.PreCreate, onError, timeout, prometheus.NewRegistry())},
		func(d *httpapi.Deps) { d.Keys = keys })
	return hooked{in: in, key: secret}
}

// post sends a tus creation as the key and returns the status, the body
// and the upload's URL.
func (h hooked) post(t *testing.T, body []byte, hdr ...string) (int, string, string) {
	t.Helper()
	var rd io.Reader
	hdr = append([]string{"Tus-Resumable", "1.0.0", "Authorization", "Bearer " + h.key}, hdr...)
	if body != nil {
		rd = bytes.NewReader(body)
		hdr = append(hdr, "Content-Type", "application/offset+octet-stream")
	}
	a := testhttp.Do(t, http.MethodPost, h.in.srv.URL+tus.BasePath, rd, hdr...)
	return a.Code, string(a.Body), a.Header.Get("Location")
}

// wantRefused checks tus's answer to a refused creation: 403 and
// "ERR_REFUSED_BY_HOOK: <message>", and that no upload exists.
func (h hooked) wantRefused(t *testing.T, what string, code int, body, want string) {
	t.Helper()
	if code != http.StatusForbidden || !strings.HasPrefix(body, "ERR_REFUSED_BY_HOOK: ") || !strings.Contains(body, want) {
		t.Errorf("%s: %d %q, want 403 ERR_REFUSED_BY_HOOK saying %q", what, code, body, want)
	}
	if live, _, err := h.in.sessions.List(context.Background(), "", 10); err != nil || len(live) != 0 {
		t.Errorf("%s: %d uploads exist (%v), want none", what, len(live), err)
	}
}

var photoMeta = metadata("bucket", "pics", "filename", "photo.jpg", "owner", "ann")

// A hook's 4xx refuses a creation, with or without its first bytes, with
// its message in tus's error text; nothing is created.
func TestPreCreateRefuses(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		const msg = "pics takes no more uploads today"
		rc := hookstest.New(t, hookstest.Refuse(http.StatusForbidden, msg))
		h := serveHooked(t, s, rc, config.HookAllow, time.Second)
		code, body, _ := h.post(t, nil, "Upload-Length", "11", "Upload-Metadata", photoMeta)
		h.wantRefused(t, "creation", code, body, msg)
		code, body, _ = h.post(t, []byte("hello world"), "Upload-Length", "11", "Upload-Metadata", photoMeta)
		h.wantRefused(t, "creation with upload", code, body, msg)
		if n := len(rc.Calls()); n != 2 {
			t.Errorf("the hook was called %d times, want 2", n)
		}
	})
}

// A hook's 2xx lets creations through, and it was told the upload's
// bucket, key (from the filename), size, MIME type, the key's name, the
// client's address and the Upload-Metadata; a deferred length is -1, and
// a concatenation's uploads say which part they play.
func TestPreCreateAllows(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		rc := hookstest.New(t, hookstest.Allow)
		h := serveHooked(t, s, rc, config.HookRefuse, time.Second)
		code, body, url := h.post(t, []byte("hello world"), "Upload-Length", "11", "Upload-Metadata", photoMeta)
		if code != http.StatusCreated {
			t.Fatalf("creation with upload: %d %q", code, body)
		}
		if in, err := h.in.sessions.Get(context.Background(), idOf(url)); err != nil || !in.Completed || in.Bucket != "pics" || in.Key != "photo.jpg" {
			t.Fatalf("the upload at %s: %+v, %v; want pics/photo.jpg completed", url, in, err)
		}
		if code, body, _ = h.post(t, nil, "Upload-Defer-Length", "1", "Upload-Metadata", metadata("key", "later.bin")); code != http.StatusCreated {
			t.Fatalf("deferred creation: %d %q", code, body)
		}
		code, body, partial := h.post(t, []byte("abc"), "Upload-Length", "3", "Upload-Concat", "partial")
		if code != http.StatusCreated {
			t.Fatalf("partial creation: %d %q", code, body)
		}
		if code, body, _ = h.post(t, nil, "Upload-Concat", "final;"+partial, "Upload-Metadata", metadata("key", "joined.bin")); code != http.StatusCreated {
			t.Fatalf("final creation: %d %q", code, body)
		}
		partialID := idOf(partial)
		want := []hooks.Create{
			{Bucket: "pics", Key: "photo.jpg", Size: 11, MimeType: "image/jpeg",
				Metadata: map[string]string{"bucket": "pics", "filename": "photo.jpg", "owner": "ann"}},
			{Bucket: "tus", Key: "later.bin", Size: -1, MimeType: "application/octet-stream", Metadata: map[string]string{"key": "later.bin"}},
			{Bucket: "tus", Key: partialID, Size: 3, MimeType: "application/octet-stream", Metadata: map[string]string{}, Concat: "partial"},
			{Bucket: "tus", Key: "joined.bin", Size: 3, MimeType: "application/octet-stream", Metadata: map[string]string{"key": "joined.bin"}, Concat: "final"},
		}
		for i := range want {
			want[i].Protocol, want[i].APIKey, want[i].ClientAddr = "tus", "uploader", "127.0.0.1"
		}
		rc.WantCreates(t, want)
	})
}

// A hook that fails (no answer within its timeout, or a 5xx) refuses
// creations with on_error refuse, saying so, and lets them through with
// on_error allow.
func TestPreCreateHookFails(t *testing.T) {
	for _, tc := range hookstest.Failures(300 * time.Millisecond) {
		t.Run(tc.Name, func(t *testing.T) {
			s := testsvc.Open(t, "embedded", testsvc.StoreOptions{})
			rc := hookstest.New(t, tc.Answer)
			h := serveHooked(t, s, rc, config.HookRefuse, 300*time.Millisecond)
			code, body, _ := h.post(t, nil, "Upload-Length", "11", "Upload-Metadata", photoMeta)
			h.wantRefused(t, "on_error refuse", code, body, tc.Want)

			h = serveHooked(t, s, rc, config.HookAllow, 300*time.Millisecond)
			if code, body, _ := h.post(t, nil, "Upload-Length", "11", "Upload-Metadata", photoMeta); code != http.StatusCreated {
				t.Errorf("on_error allow: %d %q", code, body)
			}
			if n := len(rc.Calls()); n != 2 {
				t.Errorf("the hook was called %d times, want 2", n)
			}
		})
	}
}
