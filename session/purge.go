package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ferryhq/ferry/events"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
	"github.com/ferryhq/ferry/registry"
)

// purgeEntry is the value of an expiry entry: what the purger needs to free
// the session, and how many runs in a row failed to (due.Retry). The ref's
// fields are embedded, so entries written before Attempts existed decode as is.
type purgeEntry struct {
	purgeRef
	due.Retry
}

// Purge frees every session past its expiry: it aborts the multipart upload
// or removes the staging file, then the held-back tail and the records.
// Sessions whose expiry slid later (they were appended to) are re-filed.
//
// The walk is due.Purger's: every due entry once, in order; one that fails
// (its storage unreachable, say) is re-filed with backoff and counted in
// ferry_purge_failures_total{purger="sessions"}; a busy session (an append
// holds it) is left for the next run.
//
// It is idempotent and safe to run on every instance at once: each session
// is handled under its own lock.
func (s *Service) Purge(ctx context.Context) (purged int, err error) {
	s.sweepOrphans(ctx)
	return s.purger().Run(ctx)
}

// purger walks the expiry index. It is made per run: it holds nothing.
func (s *Service) purger() *due.Purger {
	return &due.Purger{Store: s.store, Index: expiryIndex, Now: s.now, Log: s.log, Failures: s.m.purgeFailures,
		Handle: s.purgeOne, Busy: func(err error) bool { return errcode.Is(err, ErrBusy) }}
}

// purgeOne handles one due expiry entry (due.Purger's Handle); it reports
// whether a session was freed.
func (s *Service) purgeOne(ctx context.Context, e metastore.Entry) (bool, error) {
	var pe purgeEntry
	if err := json.Unmarshal(e.Value, &pe); err != nil || !validID(pe.ID) {
		return false, s.store.IndexDelete(ctx, expiryIndex, e.Member) // not ours to understand
	}
	freed, refiled := false, false
	err := s.withLock(ctx, pe.ID, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, pe.ID)
		switch {
		case errcode.Is(err, ErrNotFound):
			// The store's own expiry beat us: free storage from the entry alone.
			if err := s.free(ctx, pe.purgeRef); err != nil {
				return err
			}
			freed = true
			if err := s.store.IndexDrop(ctx, partsIndex(pe.ID)); err != nil {
				return err
			}
			return deleteTail(ctx, s.store, &record{ID: pe.ID})
		case errcode.Is(err, ErrExpired):
			if done, err := s.finishExpired(ctx, rec, ver, fence); done || err != nil {
				freed = done
				return err
			}
			freed = true
			return s.remove(ctx, rec, ver, rec.ended(events.SessionExpired)...) // storage that vanished counts as freed
		case err != nil:
			return err
		}
		// Still alive: file it again under its current expiry, with a clean
		// slate of attempts and the record's storage (a session has more
		// than one entry once its upload starts; refiled, they agree).
		v, err := json.Marshal(purgeEntry{purgeRef: rec.ref()})
		if err != nil {
			return err
		}
		refiled = true
		return s.purger().Refile(ctx, e.Member, expiryMember(rec.ExpiresAt, rec.ID), v)
	})
	if err != nil || refiled {
		return false, err
	}
	if err := s.store.IndexDelete(ctx, expiryIndex, e.Member); err != nil {
		return false, err
	}
	if freed {
		s.m.expired.WithLabelValues(protocolLabel(pe.Protocol)).Inc()
	}
	return freed, nil
}

// finishExpired completes an expired session whose every byte was in: its
// completion was cut short (the process died), and its object may already
// be at the key, so publishing it is what makes record and storage agree.
// It reports false, with no error, when there is nothing to finish or the
// upload is gone from storage (then the session is freed as usual).
func (s *Service) finishExpired(ctx context.Context, rec *record, ver, fence int64) (bool, error) {
	if rec.State == stateCompleted || rec.Open {
		return false, nil
	}
	finish := s.finish
	if rec.Parallel {
		n, err := s.store.IndexLen(ctx, partsIndex(rec.ID))
		if err != nil || n < int64(rec.partCount()) {
			return false, err
		}
		finish = s.finishParts
	} else if rec.Offset != rec.Size {
		return false, nil
	}
	rec.ExpiresAt = s.now().UTC() // the record is saved once more, for the grace period
	if _, err := finish(ctx, rec, ver, fence); err != nil {
		if vanished(err) {
			return false, nil
		}
		return false, err
	}
	return true, s.remove(ctx, rec, metastore.AnyVersion)
}

