package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/bucket"
)

// Write-behind. A small chunk that fills a part (the tail and it reach
// MinPart, and it is not the file's last byte) is held back like any
// other, durable in the metadata store before it is acknowledged, and the
// tail becomes a whole part that waits to be sent: the record's first
// TailPart segments. Once the record is saved, the instance that holds
// those segments in memory uploads them as part len(Parts)+1 in the
// background, without the session's lease, while the client sends its
// next chunks, which are held back behind the waiting part. An append
// records the part once that upload is done. A chunk that completes a
// part after the waiting one is held back too, without waiting, as long
// as the tail stays within max_held_bytes: the record lists that part's
// segments in TailAhead, and once saved the instance uploads it as well,
// so several parts go up at once (one stream of parts paced the session:
// storage takes parts faster several at a time; with 5 MiB parts and the
// default 16 MiB, three). Recording the waiting part makes the first part
// ahead wait in its place (adopt). An append waits for an upload only
// when it cannot go on without the part (mustSettle), and then only for
// the oldest if that makes room. An append that finds no upload of a part
// on its instance (another instance took the append, the upload failed,
// the instance restarted) sends the part itself, as every part was sent
// before write-behind.
//
// Every upload of a part number carries exactly that part's bytes:
// segments are never rewritten, a part's segments are fixed in the record
// before its upload starts, no merge spans a whole part, and no later part
// is recorded before it. So an upload that finishes after another instance
// sent the part again replaces it with the same bytes, and the same ETag
// where ETags are the parts' MD5s (on storage whose ETags are not, such as
// SSE-KMS, that late replacement changes the ETag and the completion
// fails: it takes a second instance taking the next append while the
// first is still uploading). One that finishes after
// the upload was completed or aborted gets NoSuchUpload and is dropped,
// unlogged. Abort and purge stop this instance's uploads of the session
// before they abort its multipart upload. A ferryd from before
// write-behind ignores tail_part and sends the whole tail with its chunk
// as that part number, and one from before TailAhead records the waiting
// part, then sends the whole rest of the tail as the next part; should the
// first instance's upload land after that, the completion is refused (the
// part's ETag no longer matches), never wrong: that takes a mixed fleet
// and the same race as above. A record such a ferryd saved, with a whole
// part after the waiting one but no TailAhead, is settled as it would.
const (
	maxBehind     = 8   // parts in flight in the background, per instance
	maxBehindKept = 256 // finished results kept for the appends that take them
	behindTimeout = 5 * time.Minute
)

// behindJob is one part being written behind.
type behindJob struct {
	session string
	seq     uint64 // start order: the oldest finished results go first
	cancel  context.CancelFunc
	done    chan struct{} // closed once part and err are set
	part    bucket.Part
	err     error
}

func (j *behindJob) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// behindJobs are this instance's background parts, by behindKey.
type behindJobs struct {
	mu      sync.Mutex
	jobs    map[string]*behindJob
	running int
	seq     uint64
}

func newBehindJobs() *behindJobs { return &behindJobs{jobs: map[string]*behindJob{}} }

func (b *behindJobs) get(key string) *behindJob {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.jobs[key]
}

func (b *behindJobs) room() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running < maxBehind
}

// start runs send in the background under key, holding size bytes of the
// buffer budget, unless a job has that key or there is no room for it.
func (b *behindJobs) start(key, session string, size int64, buffers *budget, send func(context.Context) (bucket.Part, error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.jobs[key]; ok || b.running >= maxBehind {
		return
	}
	release, ok := buffers.tryTake(size)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), behindTimeout)
	b.seq++
	j := &behindJob{session: session, seq: b.seq, cancel: cancel, done: make(chan struct{})}
	b.jobs[key] = j
	b.running++
	b.evict()
	go func() {
		j.part, j.err = send(ctx)
		cancel()
		release()
		close(j.done)
		b.mu.Lock()
		b.running--
		b.mu.Unlock()
	}()
}

// idle reports whether no part is being written behind.
func (b *behindJobs) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running == 0
}

// evict drops the oldest finished results past maxBehindKept: their
// sessions went on elsewhere, or ended.
func (b *behindJobs) evict() {
	for len(b.jobs) > maxBehindKept {
		var oldest string
		for k, j := range b.jobs {
			if j.finished() && (oldest == "" || j.seq < b.jobs[oldest].seq) {
				oldest = k
			}
		}
		if oldest == "" {
			return
		}
		delete(b.jobs, oldest)
	}
}

