package session

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/ferryhq/ferry/bucket"
)

// engine is how a session's bytes reach storage.
type engine interface {
	// begin prepares a new session's record. It writes no storage, so a
	// create costs only the metadata store (and, on a filesystem, a stat
	// that refuses a key that could never be published).
	begin(ctx context.Context, rec *record) error
	// start allocates the storage that writing n bytes at rec.Offset needs
	// and does not have yet, recording it in rec, and reports whether it
	// did (rec's purgeRef changed: the caller files it before any byte
	// goes there).
	start(ctx context.Context, rec *record, n int64) (bool, error)
	// write stores exactly n bytes of r at rec.Offset, updating rec's
	// engine state (not Offset) only when it succeeds. fence guards any
	// metadata it writes. With sum, bytes that do not match are refused
	// (ErrChecksumMismatch) and nothing of them counts.
	write(ctx context.Context, rec *record, fence int64, r io.Reader, n int64, sum *Checksum) error
	// complete makes the whole upload the object at rec.object(). It must
	// be safe to call again after a crash half-way through, and must never
	// report an object it cannot identify as this upload's. Before the
	// object becomes visible it calls intend with the ETag it will have
	// (registry.Commit).
	complete(ctx context.Context, rec *record, intend func(etag string) error) (bucket.ObjectInfo, error)
	// discard frees what an unfinished session holds. Idempotent.
	discard(ctx context.Context, ref purgeRef) error
	// release frees what complete kept so that a retry could recognise its
	// object, once the completion is recorded (or the session is removed).
	release(ctx context.Context, rec *record) error
	// startParts allocates what parallel parts are written into, if rec
	// has nothing yet, recording it in rec, and reports whether it did (as
	// start).
	startParts(ctx context.Context, rec *record) (bool, error)
	// writePart stores part n of a parallel session: exactly size bytes of
	// r, checked against sum when set. complete then takes rec.Parts.
	writePart(ctx context.Context, rec *record, n int, r io.Reader, size int64, sum *Checksum) (bucket.Part, error)
	// concat fills what startParts allocated with the pieces' bytes, in
	// order; complete then makes the object.
	concat(ctx context.Context, rec *record, pieces []piece) error
	// needsClaim reports whether writing n bytes now touches storage that
	// the fence cannot guard, so the record must be claimed first.
	needsClaim(rec *record, n int64) bool
	// prepare takes into rec, in memory, what this instance has stored
	// for it in the background since it was saved (multipart: a part
	// written behind), before an append of n bytes asks needsClaim. It
	// waits for that work only if the append cannot go on without it. It
	// writes nothing.
	prepare(ctx context.Context, rec *record, n int64) error
	// afterSave starts, once rec is saved, the background work its engine
	// state leaves to this instance (multipart: uploading the part that
	// waits to be sent). It does not block.
	afterSave(rec *record)
}

// stagingEngine writes at the offset into a staging file and renames it
// into place on completion. Bytes past the recorded offset are never read:
// a refused or broken chunk is simply overwritten by its resend.
type stagingEngine struct{ blobs bucket.Staging }

func (e *stagingEngine) begin(ctx context.Context, rec *record) error {
	return e.blobs.StageCheck(ctx, rec.object())
}

func (e *stagingEngine) start(context.Context, *record, int64) (bool, error) { return false, nil }

func (e *stagingEngine) needsClaim(*record, int64) bool { return true }

func (e *stagingEngine) prepare(context.Context, *record, int64) error { return nil }

func (e *stagingEngine) afterSave(*record) {}

// startParts creates the staging file, empty: parts only write into it.
func (e *stagingEngine) startParts(ctx context.Context, rec *record) (bool, error) {
	return false, e.blobs.StageWrite(ctx, rec.ID, 0, bytes.NewReader(nil), 0)
}

func (e *stagingEngine) writePart(ctx context.Context, rec *record, n int, r io.Reader, size int64, sum *Checksum) (bucket.Part, error) {
	v := newVerifier(sum)
	off := int64(n-1) * rec.PartSize
	if err := shortBody(e.blobs.StageWriteAt(ctx, rec.ID, off, v.reader(r), size), size); err != nil {
		return bucket.Part{}, err
	}
	return bucket.Part{Number: n, Size: size}, v.check()
}

func (e *stagingEngine) write(ctx context.Context, rec *record, _ int64, r io.Reader, n int64, sum *Checksum) error {
	v := newVerifier(sum)
	if err := shortBody(e.blobs.StageWrite(ctx, rec.ID, rec.Offset, v.reader(r), n), n); err != nil {
		return err
	}
	return v.check()
}

func (e *stagingEngine) complete(ctx context.Context, rec *record, intend func(string) error) (bucket.ObjectInfo, error) {
	return e.blobs.StageCommit(ctx, rec.ID, rec.object(), rec.Size, bucket.PutOptions{ContentType: rec.MimeType, Intend: intend})
}

func (e *stagingEngine) discard(ctx context.Context, ref purgeRef) error {
	return e.blobs.StageDiscard(ctx, ref.ID)
}

// release frees the commit receipt StageCommit kept.
func (e *stagingEngine) release(ctx context.Context, rec *record) error {
	return e.blobs.StageDiscard(ctx, rec.ID)
}

// shortBody turns a body that ended early into a client error: the client
// dropped the connection or sent less than it declared.
func shortBody(err error, n int64) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return ErrShortBody.Wrap(err, "the body ended before its declared %d bytes; nothing was stored, resend the chunk", n)
	}
	return err
}
