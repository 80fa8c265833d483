package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
)

// Parallel parts. A session's bytes may arrive as parts instead of in
// order: part n (from 1) is the PartSize bytes at (n-1)*PartSize, the last
// one shorter. Parts land in any order, from any instance, several at once:
// each is written under its own lease and recorded as one member of the
// session's parts index, so no two parts contend for the record. The
// first part switches the session to parts (Parallel); from then on it
// takes no sequential appends, and a session with bytes appended in order
// takes no parts. When the last missing part lands, the session completes
// as any other: the parts index becomes the record's parts, under the
// session's lease.
//
// A part is acknowledged once it is durable and recorded. Putting it again
// changes nothing: the same bytes (by size and CRC32C) are acknowledged
// again without being written, other bytes are refused (PART_CONFLICT).

// DefaultPartSize is the parallel part size when the client names none:
// 8 MiB, as aws s3 cp's, or more for files that need bigger parts.
const DefaultPartSize int64 = 8 << 20

// partsStartWait is how long a part waits for the session's lease while
// another part starts or completes the session: far longer than either
// takes, so different parts do not see each other as busy.
const partsStartWait = 30 * time.Second

// touchEvery spaces the saves that slide a parallel session's expiry: a
// part slides it only once it is this stale, so parts rarely write the
// record.
const touchEvery = time.Minute

// partEntry is a landed part, as its parts index member holds it.
type partEntry struct {
	Size   int64  `json:"size"`
	ETag   string `json:"etag,omitempty"` // S3's; empty on a staging file
	CRC32C uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// partSizeFor checks the part size a client asks for (0: the default)
// against S3's limits for a file of size bytes.
func partSizeFor(size, asked int64) (int64, error) {
	if _, err := bucket.PartSizeFor(size); err != nil {
		return 0, ErrTooLarge.New("%v", err)
	}
	least := (size + bucket.MaxParts - 1) / bucket.MaxParts // to fit in MaxParts
	switch {
	case asked == 0:
		const mib = 1 << 20
		return max(DefaultPartSize, (least+mib-1)/mib*mib), nil
	case asked < 0 || asked > bucket.MaxPartSize:
		return 0, ErrInvalidPartSize.New("part_size %d is outside 1..%d (5 GiB, S3's largest part)", asked, bucket.MaxPartSize)
	case asked < bucket.MinPartSize && asked < size:
		return 0, ErrInvalidPartSize.New("part_size %d is below S3's 5 MiB minimum for every part but the last: give at least %d, or the file's size for one part",
			asked, bucket.MinPartSize)
	case asked < least:
		return 0, ErrInvalidPartSize.New("part_size %d would split this %d-byte file into more than %d parts: give at least %d",
			asked, size, bucket.MaxParts, least)
	}
	return asked, nil
}

func (r *record) partCount() int {
	if r.PartSize <= 0 || r.Open {
		return 0
	}
	return int((r.Size + r.PartSize - 1) / r.PartSize)
}

// partLen is the length of part n.
func (r *record) partLen(n int) int64 {
	return min(r.PartSize, r.Size-int64(n-1)*r.PartSize)
}

// acceptsPart checks a part's number and length before any byte is read.
func (r *record) acceptsPart(n int, length int64) error {
	count := r.partCount()
	switch {
	case r.Open:
		return ErrUploadMode.New("session %s has no fixed size yet, so it cannot take parts; append in order", r.ID)
	case n < 1 || n > count:
		return ErrInvalidPart.New("part %d is not a part of this file: its %d bytes are parts 1..%d of %d bytes", n, r.Size, count, r.PartSize).
			With("part_count", count)
	case length != r.partLen(n):
		return ErrInvalidPart.New("part %d is %d bytes, not %d: every part but the last is part_size (%d) bytes", n, r.partLen(n), length, r.PartSize).
			With("part_size", r.PartSize)
	}
	return nil
}

// PartInfo is the answer to a part: the session, and the part as recorded.
type PartInfo struct {
	Info
	Number   int
	Size     int64
	CRC32C   uint32
	Received int // parts in, this one included
}

// PutPart stores part n of the session from c (Offset and Total unused).
// When it is the last missing part, the file is completed and returned.
// Reading the part is tied to the request; recording it is not.
func (s *Service) PutPart(ctx context.Context, id string, n int, c Chunk) (PartInfo, *registry.File, error) {
	start := time.Now()
	if c.Len < 0 {
		return PartInfo{}, nil, ErrLengthRequired.New("a part's length must be known: send Content-Length")
	}
	rec, err := s.partsSession(ctx, id, n, c.Len)
	if err != nil {
		return PartInfo{}, nil, err
	}
	out, wrote, err := s.lockedPart(ctx, rec, n, c)
	var file *registry.File
	if err == nil && out.Received == out.PartCount {
		file, err = s.completeParts(ctx, id, &out.Info)
	}
	s.m.appendDone(protocolLabel(rec.Protocol), wrote, start, err)
	return out, file, err
}

// partsSession loads the session for part n and starts its parts if this
// is the first.
func (s *Service) partsSession(ctx context.Context, id string, n int, length int64) (*record, error) {
	rec, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.State == stateCompleted {
		return nil, ErrCompleted.New("session %s already completed %s/%s; start a new session to replace it", rec.ID, rec.Bucket, rec.Key)
	}
	if err := rec.acceptsPart(n, length); err != nil {
		return nil, err
	}
	if rec.Parallel {
		return rec, nil
	}
	return s.startParts(ctx, id)
}

// startParts switches a session with no bytes yet to parts, allocating
// what they are written into (the multipart upload, the staging file)
// and filing it for the purger first, under the session's lease.
func (s *Service) startParts(ctx context.Context, id string) (*record, error) {
	var out *record
	err := s.lease(ctx, id, metastore.LockOptions{Wait: partsStartWait, Detach: true}, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		switch {
		case err != nil:
			return err
		case rec.Parallel:
			out = rec
			return nil
		case rec.State == stateCompleted:
			return ErrCompleted.New("session %s already completed %s/%s", rec.ID, rec.Bucket, rec.Key)
		case rec.Offset > 0:
			return ErrUploadMode.New("session %s holds %d bytes appended in order, so it cannot take parts: go on appending at offset %d, or abort it and start a new session for parts",
				id, rec.Offset, rec.Offset).With("offset", rec.Offset)
		}
		if err := rec.outOfOrder(); err != nil {
			return err
		}
		eng, err := s.engine(rec.Location)
		if err != nil {
			return err
		}
		started, err := eng.startParts(ctx, rec)
		if err != nil {
			return fmt.Errorf("start parts: %w", storageErr(rec, err))
		}
		if started {
			if err := s.fileExpiry(ctx, eng, rec, rec.CreatedAt.Add(s.cfg.TTL)); err != nil {
				return err
			}
		}
		rec.Parallel = true
		if _, err := s.save(ctx, rec, ver, fence); err != nil {
			return err
		}
		out = rec
		return nil
	})
	return out, err
}

