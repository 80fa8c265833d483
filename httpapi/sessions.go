package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// The session routes: create, append, parts, info and abort.

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
	// UploadURL is url with an upload link: it appends, puts parts, reads
	// and aborts this session without an API key (links.go).
	UploadURL string `json:"upload_url,omitempty"`
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

func sessionURL(r *http.Request, id string) string { return baseURL(r) + "/v1/files/session:" + id }

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

// listSessions lists the uploads in progress across every instance (the
// console's live view), a page at a time.
func (f *files) listSessions(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, next, err := f.sessions.List(r.Context(), after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := listResponse[sessionResponse]{Data: make([]sessionResponse, 0, len(page)), HasMore: next != "", Next: next}
	for _, in := range page {
		out.Data = append(out.Data, toSessionResponse(r, in))
	}
	writeJSON(w, r, http.StatusOK, out)
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
		// Whole-file digests: sha256 computed besides the crc32c every file
		// gets, and values the file must have to be published.
		ChecksumAlgorithm string              `json:"checksum_algorithm"`
		Checksums         *registry.Checksums `json:"checksums"`
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
	sp, err := f.sessions.Check(session.Spec{Bucket: req.Bucket, Key: req.Key, MimeType: req.MimeType,
		Size: *req.Size, PartSize: req.PartSize, ChecksumAlgorithm: req.ChecksumAlgorithm, Checksums: req.Checksums})
	if err == nil {
		err = f.preCreate.PreCreate(r.Context(), nativeCreate(r, sp))
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	in, err := f.sessions.CreateSpec(r.Context(), sp)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", sessionURL(r, in.ID))
	writeJSON(w, r, http.StatusCreated, f.toSession(r, in))
}

// nativeCreate is what the pre-create hook is told of a session create:
// the checksums asked for are its metadata.
func nativeCreate(r *http.Request, sp session.Spec) hooks.Create {
	c := hooks.Create{Protocol: session.ProtocolNative, Bucket: sp.Bucket, Key: sp.Key, Size: sp.Size, MimeType: sp.MimeType, Metadata: map[string]string{}}
	c.APIKey, c.ClientAddr = hooks.Requester(r)
	if sp.ChecksumAlgorithm != "" {
		c.Metadata["checksum_algorithm"] = sp.ChecksumAlgorithm
	}
	if sum := sp.Checksums; sum != nil {
		for name, v := range map[string]string{"checksum_crc32c": sum.CRC32C, "checksum_sha256": sum.SHA256} {
			if v != "" {
				c.Metadata[name] = v
			}
		}
	}
	return c
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
	expect, err := parseReprDigest(r.Header.Get("Repr-Digest"))
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
	if pos.length < 0 && expect != nil {
		writeError(w, r, errcode.ErrInvalidRequest.New("a chunk with Repr-Digest needs a known length: send Content-Length, not a chunked body"))
		return
	}
	if pos.length < 0 { // chunked: no length up front
		in, file, err = f.sessions.AppendStream(r.Context(), mux.Vars(r)["id"], pos.offset, pos.total, r.Body)
	} else {
		in, file, err = f.sessions.Append(r.Context(), mux.Vars(r)["id"], session.Chunk{
			Offset: pos.offset, Total: pos.total, Len: pos.length, Body: r.Body, Checksum: sum, Expect: expect})
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
	writeJSON(w, r, http.StatusOK, f.toSession(r, in))
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
	writeJSON(w, r, http.StatusOK, f.toSession(r, in))
}

func (f *files) abortSession(w http.ResponseWriter, r *http.Request) {
	if err := f.sessions.Abort(r.Context(), mux.Vars(r)["id"]); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseReprDigest reads an append's Repr-Digest (RFC 9530): the digests
// the whole file must have, "sha-256=:<base64>:, crc32c=:<base64>:".
// Algorithms Ferry does not compute are ignored, as the RFC asks.
func parseReprDigest(h string) (*registry.Checksums, error) {
	if strings.TrimSpace(h) == "" {
		return nil, nil
	}
	var c registry.Checksums
	for _, item := range strings.Split(h, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || len(value) < 2 || value[0] != ':' || value[len(value)-1] != ':' {
			return nil, session.ErrInvalidChecksum.New("Repr-Digest %q: want items like sha-256=:<base64>: separated by commas", h)
		}
		switch strings.ToLower(name) {
		case "sha-256":
			c.SHA256 = value[1 : len(value)-1]
		case "crc32c":
			c.CRC32C = value[1 : len(value)-1]
		}
	}
	if c == (registry.Checksums{}) {
		return nil, nil
	}
	return &c, nil
}
