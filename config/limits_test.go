package config

import (
	"io"
	"strings"
	"testing"
)

// The rate limits default to those of Llama Stack's Files API docs, load
// from YAML and the environment, and accept 0 (off) up to MaxPerMinute.
func TestLimitSettings(t *testing.T) {
	if l := Default().Limits; l != (Limits{UploadsPerMinute: 100, RetrievalsPerMinute: 1000, DeletionsPerMinute: 100}) {
		t.Fatalf("defaults = %+v, want 100, 1000 and 100 (Llama Stack's Files API docs)", l)
	}
	p := writeFile(t, "limits:\n  uploads_per_minute: 5\n  retrievals_per_minute: 0\n")
	cfg, err := Load([]string{"--config", p}, env("FERRY_LIMIT_DELETIONS_PER_MINUTE", "7", "FERRY_LIMIT_UPLOADS_PER_MINUTE", "6"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l != (Limits{UploadsPerMinute: 6, RetrievalsPerMinute: 0, DeletionsPerMinute: 7}) {
		t.Fatalf("limits = %+v, want env over YAML: 6, 0, 7", l)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(nil, env("FERRY_LIMIT_RETRIEVALS_PER_MINUTE", "lots"), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "FERRY_LIMIT_RETRIEVALS_PER_MINUTE") {
		t.Fatalf("a non-number: %v", err)
	}
	for _, bad := range []func(*Limits){
		func(l *Limits) { l.UploadsPerMinute = -1 },
		func(l *Limits) { l.RetrievalsPerMinute = MaxPerMinute + 1 },
		func(l *Limits) { l.DeletionsPerMinute = -5 },
	} {
		c := Default()
		bad(&c.Limits)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "limits.") {
			t.Errorf("%+v: err = %v, want it to name the limits setting", c.Limits, err)
		}
	}
}