// lockedPart writes part n under its own lease, or, if it landed before,
// checks that c carries the same bytes. wrote is the bytes written.
func (s *Service) lockedPart(ctx context.Context, rec *record, n int, c Chunk) (out PartInfo, wrote int64, err error) {
	err = metastore.WithLock(ctx, s.store, partLockName(rec.ID, n), metastore.LockOptions{TTL: s.cfg.LockTTL, Detach: true}, func(h metastore.Held) error {
		// Reading the body ends with the request or the lease.
		read, cancel := context.WithCancelCause(h.Ctx)
		defer cancel(nil)
		stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
		defer stop()
		entry, found, err := s.partEntry(h.Ctx, rec.ID, n)
		if err != nil {
			return err
		}
		if found {
			err = samePart(n, entry, c)
		} else if entry, err = s.writePart(read, h.Ctx, rec, n, c); err != nil {
			err = s.completedMeanwhile(h.Ctx, rec, err)
		} else {
			wrote = c.Len
		}
		if err != nil {
			return err
		}
		out, err = s.partRecorded(h.Ctx, rec, n, entry)
		return err
	})
	if errors.Is(err, metastore.ErrLocked) {
		return out, 0, ErrPartBusy.New("another request is sending part %d of session %s; wait for it, then check the session's parts", n, rec.ID)
	}
	return out, wrote, err
}

