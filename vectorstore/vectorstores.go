package vectorstore

// The persistent layout is written down in keys.go.
//
// Every change to a file in a store runs under its lock in one order:
// indexes first, then the store's cached counts, then the file record. So
// once a client sees a status in the file record, the store's file_counts
// already include it; a crash in between leaves work that the job queue
// (or the next change to that file) repeats. The status indexes are the
// source of file_counts and usage_bytes; the store record caches them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/openai/page"
)

var (
	ErrVectorStoreNotFound   = errcode.Register("OPENAI_VECTOR_STORE_NOT_FOUND", "Vector Store Not Found", http.StatusNotFound)
	ErrVectorStoreFileAbsent = errcode.Register("OPENAI_VECTOR_STORE_FILE_NOT_FOUND", "Vector Store File Not Found", http.StatusNotFound)
	ErrFileBatchNotFound     = errcode.Register("OPENAI_FILE_BATCH_NOT_FOUND", "File Batch Not Found", http.StatusNotFound)
	ErrVectorStoreExpired    = errcode.Register("OPENAI_VECTOR_STORE_EXPIRED", "Vector Store Expired", http.StatusBadRequest)
	ErrEmbeddingsMissing     = errcode.Register("OPENAI_EMBEDDINGS_NOT_CONFIGURED", "Embeddings Not Configured", http.StatusBadRequest)
	ErrEmbeddingsFailed      = errcode.Register("OPENAI_EMBEDDINGS_FAILED", "Embeddings Endpoint Failed", http.StatusBadGateway)
	ErrVectorStoreBusy       = errcode.Register("OPENAI_VECTOR_STORE_BUSY", "Vector Store File Busy", http.StatusConflict)
)

const (
	// Files a store or a batch may be created with (OpenAI allows 500 and 2000).
	maxFileIDs = 2000
)

// Status of a file in a store, and of a batch.
const (
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

var fileStatuses = []string{StatusInProgress, StatusCompleted, StatusFailed, StatusCancelled}

// newID mints "<prefix><12 hex of ms><20 hex random>": ids sort by creation
// time, so an index of ids lists in creation order and cursors never skip.
func newID(prefix string, now time.Time) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%012x%s", prefix, now.UnixMilli(), hex.EncodeToString(b[:]))
}

var orderSeq atomic.Uint32

// newOrder is a file's member in a collection's indexes.
func newOrder(now time.Time, file string) string {
	return fmt.Sprintf("%012x%04x/%s", now.UnixMilli(), orderSeq.Add(1)&0xffff, file)
}

// FileCounts are the files of a store or batch by status.
type FileCounts struct {
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Total      int64 `json:"total"`
}

// ExpiresAfter is a store's expiry policy.
type ExpiresAfter struct {
	Anchor string `json:"anchor"`
	Days   int64  `json:"days"`
}

// VectorStore is OpenAI's vector store object.
type VectorStore struct {
	ID           string            `json:"id"`
	Object       string            `json:"object"`
	CreatedAt    int64             `json:"created_at"`
	Name         string            `json:"name"`
	UsageBytes   int64             `json:"usage_bytes"`
	FileCounts   FileCounts        `json:"file_counts"`
	Status       string            `json:"status"`
	ExpiresAfter *ExpiresAfter     `json:"expires_after"`
	ExpiresAt    *int64            `json:"expires_at"`
	LastActiveAt int64             `json:"last_active_at"`
	Metadata     map[string]string `json:"metadata"`
}

