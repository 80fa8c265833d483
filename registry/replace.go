package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// A completion puts the new version's bytes at the file's key and then
// publishes its record: two steps, so a process that dies between them
// leaves storage one version ahead of the record. Replace closes that
// window. Under the key's lock, before storage commits, it files the new
// version as pending, naming the ETag the commit will give it. A reader
// that finds storage ahead of the record serves the pending version the
// object is, and publishes it unless a completion holds the lock
// (rollForward). So the key reads as the old version or the new one at
// every moment, whatever dies when.

const (
	// keyLease is the key lock's lease: how long a dead completion holds
	// its key (reads are served its pending version meanwhile; deletes and
	// other completions of the key wait).
	keyLease = metastore.RequestLease
	// completionWait is how long a completion waits for another one of
	// the same key (a large CompleteMultipartUpload takes a while).
	completionWait = 3 * keyLease
	// readerWait is how long a reader that found storage ahead of the
	// record, and no pending version it is, waits for the completion at
	// work to publish (one whose ETag could not be known beforehand).
	readerWait = 2 * time.Second
)

// withKey runs fn holding bkt/key's lock, as a completion, a delete or a
// checksum's recording does: waiting for one at work, and answering 503
// if it does not finish in completionWait.
func (r *Registry) withKey(ctx context.Context, bkt, key string, fn func(ctx context.Context) error) error {
	err := metastore.WithLock(ctx, r.store, keyLock(bkt, key), metastore.LockOptions{TTL: keyLease, Wait: completionWait},
		func(h metastore.Held) error { return fn(h.Ctx) })
	if errors.Is(err, metastore.ErrLocked) {
		return errcode.ErrUnavailable.New("another upload or delete of %s/%s has not finished in %s; retry", bkt, key, completionWait)
	}
	return err
}

// Commit is a completion's storage step: it puts the version's bytes at
// the file's key and returns the object. Before storage makes them
// visible it calls intend with the ETag they will have ("" when that
// cannot be known), and stops if intend fails.
type Commit func(ctx context.Context, intend func(etag string) error) (bucket.ObjectInfo, error)

// Replace runs commit and publishes f as the object it made, holding the
// key's lock, with f filed as pending meanwhile (see above). f needs its
// ID: the pending entry is named by it.
func (r *Registry) Replace(ctx context.Context, f File, commit Commit) (File, error) {
	var out File
	err := r.withKey(ctx, f.Bucket, f.Key, func(ctx context.Context) error {
		intended := false
		obj, err := commit(ctx, func(etag string) error {
			if etag == "" || f.ID == "" {
				return nil // unrecognisable later: storage ahead of the record is refused, as before
			}
			p := f
			p.ETag = etag
			v, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if err := r.store.IndexPut(ctx, pendingIndex(f.Bucket), pendingMember(f.Key, f.ID), v); err != nil {
				return fmt.Errorf("file the pending version: %w", err)
			}
			intended = true
			return nil
		})
		if err != nil {
			return err
		}
		f.ETag = obj.ETag
		if out, err = r.Publish(ctx, f); err != nil {
			return err
		}
		if intended { // a leftover names a published version: no reader ever needs it
			_ = r.store.IndexDelete(ctx, pendingIndex(f.Bucket), pendingMember(f.Key, f.ID))
		}
		return nil
	})
	return out, err
}

// Forget drops the pending version id of bkt/key, if any: its session
// ended, so its bytes never reach the key any more.
func (r *Registry) Forget(ctx context.Context, bkt, key, id string) error {
	if id == "" {
		return nil
	}
	return r.store.IndexDelete(ctx, pendingIndex(bkt), pendingMember(key, id))
}

// rollForward is called with the object a read found where f's record
// points, which is another version. It returns the record that describes
// the object: a pending version the object is, which it publishes if the
// key's lock is free (if not, the completion holding it is about to, or
// died and its lease will lapse: the read is served meanwhile), or the
// record published meanwhile. ok is false when the object is no version
// Ferry knows of (changed outside Ferry).
func (r *Registry) rollForward(ctx context.Context, f File, info bucket.ObjectInfo) (out File, ok bool, err error) {
	pending, member, err := r.pendingAs(ctx, f, info)
	if err != nil {
		return File{}, false, err
	}
	wait := readerWait
	if member != "" {
		wait = 0
	}
	err = metastore.WithLock(ctx, r.store, keyLock(f.Bucket, f.Key), metastore.LockOptions{TTL: keyLease, Wait: wait}, func(h metastore.Held) error {
		cur, err := r.indexed(h.Ctx, f.Bucket, f.Key)
		if err != nil {
			return err
		}
		if sameVersion(cur, info) {
			out, ok = cur, true
			return nil
		}
		if member == "" { // filed while we waited for the lock?
			if pending, member, err = r.pendingAs(h.Ctx, f, info); err != nil || member == "" {
				return err
			}
		}
		if out, err = r.Publish(h.Ctx, pending); err != nil {
			return err
		}
		ok = true
		return r.store.IndexDelete(h.Ctx, pendingIndex(f.Bucket), member)
	})
	switch {
	case errors.Is(err, metastore.ErrLocked) && member != "":
		return pending, true, nil
	case errors.Is(err, metastore.ErrLocked):
		return File{}, false, errcode.ErrUnavailable.New("a new version of %s/%s is being published; retry shortly", f.Bucket, f.Key)
	}
	return out, ok, err
}

// pendingAs finds the pending version of f's key that the object info
// describes, and its member; member is "" when there is none.
func (r *Registry) pendingAs(ctx context.Context, f File, info bucket.ObjectInfo) (File, string, error) {
	entries, _, err := r.store.IndexList(ctx, pendingIndex(f.Bucket), metastore.Query{Prefix: f.Key + "#", Limit: 100})
	if err != nil {
		return File{}, "", err
	}
	for _, e := range entries {
		p, err := decodeFile(e)
		if err == nil && sameVersion(p, info) && p.ETag != "" {
			p.ETag = info.ETag
			return p, e.Member, nil
		}
	}
	return File{}, "", nil
}
