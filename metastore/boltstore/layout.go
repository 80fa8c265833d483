package boltstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// bbolt layout. Four top-level buckets, created on Open:
//
//	records/<key>            → record, encoded by encodeRecord:
//	                           byte 0      format (1)
//	                           bytes 1-8   version, big-endian int64
//	                           bytes 9-16  fence, big-endian int64
//	                           bytes 17-24 expiry, Unix ns, 0 = never
//	                           bytes 25-   value
//	indexes/<name>/<member>  → value; one nested bucket per index, so a
//	                           Cursor walks an index in byte order
//	events/<seq>             → one event of the log (events.go)
//	meta/fence               → store-wide fence counter, big-endian uint64;
//	                           it outlives restarts because records keep
//	                           their fence, and a counter restarting at 0
//	                           would fence out every new lock holder
//
// An expired record stays in records/ until the sweeper removes it; until
// then every read and write treats it as absent.
var (
	bucketRecords = []byte("records")
	bucketIndexes = []byte("indexes")
	bucketMeta    = []byte("meta")
	bucketEvents  = []byte("events")
	keyFence      = []byte("fence")
)

const (
	recordFormat     = 1
	recordHeaderSize = 1 + 8 + 8 + 8
)

// stored is a record as kept on disk.
type stored struct {
	value     []byte
	version   int64
	fence     int64
	expiresAt int64 // Unix ns, 0 = never
}

func (r stored) expired(now time.Time) bool {
	return r.expiresAt != 0 && now.UnixNano() >= r.expiresAt
}

func (r stored) record() metastore.Record {
	rec := metastore.Record{
		// Copy: the slice may point into the bbolt mmap, valid only during the tx.
		Value:   append([]byte{}, r.value...),
		Version: r.version,
		Fence:   r.fence,
	}
	if r.expiresAt != 0 {
		rec.ExpiresAt = time.Unix(0, r.expiresAt)
	}
	return rec
}

func encodeRecord(r stored) []byte {
	b := make([]byte, recordHeaderSize, recordHeaderSize+len(r.value))
	b[0] = recordFormat
	binary.BigEndian.PutUint64(b[1:], uint64(r.version))
	binary.BigEndian.PutUint64(b[9:], uint64(r.fence))
	binary.BigEndian.PutUint64(b[17:], uint64(r.expiresAt))
	return append(b, r.value...)
}

// decodeRecord does not copy: value aliases b.
func decodeRecord(b []byte) (stored, error) {
	if len(b) < recordHeaderSize || b[0] != recordFormat {
		return stored{}, fmt.Errorf("corrupt record (%d bytes, format %d)", len(b), firstByte(b))
	}
	return stored{
		version:   int64(binary.BigEndian.Uint64(b[1:])),
		fence:     int64(binary.BigEndian.Uint64(b[9:])),
		expiresAt: int64(binary.BigEndian.Uint64(b[17:])),
		value:     b[recordHeaderSize:],
	}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
