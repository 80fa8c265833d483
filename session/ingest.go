package session

import (
	"bytes"
	"context"
	"io"
	"sync"
)

// ingestChunk is the read size of Ingest: above MinPartSize, so on S3 every
// chunk but the last is exactly one part.
const ingestChunk = 8 << 20

var ingestBufs = sync.Pool{New: func() any { b := make([]byte, ingestChunk); return &b }}

// Ingest streams r, of unknown length up to limit bytes, into a new open
// session and returns its id; the caller then Seals it (publish) or Aborts
// it. Memory is one pooled chunk per call, whatever the length.
func (s *Service) Ingest(ctx context.Context, sp Spec, r io.Reader, limit int64) (string, int64, error) {
	sp.Size, sp.Open = limit, true
	release, err := s.buffers.take(ctx, ingestChunk)
	if err != nil {
		return "", 0, err
	}
	defer release()
	in, err := s.CreateSpec(ctx, sp)
	if err != nil {
		return "", 0, err
	}
	bp := ingestBufs.Get().(*[]byte)
	defer ingestBufs.Put(bp)
	var off int64
	for {
		n, rerr := io.ReadFull(r, *bp)
		if n > 0 {
			if off+int64(n) > limit {
				_ = s.Abort(context.WithoutCancel(ctx), in.ID)
				return "", off, ErrTooLarge.New("the file exceeds the limit of %d bytes", limit).With("max_size", limit)
			}
			if _, _, err := s.Append(ctx, in.ID, Chunk{Offset: off, Total: -1, Len: int64(n), Body: bytes.NewReader((*bp)[:n])}); err != nil {
				_ = s.Abort(context.WithoutCancel(ctx), in.ID)
				return "", off, err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return in.ID, off, nil
		}
		if rerr != nil {
			_ = s.Abort(context.WithoutCancel(ctx), in.ID)
			return "", off, ErrShortBody.Wrap(rerr, "reading the upload failed after %d bytes; nothing was stored", off)
		}
	}
}
