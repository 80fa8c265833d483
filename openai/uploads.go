package openai

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// Upload is OpenAI's Upload object.
type Upload struct {
	ID        string      `json:"id"`
	Object    string      `json:"object"`
	Bytes     int64       `json:"bytes"`
	CreatedAt int64       `json:"created_at"`
	ExpiresAt int64       `json:"expires_at"`
	Filename  string      `json:"filename"`
	Purpose   string      `json:"purpose"`
	Status    string      `json:"status"` // pending, completed, cancelled, expired
	File      *FileObject `json:"file"`
}

// Part is OpenAI's upload part object.
type Part struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	CreatedAt int64  `json:"created_at"`
	UploadID  string `json:"upload_id"`
}

type uploadRecord struct {
	Upload
	MimeType     string `json:"mime_type"`
	ExpiresAfter int64  `json:"expires_after,omitempty"` // for the file it becomes
	Owner        string `json:"owner,omitempty"`         // the API key that created it
}

type partRecord struct {
	Size    int64  `json:"size"`
	Session string `json:"session,omitempty"` // a piece session (session.Concat joins them)
	Key     string `json:"key,omitempty"`     // a file in the uploads bucket: parts stored before pieces
}

func newToken(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// UploadParams are the fields of POST /uploads.
type UploadParams struct {
	Filename     string
	Purpose      string
	Bytes        int64
	MimeType     string
	ExpiresAfter int64 // seconds after created_at for the resulting file; 0 none
}

// CheckUpload refuses the Upload CreateUpload would refuse, without
// creating anything.
func (s *Service) CheckUpload(p UploadParams) error {
	switch {
	case p.Filename == "":
		return errcode.ErrInvalidRequest.New("filename is required")
	case p.MimeType == "":
		return errcode.ErrInvalidRequest.New("mime_type is required, e.g. text/jsonl")
	case p.Bytes < 0 || p.Bytes > s.cfg.MaxUploadSize:
		return errcode.ErrInvalidRequest.New("bytes %d must be from 0 to %d", p.Bytes, s.cfg.MaxUploadSize)
	}
	return ValidatePurpose(p.Purpose)
}

// CreateUpload starts an Upload.
func (s *Service) CreateUpload(ctx context.Context, p UploadParams) (Upload, error) {
	if err := s.CheckUpload(p); err != nil {
		return Upload{}, err
	}
	now := s.now()
	rec := uploadRecord{Upload: Upload{ID: newToken("upload_"), Object: "upload", Bytes: p.Bytes, CreatedAt: now.Unix(),
		ExpiresAt: now.Add(s.cfg.UploadTTL).Unix(), Filename: p.Filename, Purpose: p.Purpose, Status: "pending"},
		MimeType: p.MimeType, ExpiresAfter: p.ExpiresAfter, Owner: auth.Owner(ctx)}
	if err := s.store.IndexPut(ctx, expiryIndex, due.Member(now.Add(s.cfg.UploadTTL), rec.ID), nil); err != nil {
		return Upload{}, err
	}
	if _, err := s.saveUpload(ctx, rec, 0, 0); err != nil {
		return Upload{}, err
	}
	s.uploads.WithLabelValues("created").Inc()
	return rec.Upload, nil
}

func (s *Service) saveUpload(ctx context.Context, rec uploadRecord, ver, fence int64) (int64, error) {
	// Kept a day past expiry so late calls learn "expired", not "unknown".
	ttl := time.Until(time.Unix(rec.ExpiresAt, 0)) + 24*time.Hour
	ver, err := metastore.PutJSON(ctx, s.store, uploadKey(rec.ID), rec, metastore.Cond{Version: ver, Fence: fence, TTL: ttl})
	if errors.Is(err, metastore.ErrConflict) || errors.Is(err, metastore.ErrFenced) {
		return 0, errcode.ErrConflict.New("upload %s changed concurrently; retry", rec.ID)
	}
	return ver, err
}

// readUpload returns the record as stored.
func (s *Service) readUpload(ctx context.Context, id string) (uploadRecord, int64, error) {
	rec, ver, err := metastore.GetJSON[uploadRecord](ctx, s.store, uploadKey(id))
	if errors.Is(err, metastore.ErrNotFound) {
		return uploadRecord{}, 0, ErrUploadNotFound.New("no upload with id %q", id)
	}
	return rec, ver, err
}

// loadUpload returns the upload as clients see it: a pending one past its
// expiry is expired, whether or not the purger has got to it, and another
// key's is not found.
func (s *Service) loadUpload(ctx context.Context, id string) (uploadRecord, int64, error) {
	rec, ver, err := s.readUpload(ctx, id)
	if err == nil && !auth.Sees(ctx, rec.Owner) {
		return uploadRecord{}, 0, ErrUploadNotFound.New("no upload with id %q", id)
	}
	if err == nil && rec.Status == "pending" && !s.now().Before(time.Unix(rec.ExpiresAt, 0)) {
		rec.Status = "expired"
	}
	return rec, ver, err
}

func pending(rec uploadRecord) error {
	if rec.Status != "pending" {
		return ErrUploadState.New("upload %s is %s; only a pending upload takes parts, completes or cancels", rec.ID, rec.Status)
	}
	return nil
}

// AddPart stores one part. Parts may arrive in parallel and in any order.
//
// A part streams in without the upload's lock, so the upload may be
// cancelled, completed or expire meanwhile; those free every part indexed
// by then. A part therefore indexes itself first and then looks at the
// upload again: if it is no longer pending, the part removes itself and
// answers as a part sent to a settled upload does. Either the settling
// request's sweep sees the index entry or the part sees the new status.
func (s *Service) AddPart(ctx context.Context, uploadID string, r io.Reader) (Part, error) {
	rec, _, err := s.loadUpload(ctx, uploadID)
	if err != nil {
		return Part{}, err
	}
	if err := pending(rec); err != nil {
		return Part{}, err
	}
	part := Part{ID: newToken("part_"), Object: "upload.part", CreatedAt: s.now().Unix(), UploadID: uploadID}
	// A piece: complete joins the parts in storage, without reading them.
	sp := session.Spec{Bucket: s.cfg.UploadsBucket, Key: uploadID + "/" + part.ID, Protocol: session.ProtocolOpenAI, Partial: true}
	sid, _, err := s.sessions.Ingest(ctx, sp, r, s.cfg.MaxPartSize)
	if err != nil {
		return Part{}, err
	}
	f, err := s.sessions.Seal(ctx, sid, nil)
	if err != nil {
		return Part{}, err
	}
	p := partRecord{Size: f.Bytes, Session: sid}
	v, _ := json.Marshal(p)
	if err := s.store.IndexPut(ctx, partsIndex(uploadID), part.ID, v); err != nil {
		s.dropLatePart(ctx, uploadID, part.ID, p)
		return Part{}, err
	}
	rec, _, err = s.loadUpload(ctx, uploadID)
	if err == nil {
		err = pending(rec)
	}
	switch {
	case errcode.Is(err, ErrUploadState), errcode.Is(err, ErrUploadNotFound):
		s.dropLatePart(ctx, uploadID, part.ID, p)
		return Part{}, err
	case err != nil:
		return Part{}, err // indexed: a later complete may use it, and settling frees it
	}
	s.uploads.WithLabelValues("parts").Inc()
	return part, nil
}

// dropLatePart removes a part that must not stay, whatever the client
// does meanwhile. If that fails, the upload is filed for the purger, whose
// sweep of a settled upload removes it.
func (s *Service) dropLatePart(ctx context.Context, uploadID, partID string, p partRecord) {
	ctx = context.WithoutCancel(ctx)
	if err := s.dropPart(ctx, uploadID, partID, p); err != nil {
		s.log.WarnContext(ctx, "drop_late_upload_part", "upload", uploadID, "part", partID, "err", err)
		if err := s.store.IndexPut(ctx, expiryIndex, due.Member(s.now(), uploadID), nil); err != nil {
			s.log.ErrorContext(ctx, "drop_late_upload_part", "upload", uploadID, "part", partID, "err", err)
		}
	}
}

// uploadLockTTL is the lease of the upload's lock. It is refreshed while
// the holder works, so it only bounds how long a crashed holder blocks the
// upload. A variable so tests can lose a lease quickly.
var uploadLockTTL = 30 * time.Second

// completeTimeout bounds a completion, which joins up to MaxUploadSize
// bytes and runs to the end even if the client hangs up.
const completeTimeout = time.Hour

// withUploadLock serialises complete, cancel and expiry of one upload. fn
// runs on a context that is cancelled if the lease is lost, and writes the
// record with the lease's fence.
func (s *Service) withUploadLock(ctx context.Context, id string, o metastore.LockOptions, fn func(ctx context.Context, fence int64) error) error {
	o.TTL = uploadLockTTL
	held := false
	err := metastore.WithLock(ctx, s.store, uploadLock(id), o, func(h metastore.Held) error {
		held = true
		return fn(h.Ctx, h.Fence)
	})
	if !held && errors.Is(err, metastore.ErrLocked) {
		return errcode.ErrConflict.New("upload %s is being completed or cancelled by another request", id)
	}
	return err
}

// withPending runs fn under the upload's lock if the upload is pending.
func (s *Service) withPending(ctx context.Context, id string, o metastore.LockOptions, fn func(ctx context.Context, rec *uploadRecord, ver, fence int64) error) error {
	return s.withUploadLock(ctx, id, o, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.loadUpload(ctx, id)
		if err != nil {
			return err
		}
		if err := pending(rec); err != nil {
			return err
		}
		return fn(ctx, &rec, ver, fence)
	})
}

