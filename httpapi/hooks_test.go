package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/hooks/hookstest"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
)

// hooked serves the whole API over store and blobs with testKeys in force
// and hooks.pre_create calling rc; callers act as the key "wall".
type hooked struct {
	srv   *httptest.Server
	store metastore.Store
	wall  caller
	admin caller
}

func serveHooked(t *testing.T, store metastore.Store, blobs bucket.Backend, rc *hookstest.Receiver, onError string, timeout time.Duration) hooked {
	t.Helper()
	keys, secrets := testKeyring(t)
	d := apiDeps(t, store, blobs)
	d.Keys = keys
	d.PreCreate = rc.Hook(hooks.PreCreate, onError, timeout, prometheus.NewRegistry())
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	return hooked{srv: srv, store: d.Store, wall: caller{t, srv.URL, secrets["wall"]}, admin: caller{t, srv.URL, secrets["admin"]}}
}

// The three creates of the native and OpenAI APIs, as the key "wall".
func (h hooked) nativeCreate() testhttp.Answer {
	return h.wall.do("POST", "/v1/files", []byte(`{"bucket":"b","key":"dir/notes.txt","size":10,"checksum_algorithm":"sha256"}`))
}

func (h hooked) openAIFile(t *testing.T) testhttp.Answer {
	body, ctype := multipartBody(t, "file", "report.csv", []byte("a,b\n1,2\n"), "purpose", "assistants", "expires_after[anchor]", "created_at",
		"expires_after[seconds]", "7200")
	return h.wall.do("POST", "/v1/openai/v1/files", body.Bytes(), "Content-Type", ctype)
}

func (h hooked) openAIUpload() testhttp.Answer {
	return h.wall.do("POST", "/v1/openai/v1/uploads",
		[]byte(`{"filename":"big.jsonl","purpose":"batch","bytes":123456,"mime_type":"application/jsonl"}`), "Content-Type", "application/json")
}

// nothingCreated checks that no session, OpenAI file or Upload exists (an
// OpenAI file's bytes were staged in a session, which must be gone).
func (h hooked) nothingCreated(t *testing.T) {
	t.Helper()
	if a := h.admin.do("GET", "/v1/sessions", nil); a.Code != 200 || len(a.JSON(t)["data"].([]any)) != 0 {
		t.Errorf("sessions after the refusals: %d %s", a.Code, a.Body)
	}
	// Every Upload has an entry in the adapter's expiry index from its create.
	if n, err := h.store.IndexLen(context.Background(), "openai/expiry"); err != nil || n != 0 {
		t.Errorf("openai/expiry holds %d entries (%v): an Upload or file was created", n, err)
	}
	if a := h.admin.do("GET", "/v1/files/b/dir/notes.txt", nil); a.Code != 404 {
		t.Errorf("the refused native file: %d %s", a.Code, a.Body)
	}
	if a := h.wall.do("GET", "/v1/openai/v1/files", nil); a.Code != 200 || len(a.JSON(t)["data"].([]any)) != 0 {
		t.Errorf("OpenAI files after the refusals: %d %s", a.Code, a.Body)
	}
}

// wantRefused checks a 403 REFUSED_BY_HOOK in the route's envelope whose
// message contains want.
func wantRefused(t *testing.T, what string, a testhttp.Answer, openAI bool, want string) {
	t.Helper()
	if a.Code != http.StatusForbidden {
		t.Fatalf("%s: %d %s, want 403", what, a.Code, a.Body)
	}
	body := a.JSON(t)
	if openAI {
		e, _ := body["error"].(map[string]any)
		if e["code"] != "refused_by_hook" || e["type"] != "permission_error" || !strings.Contains(e["message"].(string), want) {
			t.Errorf("%s: %s, want OpenAI's envelope with code refused_by_hook and a message saying %q", what, a.Body, want)
		}
		return
	}
	if body["code"] != "REFUSED_BY_HOOK" || body["status"] != float64(403) || body["title"] != "Refused By Hook" ||
		!strings.Contains(body["detail"].(string), want) {
		t.Errorf("%s: %s, want the native envelope with code REFUSED_BY_HOOK and a detail saying %q", what, a.Body, want)
	}
}

