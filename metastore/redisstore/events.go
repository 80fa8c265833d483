package redisstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/metastore"
)

// The event log is the stream P{ev}:log; an event's ID is its stream ID.
//
// A write appends its events in the same script or MULTI as its change,
// to its outbox. On one Redis (or Sentinel), or when P carries a hash tag,
// the outbox is the log itself. On a Cluster a script touches one slot, so
// the outbox is a stream in the changed key's slot, P{<tag>}:ob, where
// <tag> is a string that hashes to that slot (slotTag). Outbox entries are
// then moved into the log, in order: by the writer, before its write
// returns (so one process's events reach the log in the order it wrote
// them), and by every instance's relay every relaySweep, for the outboxes
// of a writer that died in between: a writer adds a slot to P{ev}:slots
// before its first write with events there, so the sweep looks only at
// outboxes that were ever used. A move records "<slot>:<outbox entry id>" in P{ev}:seen in
// the same script as its XADD, so two relays moving the same outbox, or
// one that died between the XADD and the XDEL, never add an event twice.

func (s *Store) logKey() string   { return s.prefix + "{ev}:log" }
func (s *Store) seenKey() string  { return s.prefix + "{ev}:seen" }
func (s *Store) slotsKey() string { return s.prefix + "{ev}:slots" }

// useOutbox makes sure the sweep knows key's outbox before a write with
// events goes there (Cluster only): one SADD per slot per process.
func (s *Store) useOutbox(ctx context.Context, key string, emit [][]byte) error {
	if !s.cluster || len(emit) == 0 {
		return nil
	}
	slot := keySlot(key)
	s.outboxMu.Lock()
	known := s.outboxes[slot]
	s.outboxMu.Unlock()
	if known {
		return nil
	}
	if err := s.client.SAdd(ctx, s.slotsKey(), slot).Err(); err != nil {
		return fmt.Errorf("note the outbox of slot %d: %w", slot, err)
	}
	s.outboxMu.Lock()
	if s.outboxes == nil {
		s.outboxes = map[int]bool{}
	}
	s.outboxes[slot] = true
	s.outboxMu.Unlock()
	return nil
}

// outbox is where a write to key appends its events.
func (s *Store) outbox(key string) string {
	if !s.cluster {
		return s.logKey()
	}
	return s.outboxOf(keySlot(key))
}

func (s *Store) outboxOf(slot int) string { return s.prefix + "{" + slotTag(slot) + "}:ob" }

// withOutbox is the script keys for a write to key: key, and its outbox
// when it emits.
func (s *Store) withOutbox(key string, emit [][]byte) []string {
	if len(emit) == 0 {
		return []string{key}
	}
	return []string{key, s.outbox(key)}
}

func withEvents(args []any, emit [][]byte) []any {
	for _, e := range emit {
		args = append(args, e)
	}
	return args
}

// emitted moves the events a write to key just put in its outbox into the
// log (Cluster only). The write has committed, so a failure here is not
// the write's: the relay's sweep moves them later.
func (s *Store) emitted(ctx context.Context, key string, emit [][]byte) {
	if !s.cluster || len(emit) == 0 {
		return
	}
	s.startRelay()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.move(ctx, keySlot(key))
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

func (s *Store) Events(ctx context.Context, after string, limit int, wait time.Duration) ([]metastore.Event, error) {
	if after == "" {
		after = "0-0"
	} else if !streamID.MatchString(after) {
		return nil, fmt.Errorf("redisstore: events after %q: %w", after, metastore.ErrBadEventID)
	}
	if s.cluster {
		s.startRelay()
	}
	// go-redis ends a blocking read at its deadline, not when ctx is
	// cancelled, so a long wait blocks in slices and looks at ctx between.
	deadline := time.Now().Add(wait)
	var res []redis.XStream
	for {
		block := time.Duration(-1) // no BLOCK
		if left := time.Until(deadline); wait > 0 {
			block = min(max(left, time.Millisecond), waitSlice) // BLOCK 0 would wait forever
		}
		var err error
		res, err = s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{s.logKey(), after}, Count: int64(clampLimit(limit)), Block: block}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redisstore: events: %w", err)
		}
		if len(res) > 0 || block < 0 || !time.Now().Before(deadline) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	var out []metastore.Event
	for _, st := range res {
		for _, m := range st.Messages {
			v, _ := m.Values["e"].(string)
			out = append(out, metastore.Event{ID: m.ID, Time: idTime(m.ID), Value: []byte(v)})
		}
	}
	return out, nil
}

