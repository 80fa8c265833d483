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
	"fmt"
	"os"
	"path"
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

// Ping checks the objects directory is still there.
func (b *Backend) Ping(context.Context) error {
	if _, err := b.root.Stat(b.objects); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}
