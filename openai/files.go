// Package openai is the OpenAI-compatible adapter: the Files and Uploads
// APIs over the session engine and the file registry (the Vector stores API
// is package vectorstore, which reads these files). Every OpenAI file is
// a native file in one bucket (Config.Bucket, "openai" by default) at key
// "<file id>/<filename>"; native uploads into that bucket appear here too,
// with purpose user_data. The HTTP routes live in httpapi.
//
// Its persistent layout is written down in keys.go.
//
// File attributes (registry.File.Attrs): "openai.filename", "openai.purpose"
// and "openai.expires_after" (seconds after created_at).
package openai

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
	"github.com/ferryhq/ferry/openai/page"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// Purposes are the purposes a file may be uploaded with.
var Purposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

var (
	ErrFileNotFound   = errcode.Register("OPENAI_FILE_NOT_FOUND", "File Not Found", http.StatusNotFound)
	ErrUploadNotFound = errcode.Register("OPENAI_UPLOAD_NOT_FOUND", "Upload Not Found", http.StatusNotFound)
	ErrUploadState    = errcode.Register("OPENAI_UPLOAD_STATE", "Upload Not Pending", http.StatusBadRequest)
)

const (
	attrFilename     = "openai.filename"
	attrPurpose      = "openai.purpose"
	attrExpiresAfter = "openai.expires_after"
	attrOwner        = "openai.owner" // the API key that created the file; absent without auth
	defaultPurpose   = "user_data"
	minExpiry        = 3600
	maxExpiry        = 2592000
	maxPartSize      = 64 << 20 // OpenAI's limit on one Upload part
)

// Config sets the adapter's limits.
type Config struct {
	Bucket        string                // native bucket holding OpenAI files
	UploadsBucket string                // native bucket holding the parts of unfinished Uploads
	MaxFileSize   int64                 // largest POST /files upload
	MaxUploadSize int64                 // largest Upload (OpenAI: 8 GB)
	MaxPartSize   int64                 // largest Upload part (OpenAI: 64 MB)
	UploadTTL     time.Duration         // an Upload expires this long after creation
	Metrics       prometheus.Registerer // nil keeps the metrics unexported
	// PurgeFailures is ferry_purge_failures_total{purger="openai"}, which
	// the vector stores' purger shares; nil: New registers it on Metrics.
	PurgeFailures prometheus.Counter
	Now           func() time.Time // nil: time.Now
}

// defaults fills zero fields from config's defaults, so each number is
// written once.
func (c *Config) defaults() {
	d := config.Default().OpenAI
	if c.Bucket == "" {
		c.Bucket = d.Bucket
	}
	if c.UploadsBucket == "" {
		c.UploadsBucket = d.UploadsBucket
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = d.MaxFileSize
	}
	if c.MaxUploadSize <= 0 {
		c.MaxUploadSize = d.MaxUploadSize
	}
	if c.MaxPartSize <= 0 {
		c.MaxPartSize = maxPartSize
	}
	if c.UploadTTL <= 0 {
		c.UploadTTL = d.UploadTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is the adapter.
type Service struct {
	sessions   *session.Service
	files      *registry.Registry
	store      metastore.Store
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	fileEvents *prometheus.CounterVec // {event}: uploaded, deleted, expired
	uploads    *prometheus.CounterVec // {event}: created, completed, cancelled, expired, parts
	// ferry_purge_failures_total{purger="openai"}
	purgeFailures prometheus.Counter
}

// New returns the adapter.
func New(sessions *session.Service, files *registry.Registry, store metastore.Store, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Service{sessions: sessions, files: files, store: store, cfg: cfg, log: log, now: cfg.Now,
		fileEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_openai_files_total",
			Help: "OpenAI file events: uploaded, deleted, expired."}, []string{"event"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_openai_uploads_total",
			Help: "OpenAI Upload events: created, parts, completed, cancelled, expired."}, []string{"event"}),
	}
	reg.MustRegister(s.fileEvents, s.uploads)
	s.purgeFailures = cfg.PurgeFailures
	if s.purgeFailures == nil {
		s.purgeFailures = due.NewFailures(reg, "openai")
	}
	for _, e := range []string{"uploaded", "deleted", "expired"} {
		s.fileEvents.WithLabelValues(e)
	}
	for _, e := range []string{"created", "parts", "completed", "cancelled", "expired"} {
		s.uploads.WithLabelValues(e)
	}
	return s
}

// FileObject is OpenAI's file object.
type FileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

