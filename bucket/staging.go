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
	StageWrite(ctx context.Context, id string, offset int64, r io.Reader, n int64) error
	// StageCommit truncates the staging file to size and renames it to key,
	// replacing any object there.
	StageCommit(ctx context.Context, id, key string, size int64, opts PutOptions) (ObjectInfo, error)
	// StageDiscard removes the staging file; a missing one is not an error.
	StageDiscard(ctx context.Context, id string) error
}
