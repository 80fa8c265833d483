package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/errcode"
)

// A presigned URL's TTL: ?ttl= as a duration or bare seconds, or the
// body's ttl_seconds; an hour by default, 1s to 7 days, given once.
func TestLinkTTL(t *testing.T) {
	for _, c := range []struct {
		query, body, ctype string
		want               time.Duration
		err                string // in the 400's detail
	}{
		{"", "", "", time.Hour, ""},
		{"?ttl=90s", "", "", 90 * time.Second, ""},
		{"?ttl=3600", "", "", time.Hour, ""},
		{"?ttl=168h", "", "", 7 * 24 * time.Hour, ""},
		{"", `{"ttl_seconds": 60}`, "application/json", time.Minute, ""},
		{"", "  \n", "", time.Hour, ""},
		{"", "{}", "application/json", time.Hour, ""},
		{"?ttl=169h", "", "", 0, "7 days"},
		{"?ttl=0s", "", "", 0, "from 1s"},
		{"?ttl=-5m", "", "", 0, "from 1s"},
		{"?ttl=soon", "", "", 0, "not a duration"},
		{"?ttl=99999999999999999", "", "", 0, "7 days"},
		{"", `{"ttl_seconds": 0}`, "application/json", 0, "ttl_seconds 0"},
		{"", `{"ttl_seconds": 9223372036854775807}`, "application/json", 0, "7 days"},
		{"", `{"ttl": 60}`, "application/json", 0, "unknown field"},
		{"", `{"ttl_seconds": 60}`, "text/plain", 0, "Content-Type: application/json"},
		{"?ttl=1h", `{"ttl_seconds": 60}`, "application/json", 0, "give the TTL once"},
	} {
		r := httptest.NewRequest("POST", "/v1/files/b/k:presign"+c.query, strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		got, err := linkTTL(httptest.NewRecorder(), r)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s %s: %v %v, want %v", c.query, c.body, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(errcode.From(err).Detail, c.err) || errcode.From(err).Code.Status/100 != 4):
			t.Errorf("%s %s: %v %v, want a 4xx saying %q", c.query, c.body, got, err, c.err)
		}
	}
}
