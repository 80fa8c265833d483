package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRequestIDOnEveryLine(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithRequestID(context.Background(), "req-1")
	log.With("component", "x").InfoContext(ctx, "hello")
	log.DebugContext(ctx, "hidden")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if line["request_id"] != "req-1" || line["component"] != "x" || line["msg"] != "hello" {
		t.Fatalf("line = %v", line)
	}
	if _, err := New(&buf, "xml", "info"); err == nil {
		t.Fatal("bad format accepted")
	}
	if _, err := New(&buf, "text", "loud"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("bad level: %v", err)
	}
}

// A duration reads "30s" in JSON as in text, not 30000000000 nanoseconds.
func TestDurationsReadAsText(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := New(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.With("retry_in", time.Minute).Info("shutting down", "timeout", 30*time.Second,
			slog.Group("req", slog.Duration("duration", 1500*time.Microsecond)))
		for _, want := range map[string][]string{
			"json": {`"timeout":"30s"`, `"retry_in":"1m0s"`, `"duration":"1.5ms"`},
			"text": {"timeout=30s", "retry_in=1m0s", "req.duration=1.5ms"},
		}[format] {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("%s: %q lacks %s", format, buf.String(), want)
			}
		}
	}
}
