// Package session is the upload-session engine: create a session for
// bucket/key, append bytes at the server's offset, complete, abort, expire.
//
// The offset is the server's truth. Every append runs under the session's
// lock: it checks the client's offset against the record before touching
// storage, streams the bytes to the engine, and advances the offset with a
// compare-and-set that carries the lock's fencing token, so a stale lock
// holder can never move the offset.
//
// Its persistent layout is written down in keys.go.
package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/lru"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
)

// Config bounds sessions.
type Config struct {
	TTL     time.Duration // an idle session expires after this
	MaxSize int64         // largest file accepted
	LockTTL time.Duration // lease of one append; refreshed while it runs
	// MaxHeld caps the bytes held back for one S3 session (in the metadata
	// store, and in memory while an append runs). Files above 48.8 GiB need
	// parts above 5 MiB; if their part size exceeds MaxHeld, chunks smaller
	// than a part are refused instead of piling up.
	MaxHeld int64
	// MaxHeldTotal caps the bytes all sessions together hold back in the
	// metadata store; a small chunk past it gets 503 and Retry-After.
	MaxHeldTotal int64
	// MaxBuffered caps the request data this instance holds in memory at
	// once (buffers.go); at least MaxHeld and one ingest piece (8 MiB).
	MaxBuffered int64
	// Metrics receives the engine's metrics; nil keeps them unexported.
	Metrics prometheus.Registerer
	// Grace keeps a record past expires_at so the purger, not the store's
	// expiry, is what normally removes it (and frees its storage).
	Grace time.Duration
	// CommitTimeout bounds a completion, which runs to the end once the
	// last byte is in, whether or not the client waits for the answer.
	CommitTimeout time.Duration
}

// defaults fills zero fields. The user-facing settings take config's
// defaults, so each number is written once; the rest are internal tunables.
func (c *Config) defaults() {
	d := config.Default().Sessions
	if c.TTL <= 0 {
		c.TTL = d.TTL
	}
	if c.MaxSize <= 0 {
		c.MaxSize = d.MaxSize
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = d.MaxHeldBytes
	}
	if c.MaxHeldTotal <= 0 {
		c.MaxHeldTotal = d.MaxHeldTotal
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = d.MaxBufferedBytes
	}
	c.MaxBuffered = max(c.MaxBuffered, c.MaxHeld, ingestChunk) // what one request may need at once
	if c.LockTTL <= 0 {
		// Short, because it is refreshed while an append runs and it is how
		// long a session stays busy after the process holding it dies.
		c.LockTTL = 10 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = time.Hour
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 15 * time.Minute
	}
}

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
	PartSize  int64         `json:"part_size,omitempty"` // every part but the last is at least this
	Parts     []bucket.Part `json:"parts,omitempty"`
	TailLen   int64         `json:"tail_len,omitempty"` // bytes held back for the next part
	heldNoted int64         // TailLen as the held-back ledger has it
	TailFirst int           `json:"tail_first,omitempty"` // in tail records TailFirst..
	TailSegs  int           `json:"tail_segs,omitempty"`  // ..TailFirst+TailSegs-1
	TailTags  []string      `json:"tail_tags,omitempty"`  // each segment's tag in its writer's memory (engine.go)
	TailUntil time.Time     `json:"tail_until,omitzero"`  // when the first of them expires
	TailFloor int           `json:"tail_floor,omitempty"` // segments [TailFloor, TailFirst) may outlive a failed cleanup
	ETag      string        `json:"etag,omitempty"`       // set once the object exists
}

// purgeRef is what the purger needs even if the record itself is gone.
type purgeRef struct {
	ID       string `json:"id"`
	Location string `json:"location,omitempty"`
	Object   string `json:"object"`
	UploadID string `json:"upload_id,omitempty"`
	Protocol string `json:"protocol,omitempty"` // the expiry's metrics label
}

func (r *record) object() string {
	if r.Object == "" { // written before registered buckets existed
		return registry.ObjectKey(r.Bucket, r.Key)
	}
	return r.Object
}

func (r *record) ref() purgeRef {
	return purgeRef{ID: r.ID, Location: r.Location, Object: r.object(), UploadID: r.UploadID, Protocol: r.Protocol}
}

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
}

