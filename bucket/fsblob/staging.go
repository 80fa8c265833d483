package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ferryhq/ferry/bucket"
)

func (b *Backend) sessionPath(id string) (string, error) {
	if err := token(id); err != nil {
		return "", err
	}
	return b.sessions + "/" + id, nil
}

// StageWrite writes n bytes at offset into the session's staging file and
// fsyncs before returning.
func (b *Backend) StageWrite(_ context.Context, id string, offset int64, r io.Reader, n int64) error {
	p, err := b.sessionPath(id)
	if err != nil {
		return err
	}
	f, err := b.root.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("fsblob: stage %s: %w", id, err)
	}
	defer f.Close()
	written, err := io.CopyN(io.NewOffsetWriter(f, offset), r, n)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("fsblob: stage %s: body ended after %d of %d bytes: %w", id, written, n, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return fmt.Errorf("fsblob: stage %s: %w", id, err)
	}
	return f.Sync()
}

// StageCommit trims the staging file to size and renames it to key. If the
// staging file is gone but key holds size bytes, an earlier commit finished
// and this one reports it.
func (b *Backend) StageCommit(ctx context.Context, id, key string, size int64, _ bucket.PutOptions) (bucket.ObjectInfo, error) {
	p, err := b.sessionPath(id)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	f, err := b.root.OpenFile(p, os.O_WRONLY, 0)
	if notFound(err) {
		if obj, herr := b.Head(ctx, key); herr == nil && obj.Size == size {
			return obj, nil
		}
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: staging file: %w", id, bucket.ErrNotFound)
	}
	if err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: %w", id, err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: %w", id, err)
	}
	return b.publish(p, key)
}

// StageDiscard removes the staging file.
func (b *Backend) StageDiscard(_ context.Context, id string) error {
	p, err := b.sessionPath(id)
	if err != nil {
		return err
	}
	if err := b.root.Remove(p); err != nil && !notFound(err) {
		return fmt.Errorf("fsblob: discard %s: %w", id, err)
	}
	return nil
}
