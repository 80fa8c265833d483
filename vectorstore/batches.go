package vectorstore

import (
	"context"
	"errors"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/openai/page"
)

// FileBatch is OpenAI's vector_store.files_batch object.
type FileBatch struct {
	ID            string     `json:"id"`
	Object        string     `json:"object"`
	CreatedAt     int64      `json:"created_at"`
	VectorStoreID string     `json:"vector_store_id"`
	Status        string     `json:"status"`
	FileCounts    FileCounts `json:"file_counts"`
}

type batchRecord struct {
	ID            string `json:"id"`
	VectorStoreID string `json:"vector_store_id"`
	CreatedAt     int64  `json:"created_at"`
	Cancelled     bool   `json:"cancelled,omitempty"`
}

// CreateFileBatch attaches several files at once. Files may carry their
// own attributes and chunking strategy. A file id that names no file is
// counted as failed; a file already in the store stays as it is and is not
// part of the batch.
func (s *Service) CreateFileBatch(ctx context.Context, vs string, files []AttachParams) (FileBatch, error) {
	if len(files) == 0 {
		return FileBatch{}, errcode.ErrInvalidRequest.New("send file_ids or files with at least one file")
	}
	if len(files) > maxFileIDs {
		return FileBatch{}, errcode.ErrInvalidRequest.New("a batch holds at most %d files, not %d", maxFileIDs, len(files))
	}
	seen := map[string]bool{}
	unique := files[:0:0]
	for _, f := range files {
		if f.FileID == "" {
			return FileBatch{}, errcode.ErrInvalidRequest.New("every file needs a file_id")
		}
		if err := ValidateAttributes(f.Attributes); err != nil {
			return FileBatch{}, err
		}
		if !seen[f.FileID] {
			seen[f.FileID] = true
			unique = append(unique, f)
		}
	}
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return FileBatch{}, err
	}
	now := s.now()
	rec := batchRecord{ID: newID("vsfb_", now), VectorStoreID: vs, CreatedAt: now.Unix()}
	if err := s.putBatch(ctx, rec, 0); err != nil {
		return FileBatch{}, err
	}
	if err := s.store.IndexPut(ctx, batchesIndex(vs), rec.ID, nil); err != nil {
		return FileBatch{}, err
	}
	if _, err := s.attachMany(ctx, vs, rec.ID, unique); err != nil {
		return FileBatch{}, err
	}
	return s.batchObject(ctx, rec)
}

func (s *Service) putBatch(ctx context.Context, rec batchRecord, ver int64) error {
	_, err := metastore.PutJSON(ctx, s.store, batchKey(rec.VectorStoreID, rec.ID), rec, metastore.Cond{Version: ver})
	return err
}

func (s *Service) loadBatch(ctx context.Context, vs, id string) (batchRecord, int64, error) {
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return batchRecord{}, 0, err
	}
	rec, ver, err := metastore.GetJSON[batchRecord](ctx, s.store, batchKey(vs, id))
	if errors.Is(err, metastore.ErrNotFound) {
		return batchRecord{}, 0, ErrFileBatchNotFound.New("no file batch %q in vector store %s", id, vs)
	}
	return rec, ver, err
}

// batchObject counts the batch's files from its status indexes. A batch
// is in progress while any file is, then completed (the counts say how
// many failed), unless it was cancelled.
func (s *Service) batchObject(ctx context.Context, rec batchRecord) (FileBatch, error) {
	counts, err := s.countCollection(ctx, batchKey(rec.VectorStoreID, rec.ID))
	if err != nil {
		return FileBatch{}, err
	}
	b := FileBatch{ID: rec.ID, Object: "vector_store.files_batch", CreatedAt: rec.CreatedAt, VectorStoreID: rec.VectorStoreID,
		Status: StatusCompleted, FileCounts: counts}
	switch {
	case rec.Cancelled:
		b.Status = StatusCancelled
	case counts.InProgress > 0:
		b.Status = StatusInProgress
	}
	return b, nil
}

