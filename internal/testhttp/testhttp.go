// Package testhttp sends the tests' requests to a served API (ferryd, or an
// httptest server) and keeps the whole answer, read to the end.
package testhttp

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Answer is a response with its body read.
type Answer struct {
	Code   int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object, failing t if it is not one.
func (a Answer) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", a.Code, a.Body, err)
	}
	return m
}

// Do sends a request and fails t if no answer comes. hdr is pairs of
// header name and value. A body goes as JSON unless hdr says otherwise,
// as clients send the JSON routes.
func Do(t testing.TB, method, url string, body io.Reader, hdr ...string) Answer {
	t.Helper()
	a, err := Try(method, url, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// Try is Do for a test that expects the request may fail (the server cut
// off, say): the error, and what was read of the answer before it.
func Try(method, url string, body io.Reader, hdr ...string) (Answer, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return Answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Answer{Code: resp.StatusCode, Header: resp.Header, Body: b}, err
}
