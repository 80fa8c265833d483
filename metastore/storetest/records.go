package storetest

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/metastore"
)

func testCreateAndUpdate(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	_, err := s.Get(ctx, "k")
	wantErr(t, "Get missing", err, metastore.ErrNotFound)

	_, err = s.Put(ctx, "k", []byte("x"), metastore.Cond{Version: 3})
	wantErr(t, "Put missing at version 3", err, metastore.ErrConflict)

	rec := put(t, s, "k", []byte("one"), metastore.Cond{Version: 0})
	wantRecord(t, rec, "one", 1, 0)
	if !rec.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt = %v without TTL", rec.ExpiresAt)
	}
	_, err = s.Put(ctx, "k", []byte("again"), metastore.Cond{Version: 0})
	wantErr(t, "second create", err, metastore.ErrConflict)

	wantRecord(t, put(t, s, "k", []byte("two"), metastore.Cond{Version: 1}), "two", 2, 0)
	_, err = s.Put(ctx, "k", []byte("stale"), metastore.Cond{Version: 1})
	wantErr(t, "Put at stale version", err, metastore.ErrConflict)
	_, err = s.Put(ctx, "k", []byte("future"), metastore.Cond{Version: 3})
	wantErr(t, "Put at future version", err, metastore.ErrConflict)
	wantRecord(t, get(t, s, "k"), "two", 2, 0)

	wantRecord(t, put(t, s, "k", []byte("three"), metastore.Cond{Version: metastore.AnyVersion}), "three", 3, 0)
	got := get(t, s, "k")
	wantRecord(t, got, "three", 3, 0)
	if !got.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt = %v without TTL", got.ExpiresAt)
	}

	// AnyVersion also creates.
	wantRecord(t, put(t, s, "other", []byte("o"), metastore.Cond{Version: metastore.AnyVersion}), "o", 1, 0)
}

func testDelete(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	if err := s.Delete(ctx, "missing", metastore.AnyVersion); err != nil {
		t.Fatalf("Delete missing with AnyVersion: %v", err)
	}
	wantErr(t, "Delete missing at version 1", s.Delete(ctx, "missing", 1), metastore.ErrNotFound)

	put(t, s, "k", []byte("a"), metastore.Cond{})
	put(t, s, "k", []byte("b"), metastore.Cond{Version: 1})
	wantErr(t, "Delete at stale version", s.Delete(ctx, "k", 1), metastore.ErrConflict)
	wantErr(t, "Delete at future version", s.Delete(ctx, "k", 3), metastore.ErrConflict)
	wantRecord(t, get(t, s, "k"), "b", 2, 0)
	if err := s.Delete(ctx, "k", 2); err != nil {
		t.Fatalf("Delete at current version: %v", err)
	}
	_, err := s.Get(ctx, "k")
	wantErr(t, "Get after Delete", err, metastore.ErrNotFound)
	wantErr(t, "Delete again at version 2", s.Delete(ctx, "k", 2), metastore.ErrNotFound)

	// A deleted record is created afresh at version 1.
	wantRecord(t, put(t, s, "k", []byte("c"), metastore.Cond{}), "c", 1, 0)
	if err := s.Delete(ctx, "k", metastore.AnyVersion); err != nil {
		t.Fatalf("unconditional Delete: %v", err)
	}
	_, err = s.Get(ctx, "k")
	wantErr(t, "Get after unconditional Delete", err, metastore.ErrNotFound)
}

