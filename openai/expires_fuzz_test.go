package openai

import (
	"strconv"
	"testing"

	"github.com/ferryhq/ferry/errcode"
)

// expires_after comes from a form or JSON: an accepted expiry is either
// none (both fields empty) or exactly the decimal seconds sent, anchored at
// created_at and within OpenAI's 1 hour to 30 days. Anything else is a 400.
func FuzzParseExpiresAfter(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"created_at", "3600"}, {"created_at", "2592000"}, {"created_at", "3599"}, {"created_at", "2592001"},
		{"created_at", ""}, {"", "3600"}, {"last_active_at", "3600"}, {"created_at", "+3600"}, {"created_at", "-3600"},
		{"created_at", " 3600"}, {"created_at", "3600.0"}, {"created_at", "0x1000"}, {"created_at", "9223372036854775808"},
		{"created_at", "0003600"}, {"created_at", "3_600"}, {"Created_At", "3600"}, {"created_at\x00", "3600"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, anchor, seconds string) {
		n, err := ParseExpiresAfter(anchor, seconds)
		if err != nil {
			if !errcode.Is(err, errcode.ErrInvalidRequest) {
				t.Fatalf("(%q, %q): error %v is not INVALID_REQUEST", anchor, seconds, err)
			}
			return
		}
		if anchor == "" && seconds == "" {
			if n != 0 {
				t.Fatalf("no expiry gave %d", n)
			}
			return
		}
		want, perr := strconv.ParseInt(seconds, 10, 64)
		switch {
		case anchor != "created_at":
			t.Fatalf("(%q, %q): accepted anchor %q", anchor, seconds, anchor)
		case perr != nil || n != want:
			t.Fatalf("(%q, %q) → %d, not the seconds sent", anchor, seconds, n)
		case n < minExpiry || n > maxExpiry:
			t.Fatalf("(%q, %q) → %d, outside %d..%d", anchor, seconds, n, minExpiry, maxExpiry)
		}
	})
}
