package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/vectorstore"
)

// The OpenAI-compatible routes. Llama Stack's Files API docs spell the
// prefix both ways in their examples, so both are served.
var openAIPrefixes = []string{"/v1/openai/v1", "/v1/openAi/v1"}

// FormLimits bound a multipart form (OpenAI's have a handful of parts):
// its parts and all its non-file bytes together, so a form of thousands of
// small fields cannot grow memory (server.max_form_parts and
// server.max_form_bytes). Zero fields take config's defaults.
type FormLimits struct {
	Parts int
	Bytes int
}

func (l FormLimits) withDefaults() FormLimits {
	d := config.Default().Server
	if l.Parts <= 0 {
		l.Parts = d.MaxFormParts
	}
	if l.Bytes <= 0 {
		l.Bytes = d.MaxFormBytes
	}
	return l
}

type openAI struct {
	svc      *openai.Service
	vs       *vectorstore.Service // nil: no vector store routes
	registry *registry.Registry
	guard    *guard
	bytes    *content
	forms    FormLimits
	// preCreate is asked before a file or an Upload is created; nil: no hook.
	preCreate *hooks.Hook
}

func (o *openAI) routes(r *mux.Router) {
	g := o.guard
	for _, prefix := range openAIPrefixes {
		sub := r.PathPrefix(prefix).Subrouter()
		sub.Handle("/files", g.with(openAIWrite, o.uploadFile)).Methods(http.MethodPost)
		sub.Handle("/files", g.with(openAIRead, o.listFiles)).Methods(http.MethodGet)
		o.fileRoutes(sub, "/files/{id}")
		o.uploadAndStoreRoutes(sub)
		sub.PathPrefix("/").Handler(g.with(public, func(w http.ResponseWriter, r *http.Request) {
			writeOpenAIError(w, r, errcode.ErrNotFound.New("no route for %s %s", r.Method, r.URL.Path))
		}))
	}
	// At the root too, for SDKs whose base URL is http://host:8321/v1. The
	// native API holds /v1/files; its routes pick OpenAI's where a request
	// is unambiguous (rootFiles).
	o.uploadAndStoreRoutes(r.PathPrefix(openAIRoot).Subrouter())
}

// openAIRoot is where the OpenAI routes are served beside the native API.
const openAIRoot = "/v1"

// cutOpenAIPrefix returns an OpenAI route template (or path) without its
// prefix, as "/files/{id}" or "/uploads", and whether it is one.
func cutOpenAIPrefix(route string) (string, bool) {
	for _, p := range openAIPrefixes {
		if rest, ok := strings.CutPrefix(route, p); ok {
			return rest, true
		}
	}
	for _, p := range []string{"/uploads", "/vector_stores", "/files/{id:file-", "/files/file-"} {
		if strings.HasPrefix(route, openAIRoot+p) {
			return strings.TrimPrefix(route, openAIRoot), true
		}
	}
	return "", false
}

// isOpenAI reports whether the request is served by the OpenAI adapter,
// and so answers errors in OpenAI's envelope. Before a route has matched
// (a wrong key, a foreign Host) the prefix says.
func isOpenAI(r *http.Request) bool {
	route := infoOf(r).route
	if route == unmatchedRoute {
		route = r.URL.Path
	}
	_, ok := cutOpenAIPrefix(route)
	return ok || route == "/v1/files" && wantsOpenAI(r)
}

// fileIDPath matches an OpenAI file id, which no bucket name may be
// (bucket.ValidateBucketName), so /v1/files/{id} is never a bucket.
const fileIDPath = "/files/{id:file-[0-9a-f]{32}}"

// fileRoutes mounts one file's routes at path.
func (o *openAI) fileRoutes(sub *mux.Router, path string) {
	g := o.guard
	sub.Handle(path, g.with(openAIRead, o.getFile)).Methods(http.MethodGet)
	sub.Handle(path, g.with(openAIWrite, o.deleteFile)).Methods(http.MethodDelete)
	sub.Handle(path+"/content", g.with(openAIRead, o.content)).Methods(http.MethodGet, http.MethodHead)
}

func (o *openAI) uploadAndStoreRoutes(sub *mux.Router) {
	g := o.guard
	sub.Handle("/uploads", g.with(openAIWrite, o.createUpload)).Methods(http.MethodPost)
	sub.Handle("/uploads/{id}/parts", g.with(openAIWrite, o.addPart)).Methods(http.MethodPost)
	sub.Handle("/uploads/{id}/complete", g.with(openAIWrite, o.completeUpload)).Methods(http.MethodPost)
	sub.Handle("/uploads/{id}/cancel", g.with(openAIWrite, o.cancelUpload)).Methods(http.MethodPost)
	if o.vs != nil {
		o.vectorStoreRoutes(sub)
	}
}