// free discards what an unfinished session holds in storage. Storage that
// is gone (the bucket or the upload deleted behind Ferry's back, a
// registered directory removed) holds nothing more: that counts as freed,
// or the entry would fail forever.
func (s *Service) free(ctx context.Context, ref purgeRef) error {
	err := s.discardStorage(ctx, ref)
	if vanished(err) {
		s.log.InfoContext(ctx, "purge_storage_vanished", "session", ref.ID, "location", ref.Location, "err", err)
		return nil
	}
	return err
}

func vanished(err error) bool {
	return err != nil && (errors.Is(err, bucket.ErrNoBucket) || errors.Is(err, bucket.ErrNotFound) ||
		errcode.Is(err, registry.ErrLocationNotFound))
}

// sweepOrphans aborts the multipart uploads in Ferry's own storage that no
// session owns: those whose CreateMultipart succeeded but whose answer was
// lost, or whose process died before filing them. Nothing else can find
// them, since no record names them. An upload counts as an orphan once
// older than Config.OrphanAge: the append that starts one files the
// purger's entry right after, so a younger one may be a session's in the
// making. Each sweep lists every upload in progress, so it runs at most
// once per OrphanAge per instance; a failure is logged, counted, and
// retried next run.
func (s *Service) sweepOrphans(ctx context.Context) {
	now := s.now()
	if last := s.swept.Load(); last != 0 && now.Sub(time.UnixMilli(last)) < s.cfg.OrphanAge {
		return
	}
	if err := s.dropStaleHeld(ctx); err != nil {
		s.log.WarnContext(ctx, "held_ledger_sweep_failed", "err", err)
	}
	eng, err := s.engine("")
	if err != nil {
		return
	}
	mpe, ok := eng.(*multipartEngine)
	if !ok {
		return // staging files are named by session id: the purger finds them
	}
	n, err := s.abortOrphans(ctx, mpe.mp, now)
	if n > 0 {
		s.log.InfoContext(ctx, "orphan_uploads_aborted", "count", n)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.m.purgeFailures.Inc()
		}
		s.log.WarnContext(ctx, "orphan_sweep_failed", "err", err)
		return
	}
	s.swept.Store(now.UnixMilli())
}

func (s *Service) abortOrphans(ctx context.Context, mp bucket.Multipart, now time.Time) (int, error) {
	ups, err := mp.ListMultipart(ctx, "")
	if err != nil {
		return 0, err
	}
	var old []bucket.Upload
	for _, u := range ups {
		if !u.Initiated.IsZero() && now.Sub(u.Initiated) > s.cfg.OrphanAge {
			old = append(old, u)
		}
	}
	if len(old) == 0 {
		return 0, nil
	}
	owned, err := s.ownedUploads(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range old {
		if owned[u.UploadID] {
			continue
		}
		if err := mp.AbortMultipart(ctx, u.Key, u.UploadID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ownedUploads is the set of upload ids in Ferry's own storage that a
// session not yet purged may use: every one is in its expiry entry.
func (s *Service) ownedUploads(ctx context.Context) (map[string]bool, error) {
	owned := map[string]bool{}
	q := metastore.Query{Limit: 1000}
	for {
		entries, more, err := s.store.IndexList(ctx, expiryIndex, q)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			var pe purgeEntry
			if json.Unmarshal(e.Value, &pe) == nil && pe.Location == "" && pe.UploadID != "" {
				owned[pe.UploadID] = true
			}
		}
		if !more || len(entries) == 0 {
			return owned, nil
		}
		q.After = entries[len(entries)-1].Member
	}
}
