package hooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/hooks/hookstest"
)

var create = hooks.Create{Protocol: "native", Bucket: "b", Key: "dir/f.bin", Size: 42, MimeType: "application/octet-stream",
	APIKey: "alice", ClientAddr: "192.0.2.7", Metadata: map[string]string{"checksum_algorithm": "sha256"}}

// calls reads ferry_hook_calls_total{hook,result} from reg.
func calls(t *testing.T, reg *prometheus.Registry, hook string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "ferry_hook_calls_total":
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["hook"] == hook {
					out[labels["result"]] = m.GetCounter().GetValue()
				}
			}
		case "ferry_hook_duration_seconds":
			for _, m := range mf.GetMetric() {
				out["observed"] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func wantCalls(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	got := calls(t, reg, hooks.PreCreate)
	for _, r := range []string{"allowed", "refused", "error", "canceled", "observed"} {
		if got[r] != want[r] {
			t.Errorf("ferry_hook_calls_total: %v, want %v", got, want)
			return
		}
	}
}

// A 2xx allows: the call is a signed Standard Webhooks message (the
// receiver verifies it) carrying the create, with a fresh webhook-id each
// time.
func TestAllowed(t *testing.T) {
	rc := hookstest.New(t, hookstest.Allow)
	reg := prometheus.NewRegistry()
	h := rc.Hook(hooks.PreCreate, config.HookRefuse, time.Second, reg)
	before := time.Now().Add(-time.Second)
	for range 2 {
		if err := h.PreCreate(context.Background(), create); err != nil {
			t.Fatalf("allowed create: %v", err)
		}
	}
	got := rc.Calls()
	if len(got) != 2 {
		t.Fatalf("%d calls, want 2", len(got))
	}
	c := got[0]
	if c.Type != "pre_create" || c.Timestamp.Before(before) || c.Timestamp.After(time.Now()) {
		t.Errorf("type %q timestamp %v", c.Type, c.Timestamp)
	}
	if ts, _ := strconv.ParseInt(c.Header.Get("webhook-timestamp"), 10, 64); ts != c.Timestamp.Unix() {
		t.Errorf("webhook-timestamp %s, body's timestamp %v", c.Header.Get("webhook-timestamp"), c.Timestamp)
	}
	id := c.Header.Get("webhook-id")
	if !strings.HasPrefix(id, "hook_") || id == got[1].Header.Get("webhook-id") {
		t.Errorf("webhook-ids %q and %q: want hook_… and unique", id, got[1].Header.Get("webhook-id"))
	}
	if !strings.HasPrefix(c.Header.Get("webhook-signature"), "v1,") {
		t.Errorf("webhook-signature %q", c.Header.Get("webhook-signature"))
	}
	if c.Create.Protocol != "native" || c.Create.Bucket != "b" || c.Create.Key != "dir/f.bin" || c.Create.Size != 42 ||
		c.Create.APIKey != "alice" || c.Create.ClientAddr != "192.0.2.7" || c.Create.Metadata["checksum_algorithm"] != "sha256" {
		t.Errorf("data %+v, want %+v", c.Create, create)
	}
	wantCalls(t, reg, map[string]float64{"allowed": 2, "observed": 2})
}

// A 4xx refuses with the body's message; without one, with a message that
// says the hook refused. Either way the error is REFUSED_BY_HOOK, 403.
func TestRefused(t *testing.T) {
	rc := hookstest.New(t, hookstest.Refuse(http.StatusForbidden, "bucket b is over its quota"))
	reg := prometheus.NewRegistry()
	h := rc.Hook(hooks.PreCreate, config.HookAllow, time.Second, reg) // on_error does not touch refusals
	err := h.PreCreate(context.Background(), create)
	var e *errcode.Error
	if !errors.As(err, &e) || e.Code != hooks.ErrRefused || e.Code.Status != 403 || e.Detail != "bucket b is over its quota" {
		t.Fatalf("err = %v, want REFUSED_BY_HOOK with the hook's message", err)
	}
	rc.Answer(hookstest.Status(http.StatusUnprocessableEntity))
	err = h.PreCreate(context.Background(), create)
	if !errors.As(err, &e) || e.Code != hooks.ErrRefused || e.Detail != "the pre-create hook refused the upload (HTTP 422)" {
		t.Fatalf("err = %v, want REFUSED_BY_HOOK naming the status", err)
	}
	rc.Answer(hookstest.Refuse(http.StatusBadRequest, strings.Repeat("é", 1000)))
	err = h.PreCreate(context.Background(), create)
	if !errors.As(err, &e) || len(e.Detail) > 1024 || len(e.Detail) < 1020 || !strings.HasPrefix(e.Detail, "éé") {
		t.Fatalf("a long message is passed on as %d bytes, want it cut at a character near 1024", len(e.Detail))
	}
	wantCalls(t, reg, map[string]float64{"refused": 3, "observed": 3})
}

// A hook that fails (5xx, 3xx, no answer in time, no connection) refuses
// with on_error refuse, saying how it failed but never where the hook is;
// with on_error allow the create goes on.
func TestFailures(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name   string
		answer hookstest.Answer
		url    string
		want   string
	}{
		{"5xx", hookstest.Status(http.StatusServiceUnavailable), "", "the pre-create hook answered 503, and its on_error is refuse, so the upload was not created"},
		{"3xx", func(w http.ResponseWriter, r *http.Request, _ hookstest.Call) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "", "answered 302"},
		{"timeout", hookstest.Hang, "", "the pre-create hook did not answer within 200ms"},
		{"connection", hookstest.Allow, gone.URL, "the pre-create hook could not be reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := hookstest.New(t, tc.answer)
			cfg := rc.Config(config.HookRefuse, 200*time.Millisecond)
			if tc.url != "" {
				cfg.URL = tc.url
			}
			reg := prometheus.NewRegistry()
			h, err := hooks.NewClient(reg, nil).Hook(hooks.PreCreate, cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = h.PreCreate(context.Background(), create)
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code != hooks.ErrRefused || !strings.Contains(e.Detail, tc.want) {
				t.Fatalf("on_error refuse: %v, want REFUSED_BY_HOOK saying %q", err, tc.want)
			}
			if strings.Contains(e.Detail, "127.0.0.1") || strings.Contains(e.Detail, "/hook") {
				t.Errorf("the detail shows the hook's address: %s", e.Detail)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("the call took %s with a 200ms timeout", time.Since(start))
			}
			cfg.OnError = config.HookAllow
			allow, err := hooks.NewClient(nil, nil).Hook(hooks.PreCreate, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := allow.PreCreate(context.Background(), create); err != nil {
				t.Fatalf("on_error allow: %v", err)
			}
			wantCalls(t, reg, map[string]float64{"error": 1, "observed": 1})
			if tc.name == "3xx" && len(rc.Calls()) != 2 {
				t.Errorf("%d calls: the redirect was followed", len(rc.Calls()))
			}
		})
	}
}

// A client that leaves during the call gets its context's error (499 in
// the access log), not a refusal, and the call is counted as canceled.
func TestClientLeaves(t *testing.T) {
	rc := hookstest.New(t, hookstest.Hang)
	reg := prometheus.NewRegistry()
	h := rc.Hook(hooks.PreCreate, config.HookAllow, 10*time.Second, reg)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := h.PreCreate(ctx, create)
	if !errors.Is(err, context.Canceled) || errcode.Is(err, hooks.ErrRefused) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	wantCalls(t, reg, map[string]float64{"canceled": 1, "observed": 1})
}

// No hook configured: nothing is called and everything is allowed.
func TestUnconfigured(t *testing.T) {
	h, err := hooks.NewClient(nil, nil).Hook(hooks.PreCreate, config.Default().Hooks.PreCreate)
	if err != nil || h != nil {
		t.Fatalf("hook %v, %v; want nil", h, err)
	}
	if err := h.PreCreate(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.NewClient(nil, nil).Hook(hooks.PreCreate, config.Hook{URL: "http://h/", Secret: "plain"}); err == nil {
		t.Fatal("a secret without whsec_ was taken")
	}
}