// wantsOpenAI reports whether a request to /v1/files itself is OpenAI's:
// a multipart POST is a file upload (a native create is JSON); a GET is
// the OpenAI file list when it carries OpenAI's list parameters (purpose,
// order, an after cursor that is a file id) or comes from an OpenAI-style
// SDK (the Stainless-generated ones send X-Stainless-* headers on every
// request; OpenAI-Organization or OpenAI-Project also count), and the
// native bucket list otherwise.
func wantsOpenAI(r *http.Request) bool {
	if r.Method == http.MethodPost {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		return mt == "multipart/form-data"
	}
	q := r.URL.Query()
	if q.Has("purpose") || q.Has("order") || strings.HasPrefix(q.Get("after"), "file-") {
		return true
	}
	for name := range r.Header {
		if strings.HasPrefix(name, "X-Stainless-") || name == "Openai-Organization" || name == "Openai-Project" {
			return true
		}
	}
	return false
}

// decodeOpenAIJSON is lenient about unknown fields: the SDKs add new
// optional fields over time, and they must not break old servers.
func decodeOpenAIJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody)).Decode(v); err != nil {
		return jsonError(err)
	}
	return nil
}

// multipartParts opens a multipart/form-data body or says what to send.
func (o *openAI) multipartParts(r *http.Request, want string) (*multipartReader, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errcode.ErrInvalidRequest.New("send multipart/form-data with %s: %v", want, err)
	}
	return &multipartReader{mr: mr, fields: map[string]string{}, limits: o.forms}, nil
}

func (o *openAI) uploadFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := o.multipartParts(r, "the fields file and purpose")
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	var staged *openai.Staged
	fail := func(err error) {
		if staged != nil {
			o.svc.DiscardFile(ctx, staged)
		}
		writeOpenAIError(w, r, err)
	}
	// The SDKs send the file before purpose, so its bytes are streamed into
	// storage first and published only once every field has checked out.
	err = form.each(func(name, filename, contentType string, body io.Reader) error {
		if name != "file" {
			return nil
		}
		if staged != nil {
			return errcode.ErrInvalidRequest.New("send one file field, not several")
		}
		var err error
		staged, err = o.svc.StageFile(ctx, filename, contentType, body)
		return err
	})
	if err != nil {
		fail(err)
		return
	}
	if staged == nil {
		fail(errcode.ErrInvalidRequest.New("the file field is missing"))
		return
	}
	purpose := form.fields["purpose"]
	if err := openai.ValidatePurpose(purpose); err != nil {
		fail(err)
		return
	}
	expires, err := openai.ParseExpiresAfter(form.fields["expires_after[anchor]"], form.fields["expires_after[seconds]"])
	if err != nil {
		fail(err)
		return
	}
	// The hook is asked once the bytes are in: only then are the size and
	// the purpose (which the SDKs send after the file) known. A refused
	// file is discarded unpublished.
	if err := o.preCreate.PreCreate(ctx, openAIFileCreate(r, staged, purpose, expires)); err != nil {
		fail(err)
		return
	}
	obj, err := o.svc.CommitFile(ctx, staged, purpose, expires)
	if err != nil {
		fail(err)
		return
	}
	writeJSON(w, r, http.StatusOK, obj)
}

// limitOrder reads a list's limit (1 to max, default def) and order
// (asc, or desc by default).
func limitOrder(q url.Values, def, max int) (limit int, desc bool, err error) {
	limit = def
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return 0, false, errcode.ErrInvalidRequest.New("limit %q must be an integer from 1 to %d", v, max)
		}
		limit = n
	}
	switch q.Get("order") {
	case "", "desc":
		return limit, true, nil
	case "asc":
		return limit, false, nil
	}
	return 0, false, errcode.ErrInvalidRequest.New("order %q must be asc or desc", q.Get("order"))
}

func (o *openAI) listFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := openai.ListParams{After: q.Get("after"), Purpose: q.Get("purpose")}
	var err error
	if p.Limit, p.Desc, err = limitOrder(q, 10000, 10000); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	if p.Purpose != "" {
		if err := openai.ValidatePurpose(p.Purpose); err != nil {
			writeOpenAIError(w, r, err)
			return
		}
	}
	page, err := o.svc.ListFiles(r.Context(), p)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, page)
}

func (o *openAI) getFile(w http.ResponseWriter, r *http.Request) {
	obj, _, err := o.svc.GetFile(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, obj)
}

func (o *openAI) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if err := o.svc.DeleteFile(r.Context(), id); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

