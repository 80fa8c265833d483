package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/lru"
	"github.com/ferryhq/ferry/metastore"
)

// engine is how a session's bytes reach storage.
type engine interface {
	// begin prepares storage for a new session.
	begin(ctx context.Context, rec *record) error
	// write stores exactly n bytes of r at rec.Offset, updating rec's
	// engine state (not Offset). fence guards any metadata it writes.
	write(ctx context.Context, rec *record, fence int64, r io.Reader, n int64) error
	// complete makes the whole upload the object at rec.object(). It must
	// be safe to call again after a crash half-way through.
	complete(ctx context.Context, rec *record) (bucket.ObjectInfo, error)
	// discard frees what an unfinished session holds. Idempotent.
	discard(ctx context.Context, ref purgeRef) error
	// needsClaim reports whether writing n bytes now touches storage that
	// the fence cannot guard, so the record must be claimed first.
	needsClaim(rec *record, n int64) bool
}

// stagingEngine writes at the offset into a staging file and renames it
// into place on completion.
type stagingEngine struct{ blobs bucket.Staging }

func (e *stagingEngine) begin(context.Context, *record) error { return nil }

func (e *stagingEngine) needsClaim(*record, int64) bool { return true }

func (e *stagingEngine) write(ctx context.Context, rec *record, _ int64, r io.Reader, n int64) error {
	return shortBody(e.blobs.StageWrite(ctx, rec.ID, rec.Offset, r, n), n)
}

func (e *stagingEngine) complete(ctx context.Context, rec *record) (bucket.ObjectInfo, error) {
	return e.blobs.StageCommit(ctx, rec.ID, rec.object(), rec.Size, bucket.PutOptions{ContentType: rec.MimeType})
}

func (e *stagingEngine) discard(ctx context.Context, ref purgeRef) error {
	return e.blobs.StageDiscard(ctx, ref.ID)
}

// confirmer is an engine that keeps something after complete, so that a
// retried complete recognises its object, until the completion is recorded.
type confirmer interface {
	confirm(ctx context.Context, rec *record) error
}

// confirm frees the commit receipt StageCommit kept.
func (e *stagingEngine) confirm(ctx context.Context, rec *record) error {
	return e.blobs.StageDiscard(ctx, rec.ID)
}

// multipartEngine builds the object as an S3 multipart upload. Each run of
// at least PartSize bytes becomes one UploadPart streamed from the request;
// a shorter run is held back in the metadata store (every instance sees it)
// and goes in front of the next chunk. The parts are recorded in the
// session record, so completion needs no ListParts and an append of a
// full part costs exactly one S3 request.
//
// The instance that held a segment back also keeps it in memory (held), so
// the append that fills the part need not read it back from the store. A
// segment is cached under a random tag that the record lists beside it:
// a segment another instance wrote, or rewrote, has another tag and is read
// from the store, so the cache can only save reads, never change bytes.
type multipartEngine struct {
	blobs   bucket.Backend
	mp      bucket.Multipart
	store   metastore.Store
	grace   time.Duration
	maxHeld int64
	held    *lru.Cache[[]byte] // by heldKey; shared by the service's engines
}

func heldKey(id string, seg int, tag string) string { return tailKey(id, seg) + "#" + tag }

func (e *multipartEngine) begin(ctx context.Context, rec *record) error {
	if rec.Size < bucket.MinPartSize {
		return nil // one Put at the end; nothing to allocate
	}
	ps, err := bucket.PartSizeFor(rec.Size)
	if err != nil {
		return err
	}
	id, err := e.mp.CreateMultipart(ctx, rec.object(), bucket.PutOptions{ContentType: rec.MimeType})
	if err != nil {
		return err
	}
	rec.UploadID, rec.PartSize = id, ps
	return nil
}

// holdsBack reports whether the chunk only joins the tail (no S3 write).
func (e *multipartEngine) holdsBack(rec *record, n int64) bool {
	last := !rec.Open && rec.Offset+n == rec.Size
	return !last && (rec.UploadID == "" || rec.TailLen+n < rec.PartSize)
}

