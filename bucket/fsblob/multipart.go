package fsblob

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/bucket"
)

// upload returns the directory of uploadID after checking it exists and
// belongs to key. Like S3, an id that is malformed, unknown, or another
// key's is ErrNotFound.
func (b *Backend) upload(key, uploadID string) (string, error) {
	if err := b.checkKey(key); err != nil {
		return "", err
	}
	if token(uploadID) != nil {
		return "", fmt.Errorf("fsblob: upload %q: %w", uploadID, bucket.ErrNotFound)
	}
	dir := b.uploads + "/" + uploadID
	owner, err := b.root.ReadFile(dir + "/key")
	if notFound(err) || err == nil && string(owner) != key {
		return "", fmt.Errorf("fsblob: upload %s of %s: %w", uploadID, key, bucket.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("fsblob: upload %s: %w", uploadID, err)
	}
	return dir, nil
}

func partName(n int, etag string) string {
	return strconv.Itoa(n) + "-" + strings.Trim(etag, `"`)
}

func (b *Backend) CreateMultipart(_ context.Context, key string, _ bucket.PutOptions) (string, error) {
	if err := b.checkKey(key); err != nil {
		return "", err
	}
	// Built aside and renamed in, so ListMultipart never sees it half made.
	id := randomName()
	tmp, dir := b.tmp+"/"+id, b.uploads+"/"+id
	err := b.root.Mkdir(tmp, 0o755)
	if err == nil {
		_, err = b.writeFile(tmp+"/key", strings.NewReader(key), int64(len(key)))
	}
	if err == nil {
		err = b.syncDir(tmp)
	}
	if err == nil {
		err = b.root.Rename(tmp, dir)
	}
	if err == nil {
		err = b.syncDir(b.uploads)
	}
	if err != nil {
		_ = b.root.RemoveAll(tmp)
		_ = b.root.RemoveAll(dir)
		return "", fmt.Errorf("fsblob: create multipart %s: %w", key, err)
	}
	return id, nil
}

// UploadPart writes part n as "<n>-<md5>"; a re-upload of n replaces it.
func (b *Backend) UploadPart(_ context.Context, key, uploadID string, n int, r io.Reader, size int64, _ *bucket.Checksum) (bucket.Part, error) {
	if n < 1 || n > bucket.MaxParts {
		return bucket.Part{}, fmt.Errorf("fsblob: upload part %s: part number %d is outside 1..%d", key, n, bucket.MaxParts)
	}
	if size < 0 || size > bucket.MaxPartSize {
		return bucket.Part{}, fmt.Errorf("fsblob: upload part %s: size %d is outside 0..%d", key, size, bucket.MaxPartSize)
	}
	dir, err := b.upload(key, uploadID)
	if err != nil {
		return bucket.Part{}, err
	}
	tmp := dir + "/tmp-" + randomName()
	sum, err := b.writeFile(tmp, r, size)
	if errors.Is(err, fs.ErrNotExist) {
		err = bucket.ErrNotFound // aborted meanwhile
	}
	if err != nil {
		return bucket.Part{}, fmt.Errorf("fsblob: upload part %d of %s: %w", n, key, err)
	}
	tag := hex.EncodeToString(sum)
	name := partName(n, tag)
	if err := b.root.Rename(tmp, dir+"/"+name); err != nil {
		_ = b.root.Remove(tmp)
		return bucket.Part{}, fmt.Errorf("fsblob: upload part %d of %s: %w", n, key, err)
	}
	// Drop the part this one replaces. A concurrent upload of the same
	// number may leave a second file; Complete picks by ETag, so it is only
	// garbage until the upload ends.
	if names, err := b.readNames(dir); err == nil {
		for _, other := range names {
			if num, _, ok := strings.Cut(other, "-"); ok && num == strconv.Itoa(n) && other != name {
				_ = b.root.Remove(dir + "/" + other)
			}
		}
	}
	if err := b.syncDir(dir); err != nil {
		return bucket.Part{}, fmt.Errorf("fsblob: upload part %d of %s: %w", n, key, err)
	}
	return bucket.Part{Number: n, ETag: tag, Size: size}, nil
}

func (b *Backend) readNames(dir string) ([]string, error) {
	f, err := b.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// CompleteMultipart checks the listed parts like S3 does (ascending, each
// uploaded with that ETag, all but the last at least MinPartSize) and, being
// local and cheap, that each Size is right; then joins them and publishes
// the result. The upload's files go only once the object is in place, so a
// crash in between leaves an upload that completes again.
func (b *Backend) CompleteMultipart(_ context.Context, key, uploadID string, parts []bucket.Part) (bucket.ObjectInfo, error) {
	dir, err := b.upload(key, uploadID)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: no parts", key)
	}
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: parts must be in ascending order (part %d after %d)", key, p.Number, parts[i-1].Number)
		}
		fi, err := b.root.Lstat(dir + "/" + partName(p.Number, p.ETag))
		if notFound(err) || err == nil && !fi.Mode().IsRegular() {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: part %d with ETag %s was not uploaded", key, p.Number, p.ETag)
		}
		if err != nil {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: %w", key, err)
		}
		if fi.Size() != p.Size {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: part %d is %d bytes, not %d", key, p.Number, fi.Size(), p.Size)
		}
		if i < len(parts)-1 && fi.Size() < bucket.MinPartSize {
			return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: part %d is %d bytes; every part but the last must be at least %d", key, p.Number, fi.Size(), bucket.MinPartSize)
		}
	}
	tmp := b.tmp + "/" + randomName()
	if err := b.concat(tmp, dir, parts); err != nil {
		_ = b.root.Remove(tmp)
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: %w", key, err)
	}
	obj, err := b.publish(tmp, key)
	if err != nil {
		_ = b.root.Remove(tmp)
		return bucket.ObjectInfo{}, err
	}
	_ = b.root.RemoveAll(dir)
	return obj, nil
}

