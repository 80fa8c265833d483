package session

import (
	"context"
	"encoding/json"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// maxListScan bounds the expiry entries one List call reads, so a listing
// of a store with millions of sessions answers in bounded time; the
// caller pages on with the cursor.
const maxListScan = 5000

// List returns up to limit uploads in progress, across every instance,
// from the expiry index (every live session has an entry there; keys.go).
// Completed, expired and Concat-piece sessions are left out. after is the
// cursor a previous call returned as next; next is "" at the end.
//
// It reads one record per entry, so it is for an operator's view (the
// admin console), not for a hot path.
func (s *Service) List(ctx context.Context, after string, limit int) (out []Info, next string, err error) {
	seen := map[string]bool{}
	scanned := 0
	for {
		page, more, err := s.store.IndexList(ctx, expiryIndex, metastore.Query{After: after, Limit: 200})
		if err != nil {
			return nil, "", err
		}
		for _, e := range page {
			after = e.Member
			scanned++
			if in, ok, err := s.listed(ctx, e, seen); err != nil {
				return nil, "", err
			} else if ok {
				out = append(out, in)
			}
			if len(out) == limit || scanned == maxListScan {
				return out, after, nil
			}
		}
		if !more {
			return out, "", nil
		}
	}
}

// listed loads the session of one expiry entry, if it is an upload in
// progress not listed yet.
func (s *Service) listed(ctx context.Context, e metastore.Entry, seen map[string]bool) (Info, bool, error) {
	var pe purgeEntry
	if err := json.Unmarshal(e.Value, &pe); err != nil || !validID(pe.ID) || seen[pe.ID] {
		return Info{}, false, nil
	}
	seen[pe.ID] = true
	rec, _, err := s.load(ctx, pe.ID)
	switch {
	case errcode.Is(err, ErrNotFound), errcode.Is(err, ErrExpired):
		return Info{}, false, nil // the purger's to free
	case err != nil:
		return Info{}, false, err
	}
	if rec.State == stateCompleted || rec.Partial {
		return Info{}, false, nil
	}
	in := rec.info()
	return in, true, s.received(ctx, rec, &in)
}