// needsClaim: a held-back chunk only writes a tail segment, which carries
// the fence itself; an UploadPart does not, so it needs the claim first.
func (e *multipartEngine) needsClaim(rec *record, n int64) bool { return !e.holdsBack(rec, n) }

func (e *multipartEngine) write(ctx context.Context, rec *record, fence int64, r io.Reader, n int64) error {
	last := !rec.Open && rec.Offset+n == rec.Size
	held := rec.TailLen + n
	if last && rec.UploadID != "" && len(rec.Parts) == 0 && held < rec.PartSize {
		// A sealed stream that never filled a part: one Put is enough.
		if err := e.mp.AbortMultipart(ctx, rec.object(), rec.UploadID); err != nil {
			return err
		}
		rec.UploadID = ""
	}
	if e.holdsBack(rec, n) {
		if held > e.maxHeld {
			return ErrChunkTooSmall.New("parts of this %d-byte file must be at least %d bytes and at most %d may wait for the next chunk; send chunks of at least %d bytes",
				rec.Size, rec.PartSize, e.maxHeld, rec.PartSize).With("min_chunk_size", rec.PartSize).With("offset", rec.Offset)
		}
		return e.holdBack(ctx, rec, fence, r, n)
	}
	tail, err := e.tail(ctx, rec)
	if err != nil {
		return err
	}
	readers := make([]io.Reader, 0, len(tail)+1)
	for _, seg := range tail {
		readers = append(readers, bytes.NewReader(seg))
	}
	src := io.MultiReader(append(readers, io.LimitReader(r, n))...)
	if rec.UploadID == "" { // a small file: everything fits one Put
		obj, err := e.blobs.Put(ctx, rec.object(), src, held, bucket.PutOptions{ContentType: rec.MimeType})
		if err != nil {
			return shortBody(err, n)
		}
		e.dropTail(rec)
		rec.ETag = obj.ETag
		return nil
	}
	for _, size := range splitRun(held) {
		num := len(rec.Parts) + 1
		if num > bucket.MaxParts {
			return fmt.Errorf("session %s would need more than %d parts", rec.ID, bucket.MaxParts)
		}
		p, err := e.mp.UploadPart(ctx, rec.object(), rec.UploadID, num, io.LimitReader(src, size), size)
		if err != nil {
			return shortBody(err, n)
		}
		rec.Parts = append(rec.Parts, p)
	}
	e.dropTail(rec)
	return nil
}

// dropTail forgets the tail once its bytes are in S3. The segments stay in
// the store until overwritten or deleted with the session, harmlessly:
// the record no longer counts them.
func (e *multipartEngine) dropTail(rec *record) {
	e.forget(rec)
	rec.TailLen, rec.TailSegs, rec.TailTags = 0, 0, nil
}

// forget removes the record's segments from memory.
func (e *multipartEngine) forget(rec *record) {
	for i, tag := range rec.TailTags {
		e.held.Remove(heldKey(rec.ID, i, tag))
	}
}

// splitRun cuts a run of n bytes into the fewest parts of at most
// MaxPartSize, as even as possible, so every part is far above any part
// size PartSizeFor can ask for.
func splitRun(n int64) []int64 {
	k := max((n+bucket.MaxPartSize-1)/bucket.MaxPartSize, 1)
	sizes := make([]int64, k)
	for i := range sizes {
		sizes[i] = n / k
		if int64(i) < n%k {
			sizes[i]++
		}
	}
	return sizes
}

// maxTailSegs bounds the segments of a tail; past it they are merged, so
// even a client of tiny chunks costs a bounded number of reads per part.
const maxTailSegs = 16