// idTime is the append time a stream ID carries.
func idTime(id string) time.Time {
	ms, _ := strconv.ParseInt(id[:strings.IndexByte(id, '-')], 10, 64)
	return time.UnixMilli(ms)
}

// waitSlice is the longest one blocking read of the log waits.
const waitSlice = time.Second

func (s *Store) LastEventID(ctx context.Context) (string, error) {
	msgs, err := s.client.XRevRangeN(ctx, s.logKey(), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("redisstore: last event: %w", err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

func (s *Store) TrimEvents(ctx context.Context, before time.Time, keep int64) error {
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XTrimMinID(ctx, s.logKey(), strconv.FormatInt(before.UnixMilli(), 10))
		p.XTrimMaxLen(ctx, s.logKey(), max(keep, 0))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: trim events: %w", err)
	}
	return nil
}

// relaySweep is how often every instance's relay looks at every outbox,
// for the events of a writer that died before its relay moved them.
const relaySweep = 5 * time.Second

// seenHorizon is how long a moved outbox entry is remembered. A relay
// that moved an entry retries the XDEL long before this.
const seenHorizon = 24 * time.Hour

type relay struct {
	stop chan struct{}
	done chan struct{}
}

// startRelay starts the Cluster relay's sweep once.
func (s *Store) startRelay() {
	s.relayOnce.Do(func() {
		s.relay = &relay{stop: make(chan struct{}), done: make(chan struct{})}
		go s.relayLoop(s.relay)
	})
}

func (s *Store) stopRelay() {
	if s.relay != nil {
		close(s.relay.stop)
		<-s.relay.done
	}
}

func (s *Store) relayLoop(r *relay) {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-r.stop; cancel() }()
	sweep := time.NewTicker(relaySweep)
	defer sweep.Stop()
	for {
		for _, slot := range s.busyOutboxes(ctx) {
			_ = s.move(ctx, slot) // a failure is retried on the next sweep
		}
		select {
		case <-r.stop:
			return
		case <-sweep.C:
		}
	}
}

// busyOutboxes lists the slots whose outbox holds entries, of those ever used.
func (s *Store) busyOutboxes(ctx context.Context) []int {
	used, err := s.client.SMembers(ctx, s.slotsKey()).Result()
	if err != nil || len(used) == 0 {
		return nil
	}
	slots := make([]int, 0, len(used))
	lens := make([]*redis.IntCmd, 0, len(used))
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range used {
			if slot, err := strconv.Atoi(u); err == nil && slot >= 0 && slot < numSlots {
				slots = append(slots, slot)
				lens = append(lens, p.XLen(ctx, s.outboxOf(slot)))
			}
		}
		return nil
	})
	var busy []int
	for i, n := range lens {
		if n.Val() > 0 {
			busy = append(busy, slots[i])
		}
	}
	return busy
}

// moveScript: KEYS = log, seen; ARGV = now in ms, the horizon in ms, then
// pairs of (seen member, event).
var moveScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
for i = 3, #ARGV, 2 do
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1])
  end
end
return 0
`)

// move empties one outbox into the log, in order.
func (s *Store) move(ctx context.Context, slot int) error {
	ob := s.outboxOf(slot)
	for {
		msgs, err := s.client.XRangeN(ctx, ob, "-", "+", 100).Result()
		if err != nil || len(msgs) == 0 {
			return err
		}
		now := time.Now()
		args := []any{now.UnixMilli(), now.Add(-seenHorizon).UnixMilli()}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
			args = append(args, strconv.Itoa(slot)+":"+m.ID, m.Values["e"])
		}
		if err := moveScript.Run(ctx, s.client, []string{s.logKey(), s.seenKey()}, args...).Err(); err != nil {
			return err
		}
		if err := s.client.XDel(ctx, ob, ids...).Err(); err != nil {
			return err
		}
	}
}