// concat writes the parts, in order, to a new fsynced file tmp.
func (b *Backend) concat(tmp, dir string, parts []bucket.Part) error {
	out, err := b.root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for _, p := range parts {
		var f *os.File
		if f, err = b.root.Open(dir + "/" + partName(p.Number, p.ETag)); err != nil {
			break
		}
		_, err = io.Copy(out, f)
		f.Close()
		if err != nil {
			break
		}
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// AbortMultipart removes the upload's directory. As on S3, an upload that
// is unknown, malformed or another key's is left alone and not an error.
func (b *Backend) AbortMultipart(_ context.Context, key, uploadID string) error {
	dir, err := b.upload(key, uploadID)
	if errors.Is(err, bucket.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := b.root.RemoveAll(dir); err != nil && !notFound(err) {
		return fmt.Errorf("fsblob: abort %s: %w", uploadID, err)
	}
	return nil
}

// ListMultipart lists uploads in the order S3 does: by key, then (here) by id.
func (b *Backend) ListMultipart(_ context.Context, prefix string) ([]bucket.Upload, error) {
	ids, err := b.readNames(b.uploads)
	if err != nil {
		return nil, fmt.Errorf("fsblob: list multipart: %w", err)
	}
	var out []bucket.Upload
	for _, id := range ids {
		if token(id) != nil {
			continue
		}
		key, err := b.root.ReadFile(b.uploads + "/" + id + "/key")
		if err != nil {
			continue // created or aborted while we looked
		}
		if strings.HasPrefix(string(key), prefix) {
			u := bucket.Upload{Key: string(key), UploadID: id}
			if fi, err := b.root.Stat(b.uploads + "/" + id + "/key"); err == nil {
				u.Initiated = fi.ModTime() // the key file is written once, at creation
			}
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(x, y bucket.Upload) int {
		if c := strings.Compare(x.Key, y.Key); c != 0 {
			return c
		}
		return strings.Compare(x.UploadID, y.UploadID)
	})
	return out, nil
}