type storeRecord struct {
	ID           string            `json:"id"`
	CreatedAt    int64             `json:"created_at"`
	Name         string            `json:"name"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	ExpiresAfter *ExpiresAfter     `json:"expires_after,omitempty"`
	LastActiveAt int64             `json:"last_active_at"`
	Owner        string            `json:"owner,omitempty"` // the API key that created it
	// Cached from the status indexes by refreshStore.
	UsageBytes int64      `json:"usage_bytes"`
	FileCounts FileCounts `json:"file_counts"`
}

func (s *Service) storeObject(r storeRecord) VectorStore {
	o := VectorStore{ID: r.ID, Object: "vector_store", CreatedAt: r.CreatedAt, Name: r.Name, UsageBytes: r.UsageBytes,
		FileCounts: r.FileCounts, Status: StatusCompleted, ExpiresAfter: r.ExpiresAfter, LastActiveAt: r.LastActiveAt,
		Metadata: r.Metadata}
	if o.Metadata == nil {
		o.Metadata = map[string]string{}
	}
	if r.FileCounts.InProgress > 0 {
		o.Status = StatusInProgress
	}
	if exp := storeExpiry(r); !exp.IsZero() {
		e := exp.Unix()
		o.ExpiresAt = &e
		if !s.now().Before(exp) {
			o.Status = "expired"
		}
	}
	return o
}

func storeExpiry(r storeRecord) time.Time {
	if r.ExpiresAfter == nil {
		return time.Time{}
	}
	return time.Unix(r.LastActiveAt, 0).Add(time.Duration(r.ExpiresAfter.Days) * 24 * time.Hour)
}

// StoreParams are the fields of create and update. Nil leaves a field as
// it is on update.
type StoreParams struct {
	Name         *string
	Metadata     map[string]string
	SetMetadata  bool
	ExpiresAfter *ExpiresAfter
	SetExpiry    bool // expires_after was sent (null clears it)
	FileIDs      []string
	Chunking     Chunking
}

// ValidateMetadata applies OpenAI's metadata rules.
func ValidateMetadata(m map[string]string) error {
	if len(m) > 16 {
		return errcode.ErrInvalidRequest.New("metadata has %d keys; at most 16 are allowed", len(m))
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > 64 {
			return errcode.ErrInvalidRequest.New("metadata key %q must be 1 to 64 characters", k)
		}
		if utf8.RuneCountInString(v) > 512 {
			return errcode.ErrInvalidRequest.New("metadata value of %q is longer than 512 characters", k)
		}
	}
	return nil
}

// ValidateExpiresAfter checks a store's expiry policy.
func ValidateExpiresAfter(e *ExpiresAfter) error {
	if e == nil {
		return nil
	}
	if e.Anchor != "last_active_at" {
		return errcode.ErrInvalidRequest.New("expires_after.anchor %q is not supported; use last_active_at", e.Anchor)
	}
	if e.Days < 1 || e.Days > 365 {
		return errcode.ErrInvalidRequest.New("expires_after.days %d must be from 1 to 365", e.Days)
	}
	return nil
}

// CreateVectorStore creates a store and attaches file_ids, if any. A file
// id that names no file is attached as failed (Llama Stack does the same),
// so the response's file_counts always add up to the ids sent.
func (s *Service) CreateVectorStore(ctx context.Context, p StoreParams) (VectorStore, error) {
	if err := ValidateMetadata(p.Metadata); err != nil {
		return VectorStore{}, err
	}
	if err := ValidateExpiresAfter(p.ExpiresAfter); err != nil {
		return VectorStore{}, err
	}
	if len(p.FileIDs) > maxFileIDs {
		return VectorStore{}, errcode.ErrInvalidRequest.New("file_ids lists %d files; at most %d are allowed (add more with file_batches)", len(p.FileIDs), maxFileIDs)
	}
	now := s.now()
	rec := storeRecord{ID: newID("vs_", now), CreatedAt: now.Unix(), Metadata: p.Metadata, ExpiresAfter: p.ExpiresAfter, LastActiveAt: now.Unix(),
		Owner: auth.Owner(ctx)}
	if p.Name != nil {
		rec.Name = *p.Name
	}
	if _, err := s.putStore(ctx, rec, 0); err != nil {
		return VectorStore{}, err
	}
	if err := s.store.IndexPut(ctx, storesIndex, rec.ID, nil); err != nil {
		return VectorStore{}, err
	}
	if len(p.FileIDs) > 0 {
		files := make([]AttachParams, 0, len(p.FileIDs))
		for _, id := range dedupe(p.FileIDs) {
			files = append(files, AttachParams{FileID: id, Chunking: p.Chunking})
		}
		if _, err := s.attachMany(ctx, rec.ID, "", files); err != nil {
			return VectorStore{}, err
		}
	}
	return s.GetVectorStore(ctx, rec.ID)
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func (s *Service) putStore(ctx context.Context, rec storeRecord, ver int64) (int64, error) {
	return metastore.PutJSON(ctx, s.store, storeKey(rec.ID), rec, metastore.Cond{Version: ver})
}

func (s *Service) loadStore(ctx context.Context, id string) (storeRecord, int64, error) {
	rec, ver, err := metastore.GetJSON[storeRecord](ctx, s.store, storeKey(id))
	if errors.Is(err, metastore.ErrNotFound) || err == nil && !auth.Sees(ctx, rec.Owner) { // another key's, as another project's
		return storeRecord{}, 0, ErrVectorStoreNotFound.New("no vector store with id %q", id)
	}
	return rec, ver, err
}

// updateStore applies fn to the store record with compare-and-set, again
// on a conflict, so concurrent updates are never lost. fn returning false
// skips the write.
func (s *Service) updateStore(ctx context.Context, id string, fn func(*storeRecord) (bool, error)) (storeRecord, error) {
	for {
		rec, ver, err := s.loadStore(ctx, id)
		if err != nil {
			return storeRecord{}, err
		}
		write, err := fn(&rec)
		if err != nil || !write {
			return rec, err
		}
		if _, err := s.putStore(ctx, rec, ver); errors.Is(err, metastore.ErrConflict) {
			continue
		} else if errors.Is(err, metastore.ErrNotFound) {
			return storeRecord{}, ErrVectorStoreNotFound.New("no vector store with id %q", id)
		} else if err != nil {
			return storeRecord{}, err
		}
		return rec, nil
	}
}

// touch moves last_active_at to now (at most one write per second).
func (s *Service) touch(ctx context.Context, id string) (storeRecord, error) {
	now := s.now().Unix()
	return s.updateStore(ctx, id, func(r *storeRecord) (bool, error) {
		if r.LastActiveAt >= now {
			return false, nil
		}
		r.LastActiveAt = now
		return true, nil
	})
}

// refreshStore recomputes the cached file_counts and usage_bytes from the
// status indexes. The record's version is read before the indexes, so a
// refresh that wins the compare-and-set saw every change made before it
// began, and the last refresh after a change includes it.
func (s *Service) refreshStore(ctx context.Context, id string) error {
	coll := storeKey(id)
	_, err := s.updateStore(ctx, id, func(r *storeRecord) (bool, error) {
		counts, err := s.countCollection(ctx, coll)
		if err != nil {
			return false, err
		}
		var usage int64
		err = s.eachEntry(ctx, usageIndex(id), func(e metastore.Entry) error {
			n, err := strconv.ParseInt(string(e.Value), 10, 64)
			usage += n
			return err
		})
		if err != nil {
			return false, err
		}
		if counts == r.FileCounts && usage == r.UsageBytes {
			return false, nil
		}
		r.FileCounts, r.UsageBytes = counts, usage
		return true, nil
	})
	if errcode.Is(err, ErrVectorStoreNotFound) {
		return nil // deleted meanwhile: nothing to keep true
	}
	return err
}

// countCollection counts a collection's files by status.
func (s *Service) countCollection(ctx context.Context, coll string) (FileCounts, error) {
	var c FileCounts
	for _, st := range fileStatuses {
		n, err := s.store.IndexLen(ctx, statusIndex(coll, st))
		if err != nil {
			return FileCounts{}, err
		}
		switch st {
		case StatusInProgress:
			c.InProgress = n
		case StatusCompleted:
			c.Completed = n
		case StatusFailed:
			c.Failed = n
		case StatusCancelled:
			c.Cancelled = n
		}
	}
	c.Total = c.InProgress + c.Completed + c.Failed + c.Cancelled
	return c, nil
}

// eachEntry walks a whole index in pages.
func (s *Service) eachEntry(ctx context.Context, index string, fn func(metastore.Entry) error) error {
	return metastore.EachEntry(ctx, s.store, index, fn)
}

// GetVectorStore returns a store.
func (s *Service) GetVectorStore(ctx context.Context, id string) (VectorStore, error) {
	rec, _, err := s.loadStore(ctx, id)
	if err != nil {
		return VectorStore{}, err
	}
	return s.storeObject(rec), nil
}

// UpdateVectorStore changes name, metadata or expiry, and counts as activity.
func (s *Service) UpdateVectorStore(ctx context.Context, id string, p StoreParams) (VectorStore, error) {
	if err := ValidateMetadata(p.Metadata); err != nil {
		return VectorStore{}, err
	}
	if err := ValidateExpiresAfter(p.ExpiresAfter); err != nil {
		return VectorStore{}, err
	}
	now := s.now().Unix()
	rec, err := s.updateStore(ctx, id, func(r *storeRecord) (bool, error) {
		if p.Name != nil {
			r.Name = *p.Name
		}
		if p.SetMetadata {
			r.Metadata = p.Metadata
		}
		if p.SetExpiry {
			r.ExpiresAfter = p.ExpiresAfter
		}
		r.LastActiveAt = max(r.LastActiveAt, now)
		return true, nil
	})
	if err != nil {
		return VectorStore{}, err
	}
	return s.storeObject(rec), nil
}

// PageParams select a page of a cursor-paged list.
type PageParams struct {
	Limit  int
	Desc   bool
	After  string
	Before string
	Filter string // files only: a status
}

// ListVectorStores pages the stores by id, which is creation order.
func (s *Service) ListVectorStores(ctx context.Context, p PageParams) (page.List[VectorStore], error) {
	entries, more, err := s.store.IndexList(ctx, storesIndex, metastore.Query{After: p.After, Before: p.Before, Limit: p.Limit, Desc: p.Desc})
	if err != nil {
		return page.List[VectorStore]{}, err
	}
	data := make([]VectorStore, 0, len(entries))
	for _, e := range entries {
		rec, _, err := s.loadStore(ctx, e.Member)
		if errcode.Is(err, ErrVectorStoreNotFound) {
			continue // being deleted, or another key's
		}
		if err != nil {
			return page.List[VectorStore]{}, err
		}
		data = append(data, s.storeObject(rec))
	}
	return page.New(data, more, func(v VectorStore) string { return v.ID }), nil
}
