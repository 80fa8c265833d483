package fsblob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/ferryhq/ferry/bucket"
)

// A session's staging file is sessions/<id>. StageCommit publishes it with
// a rename, so once that rename is done the staging file is gone and only
// the object at the key is left. To tell, on a retry, whether that object
// is the one this session committed (and not an older object, or a newer
// one written since), StageCommit first writes a commit receipt,
// sessions/<id>.commit, naming the key and the object's identity: its ETag
// ("<size hex>-<mtime ns hex>", which a rename keeps) and, where the
// platform has one, its inode number (which a rename keeps too). The
// receipt stays until StageDiscard, which the caller sends once it has
// recorded the commit; receipts a crash orphaned are swept after
// staleReceipt.

const (
	receiptSuffix = ".commit"
	// staleReceipt is how long a receipt must sit before New or NewDir
	// take it for an orphan. A session retrying its commit after that has
	// long expired.
	staleReceipt = 7 * 24 * time.Hour
)

// receipt records what StageCommit published.
type receipt struct {
	Key   string `json:"key"`
	Size  int64  `json:"size"`
	ETag  string `json:"etag"`
	Inode uint64 `json:"inode,omitempty"` // 0 where the platform has none
}

func (b *Backend) sessionPath(id string) (string, error) {
	if err := token(id); err != nil {
		return "", err
	}
	return b.sessions + "/" + id, nil
}

// StageWrite writes n bytes at offset into the session's staging file and
// fsyncs before returning. Only a write at offset 0 may create the file: at
// any other offset the file must exist and already hold offset bytes, so a
// staging file deleted behind the session's back is never recreated with a
// hole (zeros) in front.
func (b *Backend) StageWrite(_ context.Context, id string, offset int64, r io.Reader, n int64) error {
	f, err := b.openStage(id, offset, n, offset == 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if offset > 0 {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("fsblob: stage %s: %w", id, err)
		}
		if fi.Size() < offset {
			return fmt.Errorf("fsblob: stage %s: the staging file holds %d bytes, fewer than the offset %d; the bytes in between are lost and the upload must start again: %w",
				id, fi.Size(), offset, bucket.ErrNotFound)
		}
	}
	return writeAt(f, id, offset, r, n)
}

// StageWriteAt writes n bytes at offset into an existing staging file and
// fsyncs, leaving the bytes elsewhere as they are (parallel parts land in
// any order; the session records which ranges hold bytes).
func (b *Backend) StageWriteAt(_ context.Context, id string, offset int64, r io.Reader, n int64) error {
	f, err := b.openStage(id, offset, n, false)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeAt(f, id, offset, r, n)
}

// openStage opens staging file id for a write of n bytes at offset,
// creating it only when create says so.
func (b *Backend) openStage(id string, offset, n int64, create bool) (*os.File, error) {
	p, err := b.sessionPath(id)
	if err != nil {
		return nil, err
	}
	if offset < 0 || n < 0 {
		return nil, fmt.Errorf("fsblob: stage %s: offset %d and length %d must not be negative", id, offset, n)
	}
	flag := os.O_WRONLY
	if create {
		flag |= os.O_CREATE
	}
	f, err := b.root.OpenFile(p, flag, 0o644)
	if notFound(err) {
		return nil, fmt.Errorf("fsblob: stage %s: the staging file is gone, so the bytes written before are lost; the upload must start again: %w",
			id, bucket.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fsblob: stage %s: %w", id, err)
	}
	return f, nil
}

// writeAt copies exactly n bytes of r to f at offset, durably.
func writeAt(f *os.File, id string, offset int64, r io.Reader, n int64) error {
	written, err := io.CopyN(io.NewOffsetWriter(f, offset), r, n)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("fsblob: stage %s: body ended after %d of %d bytes: %w", id, written, n, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return fmt.Errorf("fsblob: stage %s: %w", id, err)
	}
	return f.Sync()
}

// StageCheck reports ErrKeyConflict when publishing key now would fail on
// the directories in the way. A missing directory is no conflict: publish
// makes it.
func (b *Backend) StageCheck(_ context.Context, key string) error {
	p, fi, err := b.objectPath(key, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("fsblob: check %s: %w", key, conflict(err))
	case fi != nil && fi.IsDir() && !b.emptyDir(p):
		return fmt.Errorf("fsblob: check %s: it is a directory of other keys: %w", key, bucket.ErrKeyConflict)
	}
	return nil
}

// emptyDir reports whether the directory at p holds nothing (publish
// removes such a leftover).
func (b *Backend) emptyDir(p string) bool {
	f, err := b.root.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && errors.Is(err, io.EOF)
}

// StageCommit trims the staging file to size and renames it to key, after
// durably writing a receipt of what the object will be. If the staging file
// is gone, an earlier commit may have renamed it: the object at key is
// reported only if the receipt identifies it exactly (same key, size, ETag
// and inode), never by its size alone, which an older object can share.
func (b *Backend) StageCommit(_ context.Context, id, key string, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	p, err := b.sessionPath(id)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	if err := b.checkKey(key); err != nil {
		return bucket.ObjectInfo{}, err
	}
	f, err := b.root.OpenFile(p, os.O_WRONLY, 0)
	if notFound(err) {
		return b.committed(id, key, size)
	}
	if err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: %w", id, err)
	}
	rc, err := trim(f, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: %w", id, err)
	}
	rc.Key = key
	if err := b.writeReceipt(id, rc); err != nil {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: receipt: %w", id, err)
	}
	if opts.Intend != nil { // a rename keeps size and mtime, so the object will have the receipt's ETag
		if err := opts.Intend(rc.ETag); err != nil {
			return bucket.ObjectInfo{}, err
		}
	}
	return b.publish(p, key)
}