func (r *record) info() Info {
	return Info{ID: r.ID, Bucket: r.Bucket, Key: r.Key, MimeType: r.MimeType, Size: r.Size,
		Offset: r.Offset, Completed: r.State == stateCompleted, CreatedAt: r.CreatedAt,
		ExpiresAt: r.ExpiresAt, MinChunk: r.PartSize, Open: r.Open, Protocol: r.Protocol, Meta: r.Meta}
}

// heldSessions sizes the in-memory copy of held-back tails, in sessions:
// enough for one busy upload's next part; with many small-chunk uploads at
// once it would miss anyway, and a miss only costs a read.
const heldSessions = 2

// Places resolves where a bucket's objects live (registry.Resolver).
type Places interface {
	Place(ctx context.Context, bkt string) (registry.Place, error)
	// Backend opens a location; "" is Ferry's own storage.
	Backend(location string) (bucket.Composer, error)
}

// Publisher indexes finished files (registry.Registry).
type Publisher interface {
	Publish(ctx context.Context, f registry.File) (registry.File, error)
	Get(ctx context.Context, bkt, key string) (registry.File, error)
}

// Service is the session engine over one metadata store and the places
// buckets live in.
type Service struct {
	store  metastore.Store
	places Places
	files  Publisher
	cfg    Config

	mu      sync.Mutex
	engines map[string]engine  // by location; "" is Ferry's own storage
	held    *lru.Cache[[]byte] // tail segments this instance wrote (multipartEngine)
	buffers *budget            // request data in memory: held-back chunks, tails, chunked pieces
	ledger  *ledger            // held-back bytes of all sessions, under MaxHeldTotal

	log   *slog.Logger
	now   func() time.Time
	m     *sessionMetrics
	swept atomic.Int64 // when sweepOrphans last ran to the end (unix ms)
}

// New returns the service. Its uploads are written where places puts their
// buckets and announced to files once complete.
func New(store metastore.Store, places Places, files Publisher, cfg Config, log *slog.Logger) (*Service, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	s := &Service{store: store, places: places, files: files, cfg: cfg, log: log, now: time.Now, engines: map[string]engine{},
		held: lru.New[[]byte](heldSessions * cfg.MaxHeld)}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.m = newSessionMetrics(reg, store, func() time.Time { return s.now() })
	s.ledger = newLedger(store, cfg.MaxHeldTotal, reg)
	s.buffers = newBudget(cfg.MaxBuffered, reg)
	if _, err := s.engine(""); err != nil {
		return nil, err
	}
	return s, nil
}

// newEngine picks the engine from the backend's capabilities: write-at-offset
// staging when it has it (filesystem), multipart otherwise (S3).
func (s *Service) newEngine(blobs bucket.Composer) (engine, error) {
	switch {
	case blobs.Staging != nil:
		return &stagingEngine{blobs: blobs.Staging}, nil
	case blobs.Multipart != nil:
		return &multipartEngine{blobs: blobs.Backend, mp: blobs.Multipart, store: s.store, ttl: s.cfg.TTL, grace: s.cfg.Grace, maxHeld: s.cfg.MaxHeld, held: s.held, buffers: s.buffers, ledger: s.ledger}, nil
	}
	return nil, fmt.Errorf("session: blob backend %T supports neither staging nor multipart uploads", blobs.Backend)
}

// engine returns the engine writing to a location.
func (s *Service) engine(location string) (engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.engines[location]; ok {
		return e, nil
	}
	b, err := s.places.Backend(location)
	if err != nil {
		return nil, err
	}
	e, err := s.newEngine(b)
	if err != nil {
		return nil, err
	}
	s.engines[location] = e
	return e, nil
}

// Spec describes a new session.
type Spec struct {
	Bucket, Key, MimeType string
	Size                  int64
	// Open makes Size an upper bound: the session completes only when Seal
	// fixes its real size.
	Open   bool
	Attrs  map[string]string // carried onto the published file
	FileID string            // the published file's id; minted on publish when empty
	// ID is the session's id when the caller minted it (NewID), for a key
	// that names the upload; empty: a new one.
	ID string
	// Protocol is the API the session is created through (ProtocolTus,
	// ProtocolOpenAI; empty: native), the label of its metrics.
	Protocol string
	Meta     map[string]string // the protocol's own data, kept, never published
}

// Create starts a session for bucket/key. An existing file at bucket/key
// stays untouched until the new one completes, then is replaced whole.
func (s *Service) Create(ctx context.Context, bkt, key, mimeType string, size int64) (Info, error) {
	return s.CreateSpec(ctx, Spec{Bucket: bkt, Key: key, MimeType: mimeType, Size: size})
}