// GetFileBatch returns a batch.
func (s *Service) GetFileBatch(ctx context.Context, vs, id string) (FileBatch, error) {
	rec, _, err := s.loadBatch(ctx, vs, id)
	if err != nil {
		return FileBatch{}, err
	}
	return s.batchObject(ctx, rec)
}

// ListFileBatchFiles pages a batch's files in attach order.
func (s *Service) ListFileBatchFiles(ctx context.Context, vs, id string, p PageParams) (page.List[VectorStoreFile], error) {
	if _, _, err := s.loadBatch(ctx, vs, id); err != nil {
		return page.List[VectorStoreFile]{}, err
	}
	return s.listFiles(ctx, vs, id, p)
}

// CancelFileBatch cancels the batch's files that are still in progress;
// those already processed keep their status. Cancelling a cancelled batch
// returns it; a batch with nothing left in progress cannot be cancelled.
func (s *Service) CancelFileBatch(ctx context.Context, vs, id string) (FileBatch, error) {
	rec, ver, err := s.loadBatch(ctx, vs, id)
	if err != nil {
		return FileBatch{}, err
	}
	if !rec.Cancelled {
		b, err := s.batchObject(ctx, rec)
		if err != nil {
			return FileBatch{}, err
		}
		if b.Status != StatusInProgress {
			return FileBatch{}, errcode.ErrInvalidRequest.New("file batch %s is %s; only a batch in progress can be cancelled", id, b.Status)
		}
		rec.Cancelled = true
		if err := s.putBatch(ctx, rec, ver); errors.Is(err, metastore.ErrConflict) {
			return s.GetFileBatch(ctx, vs, id) // cancelled concurrently
		} else if err != nil {
			return FileBatch{}, err
		}
	}
	// Also on a repeated cancel: finishes one that a crash cut short.
	coll := batchKey(vs, id)
	for {
		entries, _, err := s.store.IndexList(ctx, statusIndex(coll, StatusInProgress), metastore.Query{Limit: 100})
		if err != nil {
			return FileBatch{}, err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if err := s.cancelFile(ctx, vs, id, e.Member); err != nil {
				return FileBatch{}, err
			}
		}
	}
	// One refresh for the whole batch: the store's counts catch up with
	// the cancelled records here rather than file by file.
	if err := s.refreshStore(ctx, vs); err != nil {
		return FileBatch{}, err
	}
	return s.GetFileBatch(ctx, vs, id)
}

// cancelFile moves one in-progress file of a batch, by its member in the
// batch's in_progress index, to cancelled. Its job is dropped; a worker
// already on it finds the status changed and keeps nothing.
func (s *Service) cancelFile(ctx context.Context, vs, batch, member string) error {
	file := fileOfMember(member)
	return s.withFileLock(ctx, vs, file, func(ctx context.Context) error {
		rec, ver, err := s.loadFile(ctx, vs, file)
		if err != nil && !errcode.Is(err, ErrVectorStoreFileAbsent) {
			return err
		}
		if err != nil || rec.Batch != batch || rec.Order != member {
			// Left by a crash: the record is gone or belongs elsewhere.
			return s.store.IndexDelete(ctx, statusIndex(batchKey(vs, batch), StatusInProgress), member)
		}
		if rec.Status != StatusInProgress {
			return s.reindex(ctx, &rec, &rec) // the indexes lag the record: catch up
		}
		old := rec
		rec.Status, rec.Job = StatusCancelled, ""
		if err := s.reindex(ctx, &old, &rec); err != nil {
			return err
		}
		if err := s.putFile(ctx, rec, ver); err != nil {
			return err
		}
		s.vm.files.WithLabelValues("cancelled").Inc()
		return s.store.IndexDelete(ctx, jobsIndex, old.Job)
	})
}