// trim cuts the staging file to size, durably, and describes it. A file
// shorter than size lost bytes; extending it would publish zeros.
func trim(f *os.File, size int64) (receipt, error) {
	fi, err := f.Stat()
	if err != nil {
		return receipt{}, err
	}
	if fi.Size() < size {
		return receipt{}, fmt.Errorf("the staging file holds %d bytes, fewer than the %d to commit; the upload must start again: %w",
			fi.Size(), size, bucket.ErrNotFound)
	}
	if fi.Size() > size {
		if err := f.Truncate(size); err != nil {
			return receipt{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return receipt{}, err
	}
	if fi, err = f.Stat(); err != nil {
		return receipt{}, err
	}
	return receipt{Size: size, ETag: etag(fi), Inode: inode(fi)}, nil
}

// committed is StageCommit without a staging file: success only if the
// receipt says this very object was published at key.
func (b *Backend) committed(id, key string, size int64) (bucket.ObjectInfo, error) {
	fail := func(format string, args ...any) (bucket.ObjectInfo, error) {
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: the staging file is gone and %s: %w", id, fmt.Sprintf(format, args...), bucket.ErrNotFound)
	}
	rc, err := b.readReceipt(id)
	switch {
	case notFound(err):
		return fail("no commit of it was recorded")
	case err != nil:
		return fail("its commit receipt is unreadable (%v)", err)
	case rc.Key != key || rc.Size != size:
		return fail("it was committed as %d bytes to %q, not %d bytes to %q", rc.Size, rc.Key, size, key)
	}
	_, fi, err := b.objectPath(key, false)
	switch {
	case err != nil && !notFound(err):
		return bucket.ObjectInfo{}, fmt.Errorf("fsblob: commit %s: %w", id, err)
	case err != nil || fi == nil || !fi.Mode().IsRegular():
		return fail("the object it was committed as is no longer at %q", key)
	case etag(fi) != rc.ETag || rc.Inode != 0 && inode(fi) != rc.Inode:
		return fail("%q holds another object (ETag %s) than the one committed (ETag %s)", key, etag(fi), rc.ETag)
	}
	return info(key, fi), nil
}

func (b *Backend) receiptPath(id string) string { return b.sessions + "/" + id + receiptSuffix }

// writeReceipt stores rc durably before the rename it describes.
func (b *Backend) writeReceipt(id string, rc receipt) error {
	data, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	f, err := b.root.OpenFile(b.receiptPath(id), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return b.syncDir(b.sessions)
}

func (b *Backend) readReceipt(id string) (receipt, error) {
	f, err := b.root.Open(b.receiptPath(id))
	if err != nil {
		return receipt{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return receipt{}, err
	}
	var rc receipt
	if err := json.Unmarshal(data, &rc); err != nil {
		return receipt{}, err
	}
	return rc, nil
}

// StageDiscard removes the staging file and its commit receipt. After a
// commit, call it once the commit is recorded: it is what frees the receipt.
func (b *Backend) StageDiscard(_ context.Context, id string) error {
	p, err := b.sessionPath(id)
	if err != nil {
		return err
	}
	for _, name := range []string{p, b.receiptPath(id)} {
		if err := b.root.Remove(name); err != nil && !notFound(err) {
			return fmt.Errorf("fsblob: discard %s: %w", id, err)
		}
	}
	return nil
}

// sweepReceipts removes receipts older than before: orphans of sessions
// whose caller crashed between recording a commit and discarding it.
func (b *Backend) sweepReceipts(before time.Time) {
	f, err := b.root.Open(b.sessions)
	if err != nil {
		return
	}
	entries, _ := f.ReadDir(-1)
	f.Close()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), receiptSuffix) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(before) {
			_ = b.root.Remove(b.sessions + "/" + e.Name())
		}
	}
}
