package session

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/lru"
	"github.com/ferryhq/ferry/metastore"
)

// multipartEngine builds the object as an S3 multipart upload. Each run of
// at least MinPart bytes becomes one UploadPart streamed from the request;
// a shorter run is held back in the metadata store (every instance sees it)
// and goes in front of the next chunk. The parts are recorded in the
// session record, so completion needs no ListParts and an append of a
// full part costs exactly one S3 request. The multipart upload starts with
// the first part, so a create costs no S3 request and a session that never
// fills a part leaves nothing in S3. A file smaller than one part is held
// back whole and written by complete with one verified PutObject, so
// nothing appears at its key before every byte is in.
//
// Held-back segments are the tail records (keys.go) numbered k in
// [TailFirst, TailFirst+TailSegs). A segment is written once, at a number
// no saved record points at, and never overwritten while one does: a merge
// writes the joined bytes to the next number and the record switches to it
// in one save. Numbers below TailFirst are deleted after that save.
//
// The instance that held a segment back also keeps it in memory (held), so
// the append that fills the part need not read it back from the store. A
// segment is cached under a random tag that the record lists beside it:
// a segment another instance wrote has another tag and is read from the
// store, so the cache can only save reads, never change bytes.
type multipartEngine struct {
	blobs   bucket.Backend
	mp      bucket.Multipart
	copier  bucket.PartCopier // nil: pieces are sent again as data
	store   metastore.Store
	ttl     time.Duration // the session TTL: a segment outlives its record by this
	grace   time.Duration
	maxHeld int64
	held    *lru.Cache[[]byte] // by heldKey; shared by the service's engines
	buffers *budget            // request data in memory; shared too
	ledger  *ledger
	jobs    *behindJobs // parts written behind (writebehind.go); shared too
	log     *slog.Logger
	// noFullCRC: this location's storage refused a full-object checksum
	// upload once (fullcrc.go); its uploads go on without.
	noFullCRC atomic.Bool
}

func heldKey(id string, k int, tag string) string { return tailKey(id, k) + "#" + tag }

// begin fixes the part size; MinPart 0 marks a file held back whole.
func (e *multipartEngine) begin(_ context.Context, rec *record) error {
	if rec.Size < bucket.MinPartSize {
		return nil // held back whole, one Put at the end
	}
	ps, err := bucket.PartSizeFor(rec.Size)
	if err != nil {
		return err
	}
	rec.MinPart = ps
	return nil
}

// start begins the multipart upload when this write is its first part.
func (e *multipartEngine) start(ctx context.Context, rec *record, n int64) (bool, error) {
	if e.holdsBack(rec, n) {
		return false, nil
	}
	return e.startParts(ctx, rec)
}

// startParts begins the multipart upload that parts go into.
func (e *multipartEngine) startParts(ctx context.Context, rec *record) (bool, error) {
	if rec.UploadID != "" {
		return false, nil
	}
	id, err := e.createUpload(ctx, rec)
	if err != nil {
		return false, err
	}
	rec.UploadID = id
	return true, nil
}

// writePart sends part n as S3 part n, streamed from r.
func (e *multipartEngine) writePart(ctx context.Context, rec *record, n int, r io.Reader, size int64, sum *Checksum) (bucket.Part, error) {
	v := newVerifier(sum)
	p, err := e.mp.UploadPart(ctx, rec.object(), rec.UploadID, n, v.reader(r), size, partSum(rec, sum))
	if errors.Is(err, bucket.ErrBadDigest) {
		return p, ErrChecksumMismatch.Wrap(err, "part %d does not match its %s; nothing of it was kept, send it again", n, sum.Algo)
	}
	if err != nil {
		return p, shortBody(err, size)
	}
	return p, v.check()
}

// holdsBack reports whether the chunk only joins the tail (no S3 write):
// all of a small file, and whatever does not fill a part (beyond a part
// waiting to be sent), except the last chunk once parts have started. A
// sealed stream that never started them is finished like a small file.
func (e *multipartEngine) holdsBack(rec *record, n int64) bool {
	last := !rec.Open && rec.Offset+n == rec.Size
	return rec.MinPart == 0 || rec.looseLen()+n < rec.MinPart && (!last || rec.UploadID == "")
}