// CreateSpec is Create with every option.
func (s *Service) CreateSpec(ctx context.Context, sp Spec) (Info, error) {
	bkt, key, mimeType, size := sp.Bucket, sp.Key, sp.MimeType, sp.Size
	if err := bucket.ValidateBucketName(bkt); err != nil {
		return Info{}, ErrInvalidBucket.New("%v", err)
	}
	if err := bucket.ValidateKey(key); err != nil {
		return Info{}, ErrInvalidKey.New("%v", err)
	}
	switch {
	case size < 0:
		return Info{}, ErrInvalidSize.New("size %d is negative: give the file's exact size in bytes", size)
	case size > s.cfg.MaxSize:
		return Info{}, ErrTooLarge.New("size %d exceeds this server's limit of %d bytes", size, s.cfg.MaxSize).With("max_size", s.cfg.MaxSize)
	}
	if mimeType == "" {
		mimeType = defaultMime
	} else if _, _, err := mime.ParseMediaType(mimeType); err != nil {
		return Info{}, errcode.ErrInvalidRequest.New("mime_type %q is not a media type like text/plain: %v", mimeType, err)
	}

	place, err := s.places.Place(ctx, bkt)
	if err != nil {
		return Info{}, err
	}
	eng, err := s.engine(place.Location)
	if err != nil {
		return Info{}, err
	}
	id := sp.ID
	if id == "" {
		id = NewID()
	} else if !validID(id) {
		return Info{}, errcode.ErrInvalidRequest.New("%q is not a session id (32 hex digits)", id)
	}
	now := s.now().UTC()
	rec := &record{ID: id, Bucket: bkt, Key: key, MimeType: mimeType, Size: size,
		State: stateUploading, CreatedAt: now, ExpiresAt: now.Add(s.cfg.TTL), Open: sp.Open, Attrs: sp.Attrs, FileID: sp.FileID,
		Location: place.Location, Object: place.Object(key), Protocol: sp.Protocol, Meta: sp.Meta}
	if err := eng.begin(rec); err != nil {
		return Info{}, fmt.Errorf("begin upload: %w", err)
	}
	// The purger's entry goes first: if the record write fails, the purger
	// still removes what was written.
	if err := s.file(ctx, eng, rec, rec.ExpiresAt); err != nil {
		return Info{}, err
	}
	if _, err := s.save(ctx, rec, 0, 0); err != nil {
		return Info{}, err
	}
	s.m.created.WithLabelValues(protocolLabel(rec.Protocol)).Inc()
	return rec.info(), nil
}

// Get returns the session's state.
func (s *Service) Get(ctx context.Context, id string) (Info, error) {
	rec, _, err := s.load(ctx, id)
	if err != nil {
		return Info{}, err
	}
	return rec.info(), nil
}

// Chunk is one append.
type Chunk struct {
	Offset int64 // where the client believes the session is; -1: don't check
	Total  int64 // the size the client believes in (Content-Range); -1: not stated
	Len    int64 // bytes in Body; must be known
	Body   io.Reader
	// Checksum, when set, must match Body's bytes or nothing is kept.
	Checksum *Checksum
}

// Append adds the chunk at the session's offset. When the last byte lands
// the file is completed and returned. An empty append on a session whose
// bytes are all in retries a completion that failed half-way, and on a
// completed session returns the file again.
//
// Only reading the chunk is tied to the request: once its bytes are whole,
// recording them and completing the file run to the end even if the client
// hangs up, bounded by the lease and CommitTimeout.
func (s *Service) Append(ctx context.Context, id string, c Chunk) (Info, *registry.File, error) {
	if c.Len < 0 {
		return Info{}, nil, ErrLengthRequired.New("the chunk's length is unknown: send Content-Length (or Content-Range)")
	}
	return s.appendLocked(ctx, id, c.Offset, c.Total, func(a *appender) error {
		return a.write(c.Body, c.Len, c.Checksum)
	})
}