// CompleteUpload joins the listed parts, in order, into one file. The byte
// total must equal the declared size and, when given, the MD5 must match;
// nothing is published otherwise.
func (s *Service) CompleteUpload(ctx context.Context, id string, partIDs []string, md5hex string) (Upload, error) {
	var out Upload
	// Detached: once started, a join runs to the end (or fails whole)
	// whatever the client does.
	o := metastore.LockOptions{Detach: true, Timeout: completeTimeout}
	err := s.withPending(ctx, id, o, func(ctx context.Context, rec *uploadRecord, ver, fence int64) error {
		if len(partIDs) == 0 && rec.Bytes > 0 {
			return errcode.ErrInvalidRequest.New("part_ids is empty; list the parts in the order to join them")
		}
		parts := make([]partRecord, len(partIDs))
		var total int64
		seen := map[string]bool{}
		for i, pid := range partIDs {
			if pid == "" { // no part has it, and the stores refuse an empty index member
				return errcode.ErrInvalidRequest.New("part_ids lists an empty id")
			}
			if seen[pid] {
				return errcode.ErrInvalidRequest.New("part %s is listed twice", pid)
			}
			seen[pid] = true
			p, err := metastore.IndexGetJSON[partRecord](ctx, s.store, partsIndex(id), pid)
			if errors.Is(err, metastore.ErrNotFound) {
				return errcode.ErrInvalidRequest.New("part %s does not belong to upload %s", pid, id)
			}
			if err != nil {
				return err
			}
			parts[i] = p
			total += parts[i].Size
		}
		if total != rec.Bytes {
			return errcode.ErrInvalidRequest.New("the parts hold %d bytes but the upload was created for %d", total, rec.Bytes)
		}
		file, err := s.join(ctx, *rec, parts, md5hex)
		if err != nil {
			return err
		}
		rec.File = &file
		if err := s.settle(ctx, rec, ver, fence, "completed"); err != nil {
			return err
		}
		out = rec.Upload
		return nil
	})
	return out, err
}

