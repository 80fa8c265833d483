package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferryhq/ferry/events"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// Abort frees everything the session holds. Aborting a completed session
// forgets the session and keeps the file.
func (s *Service) Abort(ctx context.Context, id string) error {
	return s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil && !errcode.Is(err, ErrExpired) {
			return err
		}
		if err := s.remove(ctx, rec, ver, rec.ended(events.SessionAborted)...); err != nil {
			return err
		}
		s.m.aborted.WithLabelValues(protocolLabel(rec.Protocol)).Inc()
		return nil
	})
}

// remove discards storage (for unfinished sessions) and then the records;
// the record's deletion carries emit.
func (s *Service) remove(ctx context.Context, rec *record, ver int64, emit ...[]byte) error {
	eng, err := s.engine(rec.Location)
	if err != nil && !vanished(err) {
		return err
	}
	if eng != nil {
		switch {
		case rec.State != stateCompleted:
			if err := s.discardStorage(ctx, rec.ref()); err != nil && !vanished(err) {
				return fmt.Errorf("discard upload: %w", err)
			}
		case rec.Partial:
			if err := s.deletePiece(ctx, rec.ref()); err != nil && !vanished(err) {
				return fmt.Errorf("delete piece: %w", err)
			}
		}
		if err := eng.release(ctx, rec); err != nil && !vanished(err) {
			return err
		}
	}
	if rec.State != stateCompleted && !rec.Partial && !rec.mayHaveLanded() { // a completion dropped its own
		if err := s.files.Forget(ctx, rec.Bucket, rec.Key, rec.FileID); err != nil {
			return err
		}
	}
	if err := s.store.Delete(ctx, recordKey(rec.ID), ver, emit...); err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return err
	}
	// After the record: a part landing meanwhile finds it gone and drops
	// the index again (partRecorded).
	if rec.Parallel {
		if err := s.store.IndexDrop(ctx, partsIndex(rec.ID)); err != nil {
			return err
		}
	}
	if err := s.ledger.note(ctx, rec.ID, 0); err != nil {
		s.log.WarnContext(ctx, "held_ledger_failed", "session", rec.ID, "err", err) // the purger's sweep drops it
	}
	return nil
}

// mayHaveLanded reports whether an unfinished session's completion may
// have put its object at the key before it died: then the version it filed
// as pending (registry.Replace) stays, for the next read to publish, even
// though the session goes. Otherwise Forget drops that entry.
func (r *record) mayHaveLanded() bool {
	return !r.Open && (r.Parallel || r.Offset == r.Size)
}

// ended is the event of an unfinished session's end (aborted, expired),
// none for a completed one: its end was file.created.
func (r *record) ended(typ string) [][]byte {
	if r.State == stateCompleted {
		return nil
	}
	return [][]byte{r.event(typ)}
}

// discardStorage frees what an unfinished session holds in storage, and a
// piece's object, which nothing published.
func (s *Service) discardStorage(ctx context.Context, ref purgeRef) error {
	eng, err := s.engine(ref.Location)
	if err != nil {
		return err
	}
	if err := eng.discard(ctx, ref); !ref.Partial || err != nil && !vanished(err) {
		return err
	}
	return s.deletePiece(ctx, ref)
}

// deletePiece removes a whole piece's object.
func (s *Service) deletePiece(ctx context.Context, ref purgeRef) error {
	blobs, err := s.places.Backend(ref.Location)
	if err != nil {
		return err
	}
	return blobs.Backend.Delete(ctx, ref.Object)
}