// needsClaim: a held-back chunk only writes a tail segment, which carries
// the fence itself; an UploadPart does not, so it needs the claim first,
// and so does a whole part in the tail that this instance is not
// uploading (write may send it).
func (e *multipartEngine) needsClaim(rec *record, n int64) bool {
	return !e.uploadsAll(rec) || !e.holdsBack(rec, n) || e.sealsSmall(rec, n)
}

// sealsSmall: a sealed stream that started its upload but never
// recorded a part (the first one failed) becomes one Put.
func (e *multipartEngine) sealsSmall(rec *record, n int64) bool {
	last := !rec.Open && rec.Offset+n == rec.Size
	return last && rec.UploadID != "" && len(rec.Parts) == 0 && rec.TailLen+n < rec.MinPart
}

func (e *multipartEngine) write(ctx context.Context, rec *record, fence int64, r io.Reader, n int64, sum *Checksum) error {
	next := *rec
	for ahead := true; ; ahead = false {
		if held, err := e.holdNextBehind(ctx, &next, fence, r, n, sum); held || err != nil {
			if err == nil {
				*rec = next
			}
			return err
		}
		// Recording the oldest part may make room to hold the chunk as a
		// part ahead: then that is tried once more, else it settles as
		// before.
		if err := e.settle(ctx, &next, n, ahead); err != nil {
			return err
		}
		if !ahead || !e.writesNextBehind(&next, n) {
			break
		}
	}
	if n == 0 && next.TailLen == 0 && len(next.Parts) > len(rec.Parts) {
		*rec = next // the part that waited was the last
		return nil
	}
	if e.sealsSmall(&next, n) {
		if err := e.mp.AbortMultipart(ctx, next.object(), next.UploadID); err != nil {
			return err
		}
		next.UploadID = ""
	}
	var err error
	switch {
	case e.holdsBack(&next, n):
		err = e.holdBack(ctx, &next, fence, r, n, sum)
	case e.writesBehind(&next, n):
		var held bool
		if held, err = e.holdBehind(ctx, &next, fence, r, n, sum); !held {
			err = e.uploadParts(ctx, &next, r, n, sum)
		}
	default:
		err = e.uploadParts(ctx, &next, r, n, sum)
	}
	if err != nil {
		return err
	}
	*rec = next
	return nil
}

// uploadParts sends the tail and the chunk as parts, streaming the chunk.
func (e *multipartEngine) uploadParts(ctx context.Context, rec *record, r io.Reader, n int64, sum *Checksum) error {
	if rec.UploadID == "" { // start runs before the claim
		return fmt.Errorf("session %s: a part before its multipart upload started", rec.ID)
	}
	if rec.TailPart != 0 { // settle records it first
		return fmt.Errorf("session %s: a part before the part that waits to be sent", rec.ID)
	}
	release, err := e.buffers.take(ctx, rec.TailLen)
	if err != nil {
		return err
	}
	defer release()
	tail, err := e.tail(ctx, rec)
	if err != nil {
		return err
	}
	v := newVerifier(sum)
	src := io.MultiReader(segReader(tail), v.reader(io.LimitReader(r, n)))
	runs := splitRun(rec.TailLen + n)
	chunkSum := sum // S3 checks it too when the chunk is exactly one part
	if len(tail) > 0 || len(runs) > 1 {
		chunkSum = nil
	}
	parts := rec.Parts
	for _, size := range runs {
		num := len(parts) + 1
		if num > bucket.MaxParts {
			return fmt.Errorf("session %s would need more than %d parts", rec.ID, bucket.MaxParts)
		}
		p, err := e.mp.UploadPart(ctx, rec.object(), rec.UploadID, num, io.LimitReader(src, size), size, partSum(rec, chunkSum))
		if errors.Is(err, bucket.ErrBadDigest) {
			return ErrChecksumMismatch.Wrap(err, "the chunk does not match its %s; nothing of it was kept, resend it", sum.Algo)
		}
		if err != nil {
			return shortBody(err, n)
		}
		parts = append(parts[:len(parts):len(parts)], p)
	}
	// Parts that fail the check are not recorded; their numbers are reused.
	if err := v.check(); err != nil {
		return err
	}
	e.forget(rec)
	rec.Parts = parts
	rec.TailFirst += rec.TailSegs
	rec.TailLen, rec.TailSegs, rec.TailTags, rec.TailUntil = 0, 0, nil, time.Time{}
	return nil
}

