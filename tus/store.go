package tus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/hooks"
	"github.com/ferryhq/ferry/internal/outage"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// dataStore is tusd's DataStore (with termination and deferred length)
// over the session engine.
type dataStore struct {
	sessions    *session.Service
	files       Files
	bucket      string // the default
	maxDeferred int64  // the size an upload of deferred length is bounded by
	log         *slog.Logger
	preCreate   *hooks.Hook // nil: no hook
}

// maxMetadata bounds Upload-Metadata, which the session record carries.
const maxMetadata = 8 << 10

// piece is the most one append of a PATCH carries: a long PATCH (tus-js-
// client sends a whole file in one by default) is appended in pieces, each
// streamed to storage and recorded as it lands, so a cut connection keeps
// every whole piece (as tusd's own stores keep what arrived), where one
// append would keep nothing of it. Each piece is a lease, a record save and
// an UploadPart of its own: at 8 MiB a 64 MiB PATCH ran at 0.88x a native
// 64 MiB append, at 32 MiB 0.97x (docs/performance.md).
const piece int64 = 32 << 20

func (s *dataStore) NewUpload(ctx context.Context, info tusd.FileInfo) (tusd.Upload, error) {
	meta := info.MetaData
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	if n > maxMetadata {
		return nil, tusd.NewError("ERR_METADATA_TOO_LARGE", "Upload-Metadata may carry at most 8 KiB", http.StatusRequestHeaderFieldsTooLarge)
	}
	id := session.NewID()
	sp := session.Spec{ID: id, Bucket: meta["bucket"], Key: meta["key"], MimeType: mimeType(meta),
		Size: info.Size, Protocol: session.ProtocolTus, Meta: meta, Partial: info.IsPartial}
	// The values the file must have, as the native create's checksums.
	if c, s := meta["checksum-crc32c"], meta["checksum-sha256"]; c != "" || s != "" {
		sp.Checksums = &registry.Checksums{CRC32C: c, SHA256: s}
	}
	if sp.Bucket == "" {
		sp.Bucket = s.bucket
	}
	if sp.Partial {
		sp.Key = id // a piece has no key of its own: the final upload names the file
	} else if sp.Key == "" {
		key, err := s.keyFor(ctx, sp.Bucket, meta["filename"], id)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		sp.Key = key
	}
	if info.SizeIsDeferred {
		sp.Size, sp.Open = s.maxDeferred, true
	}
	sp, err := s.sessions.Check(sp)
	if err == nil {
		err = s.preCreate.PreCreate(ctx, hookCreate(ctx, sp, info))
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in, err := s.sessions.CreateSpec(ctx, sp)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	stateOf(ctx).noted(in)
	return &upload{s: s, in: in}, nil
}

// hookCreate is what the pre-create hook is told of a tus creation: the
// Upload-Metadata is its metadata. Partial uploads are asked about too
// (their key is the upload id), and the final one that joins them.
func hookCreate(ctx context.Context, sp session.Spec, info tusd.FileInfo) hooks.Create {
	st := stateOf(ctx)
	c := hooks.Create{Protocol: session.ProtocolTus, Bucket: sp.Bucket, Key: sp.Key, Size: sp.Size, MimeType: sp.MimeType,
		APIKey: st.apiKey, ClientAddr: st.clientAddr, Metadata: info.MetaData}
	switch {
	case info.SizeIsDeferred:
		c.Size = -1
	case info.IsPartial:
		c.Concat = "partial"
	case info.IsFinal:
		c.Concat = "final"
	}
	return c
}

// keyFor names an upload without a key: its filename (made a valid key
// segment, and unique in the bucket by the upload id's first 8 digits when
// a file has that name), else the upload id.
func (s *dataStore) keyFor(ctx context.Context, bkt, filename, id string) (string, error) {
	if filename == "" {
		return id, nil
	}
	name := bucket.SafeName(filename)
	_, err := s.files.Get(ctx, bkt, name)
	switch {
	case errcode.Is(err, registry.ErrFileNotFound), errcode.Is(err, registry.ErrBucketNotFound):
		return name, nil
	case err != nil:
		return "", err
	}
	ext := path.Ext(name)
	return strings.TrimSuffix(name, ext) + "-" + id[:8] + ext, nil
}

// mimeType is the metadata's filetype (tus-js-client's name) or mime_type,
// else the filename's extension's.
func mimeType(meta tusd.MetaData) string {
	for _, k := range []string{"filetype", "mime_type"} {
		if v := meta[k]; v != "" {
			return v
		}
	}
	return mime.TypeByExtension(path.Ext(meta["filename"]))
}

func (s *dataStore) GetUpload(ctx context.Context, id string) (tusd.Upload, error) {
	in, err := s.sessions.Get(ctx, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if in.Protocol != session.ProtocolTus { // a native or OpenAI session is not a tus upload
		return nil, tusd.ErrNotFound
	}
	stateOf(ctx).noted(in)
	return &upload{s: s, in: in}, nil
}

func (s *dataStore) AsTerminatableUpload(u tusd.Upload) tusd.TerminatableUpload { return u.(*upload) }

func (s *dataStore) AsLengthDeclarableUpload(u tusd.Upload) tusd.LengthDeclarableUpload {
	return u.(*upload)
}

func (s *dataStore) AsConcatableUpload(u tusd.Upload) tusd.ConcatableUpload { return u.(*upload) }

// upload is one tus upload: the session as loaded by this request.
type upload struct {
	s  *dataStore
	in session.Info
}

func (u *upload) GetInfo(context.Context) (tusd.FileInfo, error) {
	in := u.in
	fi := tusd.FileInfo{ID: in.ID, Size: in.Size, Offset: in.Offset, MetaData: in.Meta,
		Storage:   map[string]string{"Type": "ferry", "Bucket": in.Bucket, "Key": in.Key},
		IsPartial: in.Partial, IsFinal: len(in.Pieces) > 0, PartialUploads: in.Pieces}
	if in.Open {
		fi.Size, fi.SizeIsDeferred = 0, true
	}
	return fi, nil
}

// WriteChunk appends the PATCH body at offset (which tusd checked under the
// tus lock; the session checks it again under its own). A body of known
// length goes in pieces streamed straight to storage, or whole when it
// carries a checksum (which covers the whole body); one of unknown length
// (chunked) through the session's streaming append.
func (u *upload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	st := stateOf(ctx)
	id := u.in.ID
	switch {
	case st.length == 0:
		return 0, nil
	case st.length < 0:
		in, _, err := u.s.sessions.AppendStream(ctx, id, offset, -1, src)
		if err != nil {
			return 0, u.s.fail(ctx, err)
		}
		u.noted(st, in)
		return in.Offset - offset, nil
	}
	// A piece below the session's part size would be held back, and is
	// refused once a part exceeds sessions.max_held_bytes (files over 156
	// GiB by default), so pieces are never smaller than a part.
	step := max(piece, u.in.MinChunk)
	if st.sum != nil {
		step = st.length
	}
	var done int64
	for done < st.length {
		n := min(step, st.length-done)
		in, _, err := u.s.sessions.Append(ctx, id, session.Chunk{Offset: offset + done, Total: -1, Len: n,
			Body: io.LimitReader(src, n), Checksum: st.sum})
		if err != nil {
			return done, u.s.fail(ctx, err)
		}
		u.noted(st, in)
		done += n
	}
	return done, nil
}

func (u *upload) noted(st *requestState, in session.Info) {
	u.in = in
	st.noted(in)
}

func (u *upload) GetReader(context.Context) (io.ReadCloser, error) {
	return nil, tusd.ErrNotImplemented // downloads are disabled; the native :content route serves the file
}

// FinishUpload runs when the offset reaches the size. The append that
// brought the last byte has completed the session already; an upload of
// size 0 (or one whose completion was cut short) is completed here by an
// empty append, which on a completed session only returns its file.
func (u *upload) FinishUpload(ctx context.Context) error {
	if u.in.Completed {
		return nil
	}
	in, _, err := u.s.sessions.Append(ctx, u.in.ID, session.Chunk{Offset: -1, Total: -1})
	if err != nil {
		return u.s.fail(ctx, err)
	}
	u.noted(stateOf(ctx), in)
	return nil
}

// ConcatUploads makes a final upload from its partial uploads, whole and in
// order (tusd checked both), and completes it: on S3 the pieces become
// parts by UploadPartCopy, so their bytes do not pass through ferryd again
// (session.Concat). The partial uploads are removed.
func (u *upload) ConcatUploads(ctx context.Context, partials []tusd.Upload) error {
	ids := make([]string, len(partials))
	for i, p := range partials {
		ids[i] = p.(*upload).in.ID
	}
	// Once begun, the join runs to the end whether or not the client waits.
	in, _, err := u.s.sessions.Concat(context.WithoutCancel(ctx), u.in.ID, ids)
	if err != nil {
		return u.s.fail(ctx, err)
	}
	u.noted(stateOf(ctx), in)
	return nil
}

func (u *upload) Terminate(ctx context.Context) error {
	return u.s.fail(ctx, u.s.sessions.Abort(ctx, u.in.ID))
}

// DeclareLength fixes the size of an upload created with deferred length.
// If every byte is in already, the session completes here.
func (u *upload) DeclareLength(ctx context.Context, length int64) error {
	in, _, err := u.s.sessions.Declare(ctx, u.in.ID, length)
	if err != nil {
		return u.s.fail(ctx, err)
	}
	u.noted(stateOf(ctx), in)
	return nil
}

// tusCodes are the engine's codes that tus names, as tus clients expect
// them: busy is 423 (tusd's locked upload), a checksum mismatch 460.
var tusCodes = []struct {
	code errcode.Code
	tus  tusd.Error
}{
	{session.ErrNotFound, tusd.ErrNotFound},
	{session.ErrExpired, tusd.NewError("ERR_UPLOAD_EXPIRED", "", http.StatusGone)},
	{session.ErrOffsetMismatch, tusd.ErrMismatchOffset},
	{session.ErrBusy, tusd.ErrFileLocked},
	{session.ErrChecksumMismatch, tusd.NewError("ERR_CHECKSUM_MISMATCH", "", 460)},
	{session.ErrPastSize, tusd.ErrSizeExceeded},
}

// fail renders a Ferry error as tusd's Error, keeping the detail: the
// engine's codes that tus names map to tus's statuses (busy is 423, a
// checksum mismatch 460), the rest keep their code and status. Anything
// else is logged here and answered 500 without its detail.
func (s *dataStore) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var te tusd.Error
	if errors.As(err, &te) {
		return err
	}
	e := errcode.From(err)
	if e.Code == errcode.ErrInternal && ctx.Err() == nil && outage.Is(err) {
		e = errcode.ErrUnavailable.Wrap(err, "a storage service ferryd depends on is unreachable or overloaded; retry after the Retry-After delay")
	}
	if e.Code == errcode.ErrInternal {
		s.log.ErrorContext(ctx, "tus_failed", "err", err)
		return tusd.NewError("ERR_INTERNAL_SERVER_ERROR", e.Detail, http.StatusInternalServerError)
	}
	base := tusd.NewError("ERR_"+e.Code.Value, "", e.Code.Status)
	for _, m := range tusCodes {
		if e.Code.Value == m.code.Value {
			base = m.tus
			break
		}
	}
	out := tusd.NewError(base.ErrorCode, e.Detail, base.HTTPResponse.StatusCode)
	if e.Code.Status == http.StatusServiceUnavailable {
		out.HTTPResponse.Header["Retry-After"] = "5"
	}
	return out
}
