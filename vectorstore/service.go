// Package vectorstore is OpenAI's /vector_stores API: stores of files,
// their processing into chunks by a queue shared by every instance, and
// search over the chunks. The files themselves belong to the OpenAI Files
// API; this package reads them through Files, and learns that one is gone
// from the registry's events (OnFileEvent). The HTTP routes live in
// httpapi. The persistent layout is in vectorstores.go.
package vectorstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/lru"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/textindex"
)

// Files is what vector stores need of the files they index: the OpenAI
// Files API's live files. *openai.Service is one.
type Files interface {
	// Bucket is the native bucket the files live in; registry events of
	// other buckets do not concern vector stores.
	Bucket() string
	// LiveFile returns a file that exists and has not expired, with its
	// filename. Any other id gives an *errcode.Error of status 404, which
	// AttachFile passes on to the client as it is.
	LiveFile(ctx context.Context, id string) (f registry.File, filename string, err error)
	// OpenFile streams a file's bytes.
	OpenFile(ctx context.Context, f registry.File) (io.ReadCloser, error)
}

// notFound reports whether a Files error says there is no such live file.
func notFound(err error) bool {
	var e *errcode.Error
	return errors.As(err, &e) && e.Code.Status == http.StatusNotFound
}

// Config sets the vector stores' limits. The names are those of the
// openai.vector_* settings they come from.
type Config struct {
	VectorWorkers      int           // files processed at once by this instance; 0 leaves processing to others
	VectorPollInterval time.Duration // how often idle workers look at the shared queue
	VectorMaxFileSize  int64         // largest file a vector store indexes; larger ones fail
	VectorCacheSize    int64         // bytes of search indexes kept in memory
	Embeddings         EmbeddingsConfig
	Metrics            prometheus.Registerer // nil keeps the metrics unexported
	// PurgeFailures is ferry_purge_failures_total{purger="openai"}, shared
	// with the OpenAI files' purger; nil counts nowhere.
	PurgeFailures prometheus.Counter
}

// defaults fills zero fields from config's defaults, so each number is
// written once. VectorWorkers stays as given: 0 means this instance
// processes no files.
func (c *Config) defaults() {
	d := config.Default().OpenAI
	if c.VectorPollInterval <= 0 {
		c.VectorPollInterval = d.VectorPollInterval
	}
	if c.VectorMaxFileSize <= 0 {
		c.VectorMaxFileSize = d.VectorMaxFileSize
	}
	if c.VectorCacheSize <= 0 {
		c.VectorCacheSize = d.VectorCacheSize
	}
	if c.PurgeFailures == nil {
		c.PurgeFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_purge_failures_total"})
	}
}

// Service is the vector stores.
type Service struct {
	files Files
	store metastore.Store
	cfg   Config
	log   *slog.Logger
	now   func() time.Time

	embed  *embedder                    // nil without an embeddings endpoint
	cache  *lru.Cache[*textindex.Index] // built search indexes by "<vs>/<file>/<job>"
	wakeup chan struct{}
	vm     *vectorMetrics
}

// New returns the vector stores. Subscribe OnFileEvent to the registry the
// files are published in.
func New(files Files, store metastore.Store, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Service{files: files, store: store, cfg: cfg, log: log, now: time.Now,
		embed:  newEmbedder(cfg.Embeddings),
		cache:  lru.New[*textindex.Index](cfg.VectorCacheSize),
		wakeup: make(chan struct{}, max(1, cfg.VectorWorkers)),
	}
	s.vm = newVectorMetrics(reg, store, s.cache)
	return s
}

// OnFileEvent detaches a file id that left the registry (deleted by any
// route or purger, or replaced at its key under a new id) from every store
// it is in, so search never returns chunks of a file that is gone. A
// replaced file is treated as removed: its id names nothing any more, and
// the replacement is a new file that a client attaches if it wants it.
//
// The id is first noted in the forget index, so a detach that fails here
// (the registry cannot be told) is finished by the purger.
func (s *Service) OnFileEvent(ctx context.Context, e registry.Event) {
	if e.File.Bucket != s.files.Bucket() || e.File.ID == "" {
		return
	}
	id := e.File.ID
	if n, err := s.store.IndexLen(ctx, byFileIndex(id)); err == nil && n == 0 {
		return // in no store, like most files (an attach racing this ends failed: processing finds no file)
	}
	if err := s.store.IndexPut(ctx, forgetIndex, id, nil); err != nil {
		s.log.WarnContext(ctx, "vector_store_forget_unrecorded", "file", id, "err", err)
	}
	if err := s.forget(ctx, id); err != nil {
		s.log.WarnContext(ctx, "vector_store_forget_failed", "file", id, "event", string(e.Kind), "err", err)
	}
}

// forget detaches a gone file everywhere, then drops its forget entry.
func (s *Service) forget(ctx context.Context, id string) error {
	if err := s.detachEverywhere(ctx, id); err != nil {
		return err
	}
	return s.store.IndexDelete(ctx, forgetIndex, id)
}

// Purge finishes what was cut short: the cleanup of deleted stores and the
// detaching of files that are gone. Each failure is counted in
// ferry_purge_failures_total{purger="openai"} and retried on the next run.
func (s *Service) Purge(ctx context.Context) (int, error) {
	n, err := s.purgeVectorStores(ctx)
	var failed []error
	if err != nil {
		failed = append(failed, err)
	}
	err = s.eachEntry(ctx, forgetIndex, func(e metastore.Entry) error {
		if err := s.forget(ctx, e.Member); err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = append(failed, err)
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		failed = append(failed, err)
	}
	if err := errors.Join(failed...); err != nil {
		if ctx.Err() == nil {
			s.cfg.PurgeFailures.Inc()
		}
		return n, err
	}
	return n, nil
}
