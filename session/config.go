package session

import (
	"slices"
	"time"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/metastore"
	"github.com/prometheus/client_golang/prometheus"
)

// Config bounds sessions.
type Config struct {
	TTL     time.Duration // an idle session expires after this
	MaxSize int64         // largest file accepted
	LockTTL time.Duration // lease of one append; refreshed while it runs
	// MaxHeld caps the bytes held back for one S3 session (in the metadata
	// store, and in memory while an append runs). Files above 48.8 GiB need
	// parts above 5 MiB; if their part size exceeds MaxHeld, chunks smaller
	// than a part are refused instead of piling up.
	MaxHeld int64
	// MaxHeldTotal caps the bytes all sessions together hold back in the
	// metadata store; a small chunk past it gets 503 and Retry-After.
	MaxHeldTotal int64
	// MaxBuffered caps the request data this instance holds in memory at
	// once (buffers.go); at least MaxHeld and one ingest piece (8 MiB).
	MaxBuffered int64
	// PlainParts sends parts without storage's full-object check
	// (fullcrc.go); the session's own CRC32C still checks every byte.
	PlainParts bool
	// SHA256Buckets are the buckets whose every file gets a SHA-256 ("*":
	// all); see Spec.ChecksumAlgorithm for how parts get theirs.
	SHA256Buckets []string
	// OrphanAge is when a multipart upload no session owns is aborted
	// (purge.go); the sweep for them runs at most this often.
	OrphanAge time.Duration
	// Metrics receives the engine's metrics; nil keeps them unexported.
	Metrics prometheus.Registerer
	// Grace keeps a record past expires_at so the purger, not the store's
	// expiry, is what normally removes it (and frees its storage).
	Grace time.Duration
	// CommitTimeout bounds a completion, which runs to the end once the
	// last byte is in, whether or not the client waits for the answer.
	CommitTimeout time.Duration
}

// defaults fills zero fields. The user-facing settings take config's
// defaults, so each number is written once; the rest are internal tunables.
func (c *Config) defaults() {
	d := config.Default().Sessions
	if c.TTL <= 0 {
		c.TTL = d.TTL
	}
	if c.MaxSize <= 0 {
		c.MaxSize = d.MaxSize
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = d.MaxHeldBytes
	}
	if c.MaxHeldTotal <= 0 {
		c.MaxHeldTotal = d.MaxHeldTotal
	}
	if c.OrphanAge <= 0 {
		c.OrphanAge = d.OrphanAge
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = d.MaxBufferedBytes
	}
	c.MaxBuffered = max(c.MaxBuffered, c.MaxHeld, ingestChunk) // what one request may need at once
	if c.LockTTL <= 0 {
		c.LockTTL = metastore.RequestLease
	}
	if c.Grace <= 0 {
		c.Grace = time.Hour
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 15 * time.Minute
	}
}

// bucketSHA256 reports whether bkt's setting gives every file a SHA-256.
func (c *Config) bucketSHA256(bkt string) bool {
	return slices.Contains(c.SHA256Buckets, bkt) || slices.Contains(c.SHA256Buckets, "*")
}