func testValues(t *testing.T, s metastore.Store) {
	values := map[string][]byte{
		"binary": {0, 1, 0xff, 0xfe, 0, '\n', '\r', 0x80, 0},
		"nul":    {0},
		"ff":     {0xff, 0xff},
		"empty":  {},
		"nil":    nil,
		"large":  bytes.Repeat([]byte{0, 0xff, 'a'}, 100_000),
	}
	for key, v := range values {
		put(t, s, key, v, metastore.Cond{})
	}
	for key, v := range values {
		got := get(t, s, key)
		if !bytes.Equal(got.Value, v) {
			t.Errorf("Get(%q) value = %q (%d bytes), want %q (%d bytes)", key, head(got.Value), len(got.Value), head(v), len(v))
		}
		if got.Version != 1 {
			t.Errorf("Get(%q) version = %d, want 1", key, got.Version)
		}
	}

	// The store keeps its own copy: changing our slices changes nothing.
	in := []byte("abc")
	put(t, s, "copy", in, metastore.Cond{})
	in[0] = 'X'
	got := get(t, s, "copy")
	if string(got.Value) != "abc" {
		t.Fatalf("stored value changed with caller's slice: %q", got.Value)
	}
	got.Value[1] = 'Y'
	if again := get(t, s, "copy"); string(again.Value) != "abc" {
		t.Fatalf("stored value changed with a returned slice: %q", again.Value)
	}
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// Keys are opaque: separators and brace characters are just bytes, and
// record keys do not collide with index or lock names.
func testKeys(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	keys := []string{"a", "a/b", "a:b", "a}b", "{a}", "a b", "é", "r:a", "i:a", "l:a", "fence"}
	for i, k := range keys {
		put(t, s, k, []byte(strconv.Itoa(i)), metastore.Cond{})
	}
	if err := s.IndexPut(ctx, "a", "m", []byte("index")); err != nil {
		t.Fatalf("IndexPut: %v", err)
	}
	l, err := s.Lock(ctx, "a", time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer l.Unlock(ctx)
	for i, k := range keys {
		wantRecord(t, get(t, s, k), strconv.Itoa(i), 1, 0)
	}
}

// Bad arguments are errors, never panics.
func testInvalidInput(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	checks := map[string]error{}
	_, checks["Get empty key"] = s.Get(ctx, "")
	_, checks["Put empty key"] = s.Put(ctx, "", []byte("x"), metastore.Cond{})
	_, checks["Put version -2"] = s.Put(ctx, "k", []byte("x"), metastore.Cond{Version: -2})
	_, checks["Put negative fence"] = s.Put(ctx, "k", []byte("x"), metastore.Cond{Fence: -1})
	_, checks["Put negative TTL"] = s.Put(ctx, "k", []byte("x"), metastore.Cond{TTL: -time.Second})
	checks["Delete empty key"] = s.Delete(ctx, "", metastore.AnyVersion)
	checks["Delete version -2"] = s.Delete(ctx, "k", -2)
	checks["IndexPut empty index"] = s.IndexPut(ctx, "", "m", nil)
	checks["IndexPut empty member"] = s.IndexPut(ctx, "i", "", nil)
	_, checks["IndexGet empty member"] = s.IndexGet(ctx, "i", "")
	checks["IndexDelete empty member"] = s.IndexDelete(ctx, "i", "")
	_, _, checks["IndexList empty index"] = s.IndexList(ctx, "", metastore.Query{})
	_, checks["IndexLen empty index"] = s.IndexLen(ctx, "")
	_, checks["Lock empty name"] = s.Lock(ctx, "", time.Second)
	_, checks["Lock zero TTL"] = s.Lock(ctx, "l", 0)
	_, checks["Lock negative TTL"] = s.Lock(ctx, "l", -time.Second)
	for what, err := range checks {
		if err == nil {
			t.Errorf("%s: no error", what)
		}
	}
	// None of them wrote anything.
	_, err := s.Get(ctx, "k")
	wantErr(t, "Get after rejected Puts", err, metastore.ErrNotFound)
	if n, err := s.IndexLen(ctx, "i"); err != nil || n != 0 {
		t.Fatalf("IndexLen after rejected IndexPut = %d, %v", n, err)
	}
	l, err := s.Lock(ctx, "l", time.Second)
	if err != nil {
		t.Fatalf("Lock after rejected Locks: %v", err)
	}
	if err := l.Refresh(ctx, 0); err == nil {
		t.Errorf("Refresh with zero TTL: no error")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

// Read-modify-write loops on one counter lose no update: every successful
// Put is one increment and one version.
func testConcurrentIncrements(t *testing.T, s metastore.Store) {
	const workers, each = 32, 8
	ctx := t.Context()
	put(t, s, "counter", []byte("0"), metastore.Cond{})

	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				for {
					rec, err := s.Get(ctx, "counter")
					if err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					n, err := strconv.Atoi(string(rec.Value))
					if err != nil {
						t.Errorf("counter value %q: %v", rec.Value, err)
						return
					}
					next := []byte(strconv.Itoa(n + 1))
					_, err = s.Put(ctx, "counter", next, metastore.Cond{Version: rec.Version})
					if err == nil {
						wins.Add(1)
						break
					}
					if !errors.Is(err, metastore.ErrConflict) {
						t.Errorf("Put: %v", err)
						return
					}
					conflicts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := get(t, s, "counter")
	if want := strconv.Itoa(workers * each); string(got.Value) != want {
		t.Fatalf("counter = %s, want %s (lost updates)", got.Value, want)
	}
	if got.Version != wins.Load()+1 {
		t.Fatalf("version = %d, want %d successful Puts + 1 create", got.Version, wins.Load())
	}
	t.Logf("%d increments, %d conflicts", wins.Load(), conflicts.Load())
}

// Racing creates: exactly one wins.
func testConcurrentCreate(t *testing.T, s metastore.Store) {
	const workers = 16
	ctx := t.Context()
	var wins atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			_, err := s.Put(ctx, "once", []byte(strconv.Itoa(i)), metastore.Cond{Version: 0})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, metastore.ErrConflict):
				t.Errorf("Put: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d creates succeeded, want 1", wins.Load())
	}
	if got := get(t, s, "once"); got.Version != 1 {
		t.Fatalf("version = %d after one create", got.Version)
	}
}

func testFenceTokens(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	wantRecord(t, put(t, s, "k", []byte("a"), metastore.Cond{Fence: 5}), "a", 1, 5)
	_, err := s.Put(ctx, "k", []byte("stale"), metastore.Cond{Version: metastore.AnyVersion, Fence: 3})
	wantErr(t, "Put with fence 3 after 5", err, metastore.ErrFenced)
	_, err = s.Put(ctx, "k", []byte("stale"), metastore.Cond{Version: 1, Fence: 3})
	wantErr(t, "Put with fence 3 at current version", err, metastore.ErrFenced)
	// A create of an existing record: the fence is checked first.
	_, err = s.Put(ctx, "k", []byte("stale"), metastore.Cond{Version: 0, Fence: 3})
	wantErr(t, "create with fence 3 after 5", err, metastore.ErrFenced)
	_, err = s.Put(ctx, "k", []byte("again"), metastore.Cond{Version: 0, Fence: 7})
	wantErr(t, "create with fence 7 after 5", err, metastore.ErrConflict)
	wantRecord(t, get(t, s, "k"), "a", 1, 5)
	wantRecord(t, put(t, s, "new", []byte("n"), metastore.Cond{Version: 0, Fence: 7}), "n", 1, 7)

	// Zero leaves the stored fence alone; an equal fence is the same holder.
	wantRecord(t, put(t, s, "k", []byte("b"), metastore.Cond{Version: 1}), "b", 2, 5)
	wantRecord(t, put(t, s, "k", []byte("c"), metastore.Cond{Version: 2, Fence: 5}), "c", 3, 5)
	wantRecord(t, put(t, s, "k", []byte("d"), metastore.Cond{Version: 3, Fence: 9}), "d", 4, 9)
	wantRecord(t, get(t, s, "k"), "d", 4, 9)
	_, err = s.Put(ctx, "k", []byte("stale"), metastore.Cond{Version: 4, Fence: 5})
	wantErr(t, "Put with fence 5 after 9", err, metastore.ErrFenced)
	wantRecord(t, get(t, s, "k"), "d", 4, 9)
}

// The scenario fencing exists for: A's lease lapses, B takes over and
// writes, then A wakes up and writes with what it believes is current.
func testStaleHolder(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a, err := s.Lock(ctx, "upload/1", ttl)
	if err != nil {
		t.Fatalf("A Lock: %v", err)
	}
	put(t, s, "upload/1", []byte("A1"), metastore.Cond{Fence: a.Fence()})
	wait()

	b, err := s.Lock(ctx, "upload/1", time.Minute)
	if err != nil {
		t.Fatalf("B Lock after A's lease expired: %v", err)
	}
	defer b.Unlock(ctx)
	if b.Fence() <= a.Fence() {
		t.Fatalf("B fence %d not greater than A fence %d", b.Fence(), a.Fence())
	}
	cur := get(t, s, "upload/1")
	wantRecord(t, put(t, s, "upload/1", []byte("B1"), metastore.Cond{Version: cur.Version, Fence: b.Fence()}),
		"B1", 2, b.Fence())

	// A even has the current version, yet must be refused.
	cur = get(t, s, "upload/1")
	_, err = s.Put(ctx, "upload/1", []byte("A2"), metastore.Cond{Version: cur.Version, Fence: a.Fence()})
	wantErr(t, "stale holder's Put", err, metastore.ErrFenced)
	wantRecord(t, get(t, s, "upload/1"), "B1", 2, b.Fence())
	wantErr(t, "stale holder's Refresh", a.Refresh(ctx, time.Minute), metastore.ErrLockLost)
	wantErr(t, "stale holder's Unlock", a.Unlock(ctx), metastore.ErrLockLost)
	if _, err := s.Lock(ctx, "upload/1", time.Minute); !errors.Is(err, metastore.ErrLocked) {
		t.Fatalf("stale holder's Unlock released B's lock: Lock err = %v", err)
	}
}

func testExpires(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	before := time.Now()
	rec := put(t, s, "k", []byte("v"), metastore.Cond{TTL: ttl})
	after := time.Now()
	wantRoughly(t, "Put ExpiresAt", rec.ExpiresAt, before.Add(ttl), after.Add(ttl))
	got := get(t, s, "k")
	wantRoughly(t, "Get ExpiresAt", got.ExpiresAt, before.Add(ttl), time.Now().Add(ttl))
	put(t, s, "gone", []byte("v"), metastore.Cond{TTL: ttl, Fence: 4})
	wait()

	_, err := s.Get(ctx, "k")
	wantErr(t, "Get after expiry", err, metastore.ErrNotFound)
	wantErr(t, "Delete expired at its version", s.Delete(ctx, "k", 1), metastore.ErrNotFound)
	_, err = s.Put(ctx, "k", []byte("x"), metastore.Cond{Version: 1})
	wantErr(t, "Put at expired record's version", err, metastore.ErrConflict)
	wantRecord(t, put(t, s, "k", []byte("new"), metastore.Cond{Version: 0}), "new", 1, 0)
	wantRecord(t, get(t, s, "k"), "new", 1, 0)

	if err := s.Delete(ctx, "gone", metastore.AnyVersion); err != nil {
		t.Fatalf("Delete expired with AnyVersion: %v", err)
	}
	_, err = s.Get(ctx, "gone")
	wantErr(t, "Get expired after Delete", err, metastore.ErrNotFound)
}

// Every Put sets the expiry afresh: no TTL clears it, a shorter one applies.
func testPutResetsTTL(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	put(t, s, "keep", []byte("1"), metastore.Cond{TTL: ttl})
	rec := put(t, s, "keep", []byte("2"), metastore.Cond{Version: 1})
	if !rec.ExpiresAt.IsZero() {
		t.Fatalf("Put without TTL returned ExpiresAt %v", rec.ExpiresAt)
	}
	put(t, s, "shorten", []byte("1"), metastore.Cond{TTL: time.Hour})
	put(t, s, "shorten", []byte("2"), metastore.Cond{Version: 1, TTL: ttl})
	put(t, s, "extend", []byte("1"), metastore.Cond{TTL: ttl})
	put(t, s, "extend", []byte("2"), metastore.Cond{Version: 1, TTL: time.Hour})
	wait()

	got := get(t, s, "keep")
	wantRecord(t, got, "2", 2, 0)
	if !got.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt = %v after a Put without TTL", got.ExpiresAt)
	}
	_, err := s.Get(ctx, "shorten")
	wantErr(t, "Get after shortened TTL", err, metastore.ErrNotFound)
	got = get(t, s, "extend")
	wantRoughly(t, "extended ExpiresAt", got.ExpiresAt, time.Now().Add(time.Hour-2*time.Second), time.Now().Add(time.Hour))
}

// wantRoughly allows for clock granularity (Redis counts milliseconds) and a
// slow, race-instrumented test machine.
func wantRoughly(t *testing.T, what string, got, lo, hi time.Time) {
	t.Helper()
	const slack = 100 * time.Millisecond
	if got.Before(lo.Add(-slack)) || got.After(hi.Add(slack)) {
		t.Fatalf("%s = %v, want within [%v, %v]", what, got.Format(time.StampMilli),
			lo.Format(time.StampMilli), hi.Format(time.StampMilli))
	}
}
