package vectorstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// fileLockTTL bounds how long a crashed holder blocks one file; the
// critical sections themselves are a few store round trips (plus one chunk
// write for the worker).
const fileLockTTL = 30 * time.Second

// withFileLock serialises every change to one file in one store, across
// instances. A held lock is waited for briefly, then reported as busy. fn
// runs on a context that is cancelled if the lease is lost, so a holder
// that lost it writes nothing more.
func (s *Service) withFileLock(ctx context.Context, vs, file string, fn func(ctx context.Context) error) error {
	held := false
	err := metastore.WithLock(ctx, s.store, fileLockName(vs, file), metastore.LockOptions{TTL: fileLockTTL, Wait: 10 * time.Second},
		func(h metastore.Held) error {
			held = true
			return fn(h.Ctx)
		})
	if !held && errors.Is(err, metastore.ErrLocked) {
		return ErrVectorStoreBusy.New("file %s in vector store %s is being changed by another request; retry", file, vs)
	}
	return err
}

// reindex makes the indexes match a change from old to new (either may be
// nil). Every write is idempotent, so repeating it after a crash is safe.
func (s *Service) reindex(ctx context.Context, old, new *fileRecord) (err error) {
	var keep []string
	if new != nil {
		sum := new.summary()
		keep = new.collections()
		for _, coll := range keep {
			if err := s.store.IndexPut(ctx, filesIndexOf(coll), new.Order, []byte(new.ID)); err != nil {
				return err
			}
			if err := s.store.IndexPut(ctx, statusIndex(coll, new.Status), new.Order, sum); err != nil {
				return err
			}
			if old == nil {
				continue
			}
			for _, st := range fileStatuses {
				if st != new.Status {
					if err := s.store.IndexDelete(ctx, statusIndex(coll, st), new.Order); err != nil {
						return err
					}
				}
			}
		}
		if err := s.store.IndexPut(ctx, byFileIndex(new.ID), new.VectorStoreID, nil); err != nil {
			return err
		}
		usage := usageIndex(new.VectorStoreID)
		if new.Status == StatusCompleted {
			err = s.store.IndexPut(ctx, usage, new.Order, []byte(strconv.FormatInt(new.UsageBytes, 10)))
		} else if old != nil {
			err = s.store.IndexDelete(ctx, usage, new.Order)
		}
		if err != nil {
			return err
		}
	}
	if old == nil {
		return nil
	}
	for _, coll := range old.collections() {
		if new != nil && new.Order == old.Order && slices.Contains(keep, coll) {
			continue
		}
		for _, index := range append([]string{filesIndexOf(coll)}, statusIndexes(coll)...) {
			if err := s.store.IndexDelete(ctx, index, old.Order); err != nil {
				return err
			}
		}
	}
	if new == nil {
		if err := s.store.IndexDelete(ctx, usageIndex(old.VectorStoreID), old.Order); err != nil {
			return err
		}
		return s.store.IndexDelete(ctx, byFileIndex(old.ID), old.VectorStoreID)
	}
	return nil
}

// AttachParams are the fields of POST /vector_stores/{id}/files.
type AttachParams struct {
	FileID     string
	Attributes map[string]any
	Chunking   Chunking
}

// AttachFile attaches one file. An unknown file is a 404 here; attaching a
// file that is already in the store returns it as it is.
func (s *Service) AttachFile(ctx context.Context, vs string, p AttachParams) (VectorStoreFile, error) {
	if p.FileID == "" {
		return VectorStoreFile{}, errcode.ErrInvalidRequest.New("file_id is required")
	}
	if err := ValidateAttributes(p.Attributes); err != nil {
		return VectorStoreFile{}, err
	}
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return VectorStoreFile{}, err
	}
	if _, _, err := s.files.LiveFile(ctx, p.FileID); err != nil {
		return VectorStoreFile{}, err
	}
	recs, err := s.attachMany(ctx, vs, "", []AttachParams{p})
	if err != nil {
		return VectorStoreFile{}, err
	}
	return recs[0].object(), nil
}

// attachMany attaches files (to a batch, when batch is set), enqueues
// their processing, and brings the store's counts up to date. Unknown file
// ids become failed files. Files are attached a few at a time; their order
// in listings is that of files.
func (s *Service) attachMany(ctx context.Context, vs, batch string, files []AttachParams) ([]fileRecord, error) {
	out := make([]fileRecord, len(files))
	created := make([]bool, len(files))
	errs := make([]error, len(files))
	now := s.now()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, f := range files {
		order := newOrder(now, f.FileID)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], created[i], errs[i] = s.attachOne(ctx, vs, batch, order, f)
		})
	}
	wg.Wait()
	// On an error the other files stay attached: their counts are
	// refreshed and their jobs run all the same.
	queued, failed := false, errors.Join(errs...)
	for i := range files {
		queued = queued || created[i] && out[i].Status == StatusInProgress
	}
	// A store deleted while we attached: undo, so nothing is orphaned (the
	// delete's cleanup may have run before our writes).
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		if errcode.Is(err, ErrVectorStoreNotFound) {
			for i, rec := range out {
				if created[i] {
					_ = s.detach(context.WithoutCancel(ctx), vs, rec.ID, false)
				}
			}
		}
		return nil, err
	}
	if err := s.refreshStore(ctx, vs); err != nil {
		return nil, err
	}
	if _, err := s.touch(ctx, vs); err != nil {
		return nil, err
	}
	if queued {
		s.wake()
	}
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

