package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/due"
)

// Sink is one webhook receiver.
type Sink struct {
	// Name keeps the sink's place in the log, its retries and its dead
	// letters; renaming a sink starts it afresh, at the log's end.
	Name    string
	URL     string
	Secret  string   // whsec_<base64>
	Types   []string // only these event types; none: all
	Buckets []string // only events of these buckets; none: all
}

func (s Sink) wants(e Event) bool {
	return (len(s.Types) == 0 || slices.Contains(s.Types, e.Type)) &&
		(len(s.Buckets) == 0 || slices.Contains(s.Buckets, e.Bucket))
}

// Delivery tunes the webhooks.
type Delivery struct {
	MaxAge      time.Duration // retry an event this long after its first failure, then dead-letter it
	Timeout     time.Duration // one request
	FirstRetry  time.Duration // the first retry's delay; each failure doubles it
	MaxRetry    time.Duration // the longest delay between tries
	Concurrency int           // files delivered to at once, per sink
}

// DefaultDelivery is events.max_age's 24 h and retries from 1 s up to 1 h.
var DefaultDelivery = Delivery{MaxAge: 24 * time.Hour, Timeout: 10 * time.Second, FirstRetry: time.Second, MaxRetry: time.Hour, Concurrency: 16}

// Webhooks delivers the log to its sinks. Every instance runs it; a lease
// per sink makes one instance at a time deliver to it, so in normal
// operation nothing is sent twice. Each sink keeps a cursor in the log.
// Events of one scope (a file) go out in order: when one fails, it and
// every later event of its scope wait in the sink's queue and are retried
// with backoff, while other files' events flow on. After MaxAge of
// failures an event is dead-lettered: kept, listed and replayable.
//
// Records per sink <n>, all under "events/sinks/<n>/":
//
//	cursor           record: the last log event handed out (delivered or queued)
//	queue  (index)   <scope>\x00<sortable id> → queued event, in order per scope
//	due    (index)   a due list (package due): <due ms>/<scope> → retry state of the scope's head
//	dead   (index)   <sortable id> → dead letter
type Webhooks struct {
	Store   metastore.Store
	Sinks   []Sink
	Options Delivery
	Client  *http.Client
	Log     *slog.Logger
	Metrics *Metrics
	now     func() time.Time
	signers map[string]*standardwebhooks.Webhook
}

// leaseTTL is how long a dead instance keeps a sink before another takes over.
const leaseTTL = 15 * time.Second

func sinkKey(name, what string) string { return "events/sinks/" + name + "/" + what }