// AppendStream appends a body of unknown length (chunked transfer
// encoding) in pooled 8 MiB pieces under one lease, checking the client's
// offset first. A body that runs past the session's size is refused with
// nothing kept. If the body breaks off, what arrived in whole pieces stays
// appended; the client asks for the offset, as after any dropped request.
func (s *Service) AppendStream(ctx context.Context, id string, offset, total int64, r io.Reader) (Info, *registry.File, error) {
	return s.appendLocked(ctx, id, offset, total, func(a *appender) error {
		release, err := s.buffers.take(a.read, ingestChunk)
		if err != nil {
			return err
		}
		defer release()
		bp := ingestBufs.Get().(*[]byte)
		defer ingestBufs.Put(bp)
		for first := true; ; first = false {
			n, rerr := io.ReadFull(r, *bp)
			if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				a.keep = true // the whole pieces before stay
				return ErrShortBody.Wrap(rerr, "the body broke off; ask the session for its offset and resume from there")
			}
			if n > 0 || first {
				if err := a.write(bytes.NewReader((*bp)[:n]), int64(n), nil); err != nil {
					return err
				}
			}
			if rerr != nil {
				return nil
			}
		}
	})
}

// appender carries one locked append: the record as it changes in memory,
// the version and fence it is saved with, and the contexts of the two
// phases (reading the body: cut by the client; the rest: only by the lease).
type appender struct {
	s       *Service
	eng     engine
	rec     *record
	ver     int64
	fence   int64
	read    context.Context
	n       int64 // bytes appended in memory, not yet saved
	keep    bool  // save what was appended even though the body failed
	claimed bool
	first   int  // rec.TailFirst when loaded: segments below it go after the save
	probe   bool // only count the bytes (a completed session)
}

// write appends n bytes of r to the record in memory.
func (a *appender) write(r io.Reader, n int64, sum *Checksum) error {
	rec := a.rec
	if a.probe {
		a.n += n
		if n > 0 {
			return errProbed // no need to read on
		}
		return nil
	}
	if rec.Offset+n > rec.Size {
		return ErrPastSize.New("%d bytes at offset %d run past the declared size %d; send at most %d bytes", n, rec.Offset-a.n, rec.Size, rec.Size-rec.Offset+a.n).
			With("offset", rec.Offset-a.n)
	}
	if n == 0 && rec.Size != 0 {
		return nil
	}
	// Claim the record with our fence before storage the fence cannot
	// guard: from here on any older holder's write is rejected.
	if !a.claimed && a.eng.needsClaim(rec, n) {
		if err := a.s.start(a.read, a.eng, rec, n); err != nil {
			return err
		}
		v, err := a.s.save(a.read, rec, a.ver, a.fence)
		if err != nil {
			return err
		}
		a.ver, a.claimed = v, true
	}
	rec.ExpiresAt = a.s.now().UTC().Add(a.s.cfg.TTL) // before write: the tail's lifetime follows it
	if err := a.eng.write(a.read, rec, a.fence, r, n, sum); err != nil {
		return storageErr(rec, err)
	}
	rec.Offset += n
	a.n += n
	return nil
}

// appendLocked loads the session under its lease, checks the client's
// offset, runs body (which appends in memory through the appender), then
// saves the record once and completes the file if its last byte is in.
func (s *Service) appendLocked(ctx context.Context, id string, expect, total int64, body func(*appender) error) (Info, *registry.File, error) {
	start := time.Now()
	var (
		out   Info
		file  *registry.File
		n     int64
		proto = ProtocolNative // the record's, once loaded
	)
	err := s.withLock(ctx, id, func(lctx context.Context, fence int64) error {
		rec, ver, err := s.load(lctx, id)
		if err != nil {
			return err
		}
		proto = protocolLabel(rec.Protocol)
		if rec.State == stateCompleted {
			return s.completedAgain(lctx, rec, body, &out, &file)
		}
		if err := rec.accepts(expect, total); err != nil {
			return err
		}
		eng, err := s.engine(rec.Location)
		if err != nil {
			return err
		}
		// Reading the body ends with the request or the lease.
		read, cancel := context.WithCancelCause(lctx)
		defer cancel(nil)
		stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
		defer stop()
		a := &appender{s: s, eng: eng, rec: rec, ver: ver, fence: fence, read: read, first: rec.TailFirst}
		berr := body(a)
		if berr != nil && !(a.keep && a.n > 0) {
			return berr
		}
		// The bytes are whole: record them and complete, whatever the client does.
		cctx, cancelCommit := context.WithTimeout(lctx, s.cfg.CommitTimeout)
		defer cancelCommit()
		if a.n > 0 || rec.Size == 0 {
			if err := s.record(cctx, a); err != nil {
				return err
			}
			n = a.n
		}
		if berr != nil {
			return berr
		}
		if rec.Offset == rec.Size && !rec.Open {
			f, err := s.finish(cctx, rec, a.ver, fence)
			if err != nil {
				return err
			}
			file = &f
		}
		out = rec.info()
		return nil
	})
	switch {
	case err == nil:
		s.m.appended.WithLabelValues(proto).Add(float64(n))
		s.m.appendDur.WithLabelValues(proto).Observe(time.Since(start).Seconds())
	case errcode.Is(err, ErrOffsetMismatch):
		s.m.conflicts.WithLabelValues(proto).Inc()
	case errcode.Is(err, ErrBusy):
		s.m.busy.Inc()
	}
	return out, file, err
}

