package faults_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
)

// bare is a backend with no optional capability.
type bare struct{ bucket.Backend }

func caps(c bucket.Composer) (mp, st, p, cl bool) {
	return c.Multipart != nil, c.Staging != nil, c.Pinger != nil, c.Closer != nil
}

// The wrapper shows exactly the wrapped backend's capabilities, so the
// session engine picks the same strategy with or without it.
func TestBackendKeepsCapabilities(t *testing.T) {
	_, fs := testsvc.Embedded(t)
	for _, tc := range []struct {
		name string
		b    bucket.Backend
	}{
		{"filesystem", fs},
		{"s3", s3blob.New(nil, "bkt", "")},
		{"bare", bare{fs}},
	} {
		raw := bucket.Compose(tc.b)
		wmp, wst, wp, wc := caps(raw)
		gmp, gst, gp, gc := caps(faults.Backend(raw, faults.New()))
		if gmp != wmp || gst != wst || gp != wp || gc != wc {
			t.Errorf("%s: wrapper has multipart=%v staging=%v pinger=%v closer=%v, backend has %v %v %v %v", tc.name, gmp, gst, gp, gc, wmp, wst, wp, wc)
		}
	}
}

func TestFailNthMatchingCall(t *testing.T) {
	ctx := context.Background()
	raw, _ := testsvc.Embedded(t)
	in := faults.New()
	s := faults.Store(raw, in)
	trig := in.Arm(faults.Fault{N: 2, Match: faults.All(faults.Methods("Put"), faults.KeyPrefix("k/"))})
	put := func(key string) error {
		_, err := s.Put(ctx, key, []byte("v"), metastore.Cond{Version: metastore.AnyVersion})
		return err
	}
	if err := put("other"); err != nil { // does not match: not counted
		t.Fatal(err)
	}
	if err := put("k/1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-trig.Fired():
		t.Fatal("fired on the first matching call")
	default:
	}
	if err := put("k/2"); !errors.Is(err, faults.ErrInjected) {
		t.Fatalf("second matching Put: %v, want the injected error", err)
	}
	if c, ok := trig.Call(); !ok || c.Method != "Put" || c.Key != "k/2" || c.Seq != 3 || c.Kind != faults.KindStore {
		t.Fatalf("fired call = %v %v", c, ok)
	}
	if _, err := raw.Get(ctx, "k/2"); !errors.Is(err, metastore.ErrNotFound) {
		t.Fatalf("a failed Put reached the store: %v", err)
	}
	if err := put("k/3"); err != nil {
		t.Fatalf("the fault fired twice: %v", err)
	}
	if got := in.Count(faults.Methods("Put")); got != 4 {
		t.Fatalf("counted %d Puts, want 4", got)
	}
}

// FailAfter: the write happens, the caller is told it failed.
func TestFailAfterWrites(t *testing.T) {
	ctx := context.Background()
	_, fs := testsvc.Embedded(t)
	in := faults.New()
	b := faults.Backend(bucket.Compose(fs), in).Backend
	boom := errors.New("connection reset")
	in.Arm(faults.Fault{N: 1, Match: faults.KindIs(faults.KindBlob), Mode: faults.FailAfter, Err: boom})
	if _, err := b.Put(ctx, "a/b", strings.NewReader("hello"), 5, bucket.PutOptions{}); !errors.Is(err, boom) {
		t.Fatalf("Put: %v, want %v", err, boom)
	}
	if info, err := fs.Head(ctx, "a/b"); err != nil || info.Size != 5 {
		t.Fatalf("the write behind a FailAfter did not happen: %v %v", info, err)
	}
	// A Get hit by FailAfter hands out no body.
	in.Arm(faults.Fault{N: 1, Mode: faults.FailAfter})
	if rc, _, err := b.Get(ctx, "a/b", nil); rc != nil || !errors.Is(err, faults.ErrInjected) {
		t.Fatalf("Get = %v, %v", rc, err)
	}
}

