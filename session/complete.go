package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
)

// finish publishes a session whose bytes are all in.
func (s *Service) finish(ctx context.Context, rec *record, ver, fence int64) (registry.File, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return registry.File{}, err
	}
	if err := rec.checkExpected(); err != nil {
		return registry.File{}, err
	}
	f := registry.File{Bucket: rec.Bucket, Key: rec.Key, MimeType: rec.MimeType, Bytes: rec.Size,
		CreatedAt: s.now().UTC(), Attrs: rec.Attrs, ID: rec.FileID, Checksums: rec.checksums()}
	commit := func(ctx context.Context, intend func(string) error) (bucket.ObjectInfo, error) {
		obj, err := eng.complete(ctx, rec, intend)
		if err != nil {
			return obj, fmt.Errorf("complete upload: %w", storageErr(rec, err))
		}
		return obj, nil
	}
	if rec.Partial { // a piece waits for Concat, unpublished
		obj, err := commit(ctx, func(string) error { return nil })
		if err != nil {
			return registry.File{}, err
		}
		f.ETag = obj.ETag
	} else if f, err = s.files.Replace(ctx, f, commit); err != nil {
		return registry.File{}, err
	} else if rec.SHA256Late && rec.SHA256State == nil {
		f = s.readBack(ctx, f)
	}
	rec.State, rec.ETag, rec.Parts = stateCompleted, f.ETag, nil
	if _, err := s.save(ctx, rec, ver, fence); err != nil {
		return registry.File{}, err
	}
	s.m.completed.WithLabelValues(protocolLabel(rec.Protocol)).Inc()
	if err := eng.release(ctx, rec); err != nil { // best effort: the purger releases it again
		s.log.WarnContext(ctx, "release_failed", "session", rec.ID, "err", err)
	}
	s.log.InfoContext(ctx, "upload_completed", "session", rec.ID, "bytes", rec.Size,
		"duration", s.now().Sub(rec.CreatedAt).Round(time.Millisecond),
		"mib_per_s", float64(rec.Size)/(1<<20)/max(s.now().Sub(rec.CreatedAt).Seconds(), 1e-6))
	return f, nil
}

// readBack records the SHA-256 of a file that came in parts to a bucket
// whose setting asks for one, by reading it back from storage once; see
// record.outOfOrder. The file is published already: if this fails, it
// stays without one (POST …:checksums computes it later).
func (s *Service) readBack(ctx context.Context, f registry.File) registry.File {
	start := s.now()
	got, err := s.files.Checksum(ctx, f.Bucket, f.Key)
	if err != nil || got.ID != f.ID {
		s.log.WarnContext(ctx, "sha256_read_back_failed", "bucket", f.Bucket, "key", f.Key, "err", err)
		return f
	}
	s.log.InfoContext(ctx, "sha256_read_back", "bucket", f.Bucket, "key", f.Key, "bytes", f.Bytes,
		"duration", s.now().Sub(start).Round(time.Millisecond))
	return got
}

// Seal fixes an open session's size at the bytes received so far, adds
// attrs, and completes it.
func (s *Service) Seal(ctx context.Context, id string, attrs map[string]string) (registry.File, error) {
	var file registry.File
	err := s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if !rec.Open {
			return errcode.ErrConflict.New("session %s has a fixed size; it completes with its last byte", id)
		}
		rec.Size, rec.Open = rec.Offset, false
		for k, v := range attrs {
			if rec.Attrs == nil {
				rec.Attrs = map[string]string{}
			}
			rec.Attrs[k] = v
		}
		file, err = s.finishSized(ctx, rec, ver, fence)
		return err
	})
	return file, err
}

// finishSized completes a session whose size was just fixed at its offset:
// the held-back remainder becomes the last part (or the one Put).
func (s *Service) finishSized(ctx context.Context, rec *record, ver, fence int64) (registry.File, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return registry.File{}, err
	}
	if err := eng.write(ctx, rec, fence, bytes.NewReader(nil), 0, nil); err != nil {
		return registry.File{}, storageErr(rec, err)
	}
	if ver, err = s.save(ctx, rec, ver, fence); err != nil {
		return registry.File{}, err
	}
	return s.finish(ctx, rec, ver, fence)
}

// Declare fixes an open session's size at size, which must be at least
// its offset and at most its bound (tus's deferred Upload-Length). From then
// on it is an ordinary session: the append that brings its last byte
// completes it, and if that byte is already in, Declare completes it now
// and returns the file.
func (s *Service) Declare(ctx context.Context, id string, size int64) (Info, *registry.File, error) {
	var (
		out  Info
		file *registry.File
	)
	err := s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case !rec.Open:
			return errcode.ErrConflict.New("session %s already has its size (%d bytes)", id, rec.Size)
		case size < rec.Offset:
			return ErrInvalidSize.New("size %d is below the %d bytes session %s already holds", size, rec.Offset, id).With("offset", rec.Offset)
		case size > rec.Size:
			return ErrTooLarge.New("size %d exceeds the %d bytes this session can take", size, rec.Size).With("max_size", rec.Size)
		}
		rec.Size, rec.Open = size, false
		if rec.Offset < rec.Size {
			if _, err := s.save(ctx, rec, ver, fence); err != nil {
				return err
			}
			out = rec.info()
			return nil
		}
		f, err := s.finishSized(ctx, rec, ver, fence)
		if err != nil {
			return err
		}
		out, file = rec.info(), &f
		return nil
	})
	return out, file, err
}

// storageErr explains a storage refusal that the client can act on.
func storageErr(rec *record, err error) error {
	switch {
	case errors.Is(err, bucket.ErrKeyConflict):
		return ErrKeyConflict.Wrap(err, "%s/%s cannot be stored: this storage cannot hold a key that is both a file and "+
			"a directory of other keys (like \"a\" and \"a/b\"); delete the other key and resend, or abort the session", rec.Bucket, rec.Key)
	case errors.Is(err, bucket.ErrNotFound):
		return ErrStorageLost.Wrap(err, "the bytes session %s had stored are gone from storage (its upload or staging file was removed); "+
			"abort it and upload %s/%s again in a new session", rec.ID, rec.Bucket, rec.Key)
	}
	return err
}
