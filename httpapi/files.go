package httpapi

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// The native bucket/key API (Llama Stack's Files API proposal and its
// files.py protocol). A file's bytes are at
// "<file url>:content"; keys cannot contain ':', so the suffix is never
// part of a key, even one whose last segment is "content".
const contentSuffix = ":content"

// presignSuffix is the route that makes a presigned URL of a file.
const presignSuffix = ":presign"

// maxJSONBody bounds the JSON bodies of the native routes.
const maxJSONBody = 1 << 20

type files struct {
	sessions *session.Service
	registry *registry.Registry
	guard    *guard
	bytes    *content
	openai   *openAI // nil: OpenAI's routes are not served at /v1/files
	links    *auth.Links
	// preCreate is asked before a session is created; nil: no hook.
	preCreate *hooks.Hook
}

func (f *files) routes(r *mux.Router) {
	// Order matters: session routes before {bucket}, content before plain keys.
	g := f.guard
	r.Handle("/v1/files", g.with(anyWrite, f.createSession)).Methods(http.MethodPost)
	r.Handle("/v1/files", g.with(anyRead, f.listBuckets)).Methods(http.MethodGet)
	if f.openai != nil { // before {bucket}, which a file id never is
		f.openai.fileRoutes(r, openAIRoot+fileIDPath)
	}
	r.Handle("/v1/files/session:{id}", g.with(sessionWrite, f.appendChunk)).Methods(http.MethodPost)
	r.Handle("/v1/files/session:{id}", g.with(sessionRead, f.sessionInfo)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/v1/files/session:{id}", g.with(sessionWrite, f.abortSession)).Methods(http.MethodDelete)
	r.Handle("/v1/files/session:{id}/parts/{n}", g.with(sessionWrite, f.putPart)).Methods(http.MethodPut)
	// Outside /v1/files, where any name would be a bucket's.
	r.Handle("/v1/sessions", g.with(admin, f.listSessions)).Methods(http.MethodGet)
	r.Handle("/v1/files/session:{id}", g.with(public, wrongMethod(sessionMethods))) // before {bucket}, which would take a PUT
	r.Handle("/v1/files/session:{id}/parts/{n}", g.with(public, wrongMethod(http.MethodPut)))
	r.Handle("/v1/files/{bucket}", g.with(bucketRead, f.listFiles)).Methods(http.MethodGet)
	r.Handle("/v1/files/{bucket}", g.with(admin, f.registerBucket)).Methods(http.MethodPut)
	r.Handle("/v1/files/{bucket}", g.with(admin, f.unregisterBucket)).Methods(http.MethodDelete)
	r.Handle("/v1/files/{bucket}/{key:.+}"+contentSuffix, g.with(contentRead, f.download)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/v1/files/{bucket}/{key:.+}"+presignSuffix, g.with(bucketRead, f.presign)).Methods(http.MethodPost)
	r.Handle("/v1/files/{bucket}/{key:.+}"+checksumsSuffix, g.with(admin, f.checksumFile)).Methods(http.MethodPost)
	r.Handle("/v1/files/{bucket}/{key:.+}", g.with(bucketRead, f.fileInfo)).Methods(http.MethodGet)
	r.Handle("/v1/files/{bucket}/{key:.+}", g.with(bucketWrite, f.deleteFile)).Methods(http.MethodDelete)
	r.Handle("/v1/files/{bucket}/{key:.+}", g.with(admin, f.registerFile)).Methods(http.MethodPut)
}

// fileResponse is files.py's FileResponse.
type fileResponse struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	MimeType  string `json:"mime_type"`
	URL       string `json:"url"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	FileID    string `json:"file_id"` // the same file in the OpenAI routes, under the OpenAI bucket
	// Checksums of the whole file (absent on a registered file until verified).
	Checksums *registry.Checksums `json:"checksums,omitempty"`
}

type listResponse[T any] struct {
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	Next    string `json:"next,omitempty"` // pass as ?after= for the next page
}

// baseURL is the scheme and host the client used, honouring a proxy's
// X-Forwarded-Proto.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

func fileURL(r *http.Request, bkt, key string) string {
	return baseURL(r) + "/v1/files/" + bkt + "/" + key + contentSuffix
}

func toFileResponse(r *http.Request, f registry.File) fileResponse {
	return fileResponse{Bucket: f.Bucket, Key: f.Key, MimeType: f.MimeType, URL: fileURL(r, f.Bucket, f.Key),
		Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(), FileID: f.ID, Checksums: f.Checksums}
}

// decodeJSON decodes one JSON object strictly: unknown fields and trailing
// data are errors, so a typo is reported rather than ignored.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errcode.ErrInvalidJSON.New("the body has data after the JSON object")
	}
	return nil
}

// jsonError says what was wrong with a JSON body: too large (413) or not
// the expected object (400).
func jsonError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errcode.ErrTooLarge.New("the JSON body exceeds %d bytes", maxJSONBody)
	}
	return errcode.ErrInvalidJSON.New("the body is not the expected JSON object: %v", err)
}

var errUnsupportedMedia = errcode.Register("UNSUPPORTED_MEDIA_TYPE", "Unsupported Media Type", http.StatusUnsupportedMediaType)

// requireJSON refuses a JSON route's body sent under another media type. A
// page on another site can send text/plain or a form without a CORS
// preflight, so taking JSON under those would let it drive ferryd.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return errUnsupportedMedia.New("the body must be JSON sent as Content-Type: application/json (got %q; with curl add -H 'Content-Type: application/json')", ct)
}

// pageParams reads ?limit= (1..1000, default 100) and ?after=.
func pageParams(r *http.Request) (limit int, after string, err error) {
	limit = 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > 1000 {
			return 0, "", errcode.ErrInvalidRequest.New("limit %q must be an integer from 1 to 1000", v)
		}
		limit = n
	}
	return limit, r.URL.Query().Get("after"), nil
}

func (f *files) listBuckets(w http.ResponseWriter, r *http.Request) {
	if f.openai != nil && wantsOpenAI(r) {
		f.openai.listFiles(w, r)
		return
	}
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := f.registry.Buckets(r.Context(), after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	type bucketResponse struct {
		Name     string `json:"name"`
		Location string `json:"location,omitempty"` // registered buckets only
	}
	out := listResponse[bucketResponse]{Data: make([]bucketResponse, 0, len(page.Data)), HasMore: page.Next != "", Next: page.Next}
	for _, b := range page.Data {
		if f.guard.seesBucket(r, b.Name) { // a key lists only its buckets
			out.Data = append(out.Data, bucketResponse{Name: b.Name, Location: b.Location})
		}
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (f *files) listFiles(w http.ResponseWriter, r *http.Request) {
	bkt, err := routeBucket(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := f.registry.List(r.Context(), bkt, r.URL.Query().Get("prefix"), after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := listResponse[fileResponse]{Data: make([]fileResponse, 0, len(page.Data)), HasMore: page.Next != "", Next: page.Next}
	for _, file := range page.Data {
		out.Data = append(out.Data, toFileResponse(r, file))
	}
	writeJSON(w, r, http.StatusOK, out)
}

// lookup validates the path's bucket and key and finds the file.
func (f *files) lookup(r *http.Request) (registry.File, error) {
	bkt, key, err := bucketKey(r)
	if err != nil {
		return registry.File{}, err
	}
	return f.registry.Get(r.Context(), bkt, key)
}

// bucketKey returns the route's bucket and key, validated.
func bucketKey(r *http.Request) (bkt, key string, err error) {
	if bkt, err = routeBucket(r); err != nil {
		return "", "", err
	}
	key = mux.Vars(r)["key"]
	if err := bucket.ValidateKey(key); err != nil {
		return "", "", session.ErrInvalidKey.New("%v", err)
	}
	return bkt, key, nil
}

func (f *files) fileInfo(w http.ResponseWriter, r *http.Request) {
	file, err := f.lookup(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, toFileResponse(r, file))
}

func (f *files) deleteFile(w http.ResponseWriter, r *http.Request) {
	file, err := f.lookup(r)
	if err == nil { // the registry tells the vector stores
		_, err = f.registry.Delete(r.Context(), file.Bucket, file.Key)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// download streams the file's bytes with Range, ETag and Last-Modified.
func (f *files) download(w http.ResponseWriter, r *http.Request) {
	file, err := f.lookup(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if v, ok := signedVersion(r.Context()); ok && v != auth.FileVersion(etagOf(file)) {
		writeError(w, r, errLinkStale.New("%s/%s was replaced since this presigned URL was made, and it reads only the version it was made for: ask for a new one", file.Bucket, file.Key))
		return
	}
	f.bytes.serve(w, r, file, file.MimeType, writeError)
}