// Run delivers until ctx ends.
func (w *Webhooks) Run(ctx context.Context) {
	if w.now == nil {
		w.now = time.Now
	}
	if w.Client == nil {
		w.Client = &http.Client{Timeout: w.Options.Timeout}
	}
	w.signers = map[string]*standardwebhooks.Webhook{}
	for _, s := range w.Sinks {
		w.signers[s.Name], _ = standardwebhooks.NewWebhook(s.Secret) // Check has vetted it
	}
	var wg sync.WaitGroup
	for _, s := range w.Sinks {
		w.Metrics.start(s.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := metastore.WithLock(ctx, w.Store, sinkKey(s.Name, "lease"), metastore.LockOptions{TTL: leaseTTL}, func(h metastore.Held) error {
					return (&sinkRun{w: w, sink: s, fence: h.Fence}).run(h.Ctx)
				})
				if err != nil && !errors.Is(err, metastore.ErrLocked) && ctx.Err() == nil {
					w.Log.WarnContext(ctx, "webhook_sink_stopped", "sink", s.Name, "err", err)
				}
				sleep(ctx, time.Second) // another instance has it, or it failed: look again soon
			}
		}()
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sinkRun is one lease's delivery to one sink.
type sinkRun struct {
	w       *Webhooks
	sink    Sink
	fence   int64
	cursor  string    // saved
	pending string    // read up to here
	saved   time.Time // when the cursor was last saved
	cver    int64
	blocked map[string]string // scope → its due member, for the scopes waiting in the queue
	// streak counts the requests failed in a row. From downAfter on, new
	// events are queued untried, so a receiver that hangs cannot hold the
	// cursor back until the log is trimmed under it; the retries probe it.
	streak atomic.Int32
	// recovered: the receiver answered after a run of failures, so the
	// next retry round takes every waiting file, however far its backoff.
	recovered atomic.Bool
}

const downAfter = 8

type cursorRecord struct {
	After string `json:"after"`
}

// retry is the retry state of a blocked scope's head event.
type retry struct {
	Attempts    int       `json:"attempts"`
	FirstFailed time.Time `json:"first_failed"`
	LastError   string    `json:"last_error"`
}

// DeadLetter is an event that failed for MaxAge.
type DeadLetter struct {
	Event     Event     `json:"event"`
	Bucket    string    `json:"bucket"`
	Scope     string    `json:"scope"`
	Attempts  int       `json:"attempts"`
	FailedAt  time.Time `json:"failed_at"`
	LastError string    `json:"last_error"`
}

// queued is an event as the queue keeps it (Event hides its scope).
type queued struct {
	Event  Event  `json:"event"`
	Bucket string `json:"bucket"`
	Scope  string `json:"scope"`
}

func (q queued) event() Event { e := q.Event; e.Bucket, e.Scope = q.Bucket, q.Scope; return e }

func (r *sinkRun) run(ctx context.Context) error {
	defer r.w.Metrics.forget(r.sink.Name) // the next holder reports them
	if err := r.load(ctx); err != nil {
		return err
	}
	defer func() { // on the way out, so a restart resends nothing (a lost lease refuses it)
		if r.pending != r.cursor {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = r.saveCursor(ctx, r.pending)
		}
	}()
	lastGauge := time.Time{}
	for ctx.Err() == nil {
		if err := r.retryDue(ctx); err != nil {
			return err
		}
		if time.Since(lastGauge) > 5*time.Second {
			r.gauge(ctx)
			lastGauge = time.Now()
		}
		evs, next, err := Read(ctx, r.w.Store, r.pending, 256, r.idle(), r.sink.wants)
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			r.deliverBatch(ctx, evs)
		}
		// The cursor is saved at most every cursorEvery: each save is a
		// store write (an fsync on bbolt), and what a crash loses is only
		// a redelivery of that much.
		r.pending = next
		if r.pending != r.cursor && (len(evs) == 0 || time.Since(r.saved) >= cursorEvery) {
			if err := r.saveCursor(ctx, r.pending); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// load reads the cursor (a new sink starts at the log's end) and the
// blocked scopes.
func (r *sinkRun) load(ctx context.Context) error {
	c, ver, err := metastore.GetJSON[cursorRecord](ctx, r.w.Store, sinkKey(r.sink.Name, "cursor"))
	switch {
	case errors.Is(err, metastore.ErrNotFound):
		last, err := r.w.Store.LastEventID(ctx)
		if err != nil {
			return err
		}
		r.cursor = last
		if err := r.saveCursor(ctx, last); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		r.cursor, r.cver = c.After, ver
	}
	r.pending = r.cursor
	r.blocked = map[string]string{}
	after := ""
	for {
		entries, more, err := r.w.Store.IndexList(ctx, sinkKey(r.sink.Name, "due"), metastore.Query{After: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, e := range entries {
			r.blocked[due.ID(e.Member)] = e.Member
			after = e.Member
		}
		if !more {
			return nil
		}
	}
}

func (r *sinkRun) saveCursor(ctx context.Context, after string) error {
	ver, err := metastore.PutJSON(ctx, r.w.Store, sinkKey(r.sink.Name, "cursor"), cursorRecord{After: after}, metastore.Cond{Version: r.cver, Fence: r.fence})
	if err != nil {
		return fmt.Errorf("save the cursor of webhook %q: %w", r.sink.Name, err)
	}
	r.cursor, r.cver, r.saved = after, ver, time.Now()
	return nil
}

// cursorEvery bounds how often a sink's cursor is written.
const cursorEvery = 250 * time.Millisecond

// idle is how long to wait for new events: until the next retry is due,
// at most a second (a replay may add one).
func (r *sinkRun) idle() time.Duration {
	wait := time.Second
	now := r.w.now()
	for _, member := range r.blocked {
		wait = min(wait, dueTime(member).Sub(now))
	}
	return max(wait, time.Millisecond)
}

// dueTime is when a due entry (due.Member) falls due.
func dueTime(member string) time.Time {
	ms, _ := strconv.ParseInt(member[:min(16, len(member))], 10, 64)
	return time.UnixMilli(ms)
}

var digits = regexp.MustCompile(`[0-9]+`)

// sortable pads every run of digits of a log id to 20, so ids compare as
// strings in log order, as the queue's members must.
func sortable(id string) string {
	return digits.ReplaceAllStringFunc(id, func(d string) string { return strings.Repeat("0", max(0, 20-len(d))) + d })
}

func queueMember(scope, id string) string { return scope + "\x00" + sortable(id) }

// deliverBatch sends new events: a blocked scope's go to the queue behind
// its head; the others are sent, each scope's in order, scopes at once.
func (r *sinkRun) deliverBatch(ctx context.Context, evs []Event) {
	var order []string
	byScope := map[string][]Event{}
	for _, e := range evs {
		if _, ok := byScope[e.Scope]; !ok {
			order = append(order, e.Scope)
		}
		byScope[e.Scope] = append(byScope[e.Scope], e)
	}
	var mu sync.Mutex
	failed := map[string]string{} // scope → its first due member, written by the goroutines under mu
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, r.w.Options.Concurrency))
	for _, scope := range order {
		pending := byScope[scope]
		if member, blocked := r.blocked[scope]; blocked {
			r.enqueue(ctx, pending, member, "")
			continue
		}
		if r.streak.Load() >= downAfter { // queue untried: the log must not wait on a dead receiver
			member := r.enqueue(ctx, pending, "", "not tried: the receiver failed its last requests")
			mu.Lock()
			failed[scope] = member
			mu.Unlock()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for i, e := range pending {
				if err := r.send(ctx, e); err != nil {
					member := r.enqueue(ctx, pending[i:], "", err.Error())
					mu.Lock()
					failed[scope] = member
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	maps.Copy(r.blocked, failed)
}

// enqueue queues evs (of one scope) behind what waits there. The first
// failure of a scope (failure != "") also schedules its first retry,
// before the events are queued, so a crash between leaves a due entry
// with nothing queued (dropped on its turn), never a queue nobody retries.
func (r *sinkRun) enqueue(ctx context.Context, evs []Event, member, failure string) string {
	if failure != "" {
		now := r.w.now()
		member = due.Member(now.Add(r.backoff(1)), evs[0].Scope)
		v, _ := json.Marshal(retry{Attempts: 1, FirstFailed: now, LastError: failure})
		if err := r.w.Store.IndexPut(ctx, sinkKey(r.sink.Name, "due"), member, v); err != nil {
			r.w.Log.WarnContext(ctx, "webhook_queue_failed", "sink", r.sink.Name, "err", err)
		}
	}
	for _, e := range evs {
		v, _ := json.Marshal(queued{Event: e, Bucket: e.Bucket, Scope: e.Scope})
		if err := r.w.Store.IndexPut(ctx, sinkKey(r.sink.Name, "queue"), queueMember(e.Scope, e.ID), v); err != nil {
			r.w.Log.WarnContext(ctx, "webhook_queue_failed", "sink", r.sink.Name, "err", err)
		}
	}
	return member
}

// backoff is the delay before try n+1: FirstRetry doubled per failure,
// at most MaxRetry, with ±20% jitter so receivers are not hit in step.
func (r *sinkRun) backoff(failures int) time.Duration {
	d := r.w.Options.FirstRetry
	for range failures - 1 {
		if d *= 2; d >= r.w.Options.MaxRetry {
			d = r.w.Options.MaxRetry
			break
		}
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// retryDue works through the scopes whose retry is due, at once.
func (r *sinkRun) retryDue(ctx context.Context) error {
	dueList := sinkKey(r.sink.Name, "due")
	horizon := r.w.now()
	if r.recovered.Swap(false) {
		horizon = horizon.Add(2 * r.w.Options.MaxRetry)
	}
	entries, _, err := r.w.Store.IndexList(ctx, dueList, due.Until(horizon, 1000))
	if err != nil || len(entries) == 0 {
		return err
	}
	if r.streak.Load() >= downAfter {
		// The receiver is down: one scope probes it, and the rest stay due
		// rather than each costing a timeout while new events wait.
		entries = entries[:1]
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, r.w.Options.Concurrency))
	seen := map[string]bool{}
	for _, e := range entries {
		scope := due.ID(e.Member)
		if seen[scope] { // a replay scheduled a scope that was waiting already
			_ = r.w.Store.IndexDelete(ctx, dueList, e.Member)
			continue
		}
		seen[scope] = true
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			next := r.retryScope(ctx, e)
			mu.Lock()
			if next == "" {
				delete(r.blocked, scope)
			} else {
				r.blocked[scope] = next
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// retryScope sends a blocked scope's queue in order until one fails; it
// returns the scope's new due member, "" when its queue is empty.
func (r *sinkRun) retryScope(ctx context.Context, waiting metastore.Entry) string {
	store, name := r.w.Store, r.sink.Name
	scope := due.ID(waiting.Member)
	var st retry
	_ = json.Unmarshal(waiting.Value, &st)
	for ctx.Err() == nil {
		q, more, err := store.IndexList(ctx, sinkKey(name, "queue"), metastore.Query{Prefix: scope + "\x00", Limit: 50})
		if err != nil {
			return waiting.Member
		}
		for _, entry := range q {
			var item queued
			if err := json.Unmarshal(entry.Value, &item); err != nil {
				_ = store.IndexDelete(ctx, sinkKey(name, "queue"), entry.Member)
				continue
			}
			e := item.event()
			r.w.Metrics.retried.WithLabelValues(name).Inc()
			err := r.send(ctx, e)
			if err == nil {
				_ = store.IndexDelete(ctx, sinkKey(name, "queue"), entry.Member)
				st = retry{}
				continue
			}
			now := r.w.now()
			if st.Attempts == 0 {
				st.FirstFailed = now
			}
			st.Attempts++
			st.LastError = err.Error()
			if now.Sub(st.FirstFailed) >= r.w.Options.MaxAge {
				r.deadLetter(ctx, entry.Member, e, st)
				st = retry{}
				continue
			}
			return r.reschedule(ctx, waiting.Member, now.Add(r.backoff(st.Attempts)), scope, st)
		}
		if !more {
			_ = store.IndexDelete(ctx, sinkKey(name, "due"), waiting.Member)
			return ""
		}
	}
	return waiting.Member
}

func (r *sinkRun) reschedule(ctx context.Context, old string, at time.Time, scope string, st retry) string {
	member := due.Member(at, scope)
	v, _ := json.Marshal(st)
	if err := r.w.Store.IndexPut(ctx, sinkKey(r.sink.Name, "due"), member, v); err != nil {
		return old
	}
	_ = r.w.Store.IndexDelete(ctx, sinkKey(r.sink.Name, "due"), old)
	return member
}

func (r *sinkRun) deadLetter(ctx context.Context, member string, e Event, st retry) {
	v, _ := json.Marshal(DeadLetter{Event: e, Bucket: e.Bucket, Scope: e.Scope, Attempts: st.Attempts, FailedAt: r.w.now().UTC(), LastError: st.LastError})
	if err := r.w.Store.IndexPut(ctx, sinkKey(r.sink.Name, "dead"), sortable(e.ID), v); err != nil {
		return
	}
	_ = r.w.Store.IndexDelete(ctx, sinkKey(r.sink.Name, "queue"), member)
	r.w.Metrics.deadLettered.WithLabelValues(r.sink.Name).Inc()
	r.w.Log.WarnContext(ctx, "webhook_dead_letter", "sink", r.sink.Name, "event", e.ID, "type", e.Type, "attempts", st.Attempts, "err", st.LastError)
}

// send posts one event, signed; a 2xx is the receiver's acknowledgement.
func (r *sinkRun) send(ctx context.Context, e Event) error {
	body, err := e.Body()
	if err != nil {
		return err
	}
	now := r.w.now()
	sig, err := r.w.signers[r.sink.Name].Sign(e.ID, now, body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.w.Options.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.sink.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-webhooks")
	req.Header.Set(standardwebhooks.HeaderWebhookID, e.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	m := r.w.Metrics
	resp, err := r.w.Client.Do(req)
	if err != nil {
		m.failed.WithLabelValues(r.sink.Name).Inc()
		r.streak.Add(1)
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		m.failed.WithLabelValues(r.sink.Name).Inc()
		r.streak.Add(1)
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	if r.streak.Swap(0) >= downAfter {
		r.recovered.Store(true)
	}
	m.delivered.WithLabelValues(r.sink.Name).Inc()
	m.latency.WithLabelValues(r.sink.Name).Observe(r.w.now().Sub(e.Timestamp).Seconds())
	return nil
}

// gauge updates the backlog and the age of the oldest undelivered event.
func (r *sinkRun) gauge(ctx context.Context) {
	store, name := r.w.Store, r.sink.Name
	waiting, err := store.IndexLen(ctx, sinkKey(name, "queue"))
	if err != nil {
		return
	}
	unread, err := store.Events(ctx, r.pending, backlogScan, 0)
	if err != nil {
		return
	}
	r.w.Metrics.backlog.WithLabelValues(name).Set(float64(waiting + int64(len(unread))))
	oldest := time.Time{}
	if len(unread) > 0 {
		oldest = unread[0].Time
	}
	if head, _, err := store.IndexList(ctx, sinkKey(name, "queue"), metastore.Query{Limit: 1}); err == nil && len(head) > 0 {
		var q queued
		if json.Unmarshal(head[0].Value, &q) == nil && (oldest.IsZero() || q.Event.Timestamp.Before(oldest)) {
			oldest = q.Event.Timestamp
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = r.w.now().Sub(oldest).Seconds()
	}
	r.w.Metrics.oldest.WithLabelValues(name).Set(age)
	dead, err := store.IndexLen(ctx, sinkKey(name, "dead"))
	if err == nil {
		r.w.Metrics.dead.WithLabelValues(name).Set(float64(dead))
	}
}

// backlogScan bounds the log events the backlog gauge counts.
const backlogScan = 1000
