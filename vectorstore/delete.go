package vectorstore

import (
	"context"
	"errors"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// DeleteVectorStore deletes a store with its file records, chunks, batches
// and indexes; the files themselves stay. The record goes first, so no new
// attach can start; the rest is cleaned up at once and, if that is cut
// short, by the purger (the store stays listed in the deleted index).
func (s *Service) DeleteVectorStore(ctx context.Context, id string) error {
	if _, _, err := s.loadStore(ctx, id); err != nil {
		return err
	}
	if err := s.store.IndexPut(ctx, deletedIndex, id, nil); err != nil {
		return err
	}
	if err := s.store.Delete(ctx, storeKey(id), metastore.AnyVersion); err != nil {
		return err
	}
	if err := s.store.IndexDelete(ctx, storesIndex, id); err != nil {
		return err
	}
	if err := s.cleanupStore(context.WithoutCancel(ctx), id); err != nil {
		s.log.WarnContext(ctx, "vector_store_cleanup", "vector_store", id, "err", err)
	}
	return nil
}

// cleanupStore removes what a deleted store left behind. It is idempotent
// and safe against attaches racing the delete: an attach re-checks the
// store after writing and undoes itself if the store is gone.
func (s *Service) cleanupStore(ctx context.Context, id string) error {
	coll := storeKey(id)
	for {
		entries, _, err := s.store.IndexList(ctx, filesIndexOf(coll), metastore.Query{Limit: 100})
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if err := s.detach(ctx, id, string(e.Value), false); err != nil && !errcode.Is(err, ErrVectorStoreFileAbsent) {
				return err
			}
			// detach removes the member through the record; a member
			// without a record is removed here.
			if err := s.store.IndexDelete(ctx, filesIndexOf(coll), e.Member); err != nil {
				return err
			}
		}
	}
	// What detach removed through the records is gone; members a crash
	// left without a record go with the indexes themselves.
	colls := []string{coll}
	err := s.eachEntry(ctx, batchesIndex(id), func(e metastore.Entry) error {
		colls = append(colls, batchKey(id, e.Member))
		return s.store.Delete(ctx, batchKey(id, e.Member), metastore.AnyVersion)
	})
	if err != nil {
		return err
	}
	for _, c := range colls {
		for _, index := range append([]string{filesIndexOf(c)}, statusIndexes(c)...) {
			if err := s.dropIndex(ctx, index); err != nil {
				return err
			}
		}
	}
	for _, index := range []string{batchesIndex(id), usageIndex(id)} {
		if err := s.dropIndex(ctx, index); err != nil {
			return err
		}
	}
	return s.store.IndexDelete(ctx, deletedIndex, id)
}

// dropIndex deletes every member of an index.
func (s *Service) dropIndex(ctx context.Context, index string) error {
	for {
		entries, _, err := s.store.IndexList(ctx, index, metastore.Query{Limit: 1000})
		if err != nil || len(entries) == 0 {
			return err
		}
		for _, e := range entries {
			if err := s.store.IndexDelete(ctx, index, e.Member); err != nil {
				return err
			}
		}
	}
}

// purgeVectorStores finishes the cleanup of deleted stores.
func (s *Service) purgeVectorStores(ctx context.Context) (int, error) {
	n := 0
	var failed []error
	err := s.eachEntry(ctx, deletedIndex, func(e metastore.Entry) error {
		if err := s.cleanupStore(ctx, e.Member); err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = append(failed, err) // the others still go; this one is retried next run
			return nil
		}
		n++
		return nil
	})
	return n, errors.Join(append(failed, err)...)
}