// toObject renders a registry file; native files get defaults.
func toObject(f registry.File) FileObject {
	o := FileObject{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(),
		Filename: f.Attrs[attrFilename], Purpose: f.Attrs[attrPurpose], Status: "processed"}
	if o.Filename == "" {
		o.Filename = path.Base(f.Key)
	}
	if o.Purpose == "" {
		o.Purpose = defaultPurpose
	}
	if exp := expiresAt(f); !exp.IsZero() {
		e := exp.Unix()
		o.ExpiresAt = &e
	}
	return o
}

func expiresAt(f registry.File) time.Time {
	secs, err := strconv.ParseInt(f.Attrs[attrExpiresAfter], 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}
	}
	return f.CreatedAt.Truncate(time.Second).Add(time.Duration(secs) * time.Second)
}

func (s *Service) expired(f registry.File) bool {
	exp := expiresAt(f)
	return !exp.IsZero() && !s.now().Before(exp)
}

// ValidatePurpose says what purposes exist when p is not one.
func ValidatePurpose(p string) error {
	for _, ok := range Purposes {
		if p == ok {
			return nil
		}
	}
	if p == "" {
		return errcode.ErrInvalidRequest.New("purpose is required; use one of %s", strings.Join(Purposes, ", "))
	}
	return errcode.ErrInvalidRequest.New("purpose %q is not supported; use one of %s", p, strings.Join(Purposes, ", "))
}

// ParseExpiresAfter checks expires_after[anchor] and [seconds]; both empty
// means no expiry and gives 0.
func ParseExpiresAfter(anchor, seconds string) (int64, error) {
	if anchor == "" && seconds == "" {
		return 0, nil
	}
	if anchor != "created_at" {
		return 0, errcode.ErrInvalidRequest.New("expires_after[anchor] %q is not supported; use created_at", anchor)
	}
	n, err := strconv.ParseInt(seconds, 10, 64)
	if err != nil || n < minExpiry || n > maxExpiry {
		return 0, errcode.ErrInvalidRequest.New("expires_after[seconds] %q must be an integer from %d (1 hour) to %d (30 days)", seconds, minExpiry, maxExpiry)
	}
	return n, nil
}

// Staged is a file whose bytes are stored but not yet published.
type Staged struct {
	sessionID string
	fileID    string
	filename  string
	Bytes     int64
	// Where it will be published, and as what.
	Bucket, Key, MimeType string
}

// Filename is the file's name as uploaded ("upload" when it had none).
func (st *Staged) Filename() string { return st.filename }

// StageFile streams a file of unknown length into storage. Its form
// fields may come after it, so it is published only by CommitFile.
func (s *Service) StageFile(ctx context.Context, filename, mimeType string, r io.Reader) (*Staged, error) {
	if filename == "" {
		filename = "upload"
	}
	if mimeType == "" || mimeType == "application/octet-stream" {
		if t := mime.TypeByExtension(path.Ext(filename)); t != "" {
			mimeType = t
		}
	}
	id := registry.NewFileID(s.now())
	// Checked first for the MIME type the file gets, which Staged reports.
	sp, err := s.sessions.Check(session.Spec{Bucket: s.cfg.Bucket, Key: id + "/" + bucket.SafeName(filename),
		MimeType: mimeType, FileID: id, Protocol: session.ProtocolOpenAI})
	if err != nil {
		return nil, err
	}
	sid, n, err := s.sessions.Ingest(ctx, sp, r, s.cfg.MaxFileSize)
	if err != nil {
		return nil, err
	}
	return &Staged{sessionID: sid, fileID: id, filename: filename, Bytes: n, Bucket: sp.Bucket, Key: sp.Key, MimeType: sp.MimeType}, nil
}

// CommitFile publishes a staged file with its purpose and expiry.
func (s *Service) CommitFile(ctx context.Context, st *Staged, purpose string, expiresAfter int64) (FileObject, error) {
	attrs := map[string]string{attrFilename: st.filename, attrPurpose: purpose}
	setOwner(ctx, attrs)
	if expiresAfter > 0 {
		attrs[attrExpiresAfter] = strconv.FormatInt(expiresAfter, 10)
	}
	f, err := s.sessions.Seal(ctx, st.sessionID, attrs)
	if err != nil {
		return FileObject{}, err
	}
	s.fileEvents.WithLabelValues("uploaded").Inc()
	if exp := expiresAt(f); !exp.IsZero() {
		if err := s.store.IndexPut(ctx, expiryIndex, due.Member(exp, f.ID), nil); err != nil {
			return FileObject{}, err
		}
	}
	return toObject(f), nil
}

// DiscardFile frees a staged file that will not be published.
func (s *Service) DiscardFile(ctx context.Context, st *Staged) {
	if err := s.sessions.Abort(context.WithoutCancel(ctx), st.sessionID); err != nil {
		s.log.WarnContext(ctx, "discard_staged_file", "err", err)
	}
}

