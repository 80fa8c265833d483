package session

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// Purge frees every session past its expiry: it aborts the multipart upload
// or removes the staging file, then the held-back tail and the records.
// Sessions whose expiry slid later (they were appended to) are re-filed.
// It is idempotent and safe to run on every instance at once: each session
// is handled under its own lock, and a busy session waits for the next run.
func (s *Service) Purge(ctx context.Context) (purged int, err error) {
	before := fmt.Sprintf("%016d/", s.now().UnixMilli()+1)
	for {
		entries, _, err := s.store.IndexList(ctx, expiryIndex, metastore.Query{Before: before, Limit: 100})
		if err != nil || len(entries) == 0 {
			return purged, err
		}
		progressed := false
		for _, e := range entries {
			done, err := s.purgeOne(ctx, e)
			if errcode.Is(err, ErrBusy) {
				continue // an append holds it; the next run sees it again
			}
			if err != nil {
				s.log.WarnContext(ctx, "purge_failed", "entry", e.Member, "err", err)
				continue
			}
			progressed = true
			if done {
				purged++
				s.m.expired.Inc()
			}
		}
		if !progressed {
			return purged, nil // every due entry is busy or failing: try again next run
		}
	}
}

// purgeOne handles one due expiry entry; it reports whether a session was freed.
func (s *Service) purgeOne(ctx context.Context, e metastore.Entry) (bool, error) {
	var ref purgeRef
	if err := json.Unmarshal(e.Value, &ref); err != nil || !validID(ref.ID) {
		return false, s.store.IndexDelete(ctx, expiryIndex, e.Member) // not ours to understand
	}
	freed := false
	err := s.withLock(ctx, ref.ID, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, ref.ID)
		switch {
		case errcode.Is(err, ErrNotFound):
			// The store's own expiry beat us: free storage from the entry alone.
			if err := s.discard(ctx, ref); err != nil {
				return err
			}
			freed = true
			return deleteTail(ctx, s.store, &record{ID: ref.ID})
		case errcode.Is(err, ErrExpired):
			freed = true
			return s.remove(ctx, rec, ver)
		case err != nil:
			return err
		}
		// Still alive: file it again under its current expiry.
		return s.store.IndexPut(ctx, expiryIndex, expiryMember(rec.ExpiresAt, rec.ID), e.Value)
	})
	if err != nil {
		return false, err
	}
	return freed, s.store.IndexDelete(ctx, expiryIndex, e.Member)
}
