package session

// The fault sweep of issue 12: for every call one upload makes to the
// metadata store, and every call it makes to the blob backend, fail (or
// stall and hang up on) exactly that call, then check what a client would
// see: the session at its old offset or its new one, a retry from the
// server's offset that completes byte-exact, the file being replaced
// reading as its old version (size and ETag consistent) until the new one
// is whole, and nothing left behind once the sessions are aborted and
// purged.
//
// FERRY_FAULTS=long widens the matrix (faults whose write happened before
// the error, stalls after the call); FERRY_FAULTS_PARALLEL sets how many
// cases run at once (default 4).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/events"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/registry"
)

// faultShape is one upload the sweep runs, as its chunk sizes.
type faultShape struct {
	name   string
	chunks []int
	// order, when set, makes the upload parallel parts of chunks[0] bytes
	// (the last one shorter), sent one at a time in this order.
	order []int
	// repeats are chunks whose calls repeat an earlier chunk's exactly (the
	// same held-back append with another segment number); the short matrix
	// leaves the calls of these out.
	repeats map[int]bool
}

func (s faultShape) size() int {
	n := 0
	for _, c := range s.chunks {
		n += c
	}
	return n
}

// faultShapes: "parts" makes every kind of call an upload makes on S3:
// create, small appends held back (20 of 4 KiB: the 17th merges the 16
// segments before it), a full part, and a last part with completion.
// "small" is a file under one part: a single Put on S3. "parallel" puts
// parallel parts out of order: the first (part 2) starts the parts, the
// last (part 1) completes the file. "behind" writes a part behind: its
// second chunk fills the first part, which goes up in the background
// while the third is held back (behind it, or after it once recorded),
// and the last records it and sends the rest.
func faultShapes() []faultShape {
	parts := make([]int, 0, 22)
	for range 20 {
		parts = append(parts, 4<<10)
	}
	parts = append(parts, 5<<20, 100<<10)
	// Swept in the short matrix: the 1st and 2nd small chunks, the 16th
	// (the last segment before a merge), the 17th (the merge), the 18th
	// (after it) and the 20th, then the part and the last chunk.
	repeats := map[int]bool{18: true}
	for i := 2; i <= 14; i++ {
		repeats[i] = true
	}
	return []faultShape{{"parts", parts, nil, repeats}, {"small", []int{4 << 10, 4 << 10, 2 << 10}, nil, nil},
		{"parallel", []int{5 << 20, 100 << 10}, []int{2, 1}, nil},
		{"behind", []int{3 << 20, 2 << 20, 100 << 10, 100 << 10}, nil, nil}}
}

// faultModes: the short matrix fails the call, or stalls it while the
// client hangs up (that only for the small shape: cmd/ferryd's hang-up
// matrix stalls every call of a last chunk or part over HTTP, and -race
// makes each stalled case of the larger shapes costly); the long one
// stalls every shape's calls and adds a write whose answer is lost and a
// hang-up after the call.
func faultModes() []faults.Mode {
	if faultLong() {
		return []faults.Mode{faults.Fail, faults.Stall, faults.FailAfter, faults.StallAfter}
	}
	return []faults.Mode{faults.Fail, faults.Stall}
}

func faultLong() bool { return os.Getenv("FERRY_FAULTS") == "long" }

// faultConfig: a short lease, so a lock left behind by a failed Unlock
// lapses quickly.
var faultConfig = Config{TTL: time.Hour, MaxSize: 1 << 30, LockTTL: 5 * time.Second} // 2 s ran out under -race on a loaded machine

type faultClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *faultClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *faultClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// faultStores are one case's own stores: a fresh metadata namespace (so a
// purge sees only this case's sessions) and a fresh blob root.
type faultStores struct {
	meta  metastore.Store
	blobs bucket.Composer
	// leftovers lists what storage still holds that belongs to no session:
	// staging files on the filesystem, records under session/ in Redis.
	leftovers func() []string
}

type faultBackend struct {
	name string
	open func(t *testing.T, name string) faultStores
}

var faultBackendNames = []string{"embedded", "redis+s3"}

