package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
)

const (
	stateUploading = "uploading"
	stateCompleted = "completed"
	defaultMime    = "application/octet-stream"
)

// record is a session as stored.
type record struct {
	ID        string    `json:"id"`
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	MimeType  string    `json:"mime_type"`
	Size      int64     `json:"size"`
	Offset    int64     `json:"offset"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Open: Size is only an upper bound until Seal fixes it (streams of
	// unknown length, such as a multipart form's file field).
	Open   bool              `json:"open,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"` // copied onto the published file
	FileID string            `json:"file_id,omitempty"`
	// Protocol created the session ("" is native): the metrics' label.
	Protocol string `json:"protocol,omitempty"`
	// Meta is the creating protocol's own data (tus: Upload-Metadata), kept
	// with the session for every instance to see and never published.
	Meta map[string]string `json:"meta,omitempty"`
	// Where the bytes go, fixed at creation: a registered bucket's location
	// ("" for Ferry's own storage) and the backend key.
	Location string `json:"location,omitempty"`
	Object   string `json:"object,omitempty"`

	// S3 engine state.
	UploadID  string        `json:"upload_id,omitempty"` // empty: the file is small enough for one Put
	MinPart   int64         `json:"part_size,omitempty"` // every part but the last is at least this
	Parts     []bucket.Part `json:"parts,omitempty"`
	TailLen   int64         `json:"tail_len,omitempty"` // bytes held back for the next parts
	heldNoted int64         // TailLen as the held-back ledger has it
	TailFirst int           `json:"tail_first,omitempty"` // in tail records TailFirst..
	TailSegs  int           `json:"tail_segs,omitempty"`  // ..TailFirst+TailSegs-1
	TailTags  []string      `json:"tail_tags,omitempty"`  // each segment's tag in its writer's memory (engine.go)
	TailUntil time.Time     `json:"tail_until,omitzero"`  // when the first of them expires
	TailFloor int           `json:"tail_floor,omitempty"` // segments [TailFloor, TailFirst) may outlive a failed cleanup
	// The first TailPart segments of the tail, TailPartLen bytes, are part
	// len(Parts)+1, whole and written behind (writebehind.go): its upload
	// may still be running on the instance that held them back. 0: none,
	// the tail is shorter than a part.
	TailPart    int   `json:"tail_part,omitempty"`
	TailPartLen int64 `json:"tail_part_len,omitempty"`
	// TailAhead are the whole parts after the waiting one, in order, each
	// written behind like it; they wait in its place once it is recorded.
	TailAhead []tailSpan `json:"tail_ahead,omitempty"`
	ETag      string     `json:"etag,omitempty"` // set once the object exists

	// Parallel parts (parts.go): PartSize is every part's size but the
	// last's; Parallel is set when the first part starts, and from then on
	// the session takes parts only, each recorded in its parts index.
	PartSize int64 `json:"parallel_part_size,omitempty"`
	Parallel bool  `json:"parallel,omitempty"`

	// Pieces (concat.go): a Partial session's bytes are a piece of a file
	// that Concat makes; once whole they stay in storage, unpublished,
	// until that file takes them or the session expires. Pieces are the
	// partial sessions a Concat made this one from.
	Partial bool     `json:"partial,omitempty"`
	Pieces  []string `json:"pieces,omitempty"`

	// CRC32C is the CRC32C of the bytes before Offset (sequential
	// sessions), and of the whole file once completed (every kind). nil:
	// the session was created by a ferryd that kept none, and its file is
	// published without checksums.
	CRC32C *uint32 `json:"crc32c,omitempty"`
	// SHA256State is a sequential session's SHA-256 of the bytes before
	// Offset, marshalled (crypto/sha256), when one was asked for at create.
	SHA256State []byte `json:"sha256_state,omitempty"`
	// SHA256Late: the bucket's setting, not the client, asked for the
	// SHA-256. Should the bytes come as parts or pieces, the session drops
	// SHA256State and the file's SHA-256 is read back once it is published.
	SHA256Late bool `json:"sha256_late,omitempty"`
	// Expect are the digests the client gave at create; completion
	// publishes nothing that does not match them.
	Expect *registry.Checksums `json:"expect,omitempty"`
	// FullCRC: the multipart upload was created for storage to check the
	// whole object's CRC32C at completion (fullcrc.go).
	FullCRC bool `json:"full_crc,omitempty"`
}

// purgeRef is what the purger needs even if the record itself is gone.
type purgeRef struct {
	ID       string `json:"id"`
	Location string `json:"location,omitempty"`
	Object   string `json:"object"`
	UploadID string `json:"upload_id,omitempty"`
	Protocol string `json:"protocol,omitempty"` // the expiry's metrics label
	Partial  bool   `json:"partial,omitempty"`  // the object is a piece: freed even once whole
}

func (r *record) object() string {
	if r.Object == "" { // written before registered buckets existed
		return registry.ObjectKey(r.Bucket, r.Key)
	}
	return r.Object
}

func (r *record) ref() purgeRef {
	return purgeRef{ID: r.ID, Location: r.Location, Object: r.object(), UploadID: r.UploadID, Protocol: r.Protocol, Partial: r.Partial}
}

// PartRange is a run of parallel parts that landed, First..Last.
type PartRange struct{ First, Last int }

// Info is a session as clients see it.
type Info struct {
	ID        string
	Bucket    string
	Key       string
	MimeType  string
	Size      int64
	Offset    int64
	Completed bool
	CreatedAt time.Time
	ExpiresAt time.Time
	// MinChunk is the smallest chunk that avoids being held back; smaller
	// chunks work but wait in the metadata store until enough arrive.
	MinChunk int64
	// Open: Size is an upper bound until Seal or Declare fixes it.
	Open     bool
	Protocol string
	Meta     map[string]string
	// PartSize is the size of every parallel part but the last, and
	// PartCount the number of parts, for a client that puts parts.
	PartSize  int64
	PartCount int
	// Parallel: the session takes parts; Received lists those that
	// landed (read by Get), and Offset is the bytes of the run from part 1.
	Parallel bool
	Received []PartRange
	// Partial: the session's bytes are a piece for Concat; Pieces: the
	// partial sessions Concat made this one from.
	Partial bool
	Pieces  []string
	// Checksums of the whole file, once completed (nil before, and for a
	// session from a ferryd that kept none).
	Checksums *registry.Checksums
}

func (r *record) info() Info {
	return Info{ID: r.ID, Bucket: r.Bucket, Key: r.Key, MimeType: r.MimeType, Size: r.Size,
		Offset: r.Offset, Completed: r.State == stateCompleted, CreatedAt: r.CreatedAt,
		ExpiresAt: r.ExpiresAt, MinChunk: r.MinPart, Open: r.Open, Protocol: r.Protocol, Meta: r.Meta,
		PartSize: r.PartSize, PartCount: r.partCount(), Parallel: r.Parallel, Partial: r.Partial, Pieces: r.Pieces,
		Checksums: r.checksums()}
}

// accepts checks a chunk's claims against the session: the file's total
// size (-1: not stated) and the offset it starts at (-1: append).
func (r *record) accepts(expect, total int64) error {
	if total >= 0 && total != r.Size {
		return ErrInvalidSize.New("the chunk says the file is %d bytes but the session was created for %d", total, r.Size)
	}
	if expect >= 0 && expect != r.Offset {
		return ErrOffsetMismatch.New("the session is at offset %d, not %d: resume from %d", r.Offset, expect, r.Offset).With("offset", r.Offset)
	}
	return nil
}

// Access refuses a caller the bucket of a session it names (an API key
// limited to some buckets). It rides in the request's context, and load
// applies it, so a request reads the record once.
type Access func(bucket string) error

type accessKey struct{}

// WithAccess returns ctx carrying check: every session that is read under
// ctx is refused with check's error unless check allows its bucket.
func WithAccess(ctx context.Context, check Access) context.Context {
	return context.WithValue(ctx, accessKey{}, check)
}

// load reads the record. Past expires_at it answers 410 until purged, then 404.
func (s *Service) load(ctx context.Context, id string) (*record, int64, error) {
	if !validID(id) {
		return nil, 0, ErrNotFound.New("%q is not a session id", id)
	}
	rec, ver, err := metastore.GetJSON[record](ctx, s.store, recordKey(id))
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, 0, ErrNotFound.New("no upload session %s (it may have completed and been cleaned up, or expired)", id)
	}
	if err != nil {
		return nil, 0, err
	}
	if check, ok := ctx.Value(accessKey{}).(Access); ok {
		if err := check(rec.Bucket); err != nil {
			return nil, 0, err
		}
	}
	rec.heldNoted = rec.TailLen
	if s.now().After(rec.ExpiresAt) {
		return &rec, ver, ErrExpired.New("upload session %s expired at %s; start a new one", id, rec.ExpiresAt.Format(time.RFC3339))
	}
	return &rec, ver, nil
}

// save writes rec if the stored version is still ver (0: create) and no
// newer lock holder has written, with the events the change announces; it
// returns the new version.
func (s *Service) save(ctx context.Context, rec *record, ver, fence int64, emit ...[]byte) (int64, error) {
	ttl := time.Until(rec.ExpiresAt) + s.cfg.Grace
	ver, err := metastore.PutJSON(ctx, s.store, recordKey(rec.ID), rec, metastore.Cond{Version: ver, Fence: fence, TTL: ttl}, emit...)
	switch {
	case errors.Is(err, metastore.ErrFenced), errors.Is(err, metastore.ErrConflict):
		return 0, ErrBusy.Wrap(err, "another request took over session %s; check its offset and resume", rec.ID)
	case err != nil:
		return 0, fmt.Errorf("save session: %w", err)
	}
	if rec.TailLen != rec.heldNoted {
		if err := s.ledger.note(ctx, rec.ID, rec.TailLen); err != nil {
			// The ledger is corrected by the session's next save or its end.
			s.log.WarnContext(ctx, "held_ledger_failed", "session", rec.ID, "err", err)
		} else {
			rec.heldNoted = rec.TailLen
		}
	}
	return ver, nil
}

// withLock runs fn holding the session's lease, refreshing it while fn
// runs. fn's context is detached from ctx's cancellation (a completion
// must not stop half-way because a client hung up) but cancelled when the
// lease is lost, so a holder that lost it writes nothing more.
func (s *Service) withLock(ctx context.Context, id string, fn func(ctx context.Context, fence int64) error) error {
	return s.lease(ctx, id, metastore.LockOptions{Detach: true}, fn)
}

// lease runs fn holding the session's lease, taken with o (its TTL is
// the service's).
func (s *Service) lease(ctx context.Context, id string, o metastore.LockOptions, fn func(ctx context.Context, fence int64) error) error {
	if !validID(id) {
		return ErrNotFound.New("%q is not a session id", id)
	}
	o.TTL = s.cfg.LockTTL
	err := metastore.WithLock(ctx, s.store, lockName(id), o, func(h metastore.Held) error {
		err := fn(h.Ctx, h.Fence)
		if err != nil && ctx.Err() == nil && h.Ctx.Err() != nil && errcode.From(err).Code == errcode.ErrInternal {
			// The lease ran out under us (refreshes starved or the store
			// slow): nothing is wrong with the request, and the record
			// holds what was done.
			return errcode.ErrUnavailable.Wrap(err, "session %s's lease ran out before this request finished (ferryd or its metadata store is overloaded); check the session's offset and resume", id)
		}
		return err
	})
	if errors.Is(err, metastore.ErrLocked) {
		return ErrBusy.New("another request is appending to session %s; wait for it, then check the offset", id)
	}
	return err
}

// NewID mints a session id (Spec.ID), for a caller that names something
// after the session before creating it.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}
