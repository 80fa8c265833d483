// Package tus serves the tus 1.0 resumable-upload protocol with tusd's own
// handler (github.com/tus/tusd/v2/pkg/handler) over Ferry's session engine.
// Every tus upload is a Ferry upload session whose id is the tus upload id:
// its bytes take the same path as a native append (parts recorded in the
// session record, small chunks held back, no ListParts, no S3 read per
// PATCH), and once complete it is an ordinary Ferry file.
//
// Extensions: creation, creation-with-upload, creation-defer-length (an
// open session whose size a later PATCH declares), termination, expiration
// (the session's TTL, as Upload-Expires), checksum (Upload-Checksum,
// checked by the session engine; a mismatch is 460) and concatenation (a
// partial upload is a piece session, unpublished; the final upload joins
// the pieces in storage with session.Concat and is complete at creation).
// GET of an upload is disabled: a completed upload is read through the
// native `:content` route. With Config.Links, a creation's Location is an
// upload link (?upload_token=), which package httpapi takes instead of a
// key for that upload's HEAD, PATCH and DELETE.
//
// Persistent layout, beside the session's own (session/keys.go):
//
//	lock "tus/<id>"   held by tusd's handler for the length of one tus request
//	                  (HEAD, PATCH, DELETE, creation-with-upload) on any instance
//
// The tus metadata (Upload-Metadata) lives in the session record's meta, so
// every instance sees it; the package keeps no record of its own. The tus
// lock is taken first and the session's lock ("session/<id>") inside it,
// always in that order, so the two never deadlock.
package tus

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// BasePath is where ferryd mounts the protocol.
const BasePath = "/v1/tus/"

// Config tunes the handler.
type Config struct {
	// Bucket receives uploads whose metadata names none (config's tus.bucket).
	Bucket string
	// MaxSize is announced as Tus-Max-Size and bounds Upload-Length; the
	// session engine's own limit (sessions.max_size).
	MaxSize int64
	// LockTTL is the lease of the tus lock, refreshed while a request runs:
	// how long an upload stays locked after the instance serving it dies.
	LockTTL time.Duration
	// NetworkTimeout bounds each read of a PATCH body (tusd's own timeout;
	// ferryd passes server.read_idle_timeout); 0: tusd's default, 60 s.
	NetworkTimeout time.Duration
	Logger         *slog.Logger
	// Links, when set, makes a creation's Location an upload link: the
	// upload's URL with ?upload_token=, which HEAD, PATCH and DELETE take
	// instead of an API key (package httpapi checks it). Partial uploads'
	// stay plain, since the final upload names them by URL.
	Links *auth.Links
	// PreCreate is asked before an upload is created (hooks.pre_create);
	// nil: no hook.
	PreCreate *hooks.Hook
}

// maxDeferred bounds an upload of deferred length: its session is created
// with this as its size until the length is declared, and the part size is
// fixed at creation, so the bound keeps the parts at S3's 5 MiB minimum
// (10,000 of them). Larger files declare Upload-Length up front.
const maxDeferred = bucket.MaxParts * bucket.MinPartSize

// Files finds existing files, to keep a filename-derived key unique
// (registry.Registry).
type Files interface {
	Get(ctx context.Context, bkt, key string) (registry.File, error)
}

// Handler serves tus 1.0 under BasePath.
type Handler struct {
	tusd     *tusd.Handler
	sessions *session.Service
	cfg      Config
}

// New returns the handler over sessions, with its tus locks in store.
func New(sessions *session.Service, files Files, store metastore.Store, cfg Config) (*Handler, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("tus: no default bucket")
	}
	if err := bucket.ValidateBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("tus: default bucket: %w", err)
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = metastore.RequestLease
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ds := &dataStore{sessions: sessions, files: files, bucket: cfg.Bucket, maxDeferred: maxDeferred, log: cfg.Logger, preCreate: cfg.PreCreate}
	if cfg.MaxSize > 0 {
		ds.maxDeferred = min(ds.maxDeferred, cfg.MaxSize)
	}
	composer := tusd.NewStoreComposer()
	composer.UseCore(ds)
	composer.UseTerminater(ds)
	composer.UseLengthDeferrer(ds)
	composer.UseConcater(ds)
	composer.UseLocker(&locker{store: store, ttl: cfg.LockTTL})
	h, err := tusd.NewHandler(tusd.Config{
		StoreComposer:   composer,
		BasePath:        BasePath,
		MaxSize:         cfg.MaxSize,
		DisableDownload: true, // the native :content route serves the file, with Range and ETag
		// CORS is the server's one policy for every route, not tusd's
		// (which would let any origin's pages read answers).
		Cors:           &tusd.CorsConfig{Disable: true},
		Logger:         tusdLogger(cfg.Logger),
		NetworkTimeout: cfg.NetworkTimeout,
	})
	if err != nil {
		return nil, err
	}
	return &Handler{tusd: h, sessions: sessions, cfg: cfg}, nil
}

