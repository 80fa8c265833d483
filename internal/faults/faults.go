// Package faults decorates the metadata store and the blob backend for the
// fault-injection suite: every call is counted and logged, and one armed
// fault fails or stalls exactly the Nth call that matches a predicate.
//
// One Injector may serve both decorators, so "the Nth call" can range over
// the store and the blob backend together, or over one of them (KindIs).
// The decorators keep the wrapped values' shapes: a backend that implements
// bucket.Multipart, bucket.Staging or bucket.Pinger is returned as one that
// implements the same capabilities and no others, so session.New picks the
// same engine it would have picked without the wrapper.
package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrInjected is the default error of a Fail or FailAfter fault.
var ErrInjected = errors.New("faults: injected failure")

// Kind says which decorator saw a call.
type Kind string

const (
	KindStore Kind = "store"
	KindBlob  Kind = "blob"
)

// Call is one call through a decorator.
type Call struct {
	Seq    int  // 1-based position among every call the injector saw since Reset
	Kind   Kind // store or blob
	Method string
	// Key is what the call is about: a record key, an index name, a lock
	// name, an object key or a staging id ("" for Ping).
	Key string
}

func (c Call) String() string { return fmt.Sprintf("#%d %s.%s(%s)", c.Seq, c.Kind, c.Method, c.Key) }

// Mode is what a fault does to the call it hits.
type Mode int

const (
	// Fail returns the error without calling through: the call never
	// reached the store.
	Fail Mode = iota
	// FailAfter calls through, then returns the error anyway: the write
	// happened but its answer was lost.
	FailAfter
	// Stall blocks before calling through, until Release or until the
	// call's context is done, then calls through with that context (a
	// context-aware store then fails, bbolt and the filesystem do not).
	Stall
	// StallAfter calls through, then blocks before returning, until
	// Release or until the call's context is done.
	StallAfter
)

