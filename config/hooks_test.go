package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

// A valid hook secret: whsec_ and 32 bytes of base64.
const testHookSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// hooks.pre_create loads from YAML and the environment, defaults to 5s and
// refuse, and Validate names what to fix.
func TestHookSettings(t *testing.T) {
	if h := Default().Hooks.PreCreate; h != (Hook{Timeout: 5 * time.Second, OnError: HookRefuse}) {
		t.Fatalf("default = %+v, want off, 5s, refuse", h)
	}
	p := writeFile(t, "hooks:\n  pre_create: {url: http://127.0.0.1:9/hook, secret: "+testHookSecret+", on_error: allow}\n")
	cfg, err := Load([]string{"--config", p}, env("FERRY_HOOK_PRE_CREATE_TIMEOUT", "250ms"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Hook{URL: "http://127.0.0.1:9/hook", Secret: testHookSecret, Timeout: 250 * time.Millisecond, OnError: HookAllow}
	if cfg.Hooks.PreCreate != want {
		t.Fatalf("pre_create = %+v, want %+v", cfg.Hooks.PreCreate, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(nil, env("FERRY_HOOK_PRE_CREATE_URL", "https://hooks.example/ferry", "FERRY_HOOK_PRE_CREATE_SECRET", testHookSecret,
		"FERRY_HOOK_PRE_CREATE_ON_ERROR", "refuse"), io.Discard)
	if err != nil || cfg.Validate() != nil || cfg.Hooks.PreCreate.URL != "https://hooks.example/ferry" {
		t.Fatalf("from the environment: %+v, %v", cfg.Hooks.PreCreate, err)
	}

	for _, tc := range []struct {
		name string
		hook Hook
		want string
	}{
		{"ftp url", Hook{URL: "ftp://h/x", Secret: testHookSecret}, `hooks.pre_create.url "ftp://h/x" must be an http:// or https:// URL`},
		{"no host", Hook{URL: "http:///x", Secret: testHookSecret}, "must be an http:// or https:// URL"},
		{"no secret", Hook{URL: "http://h/x"}, "FERRY_HOOK_PRE_CREATE_SECRET"},
		{"no prefix", Hook{URL: "http://h/x", Secret: strings.TrimPrefix(testHookSecret, "whsec_")}, "must be a Standard Webhooks secret: whsec_"},
		{"not base64", Hook{URL: "http://h/x", Secret: "whsec_not*base64"}, "not standard base64"},
		{"short", Hook{URL: "http://h/x", Secret: "whsec_c2hvcnQ="}, "holds 5 bytes; it needs at least 24"},
		{"secret without url", Hook{Secret: testHookSecret}, "hooks.pre_create.url is empty"},
		{"on_error", Hook{URL: "http://h/x", Secret: testHookSecret, OnError: "retry"}, `hooks.pre_create.on_error "retry": use refuse`},
		{"zero timeout", Hook{URL: "http://h/x", Secret: testHookSecret, Timeout: -1}, "hooks.pre_create.timeout -1ns must be from 1ms to 1m"},
		{"long timeout", Hook{URL: "http://h/x", Secret: testHookSecret, Timeout: 2 * time.Minute}, "hooks.pre_create.timeout 2m0s"},
	} {
		c := Default()
		def := c.Hooks.PreCreate
		h := tc.hook
		if h.Timeout == 0 {
			h.Timeout = def.Timeout
		}
		if h.OnError == "" {
			h.OnError = def.OnError
		}
		c.Hooks.PreCreate = h
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	if _, err := Load(nil, env("FERRY_HOOK_PRE_CREATE_TIMEOUT", "soon"), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "FERRY_HOOK_PRE_CREATE_TIMEOUT") {
		t.Fatalf("a bad timeout: %v", err)
	}
}