// ServeHTTP serves one tus request; the path keeps its BasePath prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &requestState{length: r.ContentLength}
	if v := r.Header.Get("Upload-Checksum"); v != "" && (r.Method == http.MethodPatch || r.Method == http.MethodPost) {
		sum, err := session.ParseChecksum(v, "")
		if err != nil {
			w.Header().Set("Tus-Resumable", "1.0.0")
			http.Error(w, "ERR_INVALID_CHECKSUM: "+errcode.From(err).Detail, http.StatusBadRequest)
			return
		}
		st.sum = sum
	}
	if r.Method == http.MethodPost {
		if err := checkMetadata(r.Header.Get("Upload-Metadata")); err != nil {
			w.Header().Set("Tus-Resumable", "1.0.0")
			http.Error(w, "ERR_INVALID_METADATA: "+err.Error(), http.StatusBadRequest)
			return
		}
		st.apiKey, st.clientAddr = hooks.Requester(r) // for the pre-create hook
	}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	// tusd routes on the path below its base: "/" creates, "/<id>" is an
	// upload. The URL is a copy: the access log shows the path as sent.
	u := *r.URL
	u.Path, u.RawPath = "/"+strings.TrimPrefix(r.URL.Path, BasePath), ""
	r.URL = &u
	h.tusd.ServeHTTP(&headerWriter{ResponseWriter: w, st: st, req: r.Context(), links: h.cfg.Links}, r)
}

// checkMetadata refuses an Upload-Metadata header tusd would read in part:
// it drops a pair whose value is not base64, so a mistyped bucket would
// put the file in the default one.
func checkMetadata(h string) error {
	if strings.TrimSpace(h) == "" {
		return nil
	}
	for _, pair := range strings.Split(h, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(pair), " ")
		if key == "" {
			return fmt.Errorf("Upload-Metadata has an empty pair: send \"key base64value\" pairs separated by commas")
		}
		if _, err := base64.StdEncoding.DecodeString(value); err != nil {
			return fmt.Errorf("Upload-Metadata %q: its value is not base64 (%v)", key, err)
		}
	}
	return nil
}

// CreationBucket names the bucket a creation request (POST to BasePath)
// works in, for authorisation: its Upload-Metadata's, or the default. ok
// is false for any other request; those name an upload, whose bucket the
// session engine checks as it loads the session (session.WithAccess).
func (h *Handler) CreationBucket(r *http.Request) (bkt string, ok bool) {
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, BasePath), "/")
	if r.Method != http.MethodPost || id != "" {
		return "", false
	}
	b := tusd.ParseMetadataHeader(r.Header.Get("Upload-Metadata"))["bucket"]
	if b == "" {
		b = h.cfg.Bucket
	}
	return b, true
}

// requestState carries what tusd's DataStore interface does not pass from
// the request to the store (the body's length, its checksum), and back out
// to the response (the upload's expiry).
type requestState struct {
	length  int64 // Content-Length; -1 when unknown (chunked)
	sum     *session.Checksum
	expires time.Time
	open    bool // a completed upload has no expiry to announce
	upload  session.Info
	// Who creates: the API key's name and the client's address.
	apiKey, clientAddr string
}

type stateKey struct{}

// stateOf returns the request's state; tusd's contexts keep the request's
// values.
func stateOf(ctx context.Context) *requestState {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		return st
	}
	return &requestState{length: -1}
}

// noted records what the response announces about the upload.
func (st *requestState) noted(in session.Info) {
	st.expires, st.open, st.upload = in.ExpiresAt, !in.Completed, in
}

// extensions are the ones Ferry adds to tusd's list.
const extensions = ",expiration,checksum"

// headerWriter adds the headers of the extensions tusd's handler does not
// know: Upload-Expires (expiration) and the checksum algorithms, and the
// whole file's checksums once it is complete (Repr-Digest, as downloads).
type headerWriter struct {
	http.ResponseWriter
	st    *requestState
	req   context.Context // the request's: done once the client has gone
	links *auth.Links
	wrote bool
}

func (w *headerWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		// tusd answers a body cut by the client 500 (ERR_CONNECTION_RESET);
		// Ferry counts a client that left as 499, never as its own failure.
		if code >= 500 && w.req.Err() != nil {
			code = errcode.ErrClientClosed.Status
		}
		hd := w.Header()
		if ext := hd.Get("Tus-Extension"); ext != "" { // OPTIONS
			hd.Set("Tus-Extension", ext+extensions)
			hd.Set("Tus-Checksum-Algorithm", session.ChecksumAlgorithms)
		}
		if code < 300 && w.st.open && !w.st.expires.IsZero() {
			hd.Set("Upload-Expires", w.st.expires.UTC().Format(http.TimeFormat))
		}
		if d := w.st.upload.Checksums.ReprDigest(); code < 300 && d != "" { // the final PATCH, and HEAD once complete
			hd.Set("Repr-Digest", d)
		}
		if in := w.st.upload; code == http.StatusCreated && w.links != nil && w.st.open && !in.Partial && hd.Get("Location") != "" {
			tok := w.links.UploadToken(auth.UploadRef{Session: in.ID, Bucket: in.Bucket, Key: in.Key}, in.ExpiresAt)
			hd.Set("Location", hd.Get("Location")+"?upload_token="+tok)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (tusd sets read deadlines) reach the
// connection.
func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