func (m Mode) String() string {
	switch m {
	case Fail:
		return "fail"
	case FailAfter:
		return "fail-after"
	case Stall:
		return "stall"
	case StallAfter:
		return "stall-after"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Match selects calls; nil matches every call.
type Match func(Call) bool

// KindIs matches the calls of one decorator.
func KindIs(k Kind) Match { return func(c Call) bool { return c.Kind == k } }

// Methods matches calls of the named methods.
func Methods(names ...string) Match {
	return func(c Call) bool {
		for _, n := range names {
			if c.Method == n {
				return true
			}
		}
		return false
	}
}

// KeyPrefix matches calls whose key starts with p.
func KeyPrefix(p string) Match { return func(c Call) bool { return strings.HasPrefix(c.Key, p) } }

// All matches calls every m matches (nil entries are ignored).
func All(ms ...Match) Match {
	return func(c Call) bool {
		for _, m := range ms {
			if m != nil && !m(c) {
				return false
			}
		}
		return true
	}
}

// Not inverts m.
func Not(m Match) Match { return func(c Call) bool { return !m(c) } }

// Background matches the calls a lock's keep-alive makes on a timer: the
// one thing in an upload whose count depends on timing. Sweeps over "every
// call" leave these out to stay deterministic.
var Background = Methods("Refresh")

// Fault is one armed fault: it hits the Nth call matching Match.
type Fault struct {
	N     int // 1-based; N <= 0 never fires (the injector only counts)
	Match Match
	Mode  Mode
	Err   error // for Fail and FailAfter; ErrInjected when nil
}

// Trigger reports on an armed fault and releases a stall.
type Trigger struct {
	fault    Fault
	seen     int
	fired    chan struct{} // closed when the Nth matching call arrives
	done     chan struct{} // closed when that call returns to its caller
	release  chan struct{}
	once     sync.Once
	mu       sync.Mutex
	call     Call
	ctxEnded bool // a stall ended because the call's context was done
	err      error
}

// Fired is closed when the fault hits its call.
func (t *Trigger) Fired() <-chan struct{} { return t.fired }

// Done is closed when the call the fault hit returns to its caller.
func (t *Trigger) Done() <-chan struct{} { return t.done }

// Release ends a stall; it is safe to call at any time, and more than once.
func (t *Trigger) Release() { t.once.Do(func() { close(t.release) }) }

// Call is the call the fault hit, once it fired.
func (t *Trigger) Call() (Call, bool) {
	select {
	case <-t.fired:
	default:
		return Call{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.call, true
}

// Result is what the hit call returned to its caller (after Done), and
// whether a stall ended because the call's own context was done rather
// than by Release: the work ran under a context a client hang-up reaches.
func (t *Trigger) Result() (err error, ctxEnded bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err, t.ctxEnded
}

// Injector counts and logs the calls of the decorators built on it and
// applies at most one armed fault at a time. It is safe for concurrent use.
type Injector struct {
	mu      sync.Mutex
	seq     int
	log     []Call
	armed   *Trigger
	outages []*outage
}

// An outage fails every call it matches, without calling through, until
// it is ended: a dependency that is down for some keys for a while.
type outage struct {
	match Match
	err   error
}

// FailWhile fails every call m matches with err (ErrInjected when nil)
// until the returned func is called. Outages apply before the armed fault,
// and the calls they fail still count and are logged.
func (in *Injector) FailWhile(m Match, err error) (end func()) {
	if err == nil {
		err = ErrInjected
	}
	o := &outage{match: m, err: err}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.outages = append(in.outages, o)
	return func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		for i, x := range in.outages {
			if x == o {
				in.outages = append(in.outages[:i], in.outages[i+1:]...)
				return
			}
		}
	}
}

// New returns an injector with nothing armed.
func New() *Injector { return &Injector{} }

// Arm replaces any armed fault with f and starts counting f's matching
// calls from zero. The returned trigger reports on it.
func (in *Injector) Arm(f Fault) *Trigger {
	if f.Err == nil {
		f.Err = ErrInjected
	}
	t := &Trigger{fault: f, fired: make(chan struct{}), done: make(chan struct{}), release: make(chan struct{})}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.armed != nil {
		in.armed.Release()
	}
	in.armed = t
	return t
}

// Disarm removes the armed fault and releases it if it is stalling.
func (in *Injector) Disarm() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.armed != nil {
		in.armed.Release()
		in.armed = nil
	}
}

// Reset disarms and forgets every call seen so far.
func (in *Injector) Reset() {
	in.Disarm()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seq, in.log = 0, nil
}

// Calls returns the calls seen since Reset, in order, that m matches.
func (in *Injector) Calls(m Match) []Call {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []Call
	for _, c := range in.log {
		if m == nil || m(c) {
			out = append(out, c)
		}
	}
	return out
}

// Count is len(Calls(m)).
func (in *Injector) Count(m Match) int { return len(in.Calls(m)) }

// enter logs the call and returns the error of an outage that covers it,
// or the trigger if the armed fault hits it.
func (in *Injector) enter(kind Kind, method, key string) (*Trigger, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seq++
	c := Call{Seq: in.seq, Kind: kind, Method: method, Key: key}
	in.log = append(in.log, c)
	for _, o := range in.outages {
		if o.match == nil || o.match(c) {
			return nil, fmt.Errorf("%s: %w", c, o.err)
		}
	}
	t := in.armed
	if t == nil || (t.fault.Match != nil && !t.fault.Match(c)) {
		return nil, nil
	}
	t.seen++
	if t.fault.N <= 0 || t.seen != t.fault.N {
		return nil, nil
	}
	t.mu.Lock()
	t.call = c
	t.mu.Unlock()
	close(t.fired)
	return t, nil
}

// wait blocks a stalled call until Release or ctx is done.
func (t *Trigger) wait(ctx context.Context) {
	select {
	case <-t.release:
	case <-ctx.Done():
		t.mu.Lock()
		t.ctxEnded = true
		t.mu.Unlock()
	}
}

func (t *Trigger) finish(err error) {
	t.mu.Lock()
	t.err = err
	t.mu.Unlock()
	close(t.done)
}

// call runs fn as the call (kind, method, key), applying the armed fault
// if it hits this call.
func call[T any](ctx context.Context, in *Injector, kind Kind, method, key string, fn func(context.Context) (T, error)) (T, error) {
	return callDiscard(ctx, in, kind, method, key, fn, nil)
}

// callDiscard is call with a way to free a result FailAfter throws away.
func callDiscard[T any](ctx context.Context, in *Injector, kind Kind, method, key string, fn func(context.Context) (T, error), discard func(T)) (T, error) {
	t, down := in.enter(kind, method, key)
	if down != nil {
		var zero T
		return zero, down
	}
	if t == nil {
		return fn(ctx)
	}
	var (
		v    T
		err  error
		zero T
	)
	switch t.fault.Mode {
	case Fail:
		v, err = zero, t.fault.Err
	case FailAfter:
		if got, ferr := fn(ctx); ferr == nil && discard != nil {
			discard(got)
		}
		v, err = zero, t.fault.Err
	case Stall:
		t.wait(ctx)
		v, err = fn(ctx)
	case StallAfter:
		v, err = fn(ctx)
		t.wait(ctx)
	default:
		v, err = fn(ctx)
	}
	t.finish(err)
	return v, err
}

// call0 is call for methods that return only an error.
func call0(ctx context.Context, in *Injector, kind Kind, method, key string, fn func(context.Context) error) error {
	_, err := call(ctx, in, kind, method, key, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}
