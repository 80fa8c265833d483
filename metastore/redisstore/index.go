package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/metastore"
)

// listScript reads a window of members and their values in one step, so a
// concurrent IndexDelete cannot leave a member without its value.
// ARGV = min, max, count, "1" for descending.
var listScript = redis.NewScript(`
local members
if ARGV[4] == '1' then
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', 0, ARGV[3])
else
  members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
end
local out = {}
for _, m in ipairs(members) do
  local v = redis.call('HGET', KEYS[2], m)
  if v then
    out[#out + 1] = m
    out[#out + 1] = v
  end
end
return out
`)

func (s *Store) IndexPut(ctx context.Context, index, member string, value []byte, emit ...[]byte) error {
	if err := metastore.CheckMember(index, member); err != nil {
		return fmt.Errorf("redisstore: index %q put: %w", index, err)
	}
	z, h := s.indexKeys(index)
	if err := s.useOutbox(ctx, z, emit); err != nil {
		return fmt.Errorf("redisstore: index %q put %q: %w", index, member, err)
	}
	ack, err := s.txPipelined(ctx, z, func(p redis.Pipeliner) {
		p.ZAdd(ctx, z, redis.Z{Member: member})
		p.HSet(ctx, h, member, value)
		for _, e := range emit {
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.outbox(z), Values: []any{"e", e}})
		}
	})
	if err == nil {
		s.emitted(ctx, z, emit)
	}
	if err == nil {
		err = ack.err()
	}
	if err != nil {
		return fmt.Errorf("redisstore: index %q put %q: %w", index, member, err)
	}
	return nil
}

func (s *Store) IndexDrop(ctx context.Context, index string) error {
	if index == "" {
		return errors.New("redisstore: index drop: empty index name")
	}
	z, h := s.indexKeys(index)
	var del *redis.IntCmd
	ack, err := s.pipelined(ctx, z, func(p redis.Pipeliner) {
		del = p.Del(ctx, z, h) // one slot: the keys share a hash tag
	})
	if err == nil {
		err = errors.Join(del.Err(), ack.err())
	}
	if err != nil {
		return fmt.Errorf("redisstore: index %q drop: %w", index, err)
	}
	return nil
}

func (s *Store) IndexGet(ctx context.Context, index, member string) ([]byte, error) {
	if err := metastore.CheckMember(index, member); err != nil {
		return nil, fmt.Errorf("redisstore: index %q get: %w", index, err)
	}
	_, h := s.indexKeys(index)
	v, err := s.client.HGet(ctx, h, member).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: index %q get %q: %w", index, member, metastore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: index %q get %q: %w", index, member, err)
	}
	return v, nil
}

// indexDeleteScript: ARGV = member, then the events to append to KEYS[3],
// the outbox, when the member was there.
var indexDeleteScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
for i = 2, #ARGV do redis.call('XADD', KEYS[3], '*', 'e', ARGV[i]) end
return 1
`)

func (s *Store) IndexDelete(ctx context.Context, index, member string, emit ...[]byte) error {
	if err := metastore.CheckMember(index, member); err != nil {
		return fmt.Errorf("redisstore: index %q delete: %w", index, err)
	}
	z, h := s.indexKeys(index)
	var ack *replicaAck
	var err error
	if len(emit) == 0 {
		ack, err = s.txPipelined(ctx, z, func(p redis.Pipeliner) {
			p.ZRem(ctx, z, member)
			p.HDel(ctx, h, member)
		})
	} else if err = s.useOutbox(ctx, z, emit); err == nil {
		var res *redis.Cmd
		res, ack = s.eval(ctx, indexDeleteScript, []string{z, h, s.outbox(z)}, withEvents([]any{member}, emit)...)
		var n int64
		if n, err = res.Int64(); n == 1 {
			s.emitted(ctx, z, emit)
		}
	}
	if err == nil {
		err = ack.err()
	}
	if err != nil {
		return fmt.Errorf("redisstore: index %q delete %q: %w", index, member, err)
	}
	return nil
}

func (s *Store) IndexLen(ctx context.Context, index string) (int64, error) {
	if index == "" {
		return 0, errors.New("redisstore: index len: empty index name")
	}
	z, _ := s.indexKeys(index)
	n, err := s.client.ZCard(ctx, z).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: index %q len: %w", index, err)
	}
	return n, nil
}

func (s *Store) IndexList(ctx context.Context, index string, q metastore.Query) ([]metastore.Entry, bool, error) {
	if index == "" {
		return nil, false, errors.New("redisstore: index list: empty index name")
	}
	limit := clampLimit(q.Limit)
	lo, hi := lexRange(q)
	desc := "0"
	if q.Desc {
		desc = "1"
	}
	z, h := s.indexKeys(index)
	// One extra member tells whether more match beyond the page.
	res, err := listScript.Run(ctx, s.client, []string{z, h}, lo, hi, limit+1, desc).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("redisstore: index %q list: %w", index, err)
	}
	entries := make([]metastore.Entry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		entries = append(entries, metastore.Entry{Member: res[i], Value: []byte(res[i+1])})
	}
	if len(entries) > limit {
		return entries[:limit], true, nil
	}
	return entries, false, nil
}

// lexRange turns a query into ZRANGEBYLEX bounds in ascending byte order.
// After and Before name the bounds in listing order, so they swap when Desc.
func lexRange(q metastore.Query) (lo, hi string) {
	after, before := q.After, q.Before
	if q.Desc {
		after, before = before, after
	}
	switch {
	case after != "" && after >= q.Prefix:
		lo = "(" + after
	case q.Prefix != "":
		lo = "[" + q.Prefix
	default:
		lo = "-"
	}
	end := prefixEnd(q.Prefix)
	switch {
	case before != "" && (end == "" || before < end):
		hi = "(" + before
	case end != "":
		hi = "(" + end
	default:
		hi = "+"
	}
	return lo, hi
}

// prefixEnd is the smallest string greater than every string starting with
// p, or "" when there is none (p empty or all 0xff bytes).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
