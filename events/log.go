package events

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// Read returns up to limit events after the cursor that keep accepts (nil:
// all), waiting up to wait while there are none; next is where to read
// on, past the events keep refused too. It looks at no more than
// scanLimit events a call, so a reader that sees few of them still gets an
// answer (maybe empty, with next moved on). An event that does not decode
// is skipped: one bad entry must not stop a stream.
func Read(ctx context.Context, store metastore.Store, after string, limit int, wait time.Duration, keep func(Event) bool) (evs []Event, next string, err error) {
	if limit <= 0 {
		limit = metastore.DefaultLimit
	}
	next = after
	deadline := time.Now().Add(wait)
	for scanned := 0; scanned < scanLimit; {
		raw, err := store.Events(ctx, next, limit, time.Until(deadline))
		if err != nil {
			return nil, after, err
		}
		for _, r := range raw {
			next = r.ID
			e, err := Decode(r)
			if err == nil && (keep == nil || keep(e)) {
				evs = append(evs, e)
				if len(evs) == limit {
					return evs, next, nil
				}
			}
		}
		scanned += len(raw)
		if len(evs) > 0 || len(raw) == 0 || ctx.Err() != nil {
			break
		}
	}
	return evs, next, ctx.Err()
}

const scanLimit = 10000

// Retention keeps the log within its age and size.
type Retention struct {
	MaxAge time.Duration // events.retention
	Max    int64         // events.max_events
}

// Trim drops what is beyond the retention.
func (r Retention) Trim(ctx context.Context, store metastore.Store, now time.Time) error {
	return store.TrimEvents(ctx, now.Add(-r.MaxAge), r.Max)
}
