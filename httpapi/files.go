package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// The native bucket/key API (Llama Stack's Files API proposal and its
// files.py protocol). A file's bytes are at
// "<file url>:content"; keys cannot contain ':', so the suffix is never
// part of a key, even one whose last segment is "content".
const contentSuffix = ":content"

// maxJSONBody bounds the JSON bodies of the native routes.
const maxJSONBody = 1 << 20

type files struct {
	sessions *session.Service
	registry *registry.Registry
	guard    *guard
	bytes    *content
	openai   *openAI // nil: OpenAI's routes are not served at /v1/files
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
	r.Handle("/v1/files/session:{id}", g.with(public, wrongMethod(sessionMethods))) // before {bucket}, which would take a PUT
	r.Handle("/v1/files/session:{id}/parts/{n}", g.with(public, wrongMethod(http.MethodPut)))
	r.Handle("/v1/files/{bucket}", g.with(bucketRead, f.listFiles)).Methods(http.MethodGet)
	r.Handle("/v1/files/{bucket}", g.with(admin, f.registerBucket)).Methods(http.MethodPut)
	r.Handle("/v1/files/{bucket}", g.with(admin, f.unregisterBucket)).Methods(http.MethodDelete)
	r.Handle("/v1/files/{bucket}/{key:.+}"+contentSuffix, g.with(bucketRead, f.download)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/v1/files/{bucket}/{key:.+}", g.with(bucketRead, f.fileInfo)).Methods(http.MethodGet)
	r.Handle("/v1/files/{bucket}/{key:.+}", g.with(bucketWrite, f.deleteFile)).Methods(http.MethodDelete)
	r.Handle("/v1/files/{bucket}/{key:.+}", g.with(admin, f.registerFile)).Methods(http.MethodPut)
}

// sessionResponse is files.py's FileUploadResponse plus what a resuming
// client wants to see.
type sessionResponse struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	Offset    int64  `json:"offset"`
	Size      int64  `json:"size"`
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	MimeType  string `json:"mime_type"`
	Status    string `json:"status"` // uploading or completed
	ExpiresAt int64  `json:"expires_at"`
	MinChunk  int64  `json:"min_chunk_size"` // 0: any size; always sent, since clients size their chunks by it
	// Parallel parts: every part's size but the last's, how many, and,
	// once the session takes parts, which landed ([first, last] ranges).
	PartSize  int64    `json:"part_size"`
	PartCount int      `json:"part_count"`
	Parallel  bool     `json:"parallel,omitempty"`
	Parts     [][2]int `json:"parts,omitempty"`
}

// partResponse answers a part that landed (or had landed).
type partResponse struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	Part      int    `json:"part"`
	Bytes     int64  `json:"bytes"`
	CRC32C    string `json:"crc32c"` // base64 of the big-endian CRC32C, as S3's x-amz-checksum-crc32c
	Received  int    `json:"received"`
	PartCount int    `json:"part_count"`
	Status    string `json:"status"`
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

func sessionURL(r *http.Request, id string) string { return baseURL(r) + "/v1/files/session:" + id }

func fileURL(r *http.Request, bkt, key string) string {
	return baseURL(r) + "/v1/files/" + bkt + "/" + key + contentSuffix
}

func toSessionResponse(r *http.Request, in session.Info) sessionResponse {
	status := "uploading"
	if in.Completed {
		status = "completed"
	}
	out := sessionResponse{ID: in.ID, URL: sessionURL(r, in.ID), Offset: in.Offset, Size: in.Size,
		Bucket: in.Bucket, Key: in.Key, MimeType: in.MimeType, Status: status,
		ExpiresAt: in.ExpiresAt.Unix(), MinChunk: in.MinChunk, PartSize: in.PartSize, PartCount: in.PartCount, Parallel: in.Parallel}
	for _, pr := range in.Received {
		out.Parts = append(out.Parts, [2]int{pr.First, pr.Last})
	}
	return out
}