// newFaultBackend prepares a backend for a sweep run by t: on Redis+S3
// one client and one bucket serve every case, each case under its own
// key prefix in both.
func newFaultBackend(t *testing.T, name string) faultBackend {
	if name == "embedded" {
		return faultBackend{name, func(t *testing.T, _ string) faultStores {
			dir := testsvc.FastDir(t)
			meta, blobs := testsvc.EmbeddedIn(t, dir)
			return faultStores{meta: meta, blobs: bucket.Compose(blobs), leftovers: func() []string {
				var out []string
				for _, f := range filesUnder(t, filepath.Join(dir, "blobs", "staging")) {
					out = append(out, "staging file "+f)
				}
				return out
			}}
		}}
	}
	rc, prefix := testsvc.Redis(t)
	client, bkt := testsvc.S3(t)
	return faultBackend{name, func(t *testing.T, name string) faultStores {
		p := prefix + name + ":"
		return faultStores{meta: redisstore.New(rc, p), blobs: bucket.Compose(s3blob.New(client, bkt, name+"/")), leftovers: func() []string {
			keys, err := rc.Keys(context.Background(), p+"r:session/*").Result()
			if err != nil {
				t.Errorf("scan Redis: %v", err)
			}
			for i, k := range keys {
				keys[i] = "Redis key " + strings.TrimPrefix(k, p)
			}
			return keys
		}}
	}}
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	if err != nil {
		t.Errorf("list %s: %v", dir, err)
	}
	return out
}

// faultPlan is one case of the sweep.
type faultPlan struct {
	shape faultShape
	kind  faults.Kind
	mode  faults.Mode
	n     int // 0: the clean run that counts the calls
}

func (p faultPlan) name() string {
	if p.n == 0 {
		return p.shape.name + "/clean"
	}
	return fmt.Sprintf("%s/%s/%s-%03d", p.shape.name, p.kind, p.mode, p.n)
}

// faultMatch selects the calls a sweep numbers: one decorator's, without
// the lock keep-alive and the held-back ledger's sum (read at most once a
// second), whose counts depend on timing.
func faultMatch(k faults.Kind) faults.Match {
	ledgerRead := faults.All(faults.Methods("IndexList"), faults.KeyPrefix(heldIndex))
	return faults.All(faults.KindIs(k), faults.Not(faults.Background), faults.Not(ledgerRead))
}

// faultOutcome is what a case reports to the sweep's summary.
type faultOutcome struct {
	plan  faultPlan
	fired *faults.Call
	err   string // the first broken invariant; "" when the case passed
	// rolled: a read found storage ahead of the record and served the
	// pending version; locked: a read was refused while a failed
	// completion still held the key's lock.
	rolled, locked int
}

// faultRun is the state of one case.
type faultRun struct {
	t     *testing.T
	plan  faultPlan
	in    *faults.Injector
	trig  *faults.Trigger
	raw   faultStores
	svc   *Service // over the decorated stores
	obs   *Service // over the raw stores: observes and cleans up, never faulted
	files *registry.Registry
	clock *faultClock
	key   string

	old, data []byte
	newSHA    [32]byte
	ids       map[string]bool // sessions of this case

	chunk  int                   // the chunk being sent; -1 while creating
	owners map[faults.Kind][]int // chunk of each numbered call (owners[k][n-1])

	stop    bool // the upload cannot go on
	fileBad bool // a read of the file broke an invariant (reported once)

	rolled, locked int // reads that served a pending version, reads refused under the key's lock

	hungUp    bool // the client already went away once
	faulted   bool // the request the fault hit has returned
	newSeen   bool // a read returned the new content
	completed bool // the service said the upload completed
	broken    string

	setupID, uploadID string // the sessions that published the old and the new version
}

func (r *faultRun) fail(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if c, ok := r.trigCall(); ok {
		msg += fmt.Sprintf(" [fault: %s %s]", r.plan.mode, c)
	}
	if r.broken == "" {
		r.broken = msg
	}
	r.t.Error(msg)
}

