package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis key schema. Every key starts with the deployment's prefix P (the
// metadata store's, "ferry:" by default):
//
//	P rl:{<key>}   zset   one member per counted request in the window,
//	                      scored by Redis's clock in microseconds; the
//	                      key's TTL is the window, so an idle key vanishes
//
// Each call runs one script on one key, so it touches one slot of a cluster
// whatever the key; the braces make that explicit and keep the slot the same
// should a script ever touch a second key of the same limiter key. If P has a
// hash tag of its own, P's wins, which is still one slot per call.
//
// Redis's clock, not the callers', times the requests: instances whose
// clocks disagree still share one window.
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedis returns a Limiter keeping its counts in c under prefix.
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	return &Redis{c: c, prefix: prefix}
}

func (l *Redis) key(k string) string { return l.prefix + "rl:{" + k + "}" }

// allowScript is the whole decision, atomic on the server: drop what left
// the window, count, add the request if there is room, and say when the
// oldest request leaves. The member only has to be unique among requests in
// the same microsecond; the caller sends a random one.
//
// KEYS[1] the zset; ARGV limit, window (µs), member.
// Returns {allowed 0|1, remaining, reset (µs)}.
var allowScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local allowed = 0
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  n = n + 1
  allowed = 1
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, limit - n, reset}
`)

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string, lim Limit) (Result, error) {
	member := strconv.FormatUint(rand.Uint64(), 36)
	v, err := allowScript.Run(ctx, l.c, []string{l.key(key)}, lim.Requests, lim.Window.Microseconds(), member).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if len(v) != 3 {
		return Result{}, fmt.Errorf("rate limit %s: the script answered %v", key, v)
	}
	return Result{
		Allowed:   v[0] == 1,
		Limit:     lim.Requests,
		Remaining: max(int(v[1]), 0), // below 0 after the limit was lowered
		Reset:     time.Duration(v[2]) * time.Microsecond,
	}, nil
}
