package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
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
