package errcode

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestFromKeepsRegisteredAndHidesOthers(t *testing.T) {
	e := ErrConflict.New("offset is %d", 7).With("offset", int64(7))
	wrapped := fmt.Errorf("append: %w", e)
	if got := From(wrapped); got.Code != ErrConflict || got.Fields["offset"] != int64(7) {
		t.Fatalf("From(wrapped) = %+v", got)
	}
	if !Is(wrapped, ErrConflict) || Is(wrapped, ErrNotFound) {
		t.Fatal("Is does not see through wrapping")
	}
	if !errors.Is(wrapped, ErrConflict.New("")) {
		t.Fatal("errors.Is by code failed")
	}

	secret := errors.New("dial tcp 10.0.0.1:6379: connection refused")
	got := From(secret)
	if got.Code != ErrInternal || !errors.Is(got, secret) {
		t.Fatalf("From(plain) = %+v, want INTERNAL wrapping the cause", got)
	}
	body, _ := json.Marshal(got.Native())
	if strings.Contains(string(body), "10.0.0.1") {
		t.Fatalf("internal cause leaked to the client: %s", body)
	}
}

func TestRenderings(t *testing.T) {
	e := ErrInvalidRequest.New("size must not be negative").With("offset", 3)
	var native map[string]any
	b, _ := json.Marshal(e.Native())
	_ = json.Unmarshal(b, &native)
	if native["status"] != float64(400) || native["title"] != "Bad Request" ||
		native["detail"] != "size must not be negative" || native["offset"] != float64(3) {
		t.Fatalf("native = %s", b)
	}
	b, _ = json.Marshal(ErrNotFound.New("no such file").OpenAI())
	want := `{"error":{"message":"no such file","type":"invalid_request_error","code":"not_found","param":null}}`
	if string(b) != want {
		t.Fatalf("openai = %s, want %s", b, want)
	}
	// OpenAI's lower-case codes: the OPENAI_ prefix goes, and a code may
	// name OpenAI's own.
	fileGone := Register("OPENAI_TEST_FILE_NOT_FOUND", "File Not Found", 404)
	if got := *fileGone.New("x").OpenAI().Error.Code; got != "test_file_not_found" {
		t.Fatalf("OpenAI code %q", got)
	}
	limited := Register("TEST_RATE_LIMITED", "Too Many Requests", 429, OpenAICode("rate_limit_exceeded"))
	if body := limited.New("slow down").OpenAI().Error; *body.Code != "rate_limit_exceeded" || body.Type != "requests" {
		t.Fatalf("OpenAI error %+v", body)
	}
	if limited.New("x").Native()["code"] != "TEST_RATE_LIMITED" {
		t.Fatal("the native envelope keeps the upper-case code")
	}
	b, _ = json.Marshal(From(errors.New("x")).OpenAI())
	if !strings.Contains(string(b), `"type":"server_error"`) {
		t.Fatalf("internal openai = %s", b)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate registration accepted")
		}
	}()
	Register("INTERNAL", "again", 500)
}

func TestAllListsEveryCodeSorted(t *testing.T) {
	all := All()
	if !slices.IsSortedFunc(all, func(a, b Code) int { return strings.Compare(a.Value, b.Value) }) {
		t.Fatal("All is not sorted by value")
	}
	for _, want := range []Code{ErrInternal, ErrClientClosed, ErrMethodNotAllowed} {
		if !slices.Contains(all, want) {
			t.Errorf("All lacks %s", want.Value)
		}
	}
	late := Register("TEST_ALL_LATE", "Registered Late", 418)
	if !slices.Contains(All(), late) {
		t.Fatal("a code registered after the first call is missing")
	}
}
