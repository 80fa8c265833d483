package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Links signs and checks the capabilities Ferry hands out as URLs: upload
// links (one session: append, parts, info, abort) and presigned downloads
// (one version of one file). Each is an HMAC-SHA256 with the link secret
// (auth.link_secret) over what it grants and its expiry, so checking one
// needs no stored state; the HTTP layer puts them in query parameters.
//
// The secret can be rotated without breaking the links already out: the
// previous secret is still accepted until a given time, and new links are
// always signed with the current one.
type Links struct {
	current, previous []byte
	previousUntil     time.Time
	now               func() time.Time
}

// MinLinkSecret is the shortest secret taken: 32 bytes, as many as the
// HMAC's output.
const MinLinkSecret = 32

// Errors of a link check; the HTTP layer gives each its code.
var (
	// ErrLinkInvalid: not made by this server for this session or file
	// (another session's, altered, or cut short).
	ErrLinkInvalid = errors.New("link invalid")
	// ErrLinkExpired: made here, but past its expiry.
	ErrLinkExpired = errors.New("link expired")
)

// NewLinks signs with current. previous, when set, is also accepted until
// previousUntil: the secret before a rotation.
func NewLinks(current, previous string, previousUntil time.Time) (*Links, error) {
	if len(current) < MinLinkSecret {
		return nil, fmt.Errorf("the link secret has %d bytes; it needs at least %d", len(current), MinLinkSecret)
	}
	if previous != "" && len(previous) < MinLinkSecret {
		return nil, fmt.Errorf("the previous link secret has %d bytes; it needs at least %d", len(previous), MinLinkSecret)
	}
	return &Links{current: []byte(current), previous: []byte(previous), previousUntil: previousUntil, now: time.Now}, nil
}

// NewLinkSecret returns a random secret for auth.link_secret: 32 random
// bytes in hex.
func NewLinkSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SetClock replaces the clock expiries are checked against (tests).
func (l *Links) SetClock(now func() time.Time) { l.now = now }

// Now is the links' clock.
func (l *Links) Now() time.Time { return l.now() }

// UploadRef is what an upload link grants: one session, which writes one
// bucket and key.
type UploadRef struct{ Session, Bucket, Key string }

// DownloadRef is what a presigned download grants: one version of one
// file. Version is FileVersion of the file's ETag, so a file replaced at
// the same key is not served under an older link.
type DownloadRef struct{ Bucket, Key, Version string }

// FileVersion is the short, URL-safe name of a file version that a
// presigned download carries: the first 8 bytes of the SHA-256 of its
// ETag, in hex.
func FileVersion(etag string) string {
	sum := sha256.Sum256([]byte(strings.Trim(etag, `"`)))
	return hex.EncodeToString(sum[:8])
}

// The messages signed; the first line keeps an upload link from being
// taken for a download signature and the other way round. Fields are
// separated by a newline, which no bucket, key or id contains.
func (u UploadRef) message(exp int64) string {
	return "ferry-upload-link\n" + u.Session + "\n" + u.Bucket + "\n" + u.Key + "\n" + strconv.FormatInt(exp, 10)
}

func (d DownloadRef) message(exp int64) string {
	return "ferry-download\n" + d.Bucket + "\n" + d.Key + "\n" + d.Version + "\n" + strconv.FormatInt(exp, 10)
}

func mac(secret []byte, msg string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func (l *Links) sign(msg string) string {
	return base64.RawURLEncoding.EncodeToString(mac(l.current, msg))
}

// UploadToken is the token of an upload link to u that works until exp:
// "<exp unix seconds>.<signature>".
func (l *Links) UploadToken(u UploadRef, exp time.Time) string {
	return strconv.FormatInt(exp.Unix(), 10) + "." + l.sign(u.message(exp.Unix()))
}

// CheckUpload checks token against u: ErrLinkInvalid unless this server
// signed it for u, ErrLinkExpired past its expiry.
func (l *Links) CheckUpload(token string, u UploadRef) error {
	exp, sig, ok := strings.Cut(token, ".")
	if !ok {
		return fmt.Errorf("%w: the token is not <expiry>.<signature>", ErrLinkInvalid)
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != exp { // one spelling per token: no "+" or leading zeros
		return fmt.Errorf("%w: its expiry %q is not a number in unix seconds", ErrLinkInvalid, exp)
	}
	return l.check(sig, u.message(n), n)
}

// DownloadSignature signs a presigned download of d that works until exp.
func (l *Links) DownloadSignature(d DownloadRef, exp time.Time) string {
	return l.sign(d.message(exp.Unix()))
}

// CheckDownload checks a presigned download's signature and expiry (unix
// seconds) against d.
func (l *Links) CheckDownload(sig string, d DownloadRef, exp int64) error {
	return l.check(sig, d.message(exp), exp)
}

// check verifies sig over msg with the current secret, or the previous
// one within its grace, then the expiry: a link altered to live longer
// fails the signature, not the expiry.
func (l *Links) check(sig, msg string, exp int64) error {
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig) // strict: one spelling per signature
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: the signature is not %d bytes of base64url", ErrLinkInvalid, sha256.Size)
	}
	now := l.now()
	ok := hmac.Equal(got, mac(l.current, msg))
	if !ok && len(l.previous) > 0 && now.Before(l.previousUntil) {
		ok = hmac.Equal(got, mac(l.previous, msg))
	}
	if !ok {
		return fmt.Errorf("%w: the signature does not match", ErrLinkInvalid)
	}
	if at := time.Unix(exp, 0); !now.Before(at) {
		return fmt.Errorf("%w at %s", ErrLinkExpired, at.UTC().Format(time.RFC3339))
	}
	return nil
}
