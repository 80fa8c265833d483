package session

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
	"golang.org/x/sync/errgroup"
)

// Concatenation: a session made of the bytes of other sessions, its
// pieces, each uploaded on its own (tus's concatenation extension, several
// pieces at once). A piece is a Partial session: once whole it stays in
// Ferry's own storage, unpublished. Concat joins the pieces in storage:
// on S3 each piece of at least 5 MiB becomes parts of the new upload by
// UploadPartCopy, one request per 5 GiB, no byte passing through ferryd;
// pieces under 5 MiB (and pieces in another location than the file) are
// read and sent again as data, topped up to S3's 5 MiB minimum from the
// next piece, so at most 5 MiB per small piece goes through ferryd. On a
// filesystem the pieces are copied into the staging file.

// piece is a whole Partial session's object.
type piece struct {
	blobs  bucket.Composer
	object string
	size   int64
	local  bool // in the same location as the file made of it
	crc32c *uint32
}

// Concat completes session id, created for the pieces' total size, from
// the bytes of the whole Partial sessions partials, in order, and
// publishes it; the pieces are then removed. Concat on a session it
// completed returns its file again. Unlike an append it stops when ctx
// is cancelled: the caller decides whether a hang-up should stop it.
func (s *Service) Concat(ctx context.Context, id string, partials []string) (Info, registry.File, error) {
	var (
		out  Info
		file registry.File
	)
	err := s.lease(ctx, id, metastore.LockOptions{}, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		switch {
		case err != nil:
			return err
		case rec.State == stateCompleted:
			out = rec.info()
			file, err = s.files.Get(ctx, rec.Bucket, rec.Key)
			return err
		case rec.Offset > 0 || rec.Parallel || rec.Partial || rec.Open:
			return ErrUploadMode.New("session %s already takes bytes another way; concatenate into a new session", id)
		}
		if err := rec.outOfOrder(); err != nil {
			return err
		}
		pieces, err := s.pieces(ctx, rec, partials)
		if err != nil {
			return err
		}
		rec.Pieces = partials
		if file, err = s.join(ctx, rec, ver, fence, pieces); err != nil {
			return err
		}
		out = rec.info()
		s.dropPieces(ctx, partials)
		return nil
	})
	return out, file, err
}

// OpenPiece reads the bytes of a whole piece (a Partial session).
func (s *Service) OpenPiece(ctx context.Context, id string) (io.ReadCloser, error) {
	p, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.Partial || p.State != stateCompleted {
		return nil, errcode.ErrConflict.New("session %s is not a whole piece", id)
	}
	blobs, err := s.places.Backend(p.Location)
	if err != nil {
		return nil, err
	}
	return segment{p: piece{blobs: blobs, object: p.object(), size: p.Size}, n: p.Size}.open(ctx)
}

// pieces loads the partial sessions, which must be whole pieces adding up
// to rec's size.
func (s *Service) pieces(ctx context.Context, rec *record, partials []string) ([]piece, error) {
	if len(partials) == 0 {
		return nil, errcode.ErrInvalidRequest.New("a concatenation needs at least one piece")
	}
	var total int64
	out := make([]piece, len(partials))
	for i, pid := range partials {
		p, _, err := s.load(ctx, pid)
		switch {
		case err != nil:
			return nil, err
		case !p.Partial:
			return nil, errcode.ErrInvalidRequest.New("session %s is not a piece: create it as a partial upload", pid)
		case p.State != stateCompleted:
			return nil, errcode.ErrConflict.New("piece %s holds %d of its %d bytes: finish it first", pid, p.Offset, p.Size)
		}
		blobs, err := s.places.Backend(p.Location)
		if err != nil {
			return nil, err
		}
		out[i] = piece{blobs: blobs, object: p.object(), size: p.Size, local: p.Location == rec.Location, crc32c: p.CRC32C}
		total += p.Size
	}
	if total != rec.Size {
		return nil, ErrInvalidSize.New("the pieces hold %d bytes but session %s was created for %d", total, rec.ID, rec.Size)
	}
	return out, nil
}

// join fills rec's storage with the pieces and completes it, with the
// storage filed for the purger and the record claimed before any byte.
func (s *Service) join(ctx context.Context, rec *record, ver, fence int64, pieces []piece) (registry.File, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return registry.File{}, err
	}
	started, err := eng.startParts(ctx, rec)
	if err != nil {
		return registry.File{}, fmt.Errorf("start concatenation: %w", storageErr(rec, err))
	}
	if started {
		if err := s.fileExpiry(ctx, eng, rec, rec.CreatedAt.Add(s.cfg.TTL)); err != nil {
			return registry.File{}, err
		}
	}
	if ver, err = s.save(ctx, rec, ver, fence); err != nil {
		return registry.File{}, err
	}
	if err := eng.concat(ctx, rec, pieces); err != nil {
		return registry.File{}, storageErr(rec, err)
	}
	rec.Offset, rec.CRC32C = rec.Size, piecesCRC(pieces)
	return s.finish(ctx, rec, ver, fence)
}