// holdBack stores the chunk as the tail's next segment, writing only the
// chunk, never the whole tail again. Each segment carries the lock's
// fence, so a stale holder cannot overwrite a segment a newer one wrote.
// Memory per request is bounded by the tail, at most maxHeld.
func (e *multipartEngine) holdBack(ctx context.Context, rec *record, fence int64, r io.Reader, n int64) error {
	var prefix [][]byte
	seg, tags := rec.TailSegs, rec.TailTags
	if seg >= maxTailSegs {
		merged, err := e.tail(ctx, rec)
		if err != nil {
			return err
		}
		e.forget(rec)
		prefix, seg = merged, 0
	}
	if len(tags) != seg {
		tags = make([]string, seg) // a record from before tags: those are read from the store
	}
	buf := make([]byte, 0, e.segLen(prefix)+n)
	for _, p := range prefix {
		buf = append(buf, p...)
	}
	start := len(buf)
	buf = buf[:start+int(n)]
	if _, err := io.ReadFull(r, buf[start:]); err != nil {
		return shortBody(err, n)
	}
	// Same lifetime as the record, so the tail never vanishes first.
	ttl := time.Until(rec.ExpiresAt) + e.grace
	if _, err := e.store.Put(ctx, tailKey(rec.ID, seg), buf, metastore.Cond{Version: metastore.AnyVersion, Fence: fence, TTL: ttl}); err != nil {
		if errors.Is(err, metastore.ErrFenced) {
			return ErrBusy.Wrap(err, "another request took over session %s", rec.ID)
		}
		return fmt.Errorf("store held-back bytes: %w", err)
	}
	tag := rand.Text()
	e.held.Add(heldKey(rec.ID, seg, tag), buf, int64(len(buf)))
	rec.TailSegs, rec.TailLen, rec.TailTags = seg+1, rec.TailLen+n, append(tags[:seg:seg], tag)
	return nil
}

func (e *multipartEngine) segLen(segs [][]byte) int64 {
	var n int64
	for _, s := range segs {
		n += int64(len(s))
	}
	return n
}

// tail returns the held-back segments in order, from memory where this
// instance wrote them.
func (e *multipartEngine) tail(ctx context.Context, rec *record) ([][]byte, error) {
	segs := make([][]byte, 0, rec.TailSegs)
	for i := range rec.TailSegs {
		if i < len(rec.TailTags) && rec.TailTags[i] != "" {
			if b, ok := e.held.Get(heldKey(rec.ID, i, rec.TailTags[i])); ok {
				segs = append(segs, b)
				continue
			}
		}
		r, err := e.store.Get(ctx, tailKey(rec.ID, i))
		if err != nil {
			return nil, fmt.Errorf("read held-back bytes of session %s: %w", rec.ID, err)
		}
		segs = append(segs, r.Value)
	}
	if got := e.segLen(segs); got != rec.TailLen {
		return nil, fmt.Errorf("held-back bytes of session %s: have %d, record says %d", rec.ID, got, rec.TailLen)
	}
	return segs, nil
}

// deleteTail removes every segment a session may have written.
func deleteTail(ctx context.Context, store metastore.Store, id string) error {
	for i := range maxTailSegs {
		if err := store.Delete(ctx, tailKey(id, i), metastore.AnyVersion); err != nil {
			return err
		}
	}
	return nil
}

func (e *multipartEngine) complete(ctx context.Context, rec *record) (bucket.ObjectInfo, error) {
	if rec.UploadID == "" {
		return bucket.ObjectInfo{Key: rec.object(), Size: rec.Size, ETag: rec.ETag}, nil
	}
	obj, err := e.mp.CompleteMultipart(ctx, rec.object(), rec.UploadID, rec.Parts)
	if errors.Is(err, bucket.ErrNotFound) {
		// An earlier attempt completed it and crashed before recording that.
		if head, herr := e.blobs.Head(ctx, rec.object()); herr == nil && head.Size == rec.Size {
			return head, nil
		}
	}
	return obj, err
}

func (e *multipartEngine) discard(ctx context.Context, ref purgeRef) error {
	if ref.UploadID == "" {
		return nil
	}
	return e.mp.AbortMultipart(ctx, ref.Object, ref.UploadID)
}

// shortBody turns a body that ended early into a client error: the client
// dropped the connection or sent less than it declared.
func shortBody(err error, n int64) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return ErrShortBody.Wrap(err, "the body ended before its declared %d bytes; nothing was stored, resend the chunk", n)
	}
	return err
}
