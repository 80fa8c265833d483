package fsblob

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/ferryhq/ferry/bucket"
)

// checkKey applies bucket.ValidateKey, which also keeps keys out of
// staging: no key has a StagingDir segment.
func (b *Backend) checkKey(key string) error {
	if err := bucket.ValidateKey(key); err != nil {
		return invalidKey(key, err)
	}
	return nil
}

func invalidKey(key string, err error) error {
	return fmt.Errorf("%w: %v", bucket.ErrInvalidKey, err)
}

func isSymlink(fi fs.FileInfo) bool { return fi.Mode()&fs.ModeSymlink != 0 }

// objectPath checks key and returns its path under the root and the Lstat
// of that path (nil when nothing is there). A missing directory on the way
// is fs.ErrNotExist and a file in the way syscall.ENOTDIR, unless mkdir,
// which creates the missing ones durably. A symlink anywhere is
// ErrInvalidKey. One swapped in after this check is still confined to the
// root by os.Root; openObject closes that gap for reads.
func (b *Backend) objectPath(key string, mkdir bool) (string, fs.FileInfo, error) {
	if err := b.checkKey(key); err != nil {
		return "", nil, err
	}
	segs := strings.Split(key, "/")
	dir := b.objects
	for _, seg := range segs[:len(segs)-1] {
		parent := dir
		dir = path.Join(dir, seg)
		fi, err := b.root.Lstat(dir)
		if mkdir && errors.Is(err, fs.ErrNotExist) {
			if err := b.root.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", nil, err
			}
			if err := b.syncDir(parent); err != nil {
				return "", nil, err
			}
			fi, err = b.root.Lstat(dir)
		}
		switch {
		case err != nil:
			return "", nil, err
		case isSymlink(fi):
			return "", nil, invalidKey(key, fmt.Errorf("key %q: %s is a symbolic link", key, dir))
		case !fi.IsDir():
			return "", nil, &fs.PathError{Op: "lstat", Path: dir, Err: syscall.ENOTDIR}
		}
	}
	p := path.Join(dir, segs[len(segs)-1])
	fi, err := b.root.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p, nil, nil
	case err != nil:
		return "", nil, err
	case isSymlink(fi):
		return "", nil, invalidKey(key, fmt.Errorf("key %q is a symbolic link", key))
	}
	return p, fi, nil
}

// openObject opens key's regular file. The file opened must be the one
// objectPath looked at, so a symlink swapped in between is not followed;
// a concurrent overwrite (a rename) just means another look.
func (b *Backend) openObject(key string) (*os.File, fs.FileInfo, error) {
	for range 3 {
		p, fi, err := b.objectPath(key, false)
		if err != nil {
			return nil, nil, err
		}
		if fi == nil || !fi.Mode().IsRegular() {
			return nil, nil, fs.ErrNotExist
		}
		f, err := b.root.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		st, err := f.Stat()
		if err == nil && os.SameFile(fi, st) {
			return f, st, nil
		}
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("%s kept changing while being opened", key)
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

// conflict recognises a file where a directory must go, or the reverse.
func conflict(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("%w (%v)", bucket.ErrKeyConflict, err)
	}
	return err
}