func (s *Service) attachOne(ctx context.Context, vs, batch, order string, p AttachParams) (rec fileRecord, created bool, err error) {
	id := p.FileID
	err = s.withFileLock(ctx, vs, id, func(ctx context.Context) error {
		existing, _, err := s.loadFile(ctx, vs, id)
		if err == nil {
			rec = existing
			return s.reindex(ctx, nil, &existing) // repairs what a crash may have left out
		}
		if !errcode.Is(err, ErrVectorStoreFileAbsent) {
			return err
		}
		now := s.now()
		rec = fileRecord{ID: id, VectorStoreID: vs, CreatedAt: now.Unix(), Order: order, Status: StatusInProgress,
			Attributes: p.Attributes, MaxTokens: p.Chunking.MaxTokens, OverlapTokens: p.Chunking.OverlapTokens, Batch: batch,
			Job: newID("vsj_", now)}
		_, filename, ferr := s.files.LiveFile(ctx, id)
		switch {
		case notFound(ferr):
			rec.Status, rec.Job = StatusFailed, ""
			rec.LastError = &LastError{Code: "invalid_file", Message: fmt.Sprintf("no file with id %q", id)}
		case ferr != nil:
			return ferr
		default:
			rec.Filename = filename
		}
		if err := s.reindex(ctx, nil, &rec); err != nil {
			return err
		}
		if err := s.putFile(ctx, rec, 0); err != nil {
			return err
		}
		created = true
		if rec.Job != "" {
			v, _ := json.Marshal(job{VectorStoreID: vs, FileID: id})
			return s.store.IndexPut(ctx, jobsIndex, rec.Job, v)
		}
		return nil
	})
	if err == nil && created {
		s.vm.files.WithLabelValues("attached").Inc()
		if rec.Status == StatusFailed {
			s.vm.failed(rec.LastError.Code)
		}
	}
	return rec, created, err
}

// UpdateVectorStoreFile replaces a file's attributes.
func (s *Service) UpdateVectorStoreFile(ctx context.Context, vs, file string, attrs map[string]any) (VectorStoreFile, error) {
	if err := ValidateAttributes(attrs); err != nil {
		return VectorStoreFile{}, err
	}
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return VectorStoreFile{}, err
	}
	var out fileRecord
	err := s.withFileLock(ctx, vs, file, func(ctx context.Context) error {
		rec, ver, err := s.loadFile(ctx, vs, file)
		if err != nil {
			return err
		}
		old := rec
		rec.Attributes = attrs
		if err := s.reindex(ctx, &old, &rec); err != nil {
			return err
		}
		out = rec
		return s.putFile(ctx, rec, ver)
	})
	if err != nil {
		return VectorStoreFile{}, err
	}
	if _, err := s.touch(ctx, vs); err != nil {
		return VectorStoreFile{}, err
	}
	return out.object(), nil
}

// DeleteVectorStoreFile removes a file and its chunks from a store; the
// file itself stays.
func (s *Service) DeleteVectorStoreFile(ctx context.Context, vs, file string) error {
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return err
	}
	return s.detach(ctx, vs, file, true)
}

// detach removes a file from a store: indexes, chunks, then (after the
// store's counts no longer include it) the record. A job still queued for
// it finds no record and ends.
func (s *Service) detach(ctx context.Context, vs, file string, refresh bool) error {
	err := s.withFileLock(ctx, vs, file, func(ctx context.Context) error {
		rec, _, err := s.loadFile(ctx, vs, file)
		if err != nil {
			return err
		}
		if err := s.reindex(ctx, &rec, nil); err != nil {
			return err
		}
		if err := s.store.Delete(ctx, chunksKey(vs, file), metastore.AnyVersion); err != nil {
			return err
		}
		if refresh {
			if err := s.refreshStore(ctx, vs); err != nil {
				return err
			}
		}
		if err := s.store.Delete(ctx, fileKey(vs, file), metastore.AnyVersion); err != nil {
			return err
		}
		if rec.Job != "" {
			return s.store.IndexDelete(ctx, jobsIndex, rec.Job)
		}
		return nil
	})
	if err == nil {
		s.vm.files.WithLabelValues("detached").Inc()
	}
	return err
}

// detachEverywhere removes a file that is gone from every store it is in.
// Detaching twice is harmless: a store it has left is skipped.
func (s *Service) detachEverywhere(ctx context.Context, file string) error {
	return s.eachEntry(ctx, byFileIndex(file), func(e metastore.Entry) error {
		err := s.detach(ctx, e.Member, file, true)
		if err != nil && !errcode.Is(err, ErrVectorStoreFileAbsent) {
			return err
		}
		return s.store.IndexDelete(ctx, byFileIndex(file), e.Member)
	})
}