// drop forgets j, the job under key.
func (b *behindJobs) drop(key string, j *behindJob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.jobs[key] == j {
		delete(b.jobs, key)
	}
}

// stop cancels a session's uploads and waits for them to return, so none
// lands after what follows (an abort of the multipart upload).
func (b *behindJobs) stop(ctx context.Context, session string) {
	b.mu.Lock()
	var stopped []*behindJob
	for k, j := range b.jobs {
		if j.session == session {
			delete(b.jobs, k)
			j.cancel()
			stopped = append(stopped, j)
		}
	}
	b.mu.Unlock()
	for _, j := range stopped {
		select {
		case <-j.done:
		case <-ctx.Done():
			return
		}
	}
}

// behindKey names the part a record has waiting.
func behindKey(rec *record) string { return partKey(rec, len(rec.Parts)+1, 0, rec.TailPart) }

// partKey names part num made of k segments from the tail's from-th: a
// result is valid for exactly these segments of this upload at this part
// number. A part ahead of the waiting one gets, ahead of time, the key it
// has once it waits in its place.
func partKey(rec *record, num, from, k int) string {
	n := len(rec.TailTags)
	tags := rec.TailTags[min(from, n):min(from+k, n)]
	return fmt.Sprintf("%s/%s/%d/%d/%s", rec.ID, rec.UploadID, num, rec.TailFirst+from, strings.Join(tags, ","))
}

// tailSpan is a whole part in the tail: Segs segments, Len bytes.
type tailSpan struct {
	Segs int   `json:"segs"`
	Len  int64 `json:"len"`
}

// loose is what the tail holds beyond its whole parts (the waiting one and
// those ahead of it), in segments and bytes.
func (r *record) loose() (segs int, n int64) {
	segs, n = r.TailSegs-r.TailPart, r.TailLen-r.TailPartLen
	for _, a := range r.TailAhead {
		segs, n = segs-a.Segs, n-a.Len
	}
	return segs, n
}

func (r *record) looseLen() int64 { _, n := r.loose(); return n }

// behindPart is a whole part of the tail: part num, k segments from the
// tail's from-th, size bytes.
type behindPart struct {
	num, from, k int
	size         int64
}

// behindParts are the record's whole parts in the tail, in order: the
// waiting one, then those ahead of it.
func behindParts(rec *record) []behindPart {
	if rec.TailPart == 0 {
		return nil
	}
	ps := []behindPart{{len(rec.Parts) + 1, 0, rec.TailPart, rec.TailPartLen}}
	from := rec.TailPart
	for _, a := range rec.TailAhead {
		ps = append(ps, behindPart{len(rec.Parts) + 1 + len(ps), from, a.Segs, a.Len})
		from += a.Segs
	}
	return ps
}

// uploadsAll: this instance is uploading (or has uploaded) every whole
// part the tail has.
func (e *multipartEngine) uploadsAll(rec *record) bool {
	for _, p := range behindParts(rec) {
		if e.jobs.get(partKey(rec, p.num, p.from, p.k)) == nil {
			return false
		}
	}
	return true
}

// mustSettle: an append of n bytes cannot go on with the part waiting.
// Its bytes fill another part or end the file, or the tail would have to
// be merged (which never spans the waiting part) or pass max_held_bytes.
func (e *multipartEngine) mustSettle(rec *record, n int64) bool {
	last := !rec.Open && rec.Offset+n == rec.Size
	return last || rec.looseLen()+n >= rec.MinPart || rec.TailLen+n > e.maxHeld || e.merges(rec)
}

// prepare records the waiting part from this instance's upload of it,
// before an append of n bytes decides on its claim: at once if the upload
// is done, after waiting for it if the append must settle the part (but
// not before a chunk that completes the next part is held back: see
// holdNextBehind). A failed upload is dropped, so the claim is taken and
// write sends the part again. It writes nothing.
func (e *multipartEngine) prepare(ctx context.Context, rec *record, n int64) error {
	if rec.TailPart == 0 {
		return nil
	}
	_, err := e.takeBehind(ctx, rec, e.mustSettle(rec, n) && !e.writesNextBehind(rec, n))
	return err
}