// fatal reports a broken invariant after which the upload cannot go on.
func (r *faultRun) fatal(format string, args ...any) {
	r.t.Helper()
	r.fail(format, args...)
	r.stop = true
}

func (r *faultRun) trigCall() (faults.Call, bool) {
	if r.trig == nil {
		return faults.Call{}, false
	}
	return r.trig.Call()
}

func (r *faultRun) fired() bool {
	_, ok := r.trigCall()
	return ok
}

func newFaultRun(t *testing.T, be faultBackend, plan faultPlan, old, data []byte) *faultRun {
	name := strings.NewReplacer("/", "-").Replace(plan.name())
	raw := be.open(t, name)
	in := faults.New()
	store, blobs := faults.Store(raw.meta, in), faults.Backend(raw.blobs, in)
	log := slog.New(slog.DiscardHandler)
	places := registry.NewResolver(store, blobs, registry.Locations{})
	svc, err := New(store, places, registry.New(store, places), faultConfig, log)
	if err != nil {
		t.Fatal(err)
	}
	rawPlaces := registry.NewResolver(raw.meta, raw.blobs, registry.Locations{})
	files := registry.New(raw.meta, rawPlaces)
	obs, err := New(raw.meta, rawPlaces, files, faultConfig, log)
	if err != nil {
		t.Fatal(err)
	}
	clock := &faultClock{t: time.Now()}
	svc.now, obs.now = clock.now, clock.now
	return &faultRun{t: t, plan: plan, in: in, raw: raw, svc: svc, obs: obs, files: files, clock: clock,
		key: "f/" + name, old: old, data: data, newSHA: sha256.Sum256(data), ids: map[string]bool{},
		chunk: -1, owners: map[faults.Kind][]int{}}
}

