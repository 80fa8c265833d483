// Package fsblob is the local-filesystem blob backend of the embedded
// default. Every file operation goes through an os.Root, so no key, '..' or
// symlink can reach outside the backend's directory, and keys are checked
// with bucket.ValidateKey before that.
//
// Layout under the root directory:
//
//	objects/<key>                       the objects; a key's '/' are directories
//	staging/tmp/<random>                Put and CompleteMultipart build here, then rename
//	staging/sessions/<id>               upload-session files written at offsets (Staging)
//	staging/uploads/<upload id>/key     the key a multipart upload will complete to
//	staging/uploads/<upload id>/<n>-<etag>  its part n
//
// Objects and staging share one filesystem, so publishing is a rename:
// readers see the old object or the whole new one, never a partial one.
// Every write is fsynced, and so is the directory it lands in, before the
// call returns. ETags are "<size hex>-<mtime ns hex>". Content types are not
// stored (the file index keeps them). Unlike S3, a key cannot be both an
// object and the directory of another key ("a" and "a/b").
package fsblob

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferryhq/ferry/bucket"
)

const (
	objectsDir  = "objects"
	tmpDir      = "staging/tmp"
	sessionsDir = "staging/sessions"
	uploadsDir  = "staging/uploads"
)

// Backend stores objects under one directory.
type Backend struct {
	dir  string
	root *os.Root
}

var (
	_ bucket.Backend   = (*Backend)(nil)
	_ bucket.Multipart = (*Backend)(nil)
	_ bucket.Staging   = (*Backend)(nil)
	_ bucket.Pinger    = (*Backend)(nil)
)

// New opens (creating if needed) a backend rooted at dir.
func New(dir string) (*Backend, error) {
	for _, d := range []string{objectsDir, tmpDir, sessionsDir, uploadsDir} {
		if err := os.MkdirAll(path.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("fsblob: %w", err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	return &Backend{dir: dir, root: root}, nil
}

// Close releases the root directory.
func (b *Backend) Close() error { return b.root.Close() }

func objectPath(key string) (string, error) {
	if err := bucket.ValidateKey(key); err != nil {
		return "", fmt.Errorf("%w: %v", bucket.ErrInvalidKey, err)
	}
	return objectsDir + "/" + key, nil
}

// token accepts the ids the backend itself mints (hex), nothing path-like.
func token(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: bad id %q", bucket.ErrInvalidKey, id)
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: bad id %q", bucket.ErrInvalidKey, id)
		}
	}
	return nil
}

func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// notFound maps a missing file, or a path through a non-directory, to ErrNotFound.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func etag(fi fs.FileInfo) string {
	return strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 16)
}

func info(key string, fi fs.FileInfo) bucket.ObjectInfo {
	return bucket.ObjectInfo{Key: key, Size: fi.Size(), ETag: etag(fi), LastModified: fi.ModTime()}
}

// conflict recognises a file where a directory must go, or the reverse.
func conflict(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("%w (%v)", bucket.ErrKeyConflict, err)
	}
	return err
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
// returns the MD5 of what it wrote (the multipart ETag).
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

// publish renames a finished staging file to key, durably.
func (b *Backend) publish(staged, key string) (bucket.ObjectInfo, error) {
	p, err := objectPath(key)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	if err := b.root.MkdirAll(path.Dir(p), 0o755); err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: make directories for %s: %w", key, conflict(err))
	}
	if fi, err := b.root.Lstat(p); err == nil && fi.IsDir() {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: it is a directory of other keys: %w", key, bucket.ErrKeyConflict)
	}
	if err := b.root.Rename(staged, p); err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: publish %s: %w", key, conflict(err))
	}
	if err := b.syncDir(path.Dir(p)); err != nil {
		return bucket.ObjectInfo{}, err
	}
	fi, err := b.root.Stat(p)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	return info(key, fi), nil
}

func (b *Backend) Put(_ context.Context, key string, r io.Reader, size int64, _ bucket.PutOptions) (bucket.ObjectInfo, error) {
	if _, err := objectPath(key); err != nil {
		return bucket.ObjectInfo{}, err
	}
	tmp := tmpDir + "/" + randomName()
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
	p, err := objectPath(key)
	if err != nil {
		return nil, bucket.ObjectInfo{}, err
	}
	f, err := b.root.Open(p)
	if notFound(err) {
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: %w", key, bucket.ErrNotFound)
	}
	if err != nil {
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		f.Close()
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: %w", key, bucket.ErrNotFound)
	}
	if rng == nil {
		return f, info(key, fi), nil
	}
	if rng.Offset >= fi.Size() || rng.Offset < 0 || rng.Length == 0 {
		f.Close()
		return nil, bucket.ObjectInfo{}, fmt.Errorf("fsblob: get %s: %w", key, bucket.ErrInvalidRange)
	}
	n := fi.Size() - rng.Offset
	if rng.Length > 0 {
		n = min(n, rng.Length)
	}
	return section{Reader: io.NewSectionReader(f, rng.Offset, n), f: f}, info(key, fi), nil
}

func (b *Backend) Head(_ context.Context, key string) (bucket.ObjectInfo, error) {
	p, err := objectPath(key)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	fi, err := b.root.Stat(p)
	if notFound(err) || err == nil && fi.IsDir() {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: head %s: %w", key, bucket.ErrNotFound)
	}
	if err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: head %s: %w", key, err)
	}
	return info(key, fi), nil
}

func (b *Backend) Delete(_ context.Context, key string) error {
	p, err := objectPath(key)
	if err != nil {
		return err
	}
	if fi, err := b.root.Lstat(p); err == nil && fi.IsDir() {
		return nil // a directory of other keys, not an object
	}
	if err := b.root.Remove(p); err != nil && !notFound(err) {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	// Empty parents go too, so deleted trees leave no directories behind.
	for dir := path.Dir(p); dir != objectsDir; dir = path.Dir(dir) {
		if b.root.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List walks objects/ in the byte order of whole keys: a directory d sorts
// as "d/", which is where its keys fall among its siblings.
func (b *Backend) List(_ context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []bucket.ObjectInfo
	more := false
	var walk func(dir, keyPrefix string) error
	walk = func(dir, keyPrefix string) error {
		f, err := b.root.Open(dir)
		if err != nil {
			return err
		}
		entries, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return err
		}
		sortKey := func(e fs.DirEntry) string {
			if e.IsDir() {
				return e.Name() + "/"
			}
			return e.Name()
		}
		sort.Slice(entries, func(i, j int) bool { return sortKey(entries[i]) < sortKey(entries[j]) })
		for _, e := range entries {
			if more {
				return nil
			}
			key := keyPrefix + e.Name()
			if e.IsDir() {
				sub := key + "/"
				// Skip subtrees that cannot hold a match.
				if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
					continue
				}
				if after >= sub && !strings.HasPrefix(after, sub) {
					continue
				}
				if err := walk(dir+"/"+e.Name(), sub); err != nil {
					return err
				}
				continue
			}
			if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) || key <= after {
				continue
			}
			if len(out) == limit {
				more = true
				return nil
			}
			fi, err := e.Info()
			if err != nil {
				continue // deleted while we listed
			}
			out = append(out, info(key, fi))
		}
		return nil
	}
	if err := walk(objectsDir, ""); err != nil {
		return nil, false, fmt.Errorf("fsblob: list %s: %w", prefix, err)
	}
	return out, more, nil
}

// Ping checks the directory is still there.
func (b *Backend) Ping(context.Context) error {
	_, err := b.root.Stat(objectsDir)
	return err
}
