package config

import (
	"encoding/base64"
	"strings"
	"time"
)

// Hooks are HTTP endpoints ferryd asks, and obeys, before it goes on with
// an upload (package hooks; README's "Hooks").
type Hooks struct {
	// PreCreate is asked before every upload is created: a native session,
	// a tus upload, an OpenAI file or Upload.
	PreCreate Hook `yaml:"pre_create"` // FERRY_HOOK_PRE_CREATE_*
}

// Hook is one hook's endpoint. Its environment variables are
// FERRY_HOOK_<NAME>_URL, _SECRET, _TIMEOUT and _ON_ERROR.
type Hook struct {
	URL string `yaml:"url"` // empty: the hook is off
	// Secret signs each call the Standard Webhooks way: whsec_ and the
	// base64 of at least 24 random bytes.
	Secret  string        `yaml:"secret" secret:"true"`
	Timeout time.Duration `yaml:"timeout"`  // the whole call
	OnError string        `yaml:"on_error"` // refuse or allow: what a failed call (timeout, no connection, 5xx) means
}

// A hook's on_error values.
const (
	HookRefuse = "refuse"
	HookAllow  = "allow"
)

// MinHookSecret is the fewest bytes a hook secret may hold: the Standard
// Webhooks spec asks for 24 to 64.
const MinHookSecret = 24

// MaxHookTimeout bounds a hook's timeout: the client waits for the call.
const MaxHookTimeout = time.Minute

func defaultHooks() Hooks {
	return Hooks{PreCreate: Hook{Timeout: 5 * time.Second, OnError: HookRefuse}}
}

func (h Hooks) validate(bad complain) {
	h.PreCreate.validate("hooks.pre_create", "FERRY_HOOK_PRE_CREATE", bad)
}

func (h Hook) validate(key, env string, bad complain) {
	switch h.OnError {
	case HookRefuse, HookAllow:
	default:
		bad("%s.on_error %q: use refuse (a hook that fails refuses the upload) or allow (the upload goes on)", key, h.OnError)
	}
	if h.Timeout <= 0 || h.Timeout > MaxHookTimeout {
		bad("%s.timeout %s must be from 1ms to %s, for example 5s (the client waits for the hook)", key, h.Timeout, MaxHookTimeout)
	}
	if h.URL == "" {
		if h.Secret != "" {
			bad("%s.secret is set but %s.url is empty: set %s_URL to the hook's URL, or drop the secret", key, key, env)
		}
		return
	}
	if !httpURL(h.URL) {
		bad("%s.url %q must be an http:// or https:// URL with a host", key, h.URL)
	}
	const makeOne = "`echo whsec_$(openssl rand -base64 32)` makes one"
	raw, ok := strings.CutPrefix(h.Secret, "whsec_")
	decoded, err := base64.StdEncoding.DecodeString(raw)
	switch {
	case h.Secret == "":
		bad("%s.url is set but %s.secret is empty: set %s_SECRET to the secret the hook verifies signatures with (%s)", key, key, env, makeOne)
	case !ok:
		bad("%s.secret must be a Standard Webhooks secret: whsec_ and base64 (%s)", key, makeOne)
	case err != nil:
		bad("%s.secret: what follows whsec_ is not standard base64 (%v); %s", key, err, makeOne)
	case len(decoded) < MinHookSecret:
		bad("%s.secret holds %d bytes; it needs at least %d: %s", key, len(decoded), MinHookSecret, makeOne)
	}
}
