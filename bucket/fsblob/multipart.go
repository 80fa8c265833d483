package fsblob

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/bucket"
)

func uploadDir(id string) (string, error) {
	if err := token(id); err != nil {
		return "", err
	}
	return uploadsDir + "/" + id, nil
}

func (b *Backend) CreateMultipart(_ context.Context, key string, _ bucket.PutOptions) (string, error) {
	if _, err := objectPath(key); err != nil {
		return "", err
	}
	id := randomName()
	dir := uploadsDir + "/" + id
	if err := b.root.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("fsblob: create multipart %s: %w", key, err)
	}
	if _, err := b.writeFile(dir+"/key", strings.NewReader(key), int64(len(key))); err != nil {
		_ = b.root.RemoveAll(dir)
		return "", fmt.Errorf("fsblob: create multipart %s: %w", key, err)
	}
	return id, nil
}

// parts lists the upload's part files by number.
func (b *Backend) parts(dir string) (map[int]string, error) {
	f, err := b.root.Open(dir)
	if notFound(err) {
		return nil, fmt.Errorf("fsblob: upload %s: %w", dir, bucket.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, name := range names {
		num, _, ok := strings.Cut(name, "-")
		if n, err := strconv.Atoi(num); ok && err == nil {
			out[n] = name
		}
	}
	return out, nil
}

// UploadPart writes part n as "<n>-<md5>"; a re-upload of n replaces it.
func (b *Backend) UploadPart(_ context.Context, key, uploadID string, n int, r io.Reader, size int64) (bucket.Part, error) {
	dir, err := uploadDir(uploadID)
	if err != nil {
		return bucket.Part{}, err
	}
	if n < 1 || n > bucket.MaxParts {
		return bucket.Part{}, fmt.Errorf("fsblob: part number %d is outside 1..%d", n, bucket.MaxParts)
	}
	if size > bucket.MaxPartSize {
		return bucket.Part{}, fmt.Errorf("fsblob: part of %d bytes exceeds %d", size, bucket.MaxPartSize)
	}
	old, err := b.parts(dir)
	if err != nil {
		return bucket.Part{}, err
	}
	tmp := dir + "/tmp-" + randomName()
	sum, err := b.writeFile(tmp, r, size)
	if err != nil {
		return bucket.Part{}, fmt.Errorf("fsblob: upload part %d of %s: %w", n, key, err)
	}
	tag := hex.EncodeToString(sum)
	name := strconv.Itoa(n) + "-" + tag
	if err := b.root.Rename(tmp, dir+"/"+name); err != nil {
		_ = b.root.Remove(tmp)
		return bucket.Part{}, err
	}
	if prev, ok := old[n]; ok && prev != name {
		_ = b.root.Remove(dir + "/" + prev)
	}
	return bucket.Part{Number: n, ETag: tag, Size: size}, b.syncDir(dir)
}

// CompleteMultipart checks the listed parts like S3 does (ascending, each
// present with its ETag, all but the last at least MinPartSize), joins them
// and publishes the result.
func (b *Backend) CompleteMultipart(_ context.Context, key, uploadID string, parts []bucket.Part) (bucket.ObjectInfo, error) {
	dir, err := uploadDir(uploadID)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	have, err := b.parts(dir)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: no parts", key)
	}
	tmp := tmpDir + "/" + randomName()
	out, err := b.root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	fail := func(err error) (bucket.ObjectInfo, error) {
		out.Close()
		_ = b.root.Remove(tmp)
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: complete %s: %w", key, err)
	}
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return fail(fmt.Errorf("parts must be in ascending order (part %d after %d)", p.Number, parts[i-1].Number))
		}
		name := strconv.Itoa(p.Number) + "-" + strings.Trim(p.ETag, `"`)
		if have[p.Number] != name {
			return fail(fmt.Errorf("part %d with ETag %s was not uploaded", p.Number, p.ETag))
		}
		f, err := b.root.Open(dir + "/" + name)
		if err != nil {
			return fail(err)
		}
		n, err := io.Copy(out, f)
		f.Close()
		if err != nil {
			return fail(err)
		}
		if i < len(parts)-1 && n < bucket.MinPartSize {
			return fail(fmt.Errorf("part %d is %d bytes; every part but the last must be at least %d", p.Number, n, bucket.MinPartSize))
		}
	}
	if err := out.Sync(); err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		return fail(err)
	}
	obj, err := b.publish(tmp, key)
	if err != nil {
		_ = b.root.Remove(tmp)
		return bucket.ObjectInfo{}, err
	}
	_ = b.root.RemoveAll(dir)
	return obj, nil
}

func (b *Backend) AbortMultipart(_ context.Context, _, uploadID string) error {
	dir, err := uploadDir(uploadID)
	if err != nil {
		return err
	}
	if err := b.root.RemoveAll(dir); err != nil && !notFound(err) {
		return fmt.Errorf("fsblob: abort %s: %w", uploadID, err)
	}
	return nil
}

func (b *Backend) ListMultipart(_ context.Context, prefix string) ([]bucket.Upload, error) {
	f, err := b.root.Open(uploadsDir)
	if err != nil {
		return nil, err
	}
	ids, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	var out []bucket.Upload
	for _, id := range ids {
		key, err := b.root.ReadFile(uploadsDir + "/" + id + "/key")
		if err != nil {
			continue // created or aborted while we looked
		}
		if strings.HasPrefix(string(key), prefix) {
			out = append(out, bucket.Upload{Key: string(key), UploadID: id})
		}
	}
	return out, nil
}
