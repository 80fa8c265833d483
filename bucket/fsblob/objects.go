package fsblob

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"

	"github.com/ferryhq/ferry/bucket"
)

func etag(fi fs.FileInfo) string {
	return strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 16)
}

func info(key string, fi fs.FileInfo) bucket.ObjectInfo {
	return bucket.ObjectInfo{Key: key, Size: fi.Size(), ETag: etag(fi), LastModified: fi.ModTime()}
}

// syncDir makes a rename or create in dir durable.
func (b *Backend) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFile creates name with exactly size bytes from r, fsynced. It
// returns the MD5 of what it wrote (the multipart ETag). A short r is
// io.ErrUnexpectedEOF, and leaves no file.
func (b *Backend) writeFile(name string, r io.Reader, size int64) ([]byte, error) {
	f, err := b.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	h := md5.New()
	n, err := io.CopyN(io.MultiWriter(f, h), r, size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = b.root.Remove(name)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("body ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return h.Sum(nil), nil
}

// publish renames a finished staging file to key, durably. It does not
// remove staged on failure.
func (b *Backend) publish(staged, key string) (bucket.ObjectInfo, error) {
	for attempt := 1; ; attempt++ {
		p, fi, err := b.objectPath(key, true)
		if err != nil {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: %w", key, conflict(err))
		}
		// An empty directory in the way is a leftover, not other keys.
		if fi != nil && fi.IsDir() && b.root.Remove(p) != nil {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: it is a directory of other keys: %w", key, bucket.ErrKeyConflict)
		}
		err = b.root.Rename(staged, p)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue // a Delete pruned the directory just made
		}
		if err != nil {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: %w", key, conflict(err))
		}
		if err := b.syncDir(path.Dir(p)); err != nil {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: %w", key, err)
		}
		if fi, err = b.root.Lstat(p); err != nil {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: %w", key, err)
		}
		return info(key, fi), nil
	}
}

// Put stages the bytes and renames them into place. It takes at most
// MaxPutSize bytes, like S3's PutObject.
func (b *Backend) Put(_ context.Context, key string, r io.Reader, size int64, _ bucket.PutOptions) (bucket.ObjectInfo, error) {
	if err := b.checkKey(key); err != nil {
		return bucket.ObjectInfo{}, err
	}
	if size < 0 || size > bucket.MaxPutSize {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: put %s: size %d is outside 0..%d, the single-request limit; use a multipart upload", key, size, bucket.MaxPutSize)
	}
	tmp := b.tmp + "/" + randomName()
	if _, err := b.writeFile(tmp, r, size); err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	obj, err := b.publish(tmp, key)
	if err != nil {
		_ = b.root.Remove(tmp)
	}
	return obj, err
}

type section struct {
	io.Reader
	f *os.File
}

func (s section) Close() error { return s.f.Close() }

func (b *Backend) Get(_ context.Context, key string, rng *bucket.Range) (io.ReadCloser, bucket.ObjectInfo, error) {
	f, fi, err := b.openObject(key)
	if notFound(err) {
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: %w", key, bucket.ErrNotFound)
	}
	if err != nil {
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	if rng == nil {
		return f, info(key, fi), nil
	}
	if rng.Offset < 0 || rng.Length == 0 || rng.Offset >= fi.Size() {
		f.Close()
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: range %d+%d of %d bytes: %w", key, rng.Offset, rng.Length, fi.Size(), bucket.ErrInvalidRange)
	}
	n := fi.Size() - rng.Offset
	if rng.Length > 0 {
		n = min(n, rng.Length)
	}
	return section{Reader: io.NewSectionReader(f, rng.Offset, n), f: f}, info(key, fi), nil
}

func (b *Backend) Head(_ context.Context, key string) (bucket.ObjectInfo, error) {
	_, fi, err := b.objectPath(key, false)
	if notFound(err) || err == nil && (fi == nil || !fi.Mode().IsRegular()) {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: head %s: %w", key, bucket.ErrNotFound)
	}
	if err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: head %s: %w", key, err)
	}
	return info(key, fi), nil
}

// Delete removes the object, then the directories it leaves empty, so a
// deleted tree leaves nothing behind.
func (b *Backend) Delete(_ context.Context, key string) error {
	p, fi, err := b.objectPath(key, false)
	if notFound(err) || err == nil && (fi == nil || fi.IsDir()) {
		return nil // missing, or a directory of other keys rather than an object
	}
	if err != nil {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	if err := b.root.Remove(p); err != nil && !notFound(err) {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	if err := b.syncDir(path.Dir(p)); err != nil && !notFound(err) {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	for dir := path.Dir(p); dir != b.objects; dir = path.Dir(dir) {
		if b.root.Remove(dir) != nil { // not empty: another key lives there
			break
		}
	}
	return nil
}