// do runs one request. In a hang-up case, when the stall catches a call of
// this request, the client goes away: the request's context is cancelled,
// and the stalled call is released a moment later.
func (r *faultRun) do(fn func(ctx context.Context) error) error {
	stalls := r.plan.mode == faults.Stall || r.plan.mode == faults.StallAfter
	if r.trig == nil || !stalls || r.hungUp {
		err := fn(context.Background())
		r.noteFault()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	select {
	case err := <-errc:
		r.noteFault()
		return err
	case <-r.trig.Fired():
	}
	r.hungUp = true
	cancel()
	var err error
	select {
	case err = <-errc:
		r.trig.Release()
	case <-time.After(100 * time.Millisecond):
		r.trig.Release()
		select {
		case err = <-errc:
		case <-time.After(30 * time.Second):
			r.fatal("the request still runs 30 s after its client hung up")
			return <-errc
		}
	}
	r.noteFault()
	return err
}

// noteOwners attributes the calls made since the last request to the
// current chunk.
func (r *faultRun) noteOwners() {
	for _, k := range []faults.Kind{faults.KindStore, faults.KindBlob} {
		for n := r.in.Count(faultMatch(k)); len(r.owners[k]) < n; {
			r.owners[k] = append(r.owners[k], r.chunk)
		}
	}
}

// settleBehind waits for the parts the request left uploading in the
// background, so that every run of a shape makes its calls in the same
// order. A stall that holds one of them (the request has returned, so the
// stalled call is not the request's) has no client to hang up: it is let
// go after a while, as a slow storage call would answer.
func (r *faultRun) settleBehind() {
	for deadline := time.Now().Add(30 * time.Second); !r.svc.behind.idle() && time.Now().Before(deadline); {
		if r.trig != nil && r.fired() && !r.trigDone() {
			time.Sleep(100 * time.Millisecond)
			r.trig.Release()
			r.hungUp = true // no later request is hung up on this fault
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *faultRun) trigDone() bool {
	select {
	case <-r.trig.Done():
		return true
	default:
		return false
	}
}

func (r *faultRun) noteFault() {
	if !r.faulted && r.fired() {
		r.faulted = true
	}
}

// request runs one request and retries it while the session or the part
// is busy (a lease a failed Lock or Unlock left behind, until it lapses),
// as a client does on 409 with Retry-After. It reports
// whether the request succeeded; a failure other than on the request the
// fault hit breaks the case.
func (r *faultRun) request(what string, fn func(ctx context.Context) error) bool {
	faultedBefore := r.faulted
	defer r.noteOwners()
	defer r.settleBehind()
	err := r.do(fn)
	deadline := time.Now().Add(4 * faultConfig.LockTTL)
	for err != nil && (errcode.Is(err, ErrBusy) || errcode.Is(err, ErrPartBusy)) && faultedBefore && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		err = r.do(fn)
	}
	if err == nil {
		return true
	}
	status := errcode.From(err).Code.Status
	switch {
	case status < 400 || status > 599:
		r.fatal("%s: error with status %d: %v", what, status, err)
	case !r.faulted:
		r.fatal("%s failed with no fault injected yet: %v", what, err)
	case faultedBefore:
		r.fatal("%s, a retry after the fault, failed: %v", what, err)
	}
	return false
}

// checkFile reads the file being replaced through the registry and
// storage, raw: it must be the old version or the new one, whole, with the
// record's size and ETag, and never the old one again once the new one
// was seen or acknowledged.
func (r *faultRun) checkFile(when string) {
	r.t.Helper()
	if r.fileBad {
		return
	}
	ctx := context.Background()
	f, err := r.files.Get(ctx, "b", r.key)
	if err != nil {
		r.fileFail("%s: the file is unreadable: %v", when, err)
		return
	}
	rc, got, err := r.files.Open(ctx, f, nil)
	if err == nil && got.ID != f.ID {
		r.rolled++
	}
	f = got
	if errcode.Is(err, errcode.ErrUnavailable) && r.keyLocked() {
		r.locked++
		// A completion that failed still holds the key's lock (its release
		// was the call that failed): readers are refused until the lease
		// runs out, and then publish what storage holds. What storage
		// holds must be a whole version.
		r.checkStoredNew(when)
		return
	}
	if err != nil {
		r.fileFail("%s: the file's bytes are unreadable: %v", when, err)
		return
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		r.fileFail("%s: reading the file: %v", when, err)
		return
	}
	info, err := r.raw.blobs.Backend.Head(ctx, registry.ObjectKey("b", r.key))
	if err != nil {
		r.fileFail("%s: HEAD of the file's object: %v", when, err)
		return
	}
	etag := func(s string) string { return strings.Trim(s, `"`) }
	isOld, isNew := bytes.Equal(body, r.old), sha256.Sum256(body) == r.newSHA
	switch {
	case int64(len(body)) != f.Bytes || etag(info.ETag) != etag(f.ETag):
		r.fileFail("%s: the record says %d bytes with ETag %s, storage holds %d bytes with ETag %s (old=%v new=%v)",
			when, f.Bytes, f.ETag, len(body), info.ETag, isOld, isNew)
	case !isOld && !isNew:
		r.fileFail("%s: the file's %d bytes are neither the old version nor the new one", when, len(body))
	case isOld && r.newSeen:
		r.fileFail("%s: the file reads as its old version after the new one was read", when)
	case isOld && r.completed:
		r.fileFail("%s: the file reads as its old version after the upload completed", when)
	case isNew:
		r.newSeen = true
	}
}

// keyLocked reports whether the file's key lock (registry.Replace's) is
// held.
func (r *faultRun) keyLocked() bool {
	l, err := r.raw.meta.Lock(context.Background(), "registry/key/b/"+r.key, time.Second)
	if err == nil {
		_ = l.Unlock(context.Background())
	}
	return errors.Is(err, metastore.ErrLocked)
}

// checkStoredNew checks that the object under the file's key is the new
// version, byte-exact.
func (r *faultRun) checkStoredNew(when string) {
	r.t.Helper()
	rc, _, err := r.raw.blobs.Backend.Get(context.Background(), registry.ObjectKey("b", r.key), nil)
	if err != nil {
		r.fileFail("%s: the file is refused and its object is unreadable: %v", when, err)
		return
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || sha256.Sum256(body) != r.newSHA {
		r.fileFail("%s: the file is refused but its object (%d bytes, %v) is not the new version", when, len(body), err)
		return
	}
	r.newSeen = true
}

func (r *faultRun) fileFail(format string, args ...any) {
	r.t.Helper()
	r.fail(format, args...)
	r.fileBad = true
}

// setup publishes the old version through the raw stores.
func (r *faultRun) setup() {
	ctx := context.Background()
	in, err := r.obs.Create(ctx, "b", r.key, "text/plain", int64(len(r.old)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.ids[in.ID] = true
	r.setupID = in.ID
	if _, f, err := r.obs.Append(ctx, in.ID, Chunk{Offset: 0, Total: -1, Len: int64(len(r.old)), Body: bytes.NewReader(r.old)}); err != nil || f == nil {
		r.t.Fatalf("old version: %v %v", f, err)
	}
	r.checkFile("before the upload")
}

// create makes the upload's session, retrying after a failure.
func (r *faultRun) create() string {
	var id string
	for attempt := 0; id == "" && !r.stop; attempt++ {
		if attempt == 3 {
			r.fatal("create failed three times")
			return ""
		}
		var in Info
		sp := Spec{Bucket: "b", Key: r.key, MimeType: "application/x-test", Size: int64(len(r.data))}
		if r.plan.shape.order != nil {
			sp.PartSize = int64(r.plan.shape.chunks[0])
		}
		if r.request("create", func(ctx context.Context) (err error) {
			in, err = r.svc.CreateSpec(ctx, sp)
			return err
		}) {
			id = in.ID
		}
		r.checkFile("after create")
	}
	if id != "" {
		r.ids[id] = true
	}
	return id
}

// upload runs the shape through the faulted service, retrying from the
// server's offset after a failure.
func (r *faultRun) upload() {
	ctx := context.Background()
	size := len(r.data)
	id := r.create()
	r.uploadID = id
	if r.stop {
		return
	}
	if r.plan.shape.order != nil {
		r.uploadParts(id)
		return
	}
	starts, index := map[int]int{}, map[int]int{}
	off := 0
	for i, c := range r.plan.shape.chunks {
		starts[off], index[off] = c, i
		off += c
	}
	off = 0
	for step := 0; !r.stop; step++ {
		if step > 2*len(r.plan.shape.chunks)+4 {
			r.fatal("no progress after %d requests; the session is at %d of %d", step, off, size)
			return
		}
		n, ok := starts[off]
		r.chunk = index[off]
		if off == size {
			// The bytes are in: an empty append retries the completion.
			n, ok, r.chunk = 0, true, len(r.plan.shape.chunks)-1
		}
		if !ok {
			r.fatal("the session's offset %d is not where any chunk starts", off)
			return
		}
		var file *registry.File
		what := fmt.Sprintf("append of %d bytes at %d", n, off)
		if r.request(what, func(ctx context.Context) (err error) {
			_, file, err = r.svc.Append(ctx, id, Chunk{Offset: int64(off), Total: int64(size), Len: int64(n), Body: bytes.NewReader(r.data[off : off+n])})
			return err
		}) {
			off += n
			if file != nil {
				if file.Bytes != int64(size) {
					r.fail("the completed file says %d bytes, want %d", file.Bytes, size)
				}
				r.completed = true
				r.checkFile("after completion")
				return
			}
			r.checkFile("after " + what)
			continue
		}
		if r.stop {
			return
		}
		got, err := r.obs.Get(ctx, id)
		if err != nil {
			r.fatal("after the failed %s the session is unreadable: %v", what, err)
			return
		}
		if got.Offset != int64(off) && got.Offset != int64(off+n) {
			r.fatal("after the failed %s the session is at %d, neither %d nor %d", what, got.Offset, off, off+n)
			return
		}
		r.checkFile("after the failed " + what)
		off = int(got.Offset)
		if got.Completed {
			r.completed = true
			r.checkFile("after the session reported completion")
			return
		}
	}
}

// uploadParts sends the shape's parts one at a time in its order, each
// again after a failure (a part that landed is acknowledged again), then
// an empty append if no part's answer completed the file.
func (r *faultRun) uploadParts(id string) {
	ctx := context.Background()
	ps := r.plan.shape.chunks[0]
	sent := map[int]bool{}
	for _, n := range r.plan.shape.order {
		r.chunk = n - 1
		body := r.data[(n-1)*ps : min(n*ps, len(r.data))]
		what := fmt.Sprintf("part %d", n)
		for attempt := 0; !r.stop; attempt++ {
			if attempt == 3 {
				r.fatal("%s failed three times", what)
				return
			}
			var file *registry.File
			ok := r.request(what, func(ctx context.Context) (err error) {
				_, file, err = r.svc.PutPart(ctx, id, n, Chunk{Len: int64(len(body)), Body: bytes.NewReader(body)})
				return err
			})
			sent[n] = true
			if ok && file != nil {
				r.completed = true
				r.checkFile("after completion")
				return
			}
			if ok {
				r.checkFile("after " + what)
				break
			}
			if r.stop {
				return
			}
			got, err := r.obs.Get(ctx, id)
			if err != nil {
				r.fatal("after the failed %s the session is unreadable: %v", what, err)
				return
			}
			for _, pr := range got.Received {
				for k := pr.First; k <= pr.Last; k++ {
					if !sent[k] {
						r.fatal("after the failed %s part %d is in, which was never sent", what, k)
						return
					}
				}
			}
			r.checkFile("after the failed " + what)
			if got.Completed {
				r.completed = true
				return
			}
		}
	}
	r.chunk = len(r.plan.shape.chunks) - 1
	var file *registry.File
	if r.request("completion", func(ctx context.Context) (err error) {
		_, file, err = r.svc.Append(ctx, id, Chunk{Offset: -1, Total: -1})
		return err
	}) || r.request("completion again", func(ctx context.Context) (err error) {
		_, file, err = r.svc.Append(ctx, id, Chunk{Offset: -1, Total: -1})
		return err
	}) {
		r.completed = file != nil
		r.checkFile("after completion")
	}
}

// verify reads the finished file whole and compares it.
func (r *faultRun) verify() {
	if r.stop {
		return
	}
	if !r.completed {
		r.fatal("the upload did not complete")
		return
	}
	r.fileBad = false // the end state is checked whatever happened on the way
	r.checkFile("at the end")
	if !r.fileBad && !r.newSeen {
		r.fail("the completed upload reads as the old version")
	}
}

var sessionKey = regexp.MustCompile(`^session/[0-9a-f]{32}$`)

// cleanup aborts every session of the case, purges past their expiry, and
// checks that nothing is left: no multipart upload, no staging file, no
// session record or held-back segment, no purger entry.
func (r *faultRun) cleanup() {
	ctx := context.Background()
	written := map[string]bool{}
	for _, c := range r.in.Calls(faults.All(faults.KindIs(faults.KindStore), faults.Methods("Put"))) {
		written[c.Key] = true
		if sessionKey.MatchString(c.Key) {
			r.ids[strings.TrimPrefix(c.Key, "session/")] = true
		}
	}
	for id := range r.ids {
		deadline := time.Now().Add(4 * faultConfig.LockTTL)
		for {
			err := r.obs.Abort(ctx, id)
			if errcode.Is(err, ErrBusy) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if err != nil && !errcode.Is(err, ErrNotFound) {
				r.fail("abort %s: %v", id, err)
			}
			break
		}
	}
	r.clock.advance(faultConfig.TTL + 2*time.Hour)
	if _, err := r.obs.Purge(ctx); err != nil {
		r.fail("purge: %v", err)
	}
	var leaks []string
	if mp := r.raw.blobs.Multipart; mp != nil {
		ups, err := mp.ListMultipart(ctx, "")
		if err != nil {
			r.fail("list multipart uploads: %v", err)
		}
		for _, u := range ups {
			leaks = append(leaks, "multipart upload of "+u.Key)
		}
	}
	leaks = append(leaks, r.raw.leftovers()...)
	for k := range written {
		if !strings.HasPrefix(k, "session/") {
			continue
		}
		if _, err := r.raw.meta.Get(ctx, k); !errors.Is(err, metastore.ErrNotFound) {
			leaks = append(leaks, fmt.Sprintf("record %s (%v)", k, err))
		}
	}
	if n, err := r.raw.meta.IndexLen(ctx, expiryIndex); err != nil || n != 0 {
		leaks = append(leaks, fmt.Sprintf("%d purger entries (%v)", n, err))
	}
	for id := range r.ids {
		if n, err := r.raw.meta.IndexLen(ctx, partsIndex(id)); err != nil || n != 0 {
			leaks = append(leaks, fmt.Sprintf("%d part entries of session %s (%v)", n, id, err))
		}
	}
	if len(leaks) > 0 {
		sort.Strings(leaks)
		r.fail("left behind after abort and purge: %s", strings.Join(leaks, "; "))
	}
	r.checkEvents()
}

// checkEvents holds the event log to what committed, whatever the fault
// did to the write carrying an event: each session that existed has one
// session.created; each that did not complete, one end (the cleanup
// aborted it), and none of the others; the file has one file.created per
// version published, the last of them naming the file as it is.
func (r *faultRun) checkEvents() {
	ctx := context.Background()
	created, ended := map[string]int{}, map[string]int{}
	var versions []string
	after := ""
	for {
		page, err := r.raw.meta.Events(ctx, after, 1000, 0)
		if err != nil {
			r.fail("read the event log: %v", err)
			return
		}
		if len(page) == 0 {
			break
		}
		for _, raw := range page {
			after = raw.ID
			e, err := events.Decode(raw)
			if err != nil {
				r.fail("event %s: %v", raw.ID, err)
				continue
			}
			var d struct {
				ID     string `json:"id"`
				FileID string `json:"file_id"`
			}
			_ = json.Unmarshal(e.Data, &d)
			switch e.Type {
			case events.SessionCreated:
				created[d.ID]++
			case events.SessionAborted, events.SessionExpired:
				ended[d.ID]++
				if created[d.ID] == 0 {
					r.fail("session %s: %s before (or without) session.created", d.ID, e.Type)
				}
			case events.FileCreated:
				versions = append(versions, d.FileID)
			}
		}
	}
	for id := range r.ids {
		done := id == r.setupID || id == r.uploadID
		switch {
		case created[id] > 1:
			r.fail("session %s: %d session.created events", id, created[id])
		case created[id] == 0 && ended[id] > 0:
			r.fail("session %s ended, but its creation was never announced", id)
		case done && (created[id] != 1 || ended[id] != 0):
			r.fail("completed session %s: %d session.created and %d end events, want 1 and 0", id, created[id], ended[id])
		case !done && created[id] == 1 && ended[id] != 1:
			r.fail("session %s, aborted by the cleanup: %d end events, want 1", id, ended[id])
		}
	}
	f, err := r.files.Get(ctx, "b", r.key)
	if err != nil {
		r.fail("the file: %v", err)
		return
	}
	if len(versions) != 2 || versions[1] != f.ID {
		r.fail("file.created events name files %v, want the old version's and then %s", versions, f.ID)
	}
}

// runFaultCase runs one case and returns, for each kind, the chunk each
// numbered call of the upload belonged to (what the clean run reports).
func runFaultCase(t *testing.T, be faultBackend, plan faultPlan, old, data []byte) (faultOutcome, map[faults.Kind][]int) {
	r := newFaultRun(t, be, plan, old, data)
	r.setup()
	if plan.n > 0 {
		r.trig = r.in.Arm(faults.Fault{N: plan.n, Match: faultMatch(plan.kind), Mode: plan.mode})
	}
	r.upload()
	r.in.Disarm()
	r.verify()
	if !r.stop {
		r.cleanup()
	}
	out := faultOutcome{plan: plan, err: r.broken, rolled: r.rolled, locked: r.locked}
	if c, ok := r.trigCall(); ok {
		out.fired = &c
	}
	if plan.n > 0 && out.fired == nil && !r.stop {
		r.fail("the fault never fired: the upload made fewer than %d %s calls", plan.n, plan.kind)
		out.err = r.broken
	}
	return out, r.owners
}

func faultParallel() int {
	if n, err := strconv.Atoi(os.Getenv("FERRY_FAULTS_PARALLEL")); err == nil && n > 0 {
		return n
	}
	return 4
}

// TestFaultSweep fails, or stalls while the client hangs up on, every call
// of an upload in turn, on both backends.
func TestFaultSweep(t *testing.T) {
	for _, name := range faultBackendNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := newFaultBackend(t, name)
			start := time.Now()
			old := []byte("old v1 \x00\xff\n") // a 10-byte file, as in the issue
			var outcomes []faultOutcome
			var mu sync.Mutex
			run := func(plan faultPlan) map[faults.Kind][]int {
				var counts map[faults.Kind][]int
				ok := t.Run(plan.name(), func(t *testing.T) {
					data := faultData(plan.shape.size())
					o, c := runFaultCase(t, be, plan, old, data)
					counts = c
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				})
				if !ok {
					return nil
				}
				return counts
			}
			for _, shape := range faultShapes() {
				if shape.name == "behind" && name == "embedded" && !faultLong() {
					continue // the staging engine writes no part behind: "parts" sweeps its calls already
				}
				owners := run(faultPlan{shape: shape})
				if owners == nil {
					t.Fatalf("%s: the clean run failed; no sweep", shape.name)
				}
				t.Logf("%s: one upload of %d bytes in %d chunks makes %d store calls and %d blob calls (keep-alive aside)",
					shape.name, shape.size(), len(shape.chunks), len(owners[faults.KindStore]), len(owners[faults.KindBlob]))
				sem := make(chan struct{}, faultParallel())
				var wg sync.WaitGroup
				for _, mode := range faultModes() {
					for _, kind := range []faults.Kind{faults.KindStore, faults.KindBlob} {
						for n := 1; n <= len(owners[kind]); n++ {
							if !faultLong() && (shape.repeats[owners[kind][n-1]] || shape.name != "small" && mode != faults.Fail) {
								continue
							}
							sem <- struct{}{}
							wg.Add(1)
							go func() {
								defer func() { <-sem; wg.Done() }()
								run(faultPlan{shape: shape, kind: kind, mode: mode, n: n})
							}()
						}
					}
				}
				wg.Wait()
			}
			summarizeFaults(t, outcomes, time.Since(start))
		})
	}
}

var (
	faultDataMu sync.Mutex
	faultDataBy = map[int][]byte{}
)

// faultData is the new version's bytes, the same for every case of a size.
func faultData(n int) []byte {
	faultDataMu.Lock()
	defer faultDataMu.Unlock()
	if b, ok := faultDataBy[n]; ok {
		return b
	}
	b := randomBytes(n)
	faultDataBy[n] = b
	return b
}

// faultNumbers are the offsets, sizes, ids and ETags in a message.
var faultNumbers = regexp.MustCompile(`"?[0-9a-f-]*[0-9][0-9a-f-]*"?`)

// summarizeFaults logs the matrix: cases, faults that fired, and the
// failures grouped by the invariant they broke.
func summarizeFaults(t *testing.T, outcomes []faultOutcome, took time.Duration) {
	fired, failed, rolled, locked := 0, 0, 0, 0
	groups := map[string][]string{}
	for _, o := range outcomes {
		rolled += o.rolled
		locked += o.locked
		if o.fired != nil {
			fired++
		}
		if o.err == "" {
			continue
		}
		failed++
		// Group by the message without numbers and ids.
		g := o.err
		if i := strings.Index(g, " [fault:"); i >= 0 {
			g = g[:i]
		}
		g = faultNumbers.ReplaceAllString(g, "N")
		groups[g] = append(groups[g], o.plan.name())
	}
	t.Logf("fault sweep: %d cases, %d faults injected, %d cases failed, in %v; %d reads served a version storage held ahead of its record, "+
		"%d were refused while a failed completion's key lock was held", len(outcomes), fired, failed, took.Round(time.Millisecond), rolled, locked)
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cases := groups[k]
		sort.Strings(cases)
		t.Logf("  %d× %s\n      e.g. %s", len(cases), k, strings.Join(cases[:min(len(cases), 6)], ", "))
	}
}
