// Package migrate brings the metadata store to the layout this Ferry
// reads and writes (docs/storage-layout.md). cmd/ferryd runs it at startup,
// before serving. The layout version lives in the record "meta/layout";
// the store is migrated under the lock "meta/migrate", so instances that
// start together migrate once.
//
// Layout 1 puts every index under its owner's prefix. Layout 0 (no version
// record) had the registry's indexes at "buckets", "locations",
// "files/<bucket>" and "fileids/<bucket>", and the session purger's at
// "sessions/expiry". The names below are frozen copies of both layouts, not
// the packages' own, because a migration must keep meaning what it meant
// when later layouts rename things again.
//
// Layout 2 moves no entry: it changes what a session record may hold. A
// session's S3 multipart upload starts with its first part, so a record
// may have a part size and no upload id yet, which a layout-1 ferryd would
// take for a small file held back whole. The version keeps such a ferryd
// from starting on a layout-2 store.
//
// Layout 3 moves no entry either: a session may take parallel parts,
// recorded in its own parts index ("session/<id>/parts") rather than in
// the record, which a layout-2 ferryd would not read: it would take the
// session for one with no bytes and append over its parts.
package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

// Version is the layout this code writes.
const Version = 3

const (
	versionKey = "meta/layout"
	lockName   = "meta/migrate"
	lockTTL    = 30 * time.Second
	// lockWait covers another instance migrating a large store.
	lockWait = 5 * time.Minute
	page     = 500
)

type layout struct {
	Version int `json:"version"`
}

// rename is one index moved from layout 0 to layout 1.
type rename struct{ from, to string }

// Run migrates store to Version if it is older, and returns how many index
// entries it moved (0 when the store was current or empty). It refuses a
// store whose layout is newer than this code's.
//
// Every step can be repeated, so a run that died midway is finished by the
// next: all entries are copied to their new index before any old one is
// deleted, the bucket names are read from the old and the new indexes, and
// the version is written last.
func Run(ctx context.Context, store metastore.Store, log *slog.Logger) (moved int, err error) {
	err = metastore.WithLock(ctx, store, lockName, metastore.LockOptions{TTL: lockTTL, Wait: lockWait}, func(h metastore.Held) error {
		v, ver, err := readVersion(h.Ctx, store)
		switch {
		case err != nil:
			return err
		case v > Version:
			return fmt.Errorf("the metadata store has layout %d, newer than this ferryd's %d: run the newer ferryd", v, Version)
		case v == Version:
			return nil
		}
		if v < 1 {
			if moved, err = toV1(h.Ctx, store, log); err != nil {
				return err
			}
		}
		b, _ := json.Marshal(layout{Version: Version})
		if _, err := store.Put(h.Ctx, versionKey, b, metastore.Cond{Version: ver, Fence: h.Fence}); err != nil {
			return fmt.Errorf("write layout version: %w", err)
		}
		log.Info("metadata layout migrated", "from", v, "to", Version, "entries_moved", moved)
		return nil
	})
	if errors.Is(err, metastore.ErrLocked) {
		return 0, fmt.Errorf("another instance kept the metadata migration lock %q for %s: %w", lockName, lockWait, err)
	}
	return moved, err
}

// readVersion returns the stored layout and its record version (0 when
// there is none: layout 0).
func readVersion(ctx context.Context, store metastore.Store) (v int, ver int64, err error) {
	rec, err := store.Get(ctx, versionKey)
	if errors.Is(err, metastore.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read layout version: %w", err)
	}
	var l layout
	if err := json.Unmarshal(rec.Value, &l); err != nil {
		return 0, 0, fmt.Errorf("layout version record %q: %w", versionKey, err)
	}
	return l.Version, rec.Version, nil
}

// toV1 copies every layout-0 index to its layout-1 name, then deletes the
// old ones.
func toV1(ctx context.Context, store metastore.Store, log *slog.Logger) (int, error) {
	renames := []rename{
		{"buckets", "registry/buckets"},
		{"locations", "registry/locations"},
		{"sessions/expiry", "session/expiry"},
	}
	// A bucket is in "buckets" once it holds a file or is registered, and
	// registered ones are in "locations" too. The new names are read as
	// well: a run that died midway may have deleted the old ones.
	buckets := map[string]bool{}
	for _, index := range []string{"buckets", "locations", "registry/buckets", "registry/locations"} {
		if err := metastore.EachEntry(ctx, store, index, func(e metastore.Entry) error {
			buckets[e.Member] = true
			return nil
		}); err != nil {
			return 0, err
		}
	}
	var perBucket []rename
	for _, b := range slices.Sorted(maps.Keys(buckets)) {
		perBucket = append(perBucket,
			rename{"files/" + b, "registry/files/" + b},
			rename{"fileids/" + b, "registry/fileids/" + b})
	}
	// The per-bucket indexes go before the lists of buckets, so the old
	// lists stay until nothing needs them.
	renames = append(perBucket, renames...)

	moved := 0
	for _, r := range renames {
		n := 0
		if err := metastore.EachEntry(ctx, store, r.from, func(e metastore.Entry) error {
			n++
			return store.IndexPut(ctx, r.to, e.Member, e.Value)
		}); err != nil {
			return moved, fmt.Errorf("copy index %q to %q: %w", r.from, r.to, err)
		}
		if n > 0 {
			log.Info("metadata index copied", "from", r.from, "to", r.to, "entries", n)
		}
		moved += n
	}
	for _, r := range renames {
		if err := drop(ctx, store, r.from); err != nil {
			return moved, fmt.Errorf("delete old index %q: %w", r.from, err)
		}
	}
	return moved, nil
}

// drop deletes every member of index.
func drop(ctx context.Context, store metastore.Store, index string) error {
	for {
		entries, _, err := store.IndexList(ctx, index, metastore.Query{Limit: page})
		if err != nil || len(entries) == 0 {
			return err
		}
		for _, e := range entries {
			if err := store.IndexDelete(ctx, index, e.Member); err != nil {
				return err
			}
		}
	}
}
