package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferryhq/ferry/registry"
)

// Chunk is one append.
type Chunk struct {
	Offset int64 // where the client believes the session is; -1: don't check
	Total  int64 // the size the client believes in (Content-Range); -1: not stated
	Len    int64 // bytes in Body; must be known
	Body   io.Reader
	// Checksum, when set, must match Body's bytes or nothing is kept.
	Checksum *Checksum
	// Expect, when set, declares digests of the whole file (a Repr-Digest
	// sent with an append), as Spec.Checksums does at create: completion
	// publishes nothing that does not match.
	Expect *registry.Checksums
}

// Append adds the chunk at the session's offset. When the last byte lands
// the file is completed and returned. An empty append on a session whose
// bytes are all in retries a completion that failed half-way, and on a
// completed session returns the file again.
//
// Only reading the chunk is tied to the request: once its bytes are whole,
// recording them and completing the file run to the end even if the client
// hangs up, bounded by the lease and CommitTimeout.
func (s *Service) Append(ctx context.Context, id string, c Chunk) (Info, *registry.File, error) {
	if c.Len < 0 {
		return Info{}, nil, ErrLengthRequired.New("the chunk's length is unknown: send Content-Length (or Content-Range)")
	}
	return s.appendLocked(ctx, id, c.Offset, c.Total, func(a *appender) error {
		if err := a.expect(c.Expect); err != nil {
			return err
		}
		return a.write(c.Body, c.Len, c.Checksum)
	})
}

// AppendStream appends a body of unknown length (chunked transfer
// encoding) in pooled 8 MiB pieces under one lease, checking the client's
// offset first. A body that runs past the session's size is refused with
// nothing kept. If the body breaks off, what arrived in whole pieces stays
// appended; the client asks for the offset, as after any dropped request.
func (s *Service) AppendStream(ctx context.Context, id string, offset, total int64, r io.Reader) (Info, *registry.File, error) {
	return s.appendLocked(ctx, id, offset, total, func(a *appender) error {
		release, err := s.buffers.take(a.read, ingestChunk)
		if err != nil {
			return err
		}
		defer release()
		bp := ingestBufs.Get().(*[]byte)
		defer ingestBufs.Put(bp)
		for first := true; ; first = false {
			n, rerr := io.ReadFull(r, *bp)
			if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				a.keep = true // the whole pieces before stay
				return ErrShortBody.Wrap(rerr, "the body broke off; ask the session for its offset and resume from there")
			}
			if n > 0 || first {
				if err := a.write(bytes.NewReader((*bp)[:n]), int64(n), nil); err != nil {
					return err
				}
			}
			if rerr != nil {
				return nil
			}
		}
	})
}

// appender carries one locked append: the record as it changes in memory,
// the version and fence it is saved with, and the contexts of the two
// phases (reading the body: cut by the client; the rest: only by the lease).
type appender struct {
	s       *Service
	eng     engine
	rec     *record
	ver     int64
	fence   int64
	read    context.Context
	n       int64 // bytes appended in memory, not yet saved
	keep    bool  // save what was appended even though the body failed
	claimed bool
	first   int  // rec.TailFirst when loaded: segments below it go after the save
	probe   bool // only count the bytes (a completed session)
}

// write appends n bytes of r to the record in memory.
func (a *appender) write(r io.Reader, n int64, sum *Checksum) error {
	rec := a.rec
	if a.probe {
		a.n += n
		if n > 0 {
			return errProbed // no need to read on
		}
		return nil
	}
	if rec.Offset+n > rec.Size {
		return ErrPastSize.New("%d bytes at offset %d run past the declared size %d; send at most %d bytes", n, rec.Offset-a.n, rec.Size, rec.Size-rec.Offset+a.n).
			With("offset", rec.Offset-a.n)
	}
	if n == 0 && rec.Size != 0 {
		return nil
	}
	rec.ExpiresAt = a.s.now().UTC().Add(a.s.cfg.TTL) // before write: the tail's lifetime follows it
	if err := a.eng.prepare(a.read, rec, n); err != nil {
		return err
	}
	// Claim the record with our fence before storage the fence cannot
	// guard: from here on any older holder's write is rejected.
	if !a.claimed && a.eng.needsClaim(rec, n) {
		if err := a.s.startStorage(a.read, a.eng, rec, n); err != nil {
			return err
		}
		v, err := a.s.save(a.read, rec, a.ver, a.fence)
		if err != nil {
			return err
		}
		a.ver, a.claimed = v, true
	}
	digests, err := newRunningDigests(rec)
	if err != nil {
		return err
	}
	if err := a.eng.write(a.read, rec, a.fence, digests.reader(r), n, sum); err != nil {
		return storageErr(rec, err)
	}
	if err := digests.end(rec, n); err != nil {
		return err
	}
	rec.Offset += n
	a.n += n
	return nil
}

