package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/session"
)

// Links: capabilities carried in a URL instead of an API key (package auth
// signs and checks them).
//
//   - An upload link is a session's URL with ?upload_token=<expiry>.<HMAC>,
//     handed out as upload_url (and in a tus upload's Location). Without an
//     Authorization header it may append to, put parts of, read and abort
//     that one session, natively or over tus, until the session's expiry.
//     Checking it reads the session record once, so an aborted session's
//     link stops working at once.
//   - A presigned download is a file's :content URL with ?expires=,
//     version= and signature=, made by POST …:presign. It reads that
//     version of the file (Range and all) until it expires; a file replaced
//     since answers LINK_STALE rather than serving other bytes.
//
// A request with an Authorization header is judged by its key alone.
const (
	paramUploadToken = "upload_token"
	paramExpires     = "expires"
	paramVersion     = "version"
	paramSignature   = "signature"
)

// Presigned downloads last defaultLinkTTL unless asked otherwise, and at
// most maxLinkTTL (as S3's own presigned URLs).
const (
	defaultLinkTTL = time.Hour
	maxLinkTTL     = 7 * 24 * time.Hour
)

var (
	errLinkInvalid = errcode.Register("LINK_INVALID", "Unauthorized", http.StatusUnauthorized)
	errLinkExpired = errcode.Register("LINK_EXPIRED", "Unauthorized", http.StatusUnauthorized)
	errLinkRevoked = errcode.Register("LINK_REVOKED", "Unauthorized", http.StatusUnauthorized)
	errLinkStale   = errcode.Register("LINK_STALE", "Gone", http.StatusGone)
)

// linkSessions finds the session an upload link names (session.Service).
type linkSessions interface {
	Peek(ctx context.Context, id string) (session.Info, error)
}

// carriesLink reports whether r comes with a link instead of a key. A
// server without links (no Deps.Links) takes none: such a request is
// judged as one without a key.
func (g *guard) carriesLink(r *http.Request) bool {
	if g.links == nil || r.URL.RawQuery == "" || r.Header.Get("Authorization") != "" {
		return false
	}
	q := r.URL.Query()
	return q.Has(paramUploadToken) || q.Has(paramSignature) || q.Has(paramExpires)
}

// admitLink admits a request that carries a link on a route p, returning
// the request to serve; if not, it has answered. A link is checked
// wherever it is taken, keys or not; elsewhere it is refused when keys are
// on, and makes no difference when the server is open.
func (g *guard) admitLink(w http.ResponseWriter, r *http.Request, p policy) (*http.Request, bool) {
	q := r.URL.Query()
	switch {
	case p.sessionVar && q.Has(paramUploadToken):
		return r, g.admitUpload(w, r, mux.Vars(r)["id"], q.Get(paramUploadToken))
	case p.signed && !q.Has(paramUploadToken):
		return g.admitDownload(w, r, q)
	case !g.on || p.access == 0: // nothing to stand in for (tus checks its own: admitTusLink)
		return r, true
	}
	writeErrorFor(w, r, errForbidden.New("a link reaches only what it was made for: an upload link its own session "+
		"(append, parts, info, abort), a presigned URL its file's content; for %s %s send an API key", r.Method, r.URL.Path))
	return r, false
}

// admitTusLink admits a tus request on an upload (HEAD, PATCH, DELETE)
// that carries its upload link; a creation needs a key.
func (g *guard) admitTusLink(w http.ResponseWriter, r *http.Request, h TusHandler) bool {
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/tus/"), "/")
	tok := r.URL.Query().Get(paramUploadToken)
	if _, creation := h.CreationBucket(r); !creation && r.Method != http.MethodPost && id != "" && tok != "" {
		return g.admitUpload(w, r, id, tok)
	}
	if !g.on {
		return true
	}
	writeErrorFor(w, r, errForbidden.New("an upload link reaches only its own upload (HEAD, PATCH, DELETE); to create one send an API key"))
	return false
}

// admitUpload checks an upload link to session id.
func (g *guard) admitUpload(w http.ResponseWriter, r *http.Request, id, token string) bool {
	in, err := g.sessions.Peek(r.Context(), id)
	switch {
	case errcode.Is(err, session.ErrNotFound):
		err = errLinkRevoked.New("upload session %s no longer exists (aborted, or completed or expired and cleaned up), so its link no longer works: start a new upload", id)
	case errcode.Is(err, session.ErrExpired):
		err = errLinkExpired.New("upload session %s expired at %s and its link with it: start a new upload", id, in.ExpiresAt.UTC().Format(time.RFC3339))
	case err == nil:
		err = linkError(g.links.CheckUpload(token, auth.UploadRef{Session: id, Bucket: in.Bucket, Key: in.Key}),
			"this upload link is not valid for session "+id+" (it belongs to another session, was altered or cut short, or was signed with a link secret this server no longer accepts): use the latest upload_url exactly as given",
			"this upload link expired; the session's latest answer (GET it with the link while that still works, or with an API key) carries a fresh upload_url")
	}
	if err != nil {
		refuseLink(w, r, err)
		return false
	}
	return true
}

