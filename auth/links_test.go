package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	secretA = strings.Repeat("a", 32)
	secretB = strings.Repeat("b", 32)
)

func links(t *testing.T, cur, prev string, until time.Time, now time.Time) *Links {
	t.Helper()
	l, err := NewLinks(cur, prev, until)
	if err != nil {
		t.Fatal(err)
	}
	l.SetClock(func() time.Time { return now })
	return l
}

func TestUploadToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := links(t, secretA, "", time.Time{}, now)
	u := UploadRef{Session: "0123abcd", Bucket: "photos", Key: "a/b.jpg"}
	tok := l.UploadToken(u, now.Add(time.Hour))
	if err := l.CheckUpload(tok, u); err != nil {
		t.Fatalf("own token: %v", err)
	}
	exp, sig, _ := strings.Cut(tok, ".")
	flip := func(s string) string { // change one character, keeping it base64url
		c := byte('A')
		if s[3] == 'A' {
			c = 'B'
		}
		return s[:3] + string(c) + s[4:]
	}
	for name, c := range map[string]struct {
		tok  string
		ref  UploadRef
		want error
	}{
		"another session":      {tok, UploadRef{"0123abce", "photos", "a/b.jpg"}, ErrLinkInvalid},
		"another bucket":       {tok, UploadRef{"0123abcd", "photo", "a/b.jpg"}, ErrLinkInvalid},
		"another key":          {tok, UploadRef{"0123abcd", "photos", "a/b.jpeg"}, ErrLinkInvalid},
		"signature altered":    {exp + "." + flip(sig), u, ErrLinkInvalid},
		"expiry moved later":   {"1900000000." + sig, u, ErrLinkInvalid},
		"no dot":               {exp + sig, u, ErrLinkInvalid},
		"expiry not a number":  {"soon." + sig, u, ErrLinkInvalid},
		"signature cut short":  {exp + "." + sig[:20], u, ErrLinkInvalid},
		"signature not base64": {exp + ".!!!!", u, ErrLinkInvalid},
		"expired":              {l.UploadToken(u, now.Add(-time.Second)), u, ErrLinkExpired},
		"expires right now":    {l.UploadToken(u, now), u, ErrLinkExpired},
	} {
		if err := l.CheckUpload(c.tok, c.ref); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// A download signature over the same words is no upload token.
	d := DownloadRef{Bucket: "0123abcd", Key: "photos", Version: "a/b.jpg"}
	if err := l.CheckUpload(exp+"."+l.DownloadSignature(d, now.Add(time.Hour)), u); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("a download signature passed as an upload token: %v", err)
	}
}

func TestDownloadSignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := links(t, secretA, "", time.Time{}, now)
	d := DownloadRef{Bucket: "photos", Key: "a.jpg", Version: FileVersion(`"abc"`)}
	exp := now.Add(time.Minute)
	sig := l.DownloadSignature(d, exp)
	if err := l.CheckDownload(sig, d, exp.Unix()); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckDownload(sig, d, exp.Unix()+1); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("expiry moved: %v", err)
	}
	other := d
	other.Version = FileVersion(`"abd"`)
	if err := l.CheckDownload(sig, other, exp.Unix()); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("another version: %v", err)
	}
	if FileVersion(`"abc"`) != FileVersion("abc") || len(FileVersion("x")) != 16 {
		t.Errorf("FileVersion %q", FileVersion("x"))
	}
	past := now.Add(-time.Minute)
	if err := l.CheckDownload(l.DownloadSignature(d, past), d, past.Unix()); !errors.Is(err, ErrLinkExpired) {
		t.Errorf("expired: %v", err)
	}
}

// A rotation: links signed with the previous secret work until its grace
// ends; new links are signed with the current one.
func TestLinkRotation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	u := UploadRef{Session: "s", Bucket: "b", Key: "k"}
	old := links(t, secretA, "", time.Time{}, now).UploadToken(u, now.Add(time.Hour))

	inGrace := links(t, secretB, secretA, now.Add(time.Minute), now)
	if err := inGrace.CheckUpload(old, u); err != nil {
		t.Fatalf("the previous secret's link within the grace: %v", err)
	}
	if err := links(t, secretA, "", time.Time{}, now).CheckUpload(inGrace.UploadToken(u, now.Add(time.Hour)), u); !errors.Is(err, ErrLinkInvalid) {
		t.Fatalf("a new link is signed with the previous secret: %v", err)
	}
	after := links(t, secretB, secretA, now, now)
	if err := after.CheckUpload(old, u); !errors.Is(err, ErrLinkInvalid) {
		t.Fatalf("the previous secret's link after the grace: %v", err)
	}
	if _, err := NewLinks("short", "", time.Time{}); err == nil {
		t.Fatal("a short secret was taken")
	}
	if _, err := NewLinks(secretA, "short", now); err == nil {
		t.Fatal("a short previous secret was taken")
	}
	if s := NewLinkSecret(); len(s) != 64 || s == NewLinkSecret() {
		t.Fatalf("NewLinkSecret %q", s)
	}
}

// Only the token UploadToken made passes: any other string is refused
// (one spelling per token), and none panics.
func FuzzCheckUpload(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	l, err := NewLinks(secretA, "", time.Time{})
	if err != nil {
		f.Fatal(err)
	}
	l.SetClock(func() time.Time { return now })
	u := UploadRef{Session: "0123abcd", Bucket: "photos", Key: "a.jpg"}
	good := l.UploadToken(u, now.Add(time.Hour))
	exp, sig, _ := strings.Cut(good, ".")
	for _, s := range []string{good, "0" + good, "+" + good, exp + "." + sig + "=", exp + "." + sig[:42] + "B", "", ".", "1.", exp + ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if err := l.CheckUpload(tok, u); err == nil && tok != good {
			t.Fatalf("%q passed; only %q should", tok, good)
		} else if err != nil && !errors.Is(err, ErrLinkInvalid) {
			t.Fatalf("%q: %v, want ErrLinkInvalid", tok, err)
		}
	})
}
