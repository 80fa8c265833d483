package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/ferryhq/ferry/hooks/hookstest"
	"github.com/ferryhq/ferry/internal/testhttp"
)

// refuseNamed is a policy hook: it refuses whatever is named "refuse…"
// (by key or filename) and allows the rest.
func refuseNamed(w http.ResponseWriter, r *http.Request, c hookstest.Call) {
	if strings.Contains(c.Create.Key, "refuse") || strings.HasPrefix(c.Create.Metadata["filename"], "refuse") {
		hookstest.Refuse(http.StatusForbidden, "nothing named refuse, please")(w, r, c)
		return
	}
	hookstest.Allow(w, r, c)
}

// A real ferryd (Redis + S3) configured through the FERRY_HOOK_PRE_CREATE_*
// variables asks the hook before every create: the native API, tus and
// the official OpenAI SDK each see its refusal in their own way, allowed
// uploads complete, and /metrics counts the calls.
func TestPreCreateHook(t *testing.T) {
	rc := hookstest.New(t, refuseNamed)
	be := redisS3Env(t)
	p := startFerryd(t, be.args, append(be.env, "FERRY_HOOK_PRE_CREATE_URL="+rc.URL, "FERRY_HOOK_PRE_CREATE_SECRET="+hookstest.Secret,
		"FERRY_HOOK_PRE_CREATE_TIMEOUT=2s", "FERRY_HOOK_PRE_CREATE_ON_ERROR=refuse")...)
	base := "http://" + p.addr

	// Native: allowed, it uploads; refused, the detail is the hook's.
	s := createSession(t, p, "hooked", "ok/a.txt", 5)
	if a := sendChunk(t, p, s["id"].(string), 0, []byte("hello")); a.Code != 200 || a.JSON(t)["bytes"] != float64(5) {
		t.Fatalf("the allowed upload: %d %s", a.Code, a.Body)
	}
	a := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(`{"bucket":"hooked","key":"refuse/b.txt","size":5}`))
	if body := a.JSON(t); a.Code != 403 || body["code"] != "REFUSED_BY_HOOK" || body["detail"] != "nothing named refuse, please" {
		t.Fatalf("the refused create: %d %s", a.Code, a.Body)
	}

	// tus.
	tusPost := func(key string) testhttp.Answer {
		return testhttp.Do(t, "POST", base+"/v1/tus/", nil, "Tus-Resumable", "1.0.0", "Upload-Length", "5",
			"Upload-Metadata", "bucket "+b64("hooked")+",key "+b64(key))
	}
	if a := tusPost("ok/t.bin"); a.Code != 201 {
		t.Fatalf("the allowed tus creation: %d %s", a.Code, a.Body)
	}
	if a := tusPost("refuse/t.bin"); a.Code != 403 || string(a.Body) != "ERR_REFUSED_BY_HOOK: nothing named refuse, please\n" {
		t.Fatalf("the refused tus creation: %d %q", a.Code, a.Body)
	}

	// The OpenAI SDK: a file and an Upload, each raised as a 403 with the message.
	c := sdk(p, "/v1/openai/v1")
	ctx := context.Background()
	if _, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader([]byte("x")), "fine.txt", "text/plain"),
		Purpose: openai.FilePurposeAssistants}); err != nil {
		t.Fatalf("the allowed SDK upload: %v", err)
	}
	_, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader([]byte("x")), "refuse.txt", "text/plain"),
		Purpose: openai.FilePurposeAssistants})
	wantSDKRefusal(t, "Files.New", err)
	_, err = c.Uploads.New(ctx, openai.UploadNewParams{Filename: "refuse.jsonl", Purpose: openai.FilePurposeBatch, Bytes: 10, MimeType: "application/jsonl"})
	wantSDKRefusal(t, "Uploads.New", err)

	calls := rc.Calls()
	if len(calls) != 7 {
		t.Fatalf("the hook was called %d times, want 7", len(calls))
	}
	for i, want := range []string{"native", "native", "tus", "tus", "openai", "openai", "openai"} {
		if c := calls[i].Create; c.Protocol != want || c.ClientAddr != "127.0.0.1" || c.APIKey != "" {
			t.Errorf("call %d: %+v, want protocol %s from 127.0.0.1 without a key", i, c, want)
		}
	}
	metrics := string(testhttp.Do(t, "GET", base+"/metrics", nil).Body)
	for _, want := range []string{`ferry_hook_calls_total{hook="pre_create",result="allowed"} 3`, `ferry_hook_calls_total{hook="pre_create",result="refused"} 4`,
		`ferry_hook_calls_total{hook="pre_create",result="error"} 0`, `ferry_hook_duration_seconds_count{hook="pre_create"} 7`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func wantSDKRefusal(t *testing.T, what string, err error) {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Code != "refused_by_hook" || apiErr.Message != "nothing named refuse, please" {
		t.Errorf("%s: %v, want the SDK's 403 with code refused_by_hook and the hook's message", what, err)
	}
}

// ferryd refuses to start on a hook without its secret, and says which
// variable to set.
func TestPreCreateHookNeedsSecret(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cleanEnv("FERRYD_TEST_MAIN=1", "FERRYD_TEST_ARGS=--addr 127.0.0.1:0", "FERRY_HOOK_PRE_CREATE_URL=http://127.0.0.1:9/hook")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FERRY_HOOK_PRE_CREATE_SECRET") {
		t.Fatalf("ferryd with a hook URL but no secret: %v\n%s", err, out)
	}
}