// appendLocked loads the session under its lease, checks the client's
// offset, runs body (which appends in memory through the appender), then
// saves the record once and completes the file if its last byte is in.
func (s *Service) appendLocked(ctx context.Context, id string, expect, total int64, body func(*appender) error) (Info, *registry.File, error) {
	start := time.Now()
	var (
		out   Info
		file  *registry.File
		n     int64
		proto = ProtocolNative // the record's, once loaded
	)
	err := s.withLock(ctx, id, func(lctx context.Context, fence int64) error {
		rec, ver, err := s.load(lctx, id)
		if err != nil {
			return err
		}
		proto = protocolLabel(rec.Protocol)
		switch {
		case rec.State == stateCompleted:
			return s.completedAgain(lctx, rec, body, &out, &file)
		case rec.Parallel:
			return s.appendToParts(lctx, rec, ver, fence, body, &out, &file)
		}
		if err := rec.accepts(expect, total); err != nil {
			return err
		}
		n, err = s.appendBody(ctx, lctx, rec, ver, fence, body, &out, &file)
		return err
	})
	s.m.appendDone(proto, n, start, err)
	return out, file, err
}

// appendBody runs body against a sequential session under its lease
// (lctx), recording the bytes it wrote even when it failed after writing
// some, and completes the session when they were its last. It returns how
// many bytes it recorded.
func (s *Service) appendBody(ctx, lctx context.Context, rec *record, ver, fence int64, body func(*appender) error, out *Info, file **registry.File) (int64, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return 0, err
	}
	// Reading the body ends with the request or the lease.
	read, cancel := context.WithCancelCause(lctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	defer stop()
	a := &appender{s: s, eng: eng, rec: rec, ver: ver, fence: fence, read: read, first: rec.TailFirst}
	berr := body(a)
	if berr != nil && !(a.keep && a.n > 0) {
		return 0, berr
	}
	// The bytes are whole: record them and complete, whatever the client does.
	cctx, cancelCommit := context.WithTimeout(lctx, s.cfg.CommitTimeout)
	defer cancelCommit()
	if a.n > 0 || rec.Size == 0 {
		if err := s.saveAppended(cctx, a); err != nil {
			return 0, err
		}
	}
	if berr != nil {
		return a.n, berr
	}
	if rec.Offset == rec.Size && !rec.Open {
		f, err := s.finish(cctx, rec, a.ver, fence)
		if err != nil {
			return a.n, err
		}
		*file = &f
	}
	*out = rec.info()
	return a.n, nil
}

var errProbed = errors.New("session: the append has bytes")

// startStorage allocates the storage a write of n bytes needs, filing it for
// the purger before any byte goes there. The entry goes at the create's
// member, so it replaces the create's entry unless the purger has refiled
// that one (then the two converge at the next refile). If the claim that
// follows fails, the entry still names the storage: the purger refiles it
// from the record, and the orphan sweep aborts what no record kept.
func (s *Service) startStorage(ctx context.Context, eng engine, rec *record, n int64) error {
	started, err := eng.start(ctx, rec, n)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	if !started {
		return nil
	}
	return s.fileExpiry(ctx, eng, rec, rec.CreatedAt.Add(s.cfg.TTL))
}

// fileExpiry writes the purger's entry for rec's storage, due at at; if that
// fails it frees the storage, which nothing else would find.
func (s *Service) fileExpiry(ctx context.Context, eng engine, rec *record, at time.Time) error {
	ref, _ := json.Marshal(purgeEntry{purgeRef: rec.ref()})
	if err := s.store.IndexPut(ctx, expiryIndex, expiryMember(at, rec.ID), ref); err != nil {
		_ = eng.discard(context.WithoutCancel(ctx), rec.ref())
		return fmt.Errorf("index session: %w", err)
	}
	return nil
}

// saveAppended saves what a wrote, and drops the tail segments the save made
// unreferenced.
func (s *Service) saveAppended(ctx context.Context, a *appender) error {
	rec := a.rec
	// Segments below the loaded record's first are unreferenced: an
	// earlier cleanup of them may have failed, so the floor moves up
	// only once they are gone.
	if rec.TailFloor < a.first {
		if err := deleteSegments(ctx, s.store, rec.ID, rec.TailFloor, a.first); err != nil {
			s.log.WarnContext(ctx, "tail_cleanup_failed", "session", rec.ID, "err", err)
		} else {
			rec.TailFloor = a.first
		}
	}
	var err error
	if a.ver, err = s.save(ctx, rec, a.ver, a.fence); err != nil {
		return err
	}
	a.eng.afterSave(rec)
	if rec.TailFirst > a.first { // best effort now; the next save or the release retries
		if err := deleteSegments(ctx, s.store, rec.ID, a.first, rec.TailFirst); err != nil {
			s.log.WarnContext(ctx, "tail_cleanup_failed", "session", rec.ID, "err", err)
		}
	}
	return nil
}

// completedAgain answers an append to a completed session: an empty one
// gets the file again (its last answer may have been lost), anything
// else a conflict.
func (s *Service) completedAgain(ctx context.Context, rec *record, body func(*appender) error, out *Info, file **registry.File) error {
	probe := &appender{probe: true, read: ctx}
	if err := body(probe); err != nil || probe.n > 0 {
		return ErrCompleted.New("session %s already completed %s/%s; start a new session to replace it", rec.ID, rec.Bucket, rec.Key).With("offset", rec.Offset)
	}
	f, err := s.files.Get(ctx, rec.Bucket, rec.Key)
	if err != nil {
		return err
	}
	*out, *file = rec.info(), &f
	return nil
}
