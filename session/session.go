// Package session is the upload-session engine: create a session for
// bucket/key, append bytes at the server's offset, complete, abort, expire.
//
// The offset is the server's truth. Every append runs under the session's
// lock: it checks the client's offset against the record before touching
// storage, streams the bytes to the engine, and advances the offset with a
// compare-and-set that carries the lock's fencing token, so a stale lock
// holder can never move the offset.
//
// The ways to write to a session, and who uses each:
//
//	Create, CreateSpec  open a session (native POST /v1/files, tus creation,
//	                    OpenAI uploads)
//	Append              a chunk of known length at an offset (native appends
//	                    with Content-Length, tus PATCH pieces)
//	AppendStream        a body of unknown length, appended in 8 MiB pieces
//	                    (chunked transfer encoding, native and tus)
//	Ingest, then Seal   a body of unknown length into a new open session,
//	                    whose size Seal fixes at the end (OpenAI multipart
//	                    forms: file uploads, upload parts)
//	Declare             fixes an open session's size that later appends fill
//	                    (tus Upload-Defer-Length)
//
// Files by role: session.go (the service and its engines), config.go,
// record.go (the stored record: load, save, lock), create.go, append.go,
// complete.go (finish, Seal, Declare), ingest.go, abort.go, purge.go
// (expiry and orphans), engine.go (how bytes reach S3 or a staging file),
// multipart.go and writebehind.go (the S3 engine, and the parts it sends
// in the background), held.go (the held-back ledger), buffers.go (the
// memory budget). The
// terms are in docs/glossary.md.
//
// Its persistent layout is written down in keys.go.
package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/lru"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
)

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
	// Replace puts a file's bytes at its key (commit) and publishes it.
	Replace(ctx context.Context, f registry.File, commit registry.Commit) (registry.File, error)
	// Forget drops what Replace filed for a session that ended unpublished.
	Forget(ctx context.Context, bkt, key, id string) error
	// Checksum reads a published file back to record the checksums it lacks.
	Checksum(ctx context.Context, bkt, key string) (registry.File, error)
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
	behind  *behindJobs        // parts being written behind (multipartEngine)

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
		held: lru.New[[]byte](heldSessions * cfg.MaxHeld), behind: newBehindJobs()}
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
		e := &multipartEngine{blobs: blobs.Backend, mp: blobs.Multipart, copier: blobs.PartCopier, store: s.store, ttl: s.cfg.TTL, grace: s.cfg.Grace, maxHeld: s.cfg.MaxHeld, held: s.held, buffers: s.buffers, ledger: s.ledger, jobs: s.behind, log: s.log}
		e.noFullCRC.Store(s.cfg.PlainParts)
		return e, nil
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