// content streams the bytes as the SDKs expect: octet-stream, with the
// filename in Content-Disposition (quoted and escaped by mime).
func (o *openAI) content(w http.ResponseWriter, r *http.Request) {
	obj, file, err := o.svc.GetFile(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": obj.Filename}))
	o.bytes.serve(w, r, file, "application/octet-stream", writeOpenAIError)
}

func (o *openAI) createUpload(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Filename     string `json:"filename"`
		Purpose      string `json:"purpose"`
		Bytes        *int64 `json:"bytes"`
		MimeType     string `json:"mime_type"`
		ExpiresAfter *struct {
			Anchor  string `json:"anchor"`
			Seconds int64  `json:"seconds"`
		} `json:"expires_after"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	if req.Bytes == nil {
		writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("bytes is required: the total size of the file"))
		return
	}
	var expires int64
	if e := req.ExpiresAfter; e != nil {
		var err error
		if expires, err = openai.ParseExpiresAfter(e.Anchor, strconv.FormatInt(e.Seconds, 10)); err != nil {
			writeOpenAIError(w, r, err)
			return
		}
	}
	p := openai.UploadParams{Filename: req.Filename, Purpose: req.Purpose, Bytes: *req.Bytes, MimeType: req.MimeType, ExpiresAfter: expires}
	err := o.svc.CheckUpload(p)
	if err == nil {
		err = o.preCreate.PreCreate(r.Context(), openAIUploadCreate(r, o.svc.Bucket(), p))
	}
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	up, err := o.svc.CreateUpload(r.Context(), p)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, up)
}

// openAIFileCreate is what the pre-create hook is told of a file upload:
// its purpose, filename and expiry are the metadata.
func openAIFileCreate(r *http.Request, st *openai.Staged, purpose string, expiresAfter int64) hooks.Create {
	c := hooks.Create{Protocol: session.ProtocolOpenAI, Bucket: st.Bucket, Key: st.Key, Size: st.Bytes, MimeType: st.MimeType,
		Metadata: openAIMetadata(purpose, st.Filename(), expiresAfter)}
	c.APIKey, c.ClientAddr = hooks.Requester(r)
	return c
}

// openAIUploadCreate is what the pre-create hook is told of an Upload: its
// file's key is named only when it completes.
func openAIUploadCreate(r *http.Request, bkt string, p openai.UploadParams) hooks.Create {
	c := hooks.Create{Protocol: session.ProtocolOpenAI, Bucket: bkt, Size: p.Bytes, MimeType: p.MimeType,
		Metadata: openAIMetadata(p.Purpose, p.Filename, p.ExpiresAfter)}
	c.APIKey, c.ClientAddr = hooks.Requester(r)
	return c
}

// openAIMetadata is an OpenAI create's metadata for the hook.
func openAIMetadata(purpose, filename string, expiresAfter int64) map[string]string {
	m := map[string]string{"purpose": purpose, "filename": filename}
	if expiresAfter > 0 {
		m["expires_after"] = strconv.FormatInt(expiresAfter, 10)
	}
	return m
}

func (o *openAI) addPart(w http.ResponseWriter, r *http.Request) {
	form, err := o.multipartParts(r, "the field data")
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	var part *openai.Part
	err = form.each(func(name, _, _ string, body io.Reader) error {
		if name != "data" {
			return nil
		}
		if part != nil {
			return errcode.ErrInvalidRequest.New("send one data field per part")
		}
		p, err := o.svc.AddPart(r.Context(), mux.Vars(r)["id"], body)
		part = &p
		return err
	})
	if err == nil && part == nil {
		err = errcode.ErrInvalidRequest.New("the data field is missing")
	}
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, part)
}

func (o *openAI) completeUpload(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PartIDs []string `json:"part_ids"`
		MD5     string   `json:"md5"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	up, err := o.svc.CompleteUpload(r.Context(), mux.Vars(r)["id"], req.PartIDs, req.MD5)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, up)
}

func (o *openAI) cancelUpload(w http.ResponseWriter, r *http.Request) {
	up, err := o.svc.CancelUpload(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, up)
}

// multipartReader walks a form in order: small fields are collected into
// fields, and file parts are handed to the callback as streams, so a file is
// never held in memory.
type multipartReader struct {
	mr     *multipart.Reader
	fields map[string]string
	limits FormLimits
}

func (m *multipartReader) each(fn func(name, filename, contentType string, body io.Reader) error) error {
	fieldBytes := 0
	for parts := 1; ; parts++ {
		p, err := m.mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errcode.ErrInvalidRequest.New("the multipart body is malformed: %v", err)
		}
		if parts > m.limits.Parts {
			return errcode.ErrInvalidRequest.New("the form has more than %d parts (server.max_form_parts); send the file and its few fields only", m.limits.Parts)
		}
		name := p.FormName()
		if p.FileName() != "" || name == "file" || name == "data" {
			err = fn(name, p.FileName(), p.Header.Get("Content-Type"), p)
		} else {
			v, rerr := io.ReadAll(io.LimitReader(p, int64(m.limits.Bytes-fieldBytes)+1))
			fieldBytes += len(v)
			switch {
			case rerr != nil:
				err = errcode.ErrInvalidRequest.New("reading field %q: %v", name, rerr)
			case fieldBytes > m.limits.Bytes:
				err = errcode.ErrInvalidRequest.New("the form's fields exceed %d bytes together (server.max_form_bytes)", m.limits.Bytes)
			default:
				m.fields[name] = string(v)
			}
		}
		if err != nil {
			return err // the rest is not read: closing the part would read a huge field to its end
		}
		p.Close()
	}
}