// forget removes the record's segments from memory.
func (e *multipartEngine) forget(rec *record) { e.forgetFirst(rec, len(rec.TailTags)) }

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
// chunk, never the whole tail again, unless the tail must be merged: it
// has maxTailSegs segments, or its oldest would expire before the record
// this append extends. Each segment carries the lock's fence, so a stale
// holder cannot write one, and it lives TTL longer than the record that
// points at it. Memory per request is bounded by the tail, at most maxHeld
// (a small file's whole body, under MinPartSize).
func (e *multipartEngine) holdBack(ctx context.Context, rec *record, fence int64, r io.Reader, n int64, sum *Checksum) error {
	held := rec.TailLen + n
	if rec.MinPart > 0 && held > e.maxHeld {
		return ErrChunkTooSmall.New("parts of this %d-byte file must be at least %d bytes and at most %d may wait for the next chunk; send chunks of at least %d bytes",
			rec.Size, rec.MinPart, e.maxHeld, rec.MinPart).With("min_chunk_size", rec.MinPart).With("offset", rec.Offset)
	}
	if n == 0 {
		return nil
	}
	if err := e.ledger.admit(ctx, n, max(rec.MinPart, bucket.MinPartSize)); err != nil {
		return err
	}
	return e.holdSegment(ctx, rec, fence, r, n, sum)
}

// merges: the tail must be merged before it takes another segment.
func (e *multipartEngine) merges(rec *record) bool {
	return rec.TailSegs >= maxTailSegs || rec.TailSegs > 0 && rec.TailUntil.Before(rec.ExpiresAt.Add(e.grace))
}

// holdSegment writes the chunk as the tail's next segment, merging the
// tail into it when it must, and adds it to rec.
func (e *multipartEngine) holdSegment(ctx context.Context, rec *record, fence int64, r io.Reader, n int64, sum *Checksum) error {
	held := rec.TailLen + n
	until := rec.ExpiresAt.Add(e.ttl + e.grace)
	merge := e.merges(rec)
	if merge && rec.TailPart != 0 { // settle records it first
		return fmt.Errorf("session %s: a merge of the part that waits to be sent", rec.ID)
	}
	need := n
	if merge {
		need = held
	}
	release, err := e.buffers.take(ctx, need)
	if err != nil {
		return err
	}
	defer release() // the bytes then live in e.held, which has its own bound
	buf, err := e.segment(ctx, rec, merge, r, n, sum)
	if err != nil {
		return err
	}
	k := rec.TailFirst + rec.TailSegs // no saved record points here
	if err := e.putSegment(ctx, tailKey(rec.ID, k), buf, fence, time.Until(until)); err != nil {
		if errors.Is(err, metastore.ErrFenced) {
			return ErrBusy.Wrap(err, "another request took over session %s", rec.ID)
		}
		return fmt.Errorf("store held-back bytes: %w", err)
	}
	tag := rand.Text()
	e.held.Add(heldKey(rec.ID, k, tag), buf, int64(len(buf)))
	if merge {
		e.forget(rec)
		rec.TailFirst, rec.TailSegs, rec.TailTags, rec.TailUntil = k, 0, nil, until
	}
	tags := rec.TailTags
	if len(tags) != rec.TailSegs {
		tags = make([]string, rec.TailSegs) // a record from before tags: those are read from the store
	}
	if rec.TailSegs == 0 || until.Before(rec.TailUntil) {
		rec.TailUntil = until
	}
	rec.TailSegs, rec.TailLen, rec.TailTags = rec.TailSegs+1, held, append(tags[:len(tags):len(tags)], tag)
	return nil
}