// completedMeanwhile: a part resent after its answer was lost can find its
// entry gone and the staging file or upload already assembled, because
// the session completed in between (its completion drops the parts
// index): the write fails (storage lost, or S3 cutting the body of an
// UploadPart to a completed upload). That is SESSION_COMPLETED, which a
// client answers by asking for the file. It costs a read only on the
// error path.
func (s *Service) completedMeanwhile(ctx context.Context, rec *record, err error) error {
	if cur, _, lerr := s.load(ctx, rec.ID); lerr == nil && cur.State == stateCompleted {
		return ErrCompleted.New("session %s completed %s/%s while this part was sent again", rec.ID, rec.Bucket, rec.Key)
	}
	return err
}

func (s *Service) partEntry(ctx context.Context, id string, n int) (partEntry, bool, error) {
	b, err := s.store.IndexGet(ctx, partsIndex(id), partMember(n))
	if errors.Is(err, metastore.ErrNotFound) {
		return partEntry{}, false, nil
	}
	if err != nil {
		return partEntry{}, false, err
	}
	var e partEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return partEntry{}, false, fmt.Errorf("part %d of session %s: %w", n, id, err)
	}
	return e, true, nil
}

// writePart streams the part to storage (read: the request's part of the
// work) and records it (ctx: the lease's).
func (s *Service) writePart(read, ctx context.Context, rec *record, n int, c Chunk) (partEntry, error) {
	eng, err := s.engine(rec.Location)
	if err != nil {
		return partEntry{}, err
	}
	crc := crc32.New(castagnoli)
	p, err := eng.writePart(read, rec, n, io.TeeReader(c.Body, crc), c.Len, c.Checksum)
	if err != nil {
		return partEntry{}, storageErr(rec, err)
	}
	e := partEntry{Size: c.Len, ETag: p.ETag, CRC32C: crc.Sum32()}
	b, _ := json.Marshal(e)
	if err := s.store.IndexPut(ctx, partsIndex(rec.ID), partMember(n), b); err != nil {
		return partEntry{}, fmt.Errorf("record part %d: %w", n, err)
	}
	return e, nil
}

// samePart reads a part sent again and answers whether it is the one
// recorded: nothing is written either way.
func samePart(n int, e partEntry, c Chunk) error {
	v := newVerifier(c.Checksum)
	crc := crc32.New(castagnoli)
	got, err := io.Copy(crc, v.reader(io.LimitReader(c.Body, c.Len)))
	if err != nil || got < c.Len {
		return shortBody(errors.Join(err, io.ErrUnexpectedEOF), c.Len)
	}
	if err := v.check(); err != nil {
		return err
	}
	if crc.Sum32() != e.CRC32C {
		return ErrPartConflict.New("part %d was received before with other bytes (CRC32C %08x, now %08x); a part that landed cannot change: abort the session to start over",
			n, e.CRC32C, crc.Sum32())
	}
	return nil
}

// partRecorded counts the parts in, after part n's entry was put. A
// session removed meanwhile (aborted, purged) dropped its index first, so
// the entry just put is dropped again. It also slides a stale expiry.
func (s *Service) partRecorded(ctx context.Context, rec *record, n int, e partEntry) (PartInfo, error) {
	cur, ver, err := metastore.GetJSON[record](ctx, s.store, recordKey(rec.ID))
	if errors.Is(err, metastore.ErrNotFound) {
		_ = s.store.IndexDrop(ctx, partsIndex(rec.ID))
		return PartInfo{}, ErrNotFound.New("session %s was removed while part %d was written", rec.ID, n)
	}
	if err != nil {
		return PartInfo{}, err
	}
	if due := s.now().UTC().Add(s.cfg.TTL); cur.State != stateCompleted && due.Sub(cur.ExpiresAt) > touchEvery {
		cur.ExpiresAt = due
		if _, err := s.save(ctx, &cur, ver, 0); err != nil {
			s.log.WarnContext(ctx, "session_touch_failed", "session", rec.ID, "err", err) // the next part tries again
		}
	}
	count, err := s.store.IndexLen(ctx, partsIndex(rec.ID))
	if err != nil {
		return PartInfo{}, err
	}
	return PartInfo{Info: cur.info(), Number: n, Size: e.Size, CRC32C: e.CRC32C, Received: int(count)}, nil
}

