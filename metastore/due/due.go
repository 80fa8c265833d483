// Package due keeps due lists: metastore indexes of work filed under the
// time it falls due, which a purger walks in time order. The session purger
// (index "session/expiry") and the OpenAI adapter's purger ("openai/expiry")
// are two; each owns its index and the rest of the entry's value, and this
// package owns the member format and the "attempts" field of the value.
//
// Persistent format, shared by every due list (docs/storage-layout.md):
//
//	member  "<due unix ms, 16 digits>/<id>"  zero-padded, so byte order is time order
//	value   empty, or a JSON object; "attempts" counts the runs in a row that
//	        failed on the entry. Other fields are the owner's and are kept.
package due

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/metastore"
)

// Member is the member of id's entry due at at.
func Member(at time.Time, id string) string {
	return fmt.Sprintf("%016d/%s", at.UnixMilli(), id)
}

// ID is the id part of a member.
func ID(member string) string {
	_, id, _ := strings.Cut(member, "/")
	return id
}

// Until selects the entries due at or before now, at most limit of them:
// those before the first member of the next millisecond.
func Until(now time.Time, limit int) metastore.Query {
	return metastore.Query{Before: Member(now.Add(time.Millisecond), ""), Limit: limit}
}

// Retry is the field of an entry's value that a Purger writes when Handle
// fails; an owner's value type embeds it to read the count.
type Retry struct {
	Attempts int `json:"attempts,omitempty"`
}

const (
	batch = 100
	// A failing entry is retried after retryMin, doubling up to retryMax,
	// so an entry whose storage is out of reach costs one attempt an hour
	// rather than one every run.
	retryMin = time.Minute
	retryMax = time.Hour
)

// Backoff is how long a purger waits before trying an entry again after n
// failed attempts: a minute, doubling, at most an hour.
func Backoff(n int) time.Duration {
	d := retryMin
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// NewFailures registers ferry_purge_failures_total{purger=name}. Every
// purger exports it, told apart by the constant label, so its help is
// written here once: Prometheus refuses one name registered with two helps.
func NewFailures(reg prometheus.Registerer, name string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_purge_failures_total",
		Help:        "Entries a purger failed to free (each is retried with backoff), and purge runs that could not read their work list, by purger.",
		ConstLabels: prometheus.Labels{"purger": name}})
	reg.MustRegister(c)
	return c
}

// Purger runs a due list: Run hands each due entry to Handle.
type Purger struct {
	Store    metastore.Store
	Index    string
	Now      func() time.Time
	Log      *slog.Logger
	Failures prometheus.Counter // NewFailures
	// Handle does the work of one due entry, and deletes or refiles the
	// entry itself when done with it. done says the run counts the entry.
	Handle func(ctx context.Context, e metastore.Entry) (done bool, err error)
	// Busy reports an error that means another request holds the work:
	// the entry is left as it is for the next run, and not counted failed.
	Busy func(error) bool
}

// Run visits every due entry once, in order, with a cursor, and returns how
// many Handle counted done. An entry that fails is re-filed for a later run
// with Backoff and counted in Failures, and the run goes on, so no number
// of failing entries can hold up the others. It stops early only when ctx
// ends (the entry at hand is due again next run) or the list cannot be read.
func (p *Purger) Run(ctx context.Context) (int, error) {
	done := 0
	q := Until(p.Now(), batch)
	for {
		entries, more, err := p.Store.IndexList(ctx, p.Index, q)
		if err != nil {
			if ctx.Err() == nil {
				p.Failures.Inc()
			}
			return done, err
		}
		for _, e := range entries {
			ok, err := p.Handle(ctx, e)
			switch {
			case err != nil && ctx.Err() != nil:
				return done, err // shutting down
			case err != nil && p.Busy != nil && p.Busy(err):
			case err != nil:
				p.Failures.Inc()
				p.retryLater(ctx, e, err)
			case ok:
				done++
			}
		}
		if !more || len(entries) == 0 {
			return done, nil
		}
		q.After = entries[len(entries)-1].Member
	}
}

// retryLater re-files a failed entry at now plus its backoff, with one
// more attempt counted and the owner's fields kept.
func (p *Purger) retryLater(ctx context.Context, e metastore.Entry, cause error) {
	fields := map[string]json.RawMessage{}
	_ = json.Unmarshal(e.Value, &fields) // empty, or not an object: start afresh
	var attempts int
	_ = json.Unmarshal(fields["attempts"], &attempts)
	attempts++
	wait := Backoff(attempts)
	p.Log.WarnContext(ctx, "purge_failed", "entry", e.Member, "attempts", attempts, "retry_in", wait, "err", cause)
	fields["attempts"], _ = json.Marshal(attempts)
	v, _ := json.Marshal(fields)
	if err := p.Refile(ctx, e.Member, Member(p.Now().Add(wait), ID(e.Member)), v); err != nil {
		// The entry stays due as it was: the next run tries it again.
		p.Log.WarnContext(ctx, "purge_refile_failed", "entry", e.Member, "err", err)
	}
}

// Refile moves an entry to member with value: the new member first, so the
// work is never unlisted.
func (p *Purger) Refile(ctx context.Context, old, member string, value []byte) error {
	if err := p.Store.IndexPut(ctx, p.Index, member, value); err != nil {
		return err
	}
	if member == old {
		return nil
	}
	return p.Store.IndexDelete(ctx, p.Index, old)
}
