package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Event is one event of the server's log: a file created or deleted, a
// session created, aborted or expired, a bucket registered or not.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"` // e.g. file.created
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"` // the file, session or bucket, as the type says
}

// EventPage is one answer of the pull stream; Next goes in the next call's
// after. It moves on even when Data is empty (past events the key may not
// see), and stays put when a wait ended with nothing new.
type EventPage struct {
	Data []Event `json:"data"`
	Next string  `json:"next"`
}

// Events reads up to limit events (0: the server's default, 100) after the
// cursor after: "" reads from the oldest event kept, "now" only those to
// come. With wait > 0 (whole seconds, at most 60) the server holds the
// request until an event arrives or the wait is over, so an http.Client
// with a Timeout must allow for it.
func (c *Client) Events(ctx context.Context, after string, limit int, wait time.Duration) (EventPage, error) {
	q := listQuery("", after, limit)
	if wait > 0 {
		q.Set("wait", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)) // never rounded down to no wait
	}
	var p EventPage
	_, err := c.do(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil, 0, nil, &p)
	return p, err
}

// followWait is how long each of Follow's requests waits for an event:
// half the server's limit, below the usual proxy idle timeouts.
const followWait = 30 * time.Second

// Follow calls fn with every event after the cursor after ("": from the
// oldest kept; "now": only those to come), in log order, long-polling for
// new ones until ctx ends (ctx.Err()) or fn returns an error (that error).
// Network errors and answers worth retrying (5xx, 429) are retried as
// Retry's defaults say (0.5 s doubling up to 30 s, 10 failures in a row);
// an answer the caller must fix (a bad cursor, a key without read access)
// is returned at once.
func (c *Client) Follow(ctx context.Context, after string, fn func(Event) error) error {
	var retry Retry
	for failures := 0; ; {
		p, err := c.Events(ctx, after, 0, followWait)
		if err != nil {
			failures++
			if err := retry.sleep(ctx, failures, err); err != nil {
				if ctx.Err() != nil {
					return ctx.Err() // not a failure: the caller is done
				}
				return err
			}
			continue
		}
		failures = 0
		for _, e := range p.Data {
			if err := fn(e); err != nil {
				return err
			}
		}
		after = p.Next
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