// completeParts completes a session whose parts are all in, unless
// another request is at it; then the answer is the session as it is.
func (s *Service) completeParts(ctx context.Context, id string, in *Info) (*registry.File, error) {
	var file *registry.File
	err := s.withLock(ctx, id, func(ctx context.Context, fence int64) error {
		rec, ver, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if rec.State == stateCompleted {
			f, err := s.files.Get(ctx, rec.Bucket, rec.Key)
			file = &f
			return err
		}
		f, err := s.finishParts(ctx, rec, ver, fence)
		if err != nil {
			return err
		}
		file, *in = &f, rec.info()
		return nil
	})
	if errcode.Is(err, ErrBusy) {
		return nil, nil // another part's request is completing it
	}
	return file, err
}

// finishParts publishes a parallel session from its parts index, under
// the session's lease. A part missing is an error: the session stays.
func (s *Service) finishParts(ctx context.Context, rec *record, ver, fence int64) (registry.File, error) {
	parts, err := s.listParts(ctx, rec.ID)
	if err != nil {
		return registry.File{}, err
	}
	if missing := rec.partCount() - len(parts); missing > 0 {
		return registry.File{}, ErrInvalidPart.New("session %s lacks %d of its %d parts: put them, then it completes", rec.ID, missing, rec.partCount())
	}
	crc, _ := partsCRC(parts) // every entry has one
	rec.Parts, rec.Offset, rec.CRC32C = parts, rec.Size, &crc
	f, err := s.finish(ctx, rec, ver, fence)
	if err != nil {
		return f, err
	}
	if err := s.store.IndexDrop(ctx, partsIndex(rec.ID)); err != nil { // the purger drops it with the record
		s.log.WarnContext(ctx, "parts_cleanup_failed", "session", rec.ID, "err", err)
	}
	return f, nil
}

// partsCRC is the CRC32C of the parts in order, from theirs; ok is false
// if a part has none.
func partsCRC(parts []bucket.Part) (crc uint32, ok bool) {
	for _, p := range parts {
		if p.CRC32C == nil {
			return 0, false
		}
		crc = crc32c.Combine(crc, *p.CRC32C, p.Size)
	}
	return crc, true
}

// appendToParts answers an append to a parallel session: an empty one
// completes it if every part is in (a completion cut short is retried so),
// anything else is refused.
func (s *Service) appendToParts(ctx context.Context, rec *record, ver, fence int64, body func(*appender) error, out *Info, file **registry.File) error {
	probe := &appender{probe: true, read: ctx}
	if err := body(probe); err != nil || probe.n > 0 {
		return ErrUploadMode.New("session %s takes parts: PUT each missing part to its parts URL (see the session's parts)", rec.ID)
	}
	f, err := s.finishParts(ctx, rec, ver, fence)
	if err != nil {
		return err
	}
	*out, *file = rec.info(), &f
	return nil
}

// listParts reads the parts index in order.
func (s *Service) listParts(ctx context.Context, id string) ([]bucket.Part, error) {
	var parts []bucket.Part
	err := metastore.EachEntry(ctx, s.store, partsIndex(id), func(e metastore.Entry) error {
		n, err := strconv.Atoi(e.Member)
		if err != nil {
			return fmt.Errorf("part %q of session %s: %w", e.Member, id, err)
		}
		var pe partEntry
		if err := json.Unmarshal(e.Value, &pe); err != nil {
			return fmt.Errorf("part %d of session %s: %w", n, id, err)
		}
		parts = append(parts, bucket.Part{Number: n, ETag: pe.ETag, Size: pe.Size, CRC32C: new(pe.CRC32C)})
		return nil
	})
	return parts, err
}

// received fills in which parts of a parallel session landed, and its
// offset: the bytes of the unbroken run from part 1.
func (s *Service) received(ctx context.Context, rec *record, in *Info) error {
	if !rec.Parallel || rec.State == stateCompleted {
		return nil
	}
	parts, err := s.listParts(ctx, rec.ID)
	if err != nil {
		return err
	}
	in.Received = []PartRange{}
	for _, p := range parts {
		if k := len(in.Received); k > 0 && in.Received[k-1].Last == p.Number-1 {
			in.Received[k-1].Last = p.Number
		} else {
			in.Received = append(in.Received, PartRange{First: p.Number, Last: p.Number})
		}
	}
	in.Offset = 0
	if len(in.Received) > 0 && in.Received[0].First == 1 {
		in.Offset = min(int64(in.Received[0].Last)*rec.PartSize, rec.Size)
	}
	return nil
}
