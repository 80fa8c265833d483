package bucket

import (
	"context"
	"io"
)

// Staging is the optional capability of building an object in a private
// staging file written at offsets, then publishing it whole with a rename.
// The filesystem backend has it; it is how sessions upload there.
type Staging interface {
	// StageWrite writes exactly n bytes from r at offset into the staging
	// file id, durably (fsync) before it returns. A short r is an error;
	// bytes beyond what the caller acknowledges are simply overwritten later.
	// Only offset 0 may create the file; at a larger offset a missing file,
	// or one holding fewer than offset bytes, is ErrNotFound (the bytes in
	// front are lost, and the upload must start again).
	StageWrite(ctx context.Context, id string, offset int64, r io.Reader, n int64) error
	// StageWriteAt writes n bytes from r at offset into the existing
	// staging file id, durably, whatever the file holds before offset:
	// the caller records which ranges hold bytes (parallel parts). A
	// missing file is ErrNotFound; it is never created here.
	StageWriteAt(ctx context.Context, id string, offset int64, r io.Reader, n int64) error
	// StageCheck reports ErrKeyConflict when key could not be published
	// now: a file stands where one of its directories would go, or key is
	// a directory of other keys. A session checks it at create, so the
	// conflict does not wait for the last byte.
	StageCheck(ctx context.Context, key string) error
	// StageCommit truncates the staging file to size and renames it to key,
	// replacing any object there. Calling it again after it succeeded (the
	// caller crashed before recording it) reports the same object, which is
	// identified exactly, never by size; otherwise a missing staging file, or
	// one shorter than size, is ErrNotFound.
	StageCommit(ctx context.Context, id, key string, size int64, opts PutOptions) (ObjectInfo, error)
	// StageDiscard removes the staging file and what a commit kept to
	// recognise its object on a retry; a missing one is not an error. Call
	// it after a successful StageCommit once the commit is recorded.
	StageDiscard(ctx context.Context, id string) error
}