var errProbed = errors.New("session: the append has bytes")

// start allocates the storage a write of n bytes needs, filing it for
// the purger before any byte goes there. The entry goes at the create's
// member, so it replaces the create's entry unless the purger has refiled
// that one (then the two converge at the next refile). If the claim that
// follows fails, the entry still names the storage: the purger refiles it
// from the record, and the orphan sweep aborts what no record kept.
func (s *Service) start(ctx context.Context, eng engine, rec *record, n int64) error {
	started, err := eng.start(ctx, rec, n)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	if !started {
		return nil
	}
	return s.file(ctx, eng, rec, rec.CreatedAt.Add(s.cfg.TTL))
}

// file writes the purger's entry for rec's storage, due at at; if that
// fails it frees the storage, which nothing else would find.
func (s *Service) file(ctx context.Context, eng engine, rec *record, at time.Time) error {
	ref, _ := json.Marshal(purgeEntry{purgeRef: rec.ref()})
	if err := s.store.IndexPut(ctx, expiryIndex, expiryMember(at, rec.ID), ref); err != nil {
		_ = eng.discard(context.WithoutCancel(ctx), rec.ref())
		return fmt.Errorf("index session: %w", err)
	}
	return nil
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

// record saves what a wrote, and drops the tail segments the save made
// unreferenced.
func (s *Service) record(ctx context.Context, a *appender) error {
	rec := a.rec
	// Segments below the loaded record's first are unreferenced: an
	// earlier cleanup of them may have failed, so the floor moves up
	// only once they are gone.
	if rec.TailFloor < a.first {
		if err := deleteSegments(ctx, s.store, rec.ID, rec.TailFloor, a.first); err != nil {
			s.log.WarnContext(ctx, "tail_cleanup_failed", "session", rec.ID, "err", err)
		} else {
			rec.TailFloor = a.first
		}
	}
	var err error
	if a.ver, err = s.save(ctx, rec, a.ver, a.fence); err != nil {
		return err
	}
	if rec.TailFirst > a.first { // best effort now; the next save or the release retries
		if err := deleteSegments(ctx, s.store, rec.ID, a.first, rec.TailFirst); err != nil {
			s.log.WarnContext(ctx, "tail_cleanup_failed", "session", rec.ID, "err", err)
		}
	}
	return nil
}

// completedAgain answers an append to a completed session: an empty one
// gets the file again (its last answer may have been lost), anything
// else a conflict.
func (s *Service) completedAgain(ctx context.Context, rec *record, body func(*appender) error, out *Info, file **registry.File) error {
	probe := &appender{probe: true, read: ctx}
	if err := body(probe); err != nil || probe.n > 0 {
		return ErrCompleted.New("session %s already completed %s/%s; start a new session to replace it", rec.ID, rec.Bucket, rec.Key).With("offset", rec.Offset)
	}
	f, err := s.files.Get(ctx, rec.Bucket, rec.Key)
	if err != nil {
		return err
	}
	*out, *file = rec.info(), &f
	return nil
}

// finish publishes a session whose bytes are all in.
func (s *Service) finish(ctx context.Context, rec *record, ver, fence int64) (registry.File, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return registry.File{}, err
	}
	obj, err := eng.complete(ctx, rec)
	if err != nil {
		return registry.File{}, fmt.Errorf("complete upload: %w", storageErr(rec, err))
	}
	f := registry.File{Bucket: rec.Bucket, Key: rec.Key, MimeType: rec.MimeType, Bytes: rec.Size,
		CreatedAt: s.now().UTC(), ETag: obj.ETag, Attrs: rec.Attrs, ID: rec.FileID}
	if f, err = s.files.Publish(ctx, f); err != nil {
		return registry.File{}, err
	}
	rec.State, rec.ETag, rec.Parts = stateCompleted, obj.ETag, nil
	if _, err := s.save(ctx, rec, ver, fence); err != nil {
		return registry.File{}, err
	}
	s.m.completed.WithLabelValues(protocolLabel(rec.Protocol)).Inc()
	if err := eng.release(ctx, rec); err != nil { // best effort: the purger releases it again
		s.log.WarnContext(ctx, "release_failed", "session", rec.ID, "err", err)
	}
	s.log.InfoContext(ctx, "upload_completed", "session", rec.ID, "bytes", rec.Size,
		"duration", s.now().Sub(rec.CreatedAt).Round(time.Millisecond),
		"mib_per_s", float64(rec.Size)/(1<<20)/max(s.now().Sub(rec.CreatedAt).Seconds(), 1e-6))
	return f, nil
}