// segment reads the chunk into a new segment's bytes, behind the whole
// tail when it merges, and checks the chunk against sum.
func (e *multipartEngine) segment(ctx context.Context, rec *record, merge bool, r io.Reader, n int64, sum *Checksum) ([]byte, error) {
	var prefix [][]byte
	if merge {
		var err error
		if prefix, err = e.tail(ctx, rec); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, 0, e.segLen(prefix)+n)
	for _, p := range prefix {
		buf = append(buf, p...)
	}
	start := len(buf)
	buf = buf[:start+int(n)]
	v := newVerifier(sum)
	if _, err := io.ReadFull(v.reader(r), buf[start:]); err != nil {
		return nil, shortBody(err, n)
	}
	return buf, v.check()
}

// putSegment writes a segment, which is usually new (a create costs the
// Redis store one round trip); one left by an attempt that was never
// recorded is overwritten unless a newer lock holder wrote it.
func (e *multipartEngine) putSegment(ctx context.Context, key string, b []byte, fence int64, ttl time.Duration) error {
	_, err := e.store.Put(ctx, key, b, metastore.Cond{Version: 0, Fence: fence, TTL: ttl})
	if errors.Is(err, metastore.ErrConflict) {
		_, err = e.store.Put(ctx, key, b, metastore.Cond{Version: metastore.AnyVersion, Fence: fence, TTL: ttl})
	}
	return err
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
	segs, err := e.segments(ctx, rec, rec.TailSegs)
	if err != nil {
		return nil, err
	}
	if got := e.segLen(segs); got != rec.TailLen {
		return nil, fmt.Errorf("held-back bytes of session %s: have %d, record says %d", rec.ID, got, rec.TailLen)
	}
	return segs, nil
}

// segments returns the first k held-back segments in order, from memory
// where this instance wrote them.
func (e *multipartEngine) segments(ctx context.Context, rec *record, k int) ([][]byte, error) {
	segs := make([][]byte, 0, k)
	for i := range k {
		k := rec.TailFirst + i
		if i < len(rec.TailTags) && rec.TailTags[i] != "" {
			if b, ok := e.held.Get(heldKey(rec.ID, k, rec.TailTags[i])); ok {
				segs = append(segs, b)
				continue
			}
		}
		r, err := e.store.Get(ctx, tailKey(rec.ID, k))
		if err != nil {
			return nil, fmt.Errorf("read held-back bytes of session %s: %w", rec.ID, err)
		}
		segs = append(segs, r.Value)
	}
	return segs, nil
}

// deleteSegments removes segments [from, to) of a session.
func deleteSegments(ctx context.Context, store metastore.Store, id string, from, to int) error {
	for k := from; k < to; k++ {
		if err := store.Delete(ctx, tailKey(id, k), metastore.AnyVersion); err != nil {
			return err
		}
	}
	return nil
}

// deleteTail removes the segments a record points at, the ones below them
// whose cleanup may have failed, and the one an unrecorded attempt may
// have written after them. Records from before TailFirst merged into
// segment 0..maxTailSegs-1.
func deleteTail(ctx context.Context, store metastore.Store, rec *record) error {
	to := rec.TailFirst + rec.TailSegs + 1
	if rec.TailFirst == 0 {
		to = max(to, maxTailSegs)
	}
	return deleteSegments(ctx, store, rec.ID, min(rec.TailFloor, rec.TailFirst), to)
}