// CancelUpload cancels a pending upload and frees its parts.
func (s *Service) CancelUpload(ctx context.Context, id string) (Upload, error) {
	var out Upload
	o := metastore.LockOptions{Detach: true, Timeout: 5 * time.Minute} // a hang-up does not leave it half-freed
	err := s.withPending(ctx, id, o, func(ctx context.Context, rec *uploadRecord, ver, fence int64) error {
		if err := s.settle(ctx, rec, ver, fence, "cancelled"); err != nil {
			return err
		}
		out = rec.Upload
		return nil
	})
	return out, err
}

// expireUpload marks a pending upload past its expiry expired and frees
// its parts. For an upload already settled (or gone) it sweeps parts that
// slipped through: one that landed after the upload settled and could not
// remove itself, or one a failed deletion left.
func (s *Service) expireUpload(ctx context.Context, id string) error {
	return s.withUploadLock(ctx, id, metastore.LockOptions{}, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.readUpload(ctx, id)
		switch {
		case errcode.Is(err, ErrUploadNotFound):
			return s.dropParts(ctx, id)
		case err != nil:
			return err
		case rec.Status != "pending":
			return s.dropParts(ctx, id)
		case s.now().Before(time.Unix(rec.ExpiresAt, 0)):
			return nil // filed early; its own entry comes at its expiry
		}
		rec.Status = "expired"
		if _, err := s.saveUpload(ctx, rec, ver, fence); err != nil {
			return err
		}
		s.uploads.WithLabelValues("expired").Inc()
		return s.dropParts(ctx, id)
	})
}