// Seal fixes an open session's size at the bytes received so far, adds
// attrs, and completes it.
func (s *Service) Seal(ctx context.Context, id string, attrs map[string]string) (registry.File, error) {
	var file registry.File
	err := s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if !rec.Open {
			return errcode.ErrConflict.New("session %s has a fixed size; it completes with its last byte", id)
		}
		rec.Size, rec.Open = rec.Offset, false
		for k, v := range attrs {
			if rec.Attrs == nil {
				rec.Attrs = map[string]string{}
			}
			rec.Attrs[k] = v
		}
		file, err = s.finishSized(ctx, rec, ver, fence)
		return err
	})
	return file, err
}

// finishSized completes a session whose size was just fixed at its offset:
// the held-back remainder becomes the last part (or the one Put).
func (s *Service) finishSized(ctx context.Context, rec *record, ver, fence int64) (registry.File, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return registry.File{}, err
	}
	if err := eng.write(ctx, rec, fence, bytes.NewReader(nil), 0, nil); err != nil {
		return registry.File{}, storageErr(rec, err)
	}
	if ver, err = s.save(ctx, rec, ver, fence); err != nil {
		return registry.File{}, err
	}
	return s.finish(ctx, rec, ver, fence)
}

// Declare fixes an open session's size at size, which must be at least
// its offset and at most its bound (tus's deferred Upload-Length). From then
// on it is an ordinary session: the append that brings its last byte
// completes it, and if that byte is already in, Declare completes it now
// and returns the file.
func (s *Service) Declare(ctx context.Context, id string, size int64) (Info, *registry.File, error) {
	var (
		out  Info
		file *registry.File
	)
	err := s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case !rec.Open:
			return errcode.ErrConflict.New("session %s already has its size (%d bytes)", id, rec.Size)
		case size < rec.Offset:
			return ErrInvalidSize.New("size %d is below the %d bytes session %s already holds", size, rec.Offset, id).With("offset", rec.Offset)
		case size > rec.Size:
			return ErrTooLarge.New("size %d exceeds the %d bytes this session can take", size, rec.Size).With("max_size", rec.Size)
		}
		rec.Size, rec.Open = size, false
		if rec.Offset < rec.Size {
			if _, err := s.save(ctx, rec, ver, fence); err != nil {
				return err
			}
			out = rec.info()
			return nil
		}
		f, err := s.finishSized(ctx, rec, ver, fence)
		if err != nil {
			return err
		}
		out, file = rec.info(), &f
		return nil
	})
	return out, file, err
}

// ingestChunk is the read size of Ingest: above MinPartSize, so on S3 every
// chunk but the last is exactly one part.
const ingestChunk = 8 << 20

var ingestBufs = sync.Pool{New: func() any { b := make([]byte, ingestChunk); return &b }}