// ListParams are the list query's parameters, already validated.
type ListParams struct {
	After   string
	Limit   int
	Desc    bool
	Purpose string
}

// ListFiles pages the files by id, which is creation order, so a cursor
// never skips files created in the same second as it.
func (s *Service) ListFiles(ctx context.Context, p ListParams) (page.List[FileObject], error) {
	files, more, err := s.files.ListByID(ctx, s.cfg.Bucket, registry.IDQuery{After: p.After, Limit: p.Limit, Desc: p.Desc,
		Keep: func(f registry.File) bool {
			return !s.expired(f) && auth.Sees(ctx, f.Attrs[attrOwner]) && (p.Purpose == "" || toObject(f).Purpose == p.Purpose)
		}})
	if err != nil {
		return page.List[FileObject]{}, err
	}
	data := make([]FileObject, 0, len(files))
	for _, f := range files {
		data = append(data, toObject(f))
	}
	return page.New(data, more, func(f FileObject) string { return f.ID }), nil
}

// setOwner records ctx's caller as the owner of what attrs describe.
func setOwner(ctx context.Context, attrs map[string]string) {
	if owner := auth.Owner(ctx); owner != "" {
		attrs[attrOwner] = owner
	}
}

// GetFile returns a live file. Another key's file is not found, as another
// OpenAI project's is.
func (s *Service) GetFile(ctx context.Context, id string) (FileObject, registry.File, error) {
	f, err := s.files.ByID(ctx, s.cfg.Bucket, id)
	if errcode.Is(err, registry.ErrFileNotFound) || err == nil && (s.expired(f) || !auth.Sees(ctx, f.Attrs[attrOwner])) {
		return FileObject{}, registry.File{}, ErrFileNotFound.New("no file with id %q", id)
	}
	if err != nil {
		return FileObject{}, registry.File{}, err
	}
	return toObject(f), f, nil
}

// Bucket is the native bucket holding OpenAI files.
func (s *Service) Bucket() string { return s.cfg.Bucket }

// LiveFile returns a live file with its filename, or ErrFileNotFound.
func (s *Service) LiveFile(ctx context.Context, id string) (registry.File, string, error) {
	obj, f, err := s.GetFile(ctx, id)
	return f, obj.Filename, err
}

// OpenFile streams a file's bytes.
func (s *Service) OpenFile(ctx context.Context, f registry.File) (io.ReadCloser, error) {
	rc, _, err := s.files.Open(ctx, f, nil)
	return rc, err
}

// DeleteFile deletes a file, bytes and all. The registry announces it, and
// the vector stores detach it.
func (s *Service) DeleteFile(ctx context.Context, id string) error {
	_, f, err := s.GetFile(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.files.Delete(ctx, f.Bucket, f.Key)
	if errcode.Is(err, registry.ErrFileNotFound) {
		return ErrFileNotFound.New("no file with id %q", id)
	}
	if err == nil {
		s.fileEvents.WithLabelValues("deleted").Inc()
	}
	return err
}

// Purge deletes expired files and frees expired uploads (and sweeps parts
// of settled ones).
//
// The walk is due.Purger's, as the sessions' is: an entry that fails is
// re-filed with backoff and counted in ferry_purge_failures_total{purger="openai"},
// and the run goes on; an upload another request holds is left for the next run.
func (s *Service) Purge(ctx context.Context) (int, error) {
	p := &due.Purger{Store: s.store, Index: expiryIndex, Now: s.now, Log: s.log, Failures: s.purgeFailures,
		Busy: func(err error) bool { return errcode.Is(err, errcode.ErrConflict) },
		Handle: func(ctx context.Context, e metastore.Entry) (bool, error) {
			if err := s.purgeDue(ctx, due.ID(e.Member)); err != nil {
				return false, err
			}
			return true, s.store.IndexDelete(ctx, expiryIndex, e.Member)
		}}
	return p.Run(ctx)
}

// purgeDue handles the due entry of a file or an upload.
func (s *Service) purgeDue(ctx context.Context, id string) error {
	if strings.HasPrefix(id, "upload_") {
		return s.expireUpload(ctx, id)
	}
	f, err := s.files.ByID(ctx, s.cfg.Bucket, id)
	if errcode.Is(err, registry.ErrFileNotFound) {
		return nil // deleted already
	}
	if err != nil {
		return err
	}
	if _, err := s.files.Delete(ctx, f.Bucket, f.Key); err != nil {
		if errcode.Is(err, registry.ErrFileNotFound) {
			return nil
		}
		return err
	}
	s.fileEvents.WithLabelValues("expired").Inc()
	return nil
}