// takeBehind records the waiting part from this instance's upload of it
// if that is done, or still running and wait is set (then it waits for
// it, as long as ctx lets it); adopted reports whether it did.
func (e *multipartEngine) takeBehind(ctx context.Context, rec *record, wait bool) (adopted bool, err error) {
	key := behindKey(rec)
	j := e.jobs.get(key)
	if j == nil || !wait && !j.finished() {
		return false, nil
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
	e.jobs.drop(key, j)
	if j.err != nil || j.part.Number != len(rec.Parts)+1 || j.part.Size != rec.TailPartLen {
		return false, nil
	}
	e.adopt(rec, j.part)
	return true, nil
}

// settle deals with the waiting part before write stores n bytes: it is
// left waiting while this instance's upload of it runs and the append can
// go on without it, else recorded from that upload, else sent now.
// Recording a part makes the next one wait in its place: it goes round
// until none waits, or the one that does can be left to its upload, or,
// with ahead, the chunk can now be held as a part ahead of it.
func (e *multipartEngine) settle(ctx context.Context, rec *record, n int64, ahead bool) error {
	for rec.TailPart != 0 {
		if ahead && e.writesNextBehind(rec, n) {
			return nil
		}
		must := e.mustSettle(rec, n)
		running := e.jobs.get(behindKey(rec)) != nil
		adopted, err := e.takeBehind(ctx, rec, must)
		if err != nil {
			return err
		}
		if adopted {
			continue
		}
		if !must && running {
			return nil // running, or failed just now: the next append sends it, under its claim
		}
		if err := e.sendWaiting(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// sendWaiting uploads the waiting part from this request and records it.
func (e *multipartEngine) sendWaiting(ctx context.Context, rec *record) error {
	release, err := e.buffers.take(ctx, rec.TailPartLen)
	if err != nil {
		return err
	}
	defer release()
	segs, err := e.segments(ctx, rec, rec.TailPart)
	if err != nil {
		return err
	}
	if got := e.segLen(segs); got != rec.TailPartLen {
		return fmt.Errorf("held-back part of session %s: have %d bytes, record says %d", rec.ID, got, rec.TailPartLen)
	}
	p, err := e.mp.UploadPart(ctx, rec.object(), rec.UploadID, len(rec.Parts)+1, segReader(segs), rec.TailPartLen, partSum(rec, nil))
	if err != nil {
		return err
	}
	e.adopt(rec, p)
	return nil
}

// adopt records p as the waiting part and drops its segments from the
// tail; the first part ahead (TailAhead) waits next.
func (e *multipartEngine) adopt(rec *record, p bucket.Part) {
	k := rec.TailPart
	e.forgetFirst(rec, k)
	rec.Parts = append(rec.Parts[:len(rec.Parts):len(rec.Parts)], p)
	rec.TailFirst += k
	rec.TailSegs -= k
	rec.TailLen -= rec.TailPartLen
	rec.TailTags = rec.TailTags[min(k, len(rec.TailTags)):]
	rec.TailPart, rec.TailPartLen = 0, 0
	if rec.TailSegs == 0 {
		rec.TailTags, rec.TailUntil = nil, time.Time{}
	}
	switch {
	case len(rec.TailAhead) > 0:
		rec.TailPart, rec.TailPartLen = rec.TailAhead[0].Segs, rec.TailAhead[0].Len
		rec.TailAhead = rec.TailAhead[1:]
		if len(rec.TailAhead) == 0 {
			rec.TailAhead = nil
		}
	case rec.MinPart > 0 && rec.TailLen >= rec.MinPart: // a record from before TailAhead: its tail is one part
		rec.TailPart, rec.TailPartLen = rec.TailSegs, rec.TailLen
	}
}

// writesBehind: a small chunk that fills the part, not the file's last,
// behind a tail this instance holds in memory, with room to send it.
func (e *multipartEngine) writesBehind(rec *record, n int64) bool {
	last := !rec.Open && rec.Offset+n == rec.Size
	if rec.MinPart == 0 || rec.UploadID == "" || rec.TailPart != 0 || last || n <= 0 || n >= rec.MinPart ||
		rec.TailLen+n < rec.MinPart || rec.TailLen+n > e.maxHeld || len(rec.Parts) >= bucket.MaxParts || !e.jobs.room() {
		return false
	}
	_, ok := e.cachedSegs(rec, 0, rec.TailSegs)
	return ok
}

// writesNextBehind: the chunk completes a part after the waiting one,
// whose upload runs here, and can be written behind ahead of it, within
// max_held_bytes.
func (e *multipartEngine) writesNextBehind(rec *record, n int64) bool {
	last := !rec.Open && rec.Offset+n == rec.Size
	segs, loose := rec.loose()
	if rec.TailPart == 0 || last || n <= 0 || n >= rec.MinPart || loose >= rec.MinPart || loose+n < rec.MinPart || rec.TailLen+n > e.maxHeld ||
		e.merges(rec) || len(rec.Parts)+len(rec.TailAhead)+2 > bucket.MaxParts || e.jobs.get(behindKey(rec)) == nil {
		return false
	}
	_, ok := e.cachedSegs(rec, rec.TailSegs-segs, segs)
	return ok
}

// holdNextBehind holds back a chunk that completes a part after the
// waiting one (writesNextBehind) and lists that part in TailAhead
// (afterSave starts its upload). It leaves the waiting part to its upload
// if that still runs; if it is done it records it (or, if it failed,
// sends it now), and the first part ahead waits in its place. held is
// false when it does not apply, or the ledger has no room (then nothing of
// the chunk was read).
func (e *multipartEngine) holdNextBehind(ctx context.Context, rec *record, fence int64, r io.Reader, n int64, sum *Checksum) (held bool, err error) {
	if !e.writesNextBehind(rec, n) {
		return false, nil
	}
	if _, ok, err := e.ledger.fits(ctx, n); err != nil || !ok {
		return false, nil
	}
	if err := e.holdSegment(ctx, rec, fence, r, n, sum); err != nil {
		return true, err
	}
	segs, loose := rec.loose()
	rec.TailAhead = append(rec.TailAhead[:len(rec.TailAhead):len(rec.TailAhead)], tailSpan{Segs: segs, Len: loose})
	adopted, err := e.takeBehind(ctx, rec, false)
	if err != nil {
		return true, err
	}
	if !adopted && e.jobs.get(behindKey(rec)) == nil { // its upload failed: sent now, under the claim
		if err := e.sendWaiting(ctx, rec); err != nil {
			return true, err
		}
	}
	return true, nil
}

// holdBehind holds the chunk back as the segment that completes the
// waiting part, if the held-back ledger has room for it; held is false
// when it has not (then nothing of the chunk was read).
func (e *multipartEngine) holdBehind(ctx context.Context, rec *record, fence int64, r io.Reader, n int64, sum *Checksum) (held bool, err error) {
	if _, ok, err := e.ledger.fits(ctx, n); err != nil || !ok {
		return false, nil // the synchronous part needs no room in the ledger
	}
	if err := e.holdSegment(ctx, rec, fence, r, n, sum); err != nil {
		return true, err
	}
	rec.TailPart, rec.TailPartLen = rec.TailSegs, rec.TailLen
	return true, nil
}

// afterSave starts uploading the record's waiting part from memory, and
// the whole parts ahead of it, if this instance holds their segments and
// has room.
func (e *multipartEngine) afterSave(rec *record) {
	for _, p := range behindParts(rec) {
		e.startBehind(rec, p.num, p.from, p.k, p.size)
	}
}

// startBehind uploads k segments from the tail's from-th, size bytes, as
// part num in the background, under partKey.
func (e *multipartEngine) startBehind(rec *record, num, from, k int, size int64) {
	segs, ok := e.cachedSegs(rec, from, k)
	if !ok || e.segLen(segs) != size {
		return
	}
	obj, id, sum := rec.object(), rec.UploadID, partSum(rec, nil)
	e.jobs.start(partKey(rec, num, from, k), rec.ID, size, e.buffers, func(ctx context.Context) (bucket.Part, error) {
		return e.mp.UploadPart(ctx, obj, id, num, segReader(segs), size, sum)
	})
}

// cachedSegs returns k segments from the tail's from-th, from memory, if
// all are there.
func (e *multipartEngine) cachedSegs(rec *record, from, k int) ([][]byte, bool) {
	if len(rec.TailTags) < from+k {
		return nil, false
	}
	segs := make([][]byte, 0, k)
	for i, tag := range rec.TailTags[from : from+k] {
		b, ok := e.held.Get(heldKey(rec.ID, rec.TailFirst+from+i, tag))
		if tag == "" || !ok {
			return nil, false
		}
		segs = append(segs, b)
	}
	return segs, true
}

// forgetFirst removes the record's first k segments from memory.
func (e *multipartEngine) forgetFirst(rec *record, k int) {
	for i, tag := range rec.TailTags[:min(k, len(rec.TailTags))] {
		e.held.Remove(heldKey(rec.ID, rec.TailFirst+i, tag))
	}
}

func segReader(segs [][]byte) io.Reader {
	readers := make([]io.Reader, len(segs))
	for i, s := range segs {
		readers[i] = bytes.NewReader(s)
	}
	return io.MultiReader(readers...)
}
