package events

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
)

// DeadLetters lists a sink's dead letters, oldest first, a page at a time;
// pass the last one's Event.ID as after for the next.
func DeadLetters(ctx context.Context, store metastore.Store, sink, after string, limit int) ([]DeadLetter, bool, error) {
	q := metastore.Query{Limit: limit}
	if after != "" {
		q.After = sortable(after)
	}
	entries, more, err := store.IndexList(ctx, sinkKey(sink, "dead"), q)
	if err != nil {
		return nil, false, err
	}
	out := make([]DeadLetter, 0, len(entries))
	for _, e := range entries {
		var d DeadLetter
		if err := json.Unmarshal(e.Value, &d); err != nil {
			return nil, false, fmt.Errorf("dead letter %s: %w", e.Member, err)
		}
		d.Event.Bucket, d.Event.Scope = d.Bucket, d.Scope
		out = append(out, d)
	}
	return out, more, nil
}

// Replay puts a sink's dead letters back in its queue, due now: those
// with the given ids, or all of them when ids is empty. It returns how
// many it replayed. The instance delivering to the sink sends them within
// about a second, each behind whatever of its file already waits.
func Replay(ctx context.Context, store metastore.Store, sink string, ids []string) (int, error) {
	n, after := 0, ""
	for {
		page, more, err := DeadLetters(ctx, store, sink, after, 500)
		if err != nil {
			return n, err
		}
		for _, d := range page {
			after = d.Event.ID
			if len(ids) > 0 && !slices.Contains(ids, d.Event.ID) {
				continue
			}
			v, _ := json.Marshal(queued{Event: d.Event, Bucket: d.Bucket, Scope: d.Scope})
			if err := store.IndexPut(ctx, sinkKey(sink, "queue"), queueMember(d.Scope, d.Event.ID), v); err != nil {
				return n, err
			}
			if err := store.IndexPut(ctx, sinkKey(sink, "due"), due.Member(time.Now(), d.Scope), []byte("{}")); err != nil {
				return n, err
			}
			if err := store.IndexDelete(ctx, sinkKey(sink, "dead"), sortable(d.Event.ID)); err != nil {
				return n, err
			}
			n++
		}
		if !more {
			return n, nil
		}
	}
}
