// Package fsblob is the local-filesystem blob backend of the embedded
// default.
//
// Layout under the root directory (New creates the directories):
//
//	objects/<key>                             an object; each '/' of its key is a directory
//	staging/tmp/<random>                      Put, CompleteMultipart and CreateMultipart build here, then rename
//	staging/sessions/<id>                     upload-session files written at offsets (bucket.Staging)
//	staging/sessions/<id>.commit              a commit receipt: the key and identity StageCommit published <id> as
//	staging/uploads/<upload id>/key           the key a multipart upload completes to
//	staging/uploads/<upload id>/<n>-<etag>    its part n; the ETag is the hex MD5 of the part
//	staging/uploads/<upload id>/tmp-<random>  a part being written
//
// Objects live in their own subtree, so no key can name a staging file and
// List never sees one. NewDir serves a directory as it is and stages in its
// .ferry-staging subdirectory; no key may have a segment of that name (in
// any case), so that one is out of reach too, as is the staging directory
// of any directory served from inside this one. Upload and session ids are
// lowercase hex minted here; anything else is refused before it reaches a
// path.
//
// Confinement: every file operation goes through an os.Root, so nothing
// outside the root directory is reachable whatever a path holds. Keys pass
// bucket.ValidateKey, and the directories on a key's path are checked with
// Lstat: os.Root follows a symlink that stays inside the root (objects/x ->
// ../staging), so any symlink on a key's path is refused with ErrInvalidKey
// rather than followed, for reading and writing alike.
//
// Durability: bytes go to a staging file, which is fsynced and renamed into
// place; the directory it lands in, and any directory created for it, is
// fsynced before the call returns. Objects and staging share a filesystem,
// so a reader sees the old object or the whole new one, never part of one.
//
// Attributes: the ETag is "<size hex>-<mtime ns hex>", cheap and stable while
// the file is unchanged. Content types are not stored (ContentType is always
// empty; the file index keeps them). Unlike S3, a key cannot be both an
// object and the directory of other keys ("a" and "a/b"): ErrKeyConflict.
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/bucket"
)

// The layout New creates; NewDir keeps objects in the directory itself and
// staging under StagingDir.
const (
	objectsDir  = "objects"
	tmpDir      = "staging/tmp"
	sessionsDir = "staging/sessions"
	uploadsDir  = "staging/uploads"

	// StagingDir is where a NewDir backend stages writes, inside the
	// directory it serves. No key can have it as a segment, in any letter
	// case (bucket.ValidateKey), so neither this directory's staging nor
	// that of a directory served from inside it can be named; List skips it
	// at every level.
	StagingDir = bucket.StagingSegment

	// staleTmp is how long an untouched staging/tmp file must sit before New
	// takes it for the leftover of a crash. Writers touch theirs constantly.
	staleTmp = 24 * time.Hour
)

// Backend stores objects under one directory.
type Backend struct {
	root                            *os.Root
	objects, tmp, sessions, uploads string // paths under root
}

var (
	_ bucket.Backend   = (*Backend)(nil)
	_ bucket.Multipart = (*Backend)(nil)
	_ bucket.Staging   = (*Backend)(nil)
	_ bucket.Pinger    = (*Backend)(nil)
)

// New opens (creating if needed) a backend rooted at dir, and clears
// staging files a crash left behind.
func New(dir string) (*Backend, error) {
	b := &Backend{objects: objectsDir, tmp: tmpDir, sessions: sessionsDir, uploads: uploadsDir}
	for _, d := range []string{b.objects, b.tmp, b.sessions, b.uploads} {
		if err := os.MkdirAll(path.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("fsblob: %w", err)
		}
	}
	return b.open(dir)
}

// NewDir serves an existing directory as it is: the key "a/b" is the file
// dir/a/b. Writes are staged in dir/.ferry-staging, on the same filesystem
// so that publishing stays one rename. A read-only directory still serves
// reads; writes then fail.
func NewDir(dir string) (*Backend, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fsblob: %s is not a directory", dir)
	}
	b := &Backend{objects: ".", tmp: StagingDir + "/tmp", sessions: StagingDir + "/sessions",
		uploads: StagingDir + "/uploads"}
	for _, d := range []string{b.tmp, b.sessions, b.uploads} {
		_ = os.MkdirAll(path.Join(dir, d), 0o755) // best effort: the directory may be read-only
	}
	return b.open(dir)
}

func (b *Backend) open(dir string) (*Backend, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	b.root = root
	b.sweepTmp(time.Now().Add(-staleTmp))
	b.sweepReceipts(time.Now().Add(-staleReceipt))
	return b, nil
}

// checkKey applies bucket.ValidateKey, which also keeps keys out of
// staging: no key has a StagingDir segment.
func (b *Backend) checkKey(key string) error {
	if err := bucket.ValidateKey(key); err != nil {
		return invalidKey(key, err)
	}
	return nil
}

// Close releases the root directory.
func (b *Backend) Close() error { return b.root.Close() }

func (b *Backend) sweepTmp(before time.Time) {
	f, err := b.root.Open(b.tmp)
	if err != nil {
		return
	}
	entries, _ := f.ReadDir(-1)
	f.Close()
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
			_ = b.root.RemoveAll(b.tmp + "/" + e.Name())
		}
	}
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

func etag(fi fs.FileInfo) string {
	return strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 16)
}

func info(key string, fi fs.FileInfo) bucket.ObjectInfo {
	return bucket.ObjectInfo{Key: key, Size: fi.Size(), ETag: etag(fi), LastModified: fi.ModTime()}
}