func toFileResponse(r *http.Request, f registry.File) fileResponse {
	return fileResponse{Bucket: f.Bucket, Key: f.Key, MimeType: f.MimeType, URL: fileURL(r, f.Bucket, f.Key),
		Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(), FileID: f.ID}
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

func (f *files) createSession(w http.ResponseWriter, r *http.Request) {
	if f.openai != nil && wantsOpenAI(r) {
		f.openai.uploadFile(w, r)
		return
	}
	var req struct {
		Bucket   string `json:"bucket"`
		Key      string `json:"key"`
		MimeType string `json:"mime_type"`
		Size     *int64 `json:"size"`
		PartSize int64  `json:"part_size"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if req.Size == nil {
		writeError(w, r, session.ErrInvalidSize.New("size is missing: give the file's exact size in bytes"))
		return
	}
	if err := f.guard.allowBucket(r, req.Bucket); err != nil {
		writeError(w, r, err)
		return
	}
	in, err := f.sessions.CreateSpec(r.Context(), session.Spec{Bucket: req.Bucket, Key: req.Key, MimeType: req.MimeType,
		Size: *req.Size, PartSize: req.PartSize})
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", sessionURL(r, in.ID))
	writeJSON(w, r, http.StatusCreated, toSessionResponse(r, in))
}

func (f *files) appendChunk(w http.ResponseWriter, r *http.Request) {
	pos, err := parseChunkHeaders(r.Header, r.ContentLength)
	if err != nil {
		writeError(w, r, errcode.ErrInvalidRequest.New("%v", err))
		return
	}
	// Both checks come before a byte of the body is read.
	sum, err := session.ParseChecksum(r.Header.Get("Upload-Checksum"), r.Header.Get("Content-MD5"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if sum != nil && pos.length < 0 {
		// A chunked body is appended in pieces as it arrives, so one digest
		// of the whole cannot be checked before the first piece is kept.
		writeError(w, r, errcode.ErrInvalidRequest.New("a chunk with Upload-Checksum or Content-MD5 needs a known length: send Content-Length (or Content-Range), not a chunked body"))
		return
	}
	var (
		in   session.Info
		file *registry.File
	)
	if pos.length < 0 { // chunked: no length up front
		in, file, err = f.sessions.AppendStream(r.Context(), mux.Vars(r)["id"], pos.offset, pos.total, r.Body)
	} else {
		in, file, err = f.sessions.Append(r.Context(), mux.Vars(r)["id"], session.Chunk{
			Offset: pos.offset, Total: pos.total, Len: pos.length, Body: r.Body, Checksum: sum})
	}
	if err != nil {
		e := errcode.From(err)
		if e.Fields["offset"] != nil {
			w.Header().Set("Upload-Offset", fmt.Sprint(e.Fields["offset"]))
		}
		if e.Code == session.ErrBusy {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(in.Offset, 10))
	if file != nil {
		writeJSON(w, r, http.StatusOK, toFileResponse(r, *file))
		return
	}
	writeJSON(w, r, http.StatusOK, toSessionResponse(r, in))
}

// putPart stores one parallel part: PUT, since sending it again is safe.
func (f *files) putPart(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(mux.Vars(r)["n"])
	if err != nil {
		writeError(w, r, session.ErrInvalidPart.New("%q is not a part number: parts are numbered from 1", mux.Vars(r)["n"]))
		return
	}
	sum, err := session.ParseChecksum(r.Header.Get("Upload-Checksum"), r.Header.Get("Content-MD5"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, file, err := f.sessions.PutPart(r.Context(), mux.Vars(r)["id"], n, session.Chunk{Len: r.ContentLength, Body: r.Body, Checksum: sum})
	if err != nil {
		if c := errcode.From(err).Code; c == session.ErrBusy || c == session.ErrPartBusy {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, r, err)
		return
	}
	if file != nil {
		writeJSON(w, r, http.StatusOK, toFileResponse(r, *file))
		return
	}
	var crc [4]byte
	binary.BigEndian.PutUint32(crc[:], p.CRC32C)
	writeJSON(w, r, http.StatusOK, partResponse{ID: p.ID, URL: sessionURL(r, p.ID), Part: p.Number, Bytes: p.Size,
		CRC32C: base64.StdEncoding.EncodeToString(crc[:]), Received: p.Received, PartCount: p.PartCount, Status: "uploading"})
}

// sessionMethods are the methods a session URL serves.
const sessionMethods = "GET, HEAD, POST, DELETE"

// wrongMethod answers the methods a session or part URL does not serve. A
// PUT on a session URL (as curl -T sends) used to reach the {bucket}
// routes and be told that "session:…" is not a valid bucket name.
func wrongMethod(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		hint := "append a chunk with POST, e.g. curl -X POST --data-binary @FILE, or curl -X POST -T FILE"
		if allow == http.MethodPut {
			hint = "put a part with PUT, e.g. curl -X PUT --data-binary @PART"
		}
		writeError(w, r, errcode.ErrMethodNotAllowed.New("this URL does not serve %s (it serves %s): %s", r.Method, allow, hint))
	}
}

func (f *files) sessionInfo(w http.ResponseWriter, r *http.Request) {
	in, err := f.sessions.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(in.Offset, 10))
	w.Header().Set("Upload-Length", strconv.FormatInt(in.Size, 10))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, toSessionResponse(r, in))
}

func (f *files) abortSession(w http.ResponseWriter, r *http.Request) {
	if err := f.sessions.Abort(r.Context(), mux.Vars(r)["id"]); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
	f.bytes.serve(w, r, file, file.MimeType, writeError)
}

// content serves files' bytes, the native and the OpenAI routes alike.
type content struct {
	reg *registry.Registry
	// presign, when set, is how long the URLs of presigned redirects work;
	// 0: ferryd streams every download.
	presign time.Duration
}

// serve streams a file with Range, ETag, Last-Modified and the conditional
// headers, or redirects to storage; errors go out through writeErr (native
// or OpenAI).
func (c *content) serve(w http.ResponseWriter, r *http.Request, file registry.File, contentType string,
	writeErr func(http.ResponseWriter, *http.Request, error)) {
	etag := `"` + strings.Trim(file.ETag, `"`) + `"`
	if file.ETag == "" {
		etag = fmt.Sprintf(`"%x-%x"`, file.Bytes, file.CreatedAt.UnixNano())
	}
	modified := file.CreatedAt.UTC().Truncate(time.Second)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Last-Modified", modified.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	safeServing(h, file, contentType)
	if notModified(r, etag, modified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if c.presign > 0 && r.Method == http.MethodGet && c.redirect(w, r, file, contentType) {
		return
	}

	rangeHeader := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag && ir != h.Get("Last-Modified") {
		rangeHeader = "" // the client's partial copy is stale: send it all
	}
	rng, err := parseRange(rangeHeader, file.Bytes)
	switch {
	case errors.Is(err, errUnsatisfiable):
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", file.Bytes))
		writeErr(w, r, registry.ErrRange.New("range %q lies outside the file's %d bytes", rangeHeader, file.Bytes))
		return
	case err != nil:
		writeErr(w, r, errcode.ErrInvalidRequest.New("%v", err))
		return
	}

	status, length := http.StatusOK, file.Bytes
	var brng *bucket.Range
	if rng != nil {
		status, length = http.StatusPartialContent, rng.length
		brng = &bucket.Range{Offset: rng.start, Length: rng.length}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rng.start, rng.start+rng.length-1, file.Bytes))
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead || length == 0 {
		w.WriteHeader(status)
		return
	}
	body, _, err := c.reg.Open(r.Context(), file, brng) // refuses an object that is not the record's version
	if err != nil {
		for _, k := range []string{"Content-Range", "Content-Length", "Content-Disposition"} {
			h.Del(k)
		}
		writeErr(w, r, err)
		return
	}
	defer body.Close()
	w.WriteHeader(status)
	if r.TLS == nil && isFile(body) {
		_, _ = io.Copy(w, body) // through the ReaderFrom/WriterTo paths to sendfile: no copy through ferryd
		return
	}
	// A large buffer, and no ReaderFrom/WriterTo shortcuts (which would copy
	// in 32 KiB steps): the bytes cross ferryd once, in few syscalls.
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	_, _ = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{body}, *bp) // a failure mid-body can only cut the connection
}

// isFile reports whether r, under any wrappers that Unwrap, is a whole
// file on disk (the filesystem storage's body for a download without Range).
func isFile(r io.Reader) bool {
	for {
		switch v := r.(type) {
		case *os.File:
			return true
		case interface{ Unwrap() io.ReadCloser }:
			r = v.Unwrap()
		default:
			return false
		}
	}
}

// redirect answers 307 to a presigned URL of the file's storage, which
// serves Range itself, under the type and disposition ferryd would send. It
// reports false, having written nothing, when the storage has no URLs (the
// filesystem) or signing failed: the caller then streams the file.
func (c *content) redirect(w http.ResponseWriter, r *http.Request, file registry.File, contentType string) bool {
	url, err := c.reg.PresignGet(r.Context(), file, c.presign, bucket.PresignOptions{
		ContentType: contentType, ContentDisposition: w.Header().Get("Content-Disposition")})
	if err != nil || url == "" {
		return false
	}
	h := w.Header()
	h.Set("Location", url)
	h.Set("Cache-Control", "no-store") // the URL expires; ask again
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// safeServing keeps a stored file from running as part of Ferry's origin:
// browsers must not sniff a type, and a type a browser would render as a
// page or script (HTML, SVG, XML, JavaScript) goes out as a download, in a
// sandbox should it be opened anyway.
func safeServing(h http.Header, file registry.File, contentType string) {
	h.Set("X-Content-Type-Options", "nosniff")
	if !activeType(contentType) {
		return
	}
	h.Set("Content-Security-Policy", "sandbox")
	if h.Get("Content-Disposition") == "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(file.Key)}))
	}
}

// activeType reports whether browsers execute or render content of this
// type with the serving origin's privileges.
func activeType(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return true // unparseable: assume the worst
	}
	switch {
	case t == "text/html", t == "application/xhtml+xml", t == "image/svg+xml",
		t == "text/xml", t == "application/xml", strings.HasSuffix(t, "+xml"),
		strings.Contains(t, "javascript"), strings.Contains(t, "ecmascript"),
		t == "text/xsl":
		return true
	}
	return false
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// notModified applies If-None-Match, then If-Modified-Since (RFC 9110 §13.2.2).
func notModified(r *http.Request, etag string, modified time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == etag {
				return true
			}
		}
		return false
	}
	if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil {
		return !modified.After(ims)
	}
	return false
}