// A hook's 4xx refuses every create with its message, in each API's own
// envelope, and nothing is created; the hook was asked once per create.
func TestPreCreateRefuses(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		const msg = "bucket b is closed for the audit"
		rc := hookstest.New(t, hookstest.Refuse(http.StatusForbidden, msg))
		h := serveHooked(t, store, blobs, rc, config.HookAllow, time.Second) // on_error does not touch refusals
		wantRefused(t, "native create", h.nativeCreate(), false, msg)
		wantRefused(t, "OpenAI file", h.openAIFile(t), true, msg)
		wantRefused(t, "OpenAI Upload", h.openAIUpload(), true, msg)
		h.nothingCreated(t)
		if n := len(rc.Calls()); n != 3 {
			t.Errorf("the hook was called %d times, want once per create", n)
		}
		// A create that is invalid anyway is refused before the hook is asked.
		if a := h.wall.do("POST", "/v1/files", []byte(`{"bucket":"b","key":"../x","size":1}`)); a.Code != 400 || len(rc.Calls()) != 3 {
			t.Errorf("an invalid key: %d %s after %d calls, want 400 without a call", a.Code, a.Body, len(rc.Calls()))
		}
	})
}

// A hook's 2xx lets every create through, and the hook was told what each
// would create: protocol, bucket, key, size, MIME type, the API key's
// name, the client's address and the protocol's metadata.
func TestPreCreateAllows(t *testing.T) {
	eachStore(t, func(t *testing.T, store metastore.Store, blobs bucket.Backend) {
		rc := hookstest.New(t, hookstest.Allow)
		h := serveHooked(t, store, blobs, rc, config.HookRefuse, time.Second)
		if a := h.nativeCreate(); a.Code != 201 {
			t.Fatalf("native create: %d %s", a.Code, a.Body)
		}
		file := h.openAIFile(t)
		if file.Code != 200 {
			t.Fatalf("OpenAI file: %d %s", file.Code, file.Body)
		}
		up := h.openAIUpload()
		if up.Code != 200 {
			t.Fatalf("OpenAI Upload: %d %s", up.Code, up.Body)
		}
		fileID := file.JSON(t)["id"].(string)
		want := []hooks.Create{
			{Protocol: "native", Bucket: "b", Key: "dir/notes.txt", Size: 10, MimeType: "text/plain; charset=utf-8",
				Metadata: map[string]string{"checksum_algorithm": "sha256"}},
			{Protocol: "openai", Bucket: "openai", Key: fileID + "/report.csv", Size: 8, MimeType: "text/csv; charset=utf-8",
				Metadata: map[string]string{"purpose": "assistants", "filename": "report.csv", "expires_after": "7200"}},
			{Protocol: "openai", Bucket: "openai", Key: "", Size: 123456, MimeType: "application/jsonl",
				Metadata: map[string]string{"purpose": "batch", "filename": "big.jsonl"}},
		}
		for i := range want {
			want[i].APIKey, want[i].ClientAddr = "wall", "127.0.0.1"
		}
		rc.WantCreates(t, want)
	})
}

// A hook that fails (no answer within its timeout, or a 5xx) refuses the
// creates with on_error refuse, saying so, and lets them through with
// on_error allow.
func TestPreCreateHookFails(t *testing.T) {
	for _, tc := range hookstest.Failures(300 * time.Millisecond) {
		t.Run(tc.Name, func(t *testing.T) {
			store, blobs := testsvc.Embedded(t)
			rc := hookstest.New(t, tc.Answer)
			h := serveHooked(t, store, blobs, rc, config.HookRefuse, 300*time.Millisecond)
			wantRefused(t, "native create", h.nativeCreate(), false, tc.Want)
			wantRefused(t, "OpenAI file", h.openAIFile(t), true, tc.Want)
			wantRefused(t, "OpenAI Upload", h.openAIUpload(), true, tc.Want)
			h.nothingCreated(t)

			h = serveHooked(t, store, blobs, rc, config.HookAllow, 300*time.Millisecond)
			if a := h.nativeCreate(); a.Code != 201 {
				t.Errorf("native create with on_error allow: %d %s", a.Code, a.Body)
			}
			if a := h.openAIFile(t); a.Code != 200 {
				t.Errorf("OpenAI file with on_error allow: %d %s", a.Code, a.Body)
			}
			if a := h.openAIUpload(); a.Code != 200 {
				t.Errorf("OpenAI Upload with on_error allow: %d %s", a.Code, a.Body)
			}
			if n := len(rc.Calls()); n != 6 {
				t.Errorf("the hook was called %d times, want 6", n)
			}
		})
	}
}
