package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// Waiting for replicas (redis.min_replicas_ack). Redis replicates
// asynchronously, so a failover can lose the writes the old master
// answered last. With WaitForReplicas every write the store makes is
// followed by WAIT numreplicas timeout, and the write returns only once
// that many replicas have it; past the timeout it fails with
// metastore.ErrNotReplicated inside an UNAVAILABLE error (a 503), so
// nothing is acknowledged that only the master holds.
//
// WAIT counts the writes of its own connection: it blocks until the
// replicas have acknowledged the replication offset of that connection's
// last write. go-redis pools connections, so the WAIT must travel on the
// connection that sent the write, and on a cluster to the master that
// owns the key: pinned borrows that one connection for both. Scripts and
// single commands send the WAIT in the same round trip as the write;
// MULTI/EXEC needs a second one, since a WAIT inside MULTI does not block.
//
// What is waited for: every record and index write and every lease
// taken (a lost lease would let a second holder draw the same fence
// after a failover). Not lease refreshes and releases, which only move a
// lease's expiry, and never reads.

// NoMaintNotifications is the go-redis option every client of this store
// should be built with (Options and ClusterOptions .MaintNotificationsConfig).
// Maintenance notifications are a Redis Enterprise handshake; in go-redis's
// default "auto" mode a server that refuses it makes the first connection
// rewrite the client's shared options, and on a Conn (which pinned uses)
// that write races every other Conn of the same client. Off, nothing is
// rewritten and each new connection saves a round trip.
func NoMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// WaitForReplicas makes every write wait until n replicas acknowledge it,
// for at most timeout (rounded down to whole milliseconds, at least one:
// WAIT takes milliseconds and 0 means forever). n = 0 turns waiting off.
// It returns s. The timeout must stay under the client's read timeout
// (go-redis: 3 s), which bounds the round trip that carries the WAIT;
// config allows at most 2 s.
func (s *Store) WaitForReplicas(n int, timeout time.Duration) *Store {
	s.replicas, s.replicaTimeout = n, max(timeout, time.Millisecond)
	return s
}

// replicaAck is the answer of one WAIT, read once the write it follows is
// known to have written (a write that changed nothing needs no replica).
type replicaAck struct {
	s    *Store
	wait *redis.IntCmd
}

// err is nil when enough replicas acknowledged; nil for a store that does
// not wait.
func (a *replicaAck) err() error {
	if a == nil {
		return nil
	}
	n, err := a.wait.Result()
	if err != nil {
		return fmt.Errorf("wait for %d replicas: %w", a.s.replicas, err)
	}
	if n >= int64(a.s.replicas) {
		return nil
	}
	return errcode.ErrUnavailable.Wrap(fmt.Errorf("%w: %d of %d replicas within %v", metastore.ErrNotReplicated, n, a.s.replicas, a.s.replicaTimeout),
		"the metadata store did not confirm replication to %d replica(s) within %v (redis.min_replicas_ack; %d did), "+
			"so this write may not be durable and is not acknowledged; retry after the Retry-After delay (it may have taken effect: "+
			"a resuming client asks for the offset first)", a.s.replicas, a.s.replicaTimeout, n)
}

// processor is a pipeline, which queues the WAIT behind the write, or a
// connection, which sends it at once.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

func (s *Store) waitFor(ctx context.Context, p processor) *replicaAck {
	wait := redis.NewIntCmd(ctx, "wait", s.replicas, s.replicaTimeout.Milliseconds())
	_ = p.Process(ctx, wait) // its error is the command's
	return &replicaAck{s: s, wait: wait}
}

// pinned runs fn on one connection to the master that owns key. On a
// cluster whose slots moved, the node the client had in mind answers
// MOVED (and so wrote nothing): the slot map is reloaded and fn tried
// again. A slot being migrated (ASK) fails the call.
func (s *Store) pinned(ctx context.Context, key string, fn func(*redis.Conn) error) error {
	var err error
	for attempt := range 4 {
		var node *redis.Client
		switch c := s.client.(type) {
		case *redis.Client:
			node = c
		case *redis.ClusterClient:
			if node, err = c.MasterForKey(ctx, key); err != nil {
				return err
			}
		default:
			return fmt.Errorf("waiting for replicas needs a *redis.Client or *redis.ClusterClient, not %T", s.client)
		}
		conn := node.Conn()
		err = fn(conn)
		_ = conn.Close()
		cc, cluster := s.client.(*redis.ClusterClient)
		if _, moved := redis.IsMovedError(err); !moved || !cluster {
			return err
		}
		cc.ReloadState(ctx) // lazy: give it a moment
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return err
}

// eval runs script; a store that waits for replicas sends WAIT behind it
// on the same connection, in the same round trip.
func (s *Store) eval(ctx context.Context, script *redis.Script, keys []string, args ...any) (*redis.Cmd, *replicaAck) {
	if s.replicas == 0 {
		return script.Run(ctx, s.client, keys, args...), nil
	}
	var res *redis.Cmd
	var ack *replicaAck
	send := func(c *redis.Conn, eval func(redis.Pipeliner) *redis.Cmd) {
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			res, ack = eval(p), s.waitFor(ctx, p)
			return nil
		})
	}
	err := s.pinned(ctx, keys[0], func(c *redis.Conn) error {
		send(c, func(p redis.Pipeliner) *redis.Cmd { return script.EvalSha(ctx, p, keys, args...) })
		if redis.HasErrorPrefix(res.Err(), "NOSCRIPT") {
			send(c, func(p redis.Pipeliner) *redis.Cmd { return script.Eval(ctx, p, keys, args...) })
		}
		return res.Err()
	})
	if res == nil { // no connection
		res = redis.NewCmd(ctx)
		res.SetErr(err)
	}
	return res, ack
}

// pipelined sends fn's commands, and WAIT behind them when the store
// waits for replicas, on one connection to key's master.
func (s *Store) pipelined(ctx context.Context, key string, fn func(redis.Pipeliner)) (*replicaAck, error) {
	if s.replicas == 0 {
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error { fn(p); return nil })
		return nil, err
	}
	var ack *replicaAck
	err := s.pinned(ctx, key, func(c *redis.Conn) error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			fn(p)
			ack = s.waitFor(ctx, p)
			return nil
		})
		return err
	})
	return ack, err
}

// txPipelined runs fn's commands in MULTI/EXEC, then WAIT when the store
// waits for replicas: a second round trip on the same connection, since
// a WAIT inside MULTI answers at once.
func (s *Store) txPipelined(ctx context.Context, key string, fn func(redis.Pipeliner)) (*replicaAck, error) {
	tx := func(p redis.Pipeliner) error { fn(p); return nil }
	if s.replicas == 0 {
		_, err := s.client.TxPipelined(ctx, tx)
		return nil, err
	}
	var ack *replicaAck
	err := s.pinned(ctx, key, func(c *redis.Conn) error {
		if _, err := c.TxPipelined(ctx, tx); err != nil {
			return err
		}
		ack = s.waitFor(ctx, c)
		return nil
	})
	return ack, err
}