// settle moves a pending upload to its final status and frees its parts.
// Parts it cannot free now stay for the purger, which sweeps the upload
// when its expiry entry comes due.
func (s *Service) settle(ctx context.Context, rec *uploadRecord, ver, fence int64, status string) error {
	rec.Status = status
	if _, err := s.saveUpload(ctx, *rec, ver, fence); err != nil {
		return err
	}
	s.uploads.WithLabelValues(status).Inc()
	if err := s.dropParts(ctx, rec.ID); err != nil {
		s.log.WarnContext(ctx, "drop_upload_parts", "upload", rec.ID, "err", err)
	}
	return nil
}

// dropParts deletes every stored part of an upload: those in its parts
// index, then any file under its prefix in the uploads bucket that never
// made it into the index (a part request that ended in between).
func (s *Service) dropParts(ctx context.Context, id string) error {
	for {
		entries, _, err := s.store.IndexList(ctx, partsIndex(id), metastore.Query{Limit: 100})
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			var p partRecord
			_ = json.Unmarshal(e.Value, &p)
			if err := s.dropPart(ctx, id, e.Member, p); err != nil {
				return err
			}
		}
	}
	for {
		page, err := s.files.List(ctx, s.cfg.UploadsBucket, id+"/", "", 100)
		if errcode.Is(err, registry.ErrBucketNotFound) || err == nil && len(page.Data) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		deleted := 0
		for _, f := range page.Data {
			_, err := s.files.Delete(ctx, f.Bucket, f.Key)
			if err != nil && !errcode.Is(err, registry.ErrFileNotFound) {
				return err
			}
			if err == nil {
				deleted++
			}
		}
		if deleted == 0 {
			return nil // listed but not there to delete: nothing more to do
		}
	}
}

// dropPart deletes one part's piece (or file), then its index entry.
func (s *Service) dropPart(ctx context.Context, uploadID, partID string, p partRecord) error {
	if p.Session != "" {
		if err := s.sessions.Abort(ctx, p.Session); err != nil && !errcode.Is(err, session.ErrNotFound) {
			return fmt.Errorf("delete part %s of upload %s: %w", partID, uploadID, err)
		}
	}
	if p.Key != "" {
		if _, err := s.files.Delete(ctx, s.cfg.UploadsBucket, p.Key); err != nil && !errcode.Is(err, registry.ErrFileNotFound) {
			return fmt.Errorf("delete part %s of upload %s: %w", partID, uploadID, err)
		}
	}
	return s.store.IndexDelete(ctx, partsIndex(uploadID), partID)
}