func TestStallUntilReleaseOrContext(t *testing.T) {
	raw, fs := testsvc.Embedded(t)
	in := faults.New()
	s, b := faults.Store(raw, in), faults.Backend(bucket.Compose(fs), in)

	// Released: the call goes through.
	trig := in.Arm(faults.Fault{N: 1, Match: faults.Methods("StageWrite"), Mode: faults.Stall})
	errc := make(chan error, 1)
	go func() {
		errc <- b.Staging.StageWrite(context.Background(), "0123abcd", 0, bytes.NewReader([]byte("xyz")), 3)
	}()
	<-trig.Fired()
	select {
	case err := <-errc:
		t.Fatalf("the stalled call returned before Release: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	trig.Release()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-trig.Done()
	if err, ctxEnded := trig.Result(); err != nil || ctxEnded {
		t.Fatalf("result = %v, ctxEnded = %v", err, ctxEnded)
	}

	// Cancelled: the stall ends and the call runs on the cancelled context.
	trig = in.Arm(faults.Fault{N: 1, Match: faults.KindIs(faults.KindStore), Mode: faults.Stall})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := s.Lock(ctx, "l", time.Second)
		errc <- err
	}()
	<-trig.Fired()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after its context ended: %v", err)
	}
	if _, ctxEnded := trig.Result(); !ctxEnded {
		t.Fatal("the trigger did not see the context end the stall")
	}

	// StallAfter: the work is done before the stall.
	trig = in.Arm(faults.Fault{N: 1, Match: faults.Methods("Put"), Mode: faults.StallAfter})
	go func() {
		_, err := b.Backend.Put(context.Background(), "after", strings.NewReader("x"), 1, bucket.PutOptions{})
		errc <- err
	}()
	<-trig.Fired()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := fs.Head(context.Background(), "after"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("StallAfter stalled before the write")
		}
		time.Sleep(5 * time.Millisecond)
	}
	in.Disarm() // releases
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A held lock's Refresh and Unlock are counted and can fail; a failed
// Unlock leaves the lease held, as a lost answer would.
func TestLockCallsAreDecorated(t *testing.T) {
	ctx := context.Background()
	raw, _ := testsvc.Embedded(t)
	in := faults.New()
	s := faults.Store(raw, in)
	l, err := s.Lock(ctx, "session/x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	in.Arm(faults.Fault{N: 1, Match: faults.Methods("Unlock")})
	if err := l.Refresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); !errors.Is(err, faults.ErrInjected) {
		t.Fatalf("Unlock: %v", err)
	}
	if _, err := raw.Lock(ctx, "session/x", time.Minute); !errors.Is(err, metastore.ErrLocked) {
		t.Fatalf("after a failed Unlock the lock is free: %v", err)
	}
	var got []string
	for _, c := range in.Calls(nil) {
		got = append(got, c.Method+"("+c.Key+")")
	}
	if want := "Lock(session/x) Refresh(session/x) Unlock(session/x)"; strings.Join(got, " ") != want {
		t.Fatalf("calls = %v, want %s", got, want)
	}
	if n := in.Count(faults.Not(faults.Background)); n != 2 {
		t.Fatalf("%d calls outside the keep-alive, want 2", n)
	}
}

// One injector numbers the calls of both decorators in one sequence.
func TestSharedInjectorSequence(t *testing.T) {
	ctx := context.Background()
	raw, fs := testsvc.Embedded(t)
	in := faults.New()
	s, b := faults.Store(raw, in), faults.Backend(bucket.Compose(fs), in).Backend
	_, _ = s.Get(ctx, "a")
	_, _ = b.Head(ctx, "a")
	_ = s.IndexPut(ctx, "idx", "m", []byte("v"))
	rc, _, err := b.Get(ctx, "missing", nil)
	if rc != nil || !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("Get of a missing object: %v %v", rc, err)
	}
	calls := in.Calls(nil)
	want := []string{"store.Get", "blob.Head", "store.IndexPut", "blob.Get"}
	if len(calls) != len(want) {
		t.Fatalf("calls = %v", calls)
	}
	for i, c := range calls {
		if string(c.Kind)+"."+c.Method != want[i] || c.Seq != i+1 {
			t.Fatalf("call %d = %v, want %s #%d", i, c, want[i], i+1)
		}
	}
	if n := in.Count(faults.KindIs(faults.KindBlob)); n != 2 {
		t.Fatalf("blob calls = %d", n)
	}
	in.Reset()
	if n := in.Count(nil); n != 0 {
		t.Fatalf("after Reset %d calls", n)
	}
}