// admitDownload checks a presigned download's signature against the
// route's bucket and key; the handler checks its version against the file.
func (g *guard) admitDownload(w http.ResponseWriter, r *http.Request, q url.Values) (*http.Request, bool) {
	exp, perr := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	ver, sig := q.Get(paramVersion), q.Get(paramSignature)
	var err error
	switch {
	case perr != nil || ver == "" || sig == "":
		err = errLinkInvalid.New("a presigned URL carries expires, version and signature, and this one lacks or garbles one: use the URL exactly as given")
	default:
		vars := mux.Vars(r)
		err = linkError(g.links.CheckDownload(sig, auth.DownloadRef{Bucket: vars["bucket"], Key: vars["key"], Version: ver}, exp),
			"this presigned URL's signature does not match it (it was altered, made for another file or by another server, or signed with a link secret this server no longer accepts): use the URL exactly as given, or ask for a new one",
			"this presigned URL expired: ask for a new one (ferry presign, or POST …:presign)")
	}
	if err != nil {
		refuseLink(w, r, err)
		return r, false
	}
	return r.WithContext(context.WithValue(r.Context(), signedVersionKey{}, ver)), true
}

// linkError names a failed check for the client.
func linkError(err error, invalid, expired string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrLinkExpired):
		return errLinkExpired.New("%s (%v)", expired, err)
	}
	return errLinkInvalid.New("%s (%v)", invalid, err)
}

func refuseLink(w http.ResponseWriter, r *http.Request, err error) {
	if errcode.From(err).Code.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	}
	writeErrorFor(w, r, err)
}

type signedVersionKey struct{}

// signedVersion is the file version a presigned download was made for.
func signedVersion(ctx context.Context) (string, bool) {
	v, ok := ctx.Value(signedVersionKey{}).(string)
	return v, ok
}

// uploadURL is the session's URL with an upload link that lasts as long as
// the session does now; "" without a link secret, or once it is complete.
func (f *files) uploadURL(r *http.Request, in session.Info) string {
	if f.links == nil || in.Completed {
		return ""
	}
	tok := f.links.UploadToken(auth.UploadRef{Session: in.ID, Bucket: in.Bucket, Key: in.Key}, in.ExpiresAt)
	return sessionURL(r, in.ID) + "?" + paramUploadToken + "=" + tok
}

// toSession is the session answer, with its upload link.
func (f *files) toSession(r *http.Request, in session.Info) sessionResponse {
	out := toSessionResponse(r, in)
	out.UploadURL = f.uploadURL(r, in)
	return out
}

type presignResponse struct {
	URL       string `json:"url"`
	ExpiresAt int64  `json:"expires_at"`
}

// presign answers a URL that downloads the file, as it is now, without a
// key until it expires.
func (f *files) presign(w http.ResponseWriter, r *http.Request) {
	ttl, err := linkTTL(w, r)
	if err == nil && f.links == nil {
		err = errcode.ErrNotFound.New("this server makes no presigned URLs: it has no link secret (auth.link_secret)")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	file, err := f.lookup(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	exp := f.links.Now().Add(ttl)
	ref := auth.DownloadRef{Bucket: file.Bucket, Key: file.Key, Version: auth.FileVersion(etagOf(file))}
	q := url.Values{paramExpires: {strconv.FormatInt(exp.Unix(), 10)}, paramVersion: {ref.Version},
		paramSignature: {f.links.DownloadSignature(ref, exp)}}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, presignResponse{URL: fileURL(r, file.Bucket, file.Key) + "?" + q.Encode(), ExpiresAt: exp.Unix()})
}

// linkTTL reads how long a presigned URL should work: ?ttl=1h or the
// body's {"ttl_seconds": N}, default an hour, at most 7 days.
func linkTTL(w http.ResponseWriter, r *http.Request) (time.Duration, error) {
	ttl, given := defaultLinkTTL, ""
	if v := r.URL.Query().Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if n, nerr := strconv.ParseInt(v, 10, 64); nerr == nil { // bare seconds
			d, err = ttlSeconds(n), nil
		}
		if err != nil {
			return 0, errcode.ErrInvalidRequest.New("ttl %q is not a duration: write it like 90s, 15m or 24h (at most 168h)", v)
		}
		ttl, given = d, "ttl="+v
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return 0, jsonError(err)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := requireJSON(r); err != nil {
			return 0, err
		}
		var req struct {
			TTLSeconds *int64 `json:"ttl_seconds"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return 0, jsonError(err)
		}
		if req.TTLSeconds != nil && given != "" {
			return 0, errcode.ErrInvalidRequest.New("give the TTL once: both %s and ttl_seconds are set", given)
		}
		if req.TTLSeconds != nil {
			ttl, given = ttlSeconds(*req.TTLSeconds), "ttl_seconds "+strconv.FormatInt(*req.TTLSeconds, 10)
		}
	}
	if ttl < time.Second || ttl > maxLinkTTL {
		return 0, errcode.ErrInvalidRequest.New("%s: a presigned URL lasts from 1s to 7 days (604800 seconds); leave it out for an hour", given)
	}
	return ttl, nil
}

// ttlSeconds is n seconds, past the longest TTL kept past it rather than
// wrapped around.
func ttlSeconds(n int64) time.Duration {
	return time.Duration(min(n, int64(maxLinkTTL/time.Second)+1)) * time.Second
}
