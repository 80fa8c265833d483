package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/metastore"
)

// lockScript draws the fence and sets the lease in one step, so a fence is
// consumed only by a lease that was actually granted and fences follow the
// order in which leases are granted. KEYS = lease, fence counter (same slot,
// see keys.go); ARGV = owner, ttl in ms. Returns the fence, or 0 when held.
var lockScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%d:%s', fence, ARGV[1]), 'PX', ARGV[2])
return fence
`)

// refreshScript and unlockScript act only while the lease still holds our
// value. ARGV = "<fence>:<owner>"[, ttl in ms]. They return 1 when they did.
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (metastore.Lock, error) {
	if name == "" {
		return nil, errors.New("redisstore: lock: empty name")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("redisstore: lock %q: invalid ttl %v", name, ttl)
	}
	owner := rand.Text()
	key := s.lockKey(name)
	res, ack := s.eval(ctx, lockScript, []string{key, s.fenceKey()}, owner, ttlMillis(ttl))
	fence, err := res.Int64()
	if err != nil {
		return nil, fmt.Errorf("redisstore: lock %q: %w", name, err)
	}
	if fence == 0 {
		return nil, fmt.Errorf("redisstore: lock %q: %w", name, metastore.ErrLocked)
	}
	l := &lock{
		store: s, key: key, name: name, owner: owner, fence: fence,
		value: strconv.FormatInt(fence, 10) + ":" + owner,
	}
	if err := ack.err(); err != nil {
		// A lease only the master knows is not handed out; release it
		// rather than leave the session busy for its TTL.
		_ = l.Unlock(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("redisstore: lock %q: %w", name, err)
	}
	return l, nil
}

func ttlMillis(ttl time.Duration) int64 { return max(1, ttl.Milliseconds()) }

type lock struct {
	store *Store
	key   string
	name  string
	owner string
	fence int64
	value string // what the lease key holds while it is ours

	mu       sync.Mutex
	released bool // Unlock already ran; later calls are no-ops
}

func (l *lock) Name() string  { return l.name }
func (l *lock) Owner() string { return l.owner }
func (l *lock) Fence() int64  { return l.fence }

func (l *lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redisstore: refresh lock %q: invalid ttl %v", l.name, ttl)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("redisstore: refresh lock %q: unlocked: %w", l.name, metastore.ErrLockLost)
	}
	ok, err := refreshScript.Run(ctx, l.store.client, []string{l.key}, l.value, ttlMillis(ttl)).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: refresh lock %q: %w", l.name, err)
	}
	if ok == 0 {
		return fmt.Errorf("redisstore: refresh lock %q: %w", l.name, metastore.ErrLockLost)
	}
	return nil
}

func (l *lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	ok, err := unlockScript.Run(ctx, l.store.client, []string{l.key}, l.value).Int64()
	if err != nil {
		// Not released: the caller may retry, and the TTL bounds the damage.
		return fmt.Errorf("redisstore: unlock %q: %w", l.name, err)
	}
	l.released = true
	if ok == 0 {
		return fmt.Errorf("redisstore: unlock %q: %w", l.name, metastore.ErrLockLost)
	}
	return nil
}