// Ingest streams r, of unknown length up to limit bytes, into a new open
// session and returns its id; the caller then Seals it (publish) or Aborts
// it. Memory is one pooled chunk per call, whatever the length.
func (s *Service) Ingest(ctx context.Context, sp Spec, r io.Reader, limit int64) (string, int64, error) {
	sp.Size, sp.Open = limit, true
	release, err := s.buffers.take(ctx, ingestChunk)
	if err != nil {
		return "", 0, err
	}
	defer release()
	in, err := s.CreateSpec(ctx, sp)
	if err != nil {
		return "", 0, err
	}
	bp := ingestBufs.Get().(*[]byte)
	defer ingestBufs.Put(bp)
	var off int64
	for {
		n, rerr := io.ReadFull(r, *bp)
		if n > 0 {
			if off+int64(n) > limit {
				_ = s.Abort(context.WithoutCancel(ctx), in.ID)
				return "", off, ErrTooLarge.New("the file exceeds the limit of %d bytes", limit).With("max_size", limit)
			}
			if _, _, err := s.Append(ctx, in.ID, Chunk{Offset: off, Total: -1, Len: int64(n), Body: bytes.NewReader((*bp)[:n])}); err != nil {
				_ = s.Abort(context.WithoutCancel(ctx), in.ID)
				return "", off, err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return in.ID, off, nil
		}
		if rerr != nil {
			_ = s.Abort(context.WithoutCancel(ctx), in.ID)
			return "", off, ErrShortBody.Wrap(rerr, "reading the upload failed after %d bytes; nothing was stored", off)
		}
	}
}

// storageErr explains a storage refusal that the client can act on.
func storageErr(rec *record, err error) error {
	switch {
	case errors.Is(err, bucket.ErrKeyConflict):
		return ErrKeyConflict.Wrap(err, "%s/%s cannot be stored: this storage cannot hold a key that is both a file and "+
			"a directory of other keys (like \"a\" and \"a/b\"); delete the other key and resend, or abort the session", rec.Bucket, rec.Key)
	case errors.Is(err, bucket.ErrNotFound):
		return ErrStorageLost.Wrap(err, "the bytes session %s had stored are gone from storage (its upload or staging file was removed); "+
			"abort it and upload %s/%s again in a new session", rec.ID, rec.Bucket, rec.Key)
	}
	return err
}

// Abort frees everything the session holds. Aborting a completed session
// forgets the session and keeps the file.
func (s *Service) Abort(ctx context.Context, id string) error {
	return s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil && !errcode.Is(err, ErrExpired) {
			return err
		}
		if err := s.remove(ctx, rec, ver); err != nil {
			return err
		}
		s.m.aborted.WithLabelValues(protocolLabel(rec.Protocol)).Inc()
		return nil
	})
}

// remove discards storage (for unfinished sessions) and then the records.
func (s *Service) remove(ctx context.Context, rec *record, ver int64) error {
	eng, err := s.engine(rec.Location)
	if err != nil && !vanished(err) {
		return err
	}
	if eng != nil {
		if rec.State != stateCompleted {
			if err := eng.discard(ctx, rec.ref()); err != nil && !vanished(err) {
				return fmt.Errorf("discard upload: %w", err)
			}
		}
		if err := eng.release(ctx, rec); err != nil && !vanished(err) {
			return err
		}
	}
	if err := s.store.Delete(ctx, recordKey(rec.ID), ver); err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return err
	}
	if err := s.ledger.note(ctx, rec.ID, 0); err != nil {
		s.log.WarnContext(ctx, "held_ledger_failed", "session", rec.ID, "err", err) // the purger's sweep drops it
	}
	return nil
}

func (s *Service) discard(ctx context.Context, ref purgeRef) error {
	eng, err := s.engine(ref.Location)
	if err != nil {
		return err
	}
	return eng.discard(ctx, ref)
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
	rec.heldNoted = rec.TailLen
	if s.now().After(rec.ExpiresAt) {
		return &rec, ver, ErrExpired.New("upload session %s expired at %s; start a new one", id, rec.ExpiresAt.Format(time.RFC3339))
	}
	return &rec, ver, nil
}

// save writes rec if the stored version is still ver (0: create) and no
// newer lock holder has written; it returns the new version.
func (s *Service) save(ctx context.Context, rec *record, ver, fence int64) (int64, error) {
	ttl := time.Until(rec.ExpiresAt) + s.cfg.Grace
	ver, err := metastore.PutJSON(ctx, s.store, recordKey(rec.ID), rec, metastore.Cond{Version: ver, Fence: fence, TTL: ttl})
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
	if !validID(id) {
		return ErrNotFound.New("%q is not a session id", id)
	}
	err := metastore.WithLock(ctx, s.store, lockName(id), metastore.LockOptions{TTL: s.cfg.LockTTL, Detach: true}, func(h metastore.Held) error {
		return fn(h.Ctx, h.Fence)
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