// piecesCRC is the CRC32C of the pieces in order, from theirs; nil if a
// piece has none.
func piecesCRC(pieces []piece) *uint32 {
	var crc uint32
	for _, p := range pieces {
		if p.crc32c == nil {
			return nil
		}
		crc = crc32c.Combine(crc, *p.crc32c, p.size)
	}
	return &crc
}

// dropPieces removes pieces a file was made of; what fails here the
// purger frees when they expire.
func (s *Service) dropPieces(ctx context.Context, partials []string) {
	for _, pid := range partials {
		err := s.withLock(ctx, pid, func(ctx context.Context, _ int64) error {
			p, ver, err := s.load(ctx, pid)
			if errcode.Is(err, ErrNotFound) {
				return nil
			}
			if err != nil && !errcode.Is(err, ErrExpired) {
				return err
			}
			return s.remove(ctx, p, ver)
		})
		if err != nil {
			s.log.WarnContext(ctx, "piece_cleanup_failed", "session", pid, "err", err)
		}
	}
}

// segment is bytes [off, off+n) of a piece.
type segment struct {
	p      piece
	off, n int64
}

// open reads the segment.
func (g segment) open(ctx context.Context) (io.ReadCloser, error) {
	rc, _, err := g.p.blobs.Backend.Get(ctx, g.p.object, &bucket.Range{Offset: g.off, Length: g.n})
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, fmt.Errorf("piece %s is gone from storage: %w", g.p.object, err)
	}
	return rc, err
}

// segmentsReader reads segments one after the other, opening each when
// its turn comes.
type segmentsReader struct {
	ctx  context.Context
	segs []segment
	cur  io.ReadCloser
}

func (r *segmentsReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.segs) == 0 {
				return 0, io.EOF
			}
			rc, err := r.segs[0].open(r.ctx)
			if err != nil {
				return 0, err
			}
			r.cur, r.segs = rc, r.segs[1:]
		}
		n, err := r.cur.Read(p)
		if err == io.EOF {
			r.cur.Close()
			r.cur, err = nil, nil
			if n == 0 {
				continue
			}
		}
		return n, err
	}
}

func (r *segmentsReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

// concat writes the pieces into the staging file at their offsets.
func (e *stagingEngine) concat(ctx context.Context, rec *record, pieces []piece) error {
	var off int64
	for _, p := range pieces {
		r := &segmentsReader{ctx: ctx, segs: []segment{{p: p, n: p.size}}}
		err := e.blobs.StageWriteAt(ctx, rec.ID, off, r, p.size)
		r.Close()
		if err != nil {
			return err
		}
		off += p.size
	}
	return nil
}

// joinPart is one part of a concatenation: segments sent as data, or one
// segment copied in storage.
type joinPart struct {
	segs   []segment
	n      int64
	copied bool
}

// planParts cuts the pieces into parts: runs of a piece of at least
// MinPartSize are copied where copy allows (at most MaxPartSize each), the
// rest is sent as data, gathered to MinPartSize from the next piece; only
// the last part is smaller.
func planParts(pieces []piece, copy bool) []joinPart {
	var (
		parts   []joinPart
		pending joinPart
	)
	flush := func() {
		if pending.n > 0 {
			parts, pending = append(parts, pending), joinPart{}
		}
	}
	for i, p := range pieces {
		var off int64
		if pending.n > 0 { // top the gathered bytes up to a whole part
			take := min(bucket.MinPartSize-pending.n, p.size)
			pending.segs, pending.n, off = append(pending.segs, segment{p, 0, take}), pending.n+take, take
			if pending.n == bucket.MinPartSize {
				flush()
			}
		}
		rest := p.size - off
		if rest > 0 && rest < bucket.MinPartSize && i < len(pieces)-1 {
			pending = joinPart{segs: []segment{{p, off, rest}}, n: rest} // waits for the next piece
			continue
		}
		for _, n := range splitRun(rest) {
			if n > 0 {
				parts = append(parts, joinPart{segs: []segment{{p, off, n}}, n: n, copied: copy && p.local})
				off += n
			}
		}
	}
	flush()
	return parts
}

// joinAtOnce bounds the parts of one concatenation in flight: copies run
// inside storage, so a few at once cut the wait for a large file.
const joinAtOnce = 4

// concat makes the pieces the upload's parts (planParts), a few at once.
func (e *multipartEngine) concat(ctx context.Context, rec *record, pieces []piece) error {
	plan := planParts(pieces, e.copier != nil)
	if len(plan) > bucket.MaxParts {
		return fmt.Errorf("session %s would need %d parts, more than %d", rec.ID, len(plan), bucket.MaxParts)
	}
	parts := make([]bucket.Part, len(plan))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(joinAtOnce)
	for i, jp := range plan {
		g.Go(func() error {
			var err error
			if jp.copied {
				sg := jp.segs[0]
				parts[i], err = e.copier.CopyPart(gctx, rec.object(), rec.UploadID, i+1, sg.p.object, bucket.Range{Offset: sg.off, Length: sg.n})
				return err
			}
			r := &segmentsReader{ctx: gctx, segs: jp.segs}
			defer r.Close()
			parts[i], err = e.mp.UploadPart(gctx, rec.object(), rec.UploadID, i+1, r, jp.n, nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	rec.Parts = parts
	return nil
}