// conflict recognises a file where a directory must go, or the reverse.
func conflict(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) {
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

// List walks the objects in the byte order of whole keys, as S3 lists: a
// directory d sorts among its siblings as "d/", which is where its keys
// fall ("a-b" < "a.b" < "a/..." < "a0"). It reads only the directories that
// can hold keys after `after` under prefix, and stops at limit+1 keys.
// Symlinks, other non-regular files and names no key could have (put there
// by hand) are not objects and are skipped.
//
// Memory stays O(limit) however large a directory is: directories are read
// in batches, keeping only the smallest names still needed.
func (b *Backend) List(_ context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	if limit <= 0 {
		limit = 1000
	}
	l := &lister{b: b, prefix: prefix, after: after, limit: limit}
	if err := l.walk(b.objects, ""); err != nil {
		return nil, false, fmt.Errorf("fsblob: list %q: %w", prefix, err)
	}
	return l.out, l.more, nil
}

type lister struct {
	b             *Backend
	prefix, after string
	limit         int
	out           []bucket.ObjectInfo
	more          bool
}

// dirent is a directory entry with its sort key: its name, plus "/" for a
// directory.
type dirent struct {
	sortKey, name string
	fi            fs.FileInfo
}

func (l *lister) walk(dir, keyPrefix string) error {
	from := "" // entries sorting at or before this are done
	for {
		batch, next, rest, err := l.smallest(dir, keyPrefix, from, l.limit-len(l.out)+1)
		if err != nil {
			return err
		}
		for _, d := range batch {
			key := keyPrefix + d.name
			if d.fi.IsDir() {
				if err := l.walk(dir+"/"+d.name, key+"/"); err != nil || l.more {
					return err
				}
				continue
			}
			if len(l.out) == l.limit {
				l.more = true
				return nil
			}
			l.out = append(l.out, info(key, d.fi))
		}
		if !rest {
			return nil
		}
		from = next
	}
}

// smallest returns, in order, dir's first entries after from that can hold
// a match, at most about n; rest reports that more may follow, from next on.
//
// It reads names only, so that just the kept ones are lstat'ed: a directory
// opened through os.Root would otherwise lstat every entry. Names are kept
// by name, but a directory "d" sorts as "d/", after siblings such as "d-x";
// so a kept entry whose sort key passes the last kept name waits for the
// next round, which finds it again as a prefix of from.
func (l *lister) smallest(dir, keyPrefix, from string, n int) (batch []dirent, next string, rest bool, err error) {
	names, next, rest, err := l.names(dir, keyPrefix, from, n)
	if err != nil {
		return nil, "", false, err
	}
	for _, name := range names {
		fi, err := l.b.root.Lstat(dir + "/" + name)
		if err != nil {
			continue // deleted while we listed
		}
		d := dirent{sortKey: name, name: name, fi: fi}
		if fi.IsDir() {
			d.sortKey += "/"
		}
		if d.sortKey > from && (!rest || d.sortKey <= next) && l.candidate(keyPrefix, d) {
			batch = append(batch, d)
		}
	}
	slices.SortFunc(batch, func(x, y dirent) int { return strings.Compare(x.sortKey, y.sortKey) })
	return batch, next, rest, nil
}

// names reads dir in batches and keeps the n smallest names after from
// that may match, plus any name that is a directory's prefix of from (its
// sort key may still lie ahead). Memory stays O(n) whatever dir holds.
func (l *lister) names(dir, keyPrefix, from string, n int) (names []string, next string, rest bool, err error) {
	f, err := l.b.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, nil // pruned by a Delete while we listed
	}
	if err != nil {
		return nil, "", false, err
	}
	defer f.Close()
	var sel, behind []string
	trim := func() {
		slices.Sort(sel)
		if len(sel) > n {
			sel, rest = sel[:n], true
		}
	}
	for {
		batch, err := f.Readdirnames(1024)
		for _, name := range batch {
			key := keyPrefix + name
			switch {
			case bucket.IsStagingSegment(name): // staging, ours or a nested served directory's
			case !strings.HasPrefix(key, l.prefix) && !strings.HasPrefix(l.prefix, key):
			case key <= l.after && !strings.HasPrefix(l.after, key):
			case name > from:
				// Once a trim dropped names (rest), none past the n-th
				// kept one can be chosen.
				if !rest || name < sel[n-1] {
					sel = append(sel, name)
				}
				if len(sel) >= 2*n {
					trim()
				}
			case strings.HasPrefix(from, name) && (len(from) == len(name) || from[len(name)] < '/'):
				behind = append(behind, name)
			}
		}
		if errors.Is(err, io.EOF) || len(batch) == 0 {
			break
		}
		if err != nil {
			return nil, "", false, err
		}
	}
	trim()
	if rest {
		next = sel[len(sel)-1]
	}
	return append(behind, sel...), next, rest, nil
}

// candidate reports whether d is an object matching the listing, or a
// directory that can hold one.
func (l *lister) candidate(keyPrefix string, d dirent) bool {
	key := keyPrefix + d.name
	if d.fi.IsDir() {
		sub := key + "/"
		return (strings.HasPrefix(sub, l.prefix) || strings.HasPrefix(l.prefix, sub)) &&
			(l.after < sub || strings.HasPrefix(l.after, sub))
	}
	return d.fi.Mode().IsRegular() && strings.HasPrefix(key, l.prefix) && key > l.after && bucket.ValidateKey(key) == nil
}

// Ping checks the objects directory is still there.
func (b *Backend) Ping(context.Context) error {
	if _, err := b.root.Stat(b.objects); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}