func (e *multipartEngine) complete(ctx context.Context, rec *record, intend func(string) error) (bucket.ObjectInfo, error) {
	if rec.UploadID == "" {
		return e.putSmall(ctx, rec, intend)
	}
	if rec.Size == 0 && len(rec.Parts) == 0 {
		// S3 refuses to complete an upload of no parts (a concatenation of
		// empty pieces): the empty file is one Put, and the upload goes.
		if err := e.mp.AbortMultipart(ctx, rec.object(), rec.UploadID); err != nil && !errors.Is(err, bucket.ErrNotFound) {
			return bucket.ObjectInfo{}, err
		}
		return e.putSmall(ctx, rec, intend)
	}
	if rec.TailLen != 0 { // every write that ends the file sends the tail
		return bucket.ObjectInfo{}, fmt.Errorf("session %s: %d held-back bytes are in no part; the upload is not completed without them", rec.ID, rec.TailLen)
	}
	parts, err := completionParts(rec)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	want, ok := multipartETag(rec.Parts)
	if err := intend(want); err != nil { // "" when storage's ETags are not MD5s
		return bucket.ObjectInfo{}, err
	}
	obj, err := e.mp.CompleteMultipart(ctx, rec.object(), rec.UploadID, parts)
	if errors.Is(err, bucket.ErrBadDigest) {
		return obj, fmt.Errorf("storage refused to assemble session %s: the parts it holds are not the bytes the session took (%w); "+
			"nothing was published: abort the session and upload the file again", rec.ID, err)
	}
	if err != nil && !errors.Is(err, bucket.ErrNotFound) {
		return obj, err
	}
	// S3 answers a repeated completion with success, and a completion an
	// earlier attempt made (and died before recording) with NoSuchUpload;
	// either way the object may since have been replaced. Publish only the
	// object whose ETag is the one these parts make.
	if !ok {
		return obj, err // storage whose ETags are not MD5s: trust only a fresh completion
	}
	head, herr := e.blobs.Head(ctx, rec.object())
	switch {
	case herr != nil && err != nil:
		return obj, err
	case herr != nil:
		return obj, herr
	case head.Size != rec.Size || strings.Trim(head.ETag, `"`) != want:
		return obj, fmt.Errorf("the object at %s (%d bytes, ETag %s) is not this upload's (%d bytes, ETag %s): it was replaced meanwhile: %w",
			rec.object(), head.Size, head.ETag, rec.Size, want, bucket.ErrNotFound)
	}
	return head, nil
}

// putSmall writes a file smaller than one part from its held-back bytes,
// with their MD5 so storage refuses anything but exactly these bytes (and,
// storage being S3, the MD5 is the ETag the object gets). Repeating it
// after a crash writes the same bytes again.
func (e *multipartEngine) putSmall(ctx context.Context, rec *record, intend func(string) error) (bucket.ObjectInfo, error) {
	tail, err := e.tail(ctx, rec)
	if err != nil {
		return bucket.ObjectInfo{}, err
	}
	h := md5.New()
	for _, seg := range tail {
		h.Write(seg)
	}
	sum := h.Sum(nil)
	if err := intend(hex.EncodeToString(sum)); err != nil {
		return bucket.ObjectInfo{}, err
	}
	return e.blobs.Put(ctx, rec.object(), segReader(tail), rec.TailLen, bucket.PutOptions{ContentType: rec.MimeType,
		Checksum: &bucket.Checksum{Algo: "md5", Sum: sum}, CRC32C: rec.CRC32C})
}

// multipartETag is the ETag S3 gives the object the parts complete into:
// the MD5 of the parts' binary MD5s, then "-" and their count. ok is false
// when a part's ETag is not an MD5 (storage that computes ETags otherwise).
func multipartETag(parts []bucket.Part) (string, bool) {
	h := md5.New()
	for _, p := range parts {
		b, err := hex.DecodeString(strings.Trim(p.ETag, `"`))
		if err != nil || len(b) != md5.Size {
			return "", false
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(parts)), true
}

// release drops the held-back segments (a small file's whole body, or the
// leftovers of an unrecorded attempt) from memory and the store.
func (e *multipartEngine) release(ctx context.Context, rec *record) error {
	e.jobs.stop(ctx, rec.ID)
	e.forget(rec)
	return deleteTail(ctx, e.store, rec)
}

// discard stops this instance's uploads of the session's parts first, so
// none of them lands after the abort.
func (e *multipartEngine) discard(ctx context.Context, ref purgeRef) error {
	e.jobs.stop(ctx, ref.ID)
	if ref.UploadID == "" {
		return nil
	}
	return e.mp.AbortMultipart(ctx, ref.Object, ref.UploadID)
}
