package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// A completion puts the new version's bytes at the file's key and then
// publishes its record: two steps, so a process that dies between them
// leaves storage one version ahead of the record. Replace closes that
// window. Under the key's lock, before storage commits, it files the new
// version as pending, naming the ETag the commit will give it; a reader
// that finds storage ahead of the record takes the same lock and, when the
// object is a pending version, publishes it (rollForward). So the key reads
// as the old version or the new one at every moment, and is refused only
// while a live holder of the lock commits, or for at most a lease after a
// holder died.

const (
	// keyLease is the key lock's lease: how long a dead completion keeps
	// its key's readers waiting at most.
	keyLease = metastore.RequestLease
	// completionWait is how long a completion waits for another one of
	// the same key (a large CompleteMultipartUpload takes a while).
	completionWait = 3 * keyLease
	// readerWait is how long a reader that found storage ahead of the
	// record waits for the completion at work to publish.
	readerWait = 2 * time.Second
)

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
	err := metastore.WithLock(ctx, r.store, keyLock(f.Bucket, f.Key), metastore.LockOptions{TTL: keyLease, Wait: completionWait}, func(h metastore.Held) error {
		intended := false
		obj, err := commit(h.Ctx, func(etag string) error {
			if etag == "" || f.ID == "" {
				return nil // unrecognisable later: storage ahead of the record is refused, as before
			}
			p := f
			p.ETag = etag
			v, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if err := r.store.IndexPut(h.Ctx, pendingIndex(f.Bucket), pendingMember(f.Key, f.ID), v); err != nil {
				return fmt.Errorf("file the pending version: %w", err)
			}
			intended = true
			return nil
		})
		if err != nil {
			return err
		}
		f.ETag = obj.ETag
		if out, err = r.Publish(h.Ctx, f); err != nil {
			return err
		}
		if intended { // a leftover names a published version: no reader ever needs it
			_ = r.store.IndexDelete(h.Ctx, pendingIndex(f.Bucket), pendingMember(f.Key, f.ID))
		}
		return nil
	})
	if errors.Is(err, metastore.ErrLocked) {
		return File{}, errcode.ErrUnavailable.New("another upload of %s/%s is completing and has not finished in %s; retry", f.Bucket, f.Key, completionWait)
	}
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
// points, which is another version. Under the key's lock it returns the
// record that describes the object: the one published meanwhile, or the
// pending version the object is, which it publishes. ok is false when the
// object is no version Ferry knows of (changed outside Ferry).
func (r *Registry) rollForward(ctx context.Context, f File, info bucket.ObjectInfo) (out File, ok bool, err error) {
	err = metastore.WithLock(ctx, r.store, keyLock(f.Bucket, f.Key), metastore.LockOptions{TTL: keyLease, Wait: readerWait}, func(h metastore.Held) error {
		cur, err := r.indexed(h.Ctx, f.Bucket, f.Key)
		if err != nil {
			return err
		}
		if sameVersion(cur, info) {
			out, ok = cur, true
			return nil
		}
		entries, _, err := r.store.IndexList(h.Ctx, pendingIndex(f.Bucket), metastore.Query{Prefix: f.Key + "#", Limit: 100})
		if err != nil {
			return err
		}
		for _, e := range entries {
			p, err := decodeFile(e)
			if err != nil || p.Bytes != info.Size || strings.Trim(p.ETag, `"`) != strings.Trim(info.ETag, `"`) {
				continue
			}
			p.ETag = info.ETag
			if out, err = r.Publish(h.Ctx, p); err != nil {
				return err
			}
			ok = true
			return r.store.IndexDelete(h.Ctx, pendingIndex(f.Bucket), e.Member)
		}
		return nil
	})
	if errors.Is(err, metastore.ErrLocked) {
		return File{}, false, errcode.ErrUnavailable.New("a new version of %s/%s is being published; retry shortly", f.Bucket, f.Key)
	}
	return out, ok, err
}
